/**
 * The embedded default root filesystem: the host's /usr and its companions bound read-only, a
 * minimal /etc written for the box, a fresh /proc, a minimal /dev, a writable /tmp and working
 * directory. No image to build; nothing else of the host is visible.
 */
import { lstatSync, readdirSync, readlinkSync, type Stats } from 'node:fs';
import { join } from 'node:path';

import { deviceTree, type NativeMount } from '../native.js';
import type { ResolvedFile, ResolvedMount } from '../options.js';
import { privileged } from '../privilege.js';
import { HOST_ID_BASE } from './ids.js';

/** Top-level host directories of the default root: bound read-only, or recreated as the same symlink. */
const HOST_DIRS = ['/usr', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32'];

/** Host files and dirs below /etc that programs need to start (dynamic loader cache, Debian alternatives, JDK config). */
const HOST_ETC = ['/etc/ld.so.cache', '/etc/alternatives', '/etc/localtime'];
const HOST_ETC_PATTERNS = [/^java-\d+-openjdk$/];

/** The devices of a box's /dev (name, major, minor): none reaches the host's hardware, a terminal or the kernel's log. */
export const DEVICES: readonly (readonly [string, number, number])[] = [
  ['null', 1, 3],
  ['zero', 1, 5],
  ['full', 1, 7],
  ['random', 1, 8],
  ['urandom', 1, 9],
];
const DEV_LINKS: readonly (readonly [string, string])[] = [
  ['fd', '/proc/self/fd'],
  ['stdin', '/proc/self/fd/0'],
  ['stdout', '/proc/self/fd/1'],
  ['stderr', '/proc/self/fd/2'],
];

let treeMade: boolean | null = null;

/**
 * Whether boxes get /dev as a clone of one tree made once per process (as root: a mount, and no
 * bind per device, in each box). Its dir and links are owned by the host id of a box's root, as a
 * /dev made in the box would be. Rootless, or where the tree cannot be made (a container's root
 * that may not make device nodes), each box binds the host's devices instead.
 */
function deviceTreeReady(): boolean {
  treeMade ??= privileged() && deviceTree({ nodes: DEVICES, links: DEV_LINKS, dirs: ['shm'], uid: HOST_ID_BASE, gid: HOST_ID_BASE }) === null;
  return treeMade;
}

/** Bytes of tmpfs per inode it may hold: as many files as it could hold were each one page. */
const BYTES_PER_INODE = 4096;

/**
 * The size and inode count of a writable tmpfs: its size alone does not bound the kernel memory
 * its inodes and dentries take (an empty file uses none of the size), nor, without a memory
 * cgroup, does anything else. null: the kernel's defaults (half of the host's memory).
 */
export function tmpfsBounds(sizeBytes: number | null): string {
  if (sizeBytes === null) return '';
  return `size=${sizeBytes},nr_inodes=${Math.max(64, Math.ceil(sizeBytes / BYTES_PER_INODE))},`;
}

export interface RootOptions {
  uid: number;
  gid: number;
  cwd: string;
  /** Size of each writable tmpfs (null: the kernel's default). */
  tmpfsBytes: number | null;
  hostNetwork: boolean;
  /** The box's hostname, listed in its /etc/hosts. */
  hostname: string;
  /** A private network's hosts file, bound at /etc/hosts instead (null: the box's own). */
  hostsFile: string | null;
  /** Volumes, in order. */
  mounts: readonly ResolvedMount[];
  /** A root filesystem image instead of the host's dirs; `writable`: an overlay over it (the init mounts it). */
  image: string | null;
  /** A stored image's layers: the root is their overlay (the init mounts it), its mount points made in its upper tmpfs. */
  layers?: string[] | null;
  writable: boolean;
  /** Put in the working directory, owned by the program's user. */
  files: readonly ResolvedFile[];
  /** The working directory is a directory of the stored image (its `WorkingDir`), shown as it is. */
  cwdInImage?: boolean;
  /** /dev as a clone of the process's device tree (default: when it can be made), or a tmpfs with a bind per device. */
  deviceTree?: boolean;
}

/** Top-level entries of an image that the box provides itself. */
const BOX_OWNED = new Set(['proc', 'dev', 'tmp', 'sys']);

function under(path: string, dir: string): boolean {
  return path === dir || path.startsWith(dir === '/' ? '/' : `${dir}/`);
}

function lstatOrNull(path: string): Stats | null {
  try {
    return lstatSync(path);
  } catch {
    return null;
  }
}

interface HostEntry {
  path: string;
  symlink: string | null;
}

let hostLayout: HostEntry[] | null = null;

/** The host's layout is read once per process: it does not change under a running service. */
function hostEntries(): HostEntry[] {
  if (hostLayout) return hostLayout;
  const etcExtra = (() => {
    try {
      return readdirSync('/etc')
        .filter((n) => HOST_ETC_PATTERNS.some((p) => p.test(n)))
        .map((n) => `/etc/${n}`);
    } catch {
      return [];
    }
  })();
  const entries: HostEntry[] = [];
  for (const path of [...HOST_DIRS, ...HOST_ETC, ...etcExtra]) {
    const st = lstatOrNull(path);
    if (!st) continue;
    entries.push({ path, symlink: st.isSymbolicLink() ? readlinkSync(path) : null });
  }
  hostLayout = entries;
  return entries;
}

function etcFiles(o: RootOptions): NativeMount[] {
  const passwd = [`root:x:0:0:root:/root:/usr/sbin/nologin`];
  const group = [`root:x:0:`];
  if (o.uid !== 0) passwd.push(`sandbox:x:${o.uid}:${o.gid}:sandbox:${o.cwd}:/usr/sbin/nologin`);
  if (o.gid !== 0) group.push(`sandbox:x:${o.gid}:`);
  const files: NativeMount[] = [
    { kind: 'file', target: '/etc/passwd', data: passwd.join('\n') + '\n', mode: 0o644 },
    { kind: 'file', target: '/etc/group', data: group.join('\n') + '\n', mode: 0o644 },
    { kind: 'file', target: '/etc/hostname', data: `${o.hostname}\n`, mode: 0o644 },
    // A network's hosts file changes as boxes join and leave: bound, so the box sees each change.
    // Optional: a network removed meanwhile is reported by the join, which comes next.
    o.hostsFile !== null
      ? { kind: 'bind', source: o.hostsFile, target: '/etc/hosts', readOnly: true, noSuid: true, noDev: true, optional: true }
      : { kind: 'file', target: '/etc/hosts', data: `127.0.0.1\tlocalhost ${o.hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n`, mode: 0o644 },
    { kind: 'file', target: '/etc/nsswitch.conf', data: 'passwd: files\ngroup: files\nhosts: files dns\n', mode: 0o644 },
  ];
  if (o.hostNetwork) files.push({ kind: 'bind', source: '/etc/resolv.conf', target: '/etc/resolv.conf', readOnly: true, noSuid: true, noDev: true, optional: true });
  return files;
}

/** /dev without the device tree: a tmpfs of the box's, each host device bound on it, made read-only once the root is built. */
export function boundDevices(): NativeMount[] {
  const m: NativeMount[] = [{ kind: 'tmpfs', target: '/dev', data: 'size=64k,nr_inodes=64,mode=755', noSuid: true, noExec: true, readOnly: true }];
  for (const [d] of DEVICES) m.push({ kind: 'bind', source: `/dev/${d}`, target: `/dev/${d}`, noSuid: true, noExec: true });
  for (const [name, target] of DEV_LINKS) m.push({ kind: 'symlink', target: `/dev/${name}`, data: target });
  return m;
}

/** A read-only, no-exec /dev holding DEVICES, DEV_LINKS and a writable tmpfs /dev/shm. */
function devices(o: RootOptions): NativeMount[] {
  const m: NativeMount[] = o.deviceTree ?? deviceTreeReady() ? [{ kind: 'devices', target: '/dev' }] : boundDevices();
  m.push({ kind: 'tmpfs', target: '/dev/shm', data: `${tmpfsBounds(o.tmpfsBytes)}mode=1777`, noSuid: true, noDev: true });
  return m;
}

/** An image's top level, bound entry by entry read-only (symlinks recreated), like the host's dirs. */
function imageEntries(image: string, cwd: string): NativeMount[] {
  const cwdTop = cwd.split('/')[1];
  const out: NativeMount[] = [];
  for (const e of readdirSync(image, { withFileTypes: true })) {
    if (BOX_OWNED.has(e.name) || e.name === cwdTop) continue;
    const path = join(image, e.name);
    if (e.isSymbolicLink()) out.push({ kind: 'symlink', target: `/${e.name}`, data: readlinkSync(path) });
    else if (e.isDirectory() || e.isFile()) {
      out.push({ kind: 'bind', source: path, target: `/${e.name}`, readOnly: true, noSuid: true, noDev: true });
    }
  }
  return out;
}

/** The mount list of the box's root, in the order the init applies it. */
export function boxRoot(o: RootOptions): NativeMount[] {
  const mounts: NativeMount[] = [];
  if (o.layers) {
    // The overlay is the root: nothing of the host, nothing to bind.
  } else if (o.image === null) {
    for (const e of hostEntries()) {
      if (e.symlink !== null) mounts.push({ kind: 'symlink', target: e.path, data: e.symlink });
      else mounts.push({ kind: 'bind', source: e.path, target: e.path, readOnly: true, noSuid: true, noDev: true, optional: true });
    }
    mounts.push(...etcFiles(o));
  } else if (!o.writable) {
    mounts.push(...imageEntries(o.image, o.cwd));
  }
  mounts.push({ kind: 'proc', target: '/proc' });
  mounts.push(...devices(o));
  mounts.push({ kind: 'tmpfs', target: '/tmp', data: `${tmpfsBounds(o.tmpfsBytes)}mode=1777`, noSuid: true, noDev: true });
  const volumes: NativeMount[] = o.mounts.map((m) =>
    m.type === 'bind'
      ? { kind: 'bind', source: m.source, target: m.target, readOnly: m.readonly, noSuid: true, noDev: true }
      : { kind: 'tmpfs', target: m.target, data: `${tmpfsBounds(m.sizeBytes)}mode=1777`, noSuid: true, noDev: true },
  );
  // The working directory is a writable tmpfs of its own unless it lies in something already
  // mounted (or in a writable image), or is the root itself. It comes before the caller's
  // volumes: one inside it (a program bound at /work/main) is mounted on it, not hidden by it.
  const covered = o.writable || o.cwdInImage === true || [...mounts, ...volumes].some((m) => (m.kind === 'bind' || m.kind === 'tmpfs' || m.kind === 'proc') && under(o.cwd, m.target));
  if (o.cwd === '/') {
    // The root is the image's (or the box's read-only tmpfs): nothing to mount or make.
  } else if (!covered) {
    mounts.push({ kind: 'tmpfs', target: o.cwd, data: `${tmpfsBounds(o.tmpfsBytes)}mode=755,uid=${o.uid},gid=${o.gid}`, noSuid: true, noDev: true });
  } else if (o.writable && o.cwdInImage !== true) {
    mounts.push({ kind: 'dir', target: o.cwd, mode: 0o755, programOwned: true });
  }
  mounts.push(...volumes);
  mounts.push(...filesIn(o.cwd, o.files));
  return mounts;
}

/** The caller's files as plan entries, below the working directory, owned by the program. */
export function filesIn(cwd: string, files: readonly ResolvedFile[]): NativeMount[] {
  return files.map((f) => ({ kind: 'file', target: `${cwd === '/' ? '' : cwd}/${f.name}`, data: f.data, mode: f.mode, programOwned: true }));
}
