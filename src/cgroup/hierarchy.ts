/** Parsing of /proc/self/mountinfo and /proc/self/cgroup, and mapping cgroup paths to directories. */
import { readFileSync } from 'node:fs';
import { join, posix } from 'node:path';

/** The controllers sandcell uses. */
export const WANTED_CONTROLLERS = ['memory', 'pids', 'cpu', 'cpuacct'] as const;
export type Controller = (typeof WANTED_CONTROLLERS)[number];

export interface CgroupMount {
  version: 'v1' | 'v2';
  /** Where it is mounted. */
  mountPoint: string;
  /** The cgroup path (in the hierarchy) that is visible at the mount point ("/" usually). */
  root: string;
  /** v1: controllers bound to this hierarchy (from the super options, `name=` hierarchies excluded). v2: []. */
  controllers: string[];
  /** v1 named hierarchy ("systemd" for name=systemd). */
  name?: string;
}

/** mountinfo escapes space, tab, newline and backslash as \ooo. */
function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

const V1_NON_CONTROLLER_OPTIONS = new Set(['rw', 'ro', 'noprefix', 'clone_children', 'xattr', 'cpuset_v2_mode', 'favordynmods', 'nofavordynmods']);

export function parseMountinfo(text: string): CgroupMount[] {
  const out: CgroupMount[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const fields = line.split(' ');
    const sep = fields.indexOf('-');
    if (sep < 6) continue;
    const fstype = fields[sep + 1];
    if (fstype !== 'cgroup' && fstype !== 'cgroup2') continue;
    const root = unescapeMountinfo(fields[3] ?? '/');
    const mountPoint = unescapeMountinfo(fields[4] ?? '');
    if (fstype === 'cgroup2') {
      out.push({ version: 'v2', mountPoint, root, controllers: [] });
      continue;
    }
    const superOptions = (fields[sep + 3] ?? '').split(',');
    const controllers: string[] = [];
    let name: string | undefined;
    for (const o of superOptions) {
      if (o.startsWith('name=')) name = o.slice(5);
      else if (o.includes('=') || V1_NON_CONTROLLER_OPTIONS.has(o) || o === '') continue;
      else controllers.push(o);
    }
    out.push({ version: 'v1', mountPoint, root, controllers, ...(name !== undefined ? { name } : {}) });
  }
  return out;
}

export interface ProcCgroup {
  /** v1: controller → path of this process in that hierarchy. */
  v1: Map<string, string>;
  /** v2: the path on the unified hierarchy ("0::<path>"). */
  v2?: string;
}

export function parseProcCgroup(text: string): ProcCgroup {
  const v1 = new Map<string, string>();
  let v2: string | undefined;
  for (const line of text.split('\n')) {
    const a = line.indexOf(':');
    const b = line.indexOf(':', a + 1);
    if (a < 0 || b < 0) continue;
    const id = line.slice(0, a);
    const ctrls = line.slice(a + 1, b);
    const path = line.slice(b + 1).replace(/ \(deleted\)$/, '');
    if (id === '0' && ctrls === '') v2 = path;
    else for (const c of ctrls.split(',')) if (c) v1.set(c, path);
  }
  return v2 === undefined ? { v1 } : { v1, v2 };
}

/**
 * The directory of cgroup `path` (a path in the hierarchy, e.g. from /proc/self/cgroup) under a
 * mount. When the mount shows a sub-tree (root ≠ "/", e.g. a container without cgroup namespace)
 * the root prefix is stripped; a path outside it is taken relative to the mount (cgroup namespaces
 * show paths relative to the namespace root).
 */
export function dirOf(mount: CgroupMount, path: string): string {
  const p = posix.normalize(`/${path}`);
  const root = posix.normalize(`/${mount.root}`);
  let rel = p;
  if (root !== '/' && (p === root || p.startsWith(`${root}/`))) rel = p.slice(root.length) || '/';
  return rel === '/' ? mount.mountPoint : join(mount.mountPoint, rel);
}

/**
 * Normalises a configured parent to a hierarchy-relative path: an absolute path under one of the
 * cgroup mount points loses the mount point ("/sys/fs/cgroup/memory/x" → "/x"), anything else is
 * taken as relative to each hierarchy's root.
 */
export function parentRelPath(parent: string, mounts: readonly CgroupMount[]): string {
  const p = posix.normalize(parent.startsWith('/') ? parent : `/${parent}`).replace(/(.)\/+$/, '$1');
  // Longest mount point first, so "/sys/fs/cgroup/memory/x" is not read as under "/sys/fs/cgroup".
  const sorted = [...mounts].sort((a, b) => b.mountPoint.length - a.mountPoint.length);
  for (const m of sorted) {
    if (p === m.mountPoint) return '/';
    if (p.startsWith(`${m.mountPoint}/`)) return p.slice(m.mountPoint.length);
  }
  return p;
}

export function readText(path: string): string {
  return readFileSync(path, 'utf8');
}
