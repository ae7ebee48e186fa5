/**
 * Reading files back out of a living box. The box may be hostile: paths are resolved inside its
 * root by the native side (no symlink followed, only regular files, never more than the limit),
 * each read on a libuv worker thread; here the patterns are matched and the limits kept. A box
 * can hold millions of entries, so how many directory entries a collect reads and how many files
 * it considers are limited too, all patterns together: the work is bounded whatever the box holds.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';

import type { NativeBox } from '../native.js';
import { errnoName } from '../native.js';

export interface Collected {
  /** Files read, by their path relative to the working directory. */
  files: Record<string, Buffer>;
  /** Files (or patterns that matched nothing, or were cut short by a limit) that could not be read, and why. */
  errors: Record<string, string>;
}

export interface CollectLimits {
  perFileBytes: number;
  totalBytes: number;
  /** Directory entries read while matching patterns. */
  entries: number;
  /** Files considered: matched by a pattern or named. */
  files: number;
}

export const DEFAULT_COLLECT_LIMITS: Readonly<CollectLimits> = Object.freeze({
  perFileBytes: 64 * 1024 * 1024,
  totalBytes: 256 * 1024 * 1024,
  entries: 20_000,
  files: 1_000,
});

/** Entries matched per turn of the event loop. */
const SLICE = 1024;

function globToRegExp(segment: string): RegExp {
  const escaped = segment.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]');
  return new RegExp(`^${escaped}$`);
}

const isGlob = (segment: string): boolean => /[*?]/.test(segment);

/** An own property even for a name like `__proto__`: names come from the box. */
function put<T>(record: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(record, key, { value, enumerable: true, writable: true, configurable: true });
}

/** Expands one pattern to the file paths it names (relative to `dir`), reading at most `budget.entries` entries. */
async function expand(box: NativeBox, dir: string, pattern: string, budget: { entries: number }): Promise<{ names: string[]; cut: boolean }> {
  let prefixes = [''];
  let cut = false;
  const segments = pattern.split('/');
  for (const [i, segment] of segments.entries()) {
    const last = i === segments.length - 1;
    const next: string[] = [];
    for (const prefix of prefixes) {
      const path = prefix ? `${prefix}/${segment}` : segment;
      if (!isGlob(segment)) {
        next.push(path);
        continue;
      }
      if (budget.entries === 0) {
        cut = true;
        break;
      }
      let listing: Awaited<ReturnType<NativeBox['listDir']>>;
      try {
        listing = await box.listDir(dir, prefix, budget.entries);
      } catch {
        continue;
      }
      budget.entries -= listing.dirs.length;
      if (listing.truncated) {
        budget.entries = 0;
        cut = true;
      }
      const re = globToRegExp(segment);
      const names = listing.names.split('\0');
      for (let k = 0; k < listing.dirs.length; k++) {
        // A long listing is matched a slice at a time, other callbacks running in between.
        if (k % SLICE === SLICE - 1) await nextTurn();
        const name = names[k]!;
        if ((listing.dirs[k] === 1) === !last && re.test(name)) next.push(prefix ? `${prefix}/${name}` : name);
      }
    }
    prefixes = next;
  }
  return { names: prefixes.sort(), cut };
}

export async function collectFiles(box: NativeBox, dir: string, patterns: readonly string[], limits: CollectLimits): Promise<Collected> {
  const out: Collected = { files: {}, errors: {} };
  const budget = { entries: limits.entries };
  let considered = 0;
  let total = 0;
  for (const pattern of patterns) {
    // The native side refuses any path that leaves `dir` too, but can only give the kernel's errno.
    if (pattern.startsWith('/') || pattern.split('/').some((s) => s === '..' || s === '')) {
      put(out.errors, pattern, "must be relative to the working directory, without '..' or empty parts");
      continue;
    }
    const { names, cut } = await expand(box, dir, pattern, budget);
    const notes: string[] = [];
    if (cut) notes.push(`not fully matched: the limit of ${limits.entries} directory entries read was reached, later matches were not collected`);
    else if (names.length === 0) notes.push('no file matched');
    for (const [i, name] of names.entries()) {
      if (Object.hasOwn(out.files, name)) continue;
      if (considered === limits.files) {
        notes.push(`the limit of ${limits.files} files was reached: ${names.length - i} more matched and were not read`);
        break;
      }
      considered++;
      const room = Math.min(limits.perFileBytes, limits.totalBytes - total);
      try {
        const data = await box.readFile(dir, name, room);
        total += data.length;
        put(out.files, name, data);
      } catch (e) {
        const errno = (e as { errno?: number }).errno;
        const code = errno === undefined ? '' : errnoName(errno);
        put(
          out.errors,
          name,
          code === 'ENOENT'
            ? 'does not exist'
            : code === 'ELOOP'
              ? 'is a symbolic link (not followed)'
              : code === 'EFBIG'
                ? `is larger than the ${room < limits.perFileBytes ? 'remaining total' : 'per-file'} limit of ${room} bytes`
                : code === 'EINVAL'
                  ? 'is not a regular file'
                  : (e as Error).message,
        );
      }
    }
    if (notes.length > 0) put(out.errors, pattern, notes.join('; '));
  }
  return out;
}
