/**
 * Every host id a box uses, decided here: the ids its own ids map to, and the id that owns its
 * user namespace. The kernel charges each per-user count a box raises (inotify instances and
 * watches, POSIX message queue bytes, queued signals, processes, user namespaces) to the box's
 * ids and, level by level up the user-namespace chain, to the owner of the box's namespace. So
 * the owner must be an id only boxes use: were it host root, a box could take all of root's
 * allowance of any of these for as long as it lives.
 */
import { SandboxOptionsError } from '../errors.js';
import { privileged } from '../privilege.js';

/** Host id of the box's root; the program's ids map just above it. Unprivileged, never the caller's own. */
export const HOST_ID_BASE = 100000;
/** The last host id a box's ids can map to (inside id 65535). */
export const HOST_ID_LAST = HOST_ID_BASE + 65536;

/** A range of host ids: `first`, `first + 1`, ... `first + count - 1`, as uids and gids alike. */
export interface OwnerIds {
  first: number;
  count: number;
}

/**
 * Each box's user namespace is owned by one free id of this range, held while the box lives:
 * above the ids distributions give to users and to subordinate ranges, below 2^31 (some tools
 * take ids as signed numbers).
 */
export const DEFAULT_OWNER_IDS: Readonly<OwnerIds> = Object.freeze({ first: 0x70000000, count: 65536 });

/** Ids are 32 bits; (uid_t)-1 means "unchanged" to the kernel. */
const MAX_ID = 0xfffffffe;

let ownerRange: Readonly<OwnerIds> = DEFAULT_OWNER_IDS;

/**
 * The host ids boxes' user namespaces are owned by (root only; a rootless box's namespace is
 * necessarily its caller's); default `{ first: 0x70000000, count: 65536 }`. A box takes one free
 * id of the range for its life, so two boxes that live at once never share the kernel's per-user
 * allowances. Boxes of other processes using the same range may happen to share an id: give each
 * service a range of its own. A range containing 0, running past 4294967294 or overlapping the
 * ids boxes map to (100000-165536) is refused with a `SandboxOptionsError`. Applies to boxes made
 * after the call. See SECURITY.md, "Host ids".
 */
export function setOwnerIds(range: OwnerIds): void {
  const issue = (path: string, message: string): never => {
    throw new SandboxOptionsError([{ path, message }]);
  };
  if (typeof range !== 'object' || range === null) issue('ownerIds', 'must be an object { first, count }');
  const { first, count } = range;
  if (!Number.isInteger(first) || first < 1 || first > MAX_ID) issue('ownerIds.first', `must be an integer from 1 to ${MAX_ID}, got ${String(first)}`);
  if (!Number.isInteger(count) || count < 1 || count > MAX_ID - first + 1) {
    issue('ownerIds.count', `must be an integer from 1 to ${MAX_ID - first + 1} (the range ends at ${MAX_ID}), got ${String(count)}`);
  }
  if (first <= HOST_ID_LAST && first + count - 1 >= HOST_ID_BASE) {
    issue('ownerIds', `must not overlap the ids boxes map to (${HOST_ID_BASE}-${HOST_ID_LAST}), got ${first}-${first + count - 1}`);
  }
  ownerRange = Object.freeze({ first, count });
}

/** The owner range for a new box, or undefined when the caller itself owns it (rootless). */
export function ownerIds(): Readonly<OwnerIds> | undefined {
  return privileged() ? ownerRange : undefined;
}

/**
 * Root of the box's user namespace and the program's ids, each mapped to its own unprivileged
 * host id. Without privilege only the caller's own id can be mapped: it becomes the box's root,
 * and the program runs as that root, with no capabilities.
 */
export function idMap(inside: number, own: number): string {
  if (!privileged()) return `0 ${own} 1\n`;
  const lines = [`0 ${HOST_ID_BASE} 1`];
  if (inside !== 0) lines.push(`${inside} ${HOST_ID_BASE + (inside % 65536) + 1} 1`);
  return lines.join('\n') + '\n';
}
