/**
 * The image store: layers unpacked once each, named by the digest of their uncompressed tar
 * (verified while unpacking), and images as ordered lists of them. Layout below the root:
 *
 *   layers/<hex>/root/     the layer's files: an overlay lower directory, never written again
 *   layers/<hex>/layer.json  its diff id, size, entries
 *   images/<hex>.json      an image: its id (the digest of its config), names, layers (bottom
 *                          first), and the config's Env / WorkingDir / User / Entrypoint / Cmd
 *   tmp/<pid>-<random>/    imports in progress; whatever a dead process left is removed
 *   lock                   names its holder (pid, start time) while layers are committed, records written, pruned
 *
 * A layer appears by one rename of a complete directory, an image by one rename of a complete
 * record, so an import cut short leaves nothing but its tmp dir, which the next import or prune
 * removes. Two imports of the same layer may both unpack it; the second rename loses and its
 * copy is dropped.
 */
import { closeSync, existsSync, linkSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { privileged } from '../privilege.js';
import { ImageError } from './errors.js';

/** What a run takes from an image's config. */
export interface ImageRunConfig {
  /** `NAME=value` entries, the defaults of a run's environment. */
  env: string[];
  /** The run's default working directory, when the image names one other than `/`. */
  workingDir: string | null;
  user: string | null;
  entrypoint: string[] | null;
  cmd: string[] | null;
}

/** An image in the store. */
export interface ImageInfo {
  /** `sha256:<hex>` of the image's config. */
  id: string;
  names: string[];
  /** Diff ids of its layers (`sha256:<hex>`), bottom first. */
  layers: string[];
  /** Bytes of file data in its layers (shared layers counted in each image). */
  size: number;
  /** When the image says it was made, if it says. */
  created: string | null;
  importedAt: string;
  /** What it was imported from: `docker-archive`, `oci-archive`, `oci-layout`, `rootfs-tar`, `directory`. */
  format: string;
  config: ImageRunConfig;
}

/** Where the store lives unless told: `SANDCELL_STORE`; root: /var/lib/sandcell; otherwise the user's data dir. */
export function defaultStoreRoot(): string {
  const fromEnv = process.env.SANDCELL_STORE;
  if (fromEnv) return fromEnv;
  if (privileged()) return '/var/lib/sandcell';
  const data = process.env.XDG_DATA_HOME || join(homedir(), '.local', 'share');
  return join(data, 'sandcell');
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._\-/:@+]{0,254}$/;

/**
 * Image names: letters, digits and `._-/:@+`, starting with a letter or digit, at most 255
 * characters, no `..`. So a name never starts with `/` or `.`, and an `image` option that does
 * is a path.
 */
export function checkImageName(name: string): void {
  if (!NAME.test(name) || name.includes('..')) {
    throw new ImageError('BAD_NAME', `${JSON.stringify(name)} is not an image name: letters, digits and ._-/:@+, starting with a letter or digit, no '..', at most 255 characters`);
  }
}

const HEX = /^[0-9a-f]{64}$/;

export function hexOf(digest: string): string {
  const hex = digest.startsWith('sha256:') ? digest.slice(7) : '';
  if (!HEX.test(hex)) throw new ImageError('BAD_DIGEST', `${JSON.stringify(digest)} is not a sha256 digest`);
  return hex;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class StorePaths {
  constructor(readonly root: string) {}
  get layers(): string {
    return join(this.root, 'layers');
  }
  get images(): string {
    return join(this.root, 'images');
  }
  get tmp(): string {
    return join(this.root, 'tmp');
  }
  layer(diffId: string): string {
    return join(this.layers, hexOf(diffId));
  }
  layerRoot(diffId: string): string {
    return join(this.layer(diffId), 'root');
  }
  image(id: string): string {
    return join(this.images, `${hexOf(id)}.json`);
  }
}

/** Makes the store's directories; boxes' inits (unprivileged host ids) must be able to pass through them. */
export function ensureStore(p: StorePaths): void {
  for (const d of [p.root, p.layers, p.images, p.tmp]) mkdirSync(d, { recursive: true, mode: 0o711 });
}

/**
 * 48 random bits in hex, for the names of tmp/'s entries. `Math.random` (seeded from the system's
 * entropy in each process) and not `node:crypto`, which every run would load with this module:
 * the names need not be secret, as tmp/ is written by sandcell alone, each name after its pid.
 */
function randomPart(): string {
  return Math.floor(Math.random() * 2 ** 48).toString(16).padStart(12, '0');
}

/** A fresh directory below tmp/, named by this process so that prune can tell a dead import's leftovers. */
export function makeTmp(p: StorePaths): string {
  ensureStore(p);
  const dir = join(p.tmp, `${process.pid}-${randomPart()}`);
  mkdirSync(dir, { mode: 0o711 });
  return dir;
}

/** Removes tmp dirs of processes that are gone. */
export function sweepTmp(p: StorePaths): void {
  let names: string[];
  try {
    names = readdirSync(p.tmp);
  } catch {
    return;
  }
  for (const n of names) {
    const pid = Number.parseInt(n.split('-')[0] ?? '', 10);
    if (Number.isInteger(pid) && pid > 0 && (pid === process.pid || pidAlive(pid))) continue;
    rmSync(join(p.tmp, n), { recursive: true, force: true });
  }
}

/** When the kernel started process `pid` (field 22 of its stat), which tells it from a later process given the same pid. */
function startTimeOf(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

/** Whether the process a lock file names (`<pid> <start time>`) still runs: a pid reused since is not it. */
function holderAlive(text: string): boolean {
  const [pidText, start] = text.trim().split(' ');
  const pid = Number.parseInt(pidText ?? '', 10);
  if (!Number.isInteger(pid) || pid <= 0) return true;
  if (!pidAlive(pid)) return false;
  const now = startTimeOf(pid);
  return start === undefined || now === null || now === start;
}

function readOrNull(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/** A takeover mark older than this was left by a process killed while it held it (it is held for a few system calls). */
const TAKEOVER_STALE_MS = 10_000;

/**
 * Runs `fn` holding the store's lock: a file naming its holder (`<pid> <start time>`), written
 * whole under another name and hard-linked into place, so that it appears at once with its
 * content and only one process can make it. A lock whose holder is gone is removed, by one
 * process at a time (holding `lock.takeover`, made with O_EXCL), which first reads it again: two
 * processes that both saw it stale cannot both remove it, the second removing the first's new
 * lock. Held only while layers are committed and records written or pruned, never while unpacking.
 */
export async function withLock<T>(p: StorePaths, fn: () => T | Promise<T>): Promise<T> {
  ensureStore(p);
  const lock = join(p.root, 'lock');
  const takeover = `${lock}.takeover`;
  const mine = `${process.pid} ${startTimeOf(process.pid) ?? ''}`.trim();
  const draft = join(p.tmp, `${process.pid}-lock-${randomPart()}`);
  writeFileSync(draft, mine, { mode: 0o600 });
  try {
    for (;;) {
      try {
        linkSync(draft, lock);
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      const seen = readOrNull(lock);
      if (seen !== null && !holderAlive(seen)) removeStale(lock, takeover, seen);
      else await sleep(20);
    }
  } finally {
    rmSync(draft, { force: true });
  }
  try {
    return await fn();
  } finally {
    rmSync(lock, { force: true });
  }
}

function removeStale(lock: string, takeover: string, seen: string): void {
  let fd: number;
  try {
    fd = openSync(takeover, 'wx', 0o600);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    try {
      if (Date.now() - statSync(takeover).mtimeMs > TAKEOVER_STALE_MS) rmSync(takeover, { force: true });
    } catch {
      // removed by its holder meanwhile
    }
    return;
  }
  try {
    if (readOrNull(lock) === seen) rmSync(lock, { force: true });
  } finally {
    closeSync(fd);
    rmSync(takeover, { force: true });
  }
}

export function readImages(p: StorePaths): ImageInfo[] {
  let names: string[];
  try {
    names = readdirSync(p.images);
  } catch {
    return [];
  }
  const out: ImageInfo[] = [];
  for (const n of names) {
    if (!n.endsWith('.json')) continue;
    try {
      out.push(JSON.parse(readFileSync(join(p.images, n), 'utf8')) as ImageInfo);
    } catch {
      // a record being replaced at this instant: the rename makes it whole again
    }
  }
  return out.sort((a, b) => (a.importedAt < b.importedAt ? -1 : 1));
}

/** The image a reference names: a name, its id (`sha256:<hex>`) or the id's first 12+ hex digits. */
export function findImage(p: StorePaths, ref: string): ImageInfo | null {
  const images = readImages(p);
  const byName = images.find((i) => i.names.includes(ref));
  if (byName) return byName;
  const hex = ref.startsWith('sha256:') ? ref.slice(7) : ref;
  if (/^[0-9a-f]{12,64}$/.test(hex)) {
    const matches = images.filter((i) => i.id.slice(7).startsWith(hex));
    if (matches.length === 1) return matches[0]!;
  }
  return null;
}

/** Writes an image record atomically, taking its names from any other image (like `docker tag`). Under the lock. */
export function writeImage(p: StorePaths, image: ImageInfo, keepNames = true): void {
  const before = readImages(p).find((i) => i.id === image.id);
  if (before && keepNames) image = { ...image, names: [...new Set([...before.names, ...image.names])] };
  for (const other of readImages(p)) {
    if (other.id === image.id) continue;
    const kept = other.names.filter((n) => !image.names.includes(n));
    if (kept.length !== other.names.length) writeRecord(p, { ...other, names: kept });
  }
  writeRecord(p, image);
}

function writeRecord(p: StorePaths, image: ImageInfo): void {
  const to = p.image(image.id);
  const tmp = `${to}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(image, null, 2) + '\n', { mode: 0o644 });
  renameSync(tmp, to);
}

export function removeRecord(p: StorePaths, id: string): void {
  rmSync(p.image(id), { force: true });
}

/** Moves an unpacked layer into place; false when another import put the same layer there first. */
export function commitLayer(p: StorePaths, diffId: string, dir: string): boolean {
  try {
    renameSync(dir, p.layer(diffId));
    return true;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw e;
    rmSync(dir, { recursive: true, force: true });
    return false;
  }
}

export function hasLayer(p: StorePaths, diffId: string): boolean {
  return existsSync(join(p.layer(diffId), 'layer.json'));
}

export function layerSize(p: StorePaths, diffId: string): number {
  try {
    return (JSON.parse(readFileSync(join(p.layer(diffId), 'layer.json'), 'utf8')) as { size: number }).size;
  } catch {
    return 0;
  }
}

/** Layers no image names, removed; under the lock. */
export function pruneLayers(p: StorePaths): { layers: string[]; bytes: number } {
  sweepTmp(p);
  const used = new Set(readImages(p).flatMap((i) => i.layers.map(hexOf)));
  const removed: string[] = [];
  let bytes = 0;
  let names: string[] = [];
  try {
    names = readdirSync(p.layers);
  } catch {
    return { layers: removed, bytes };
  }
  for (const hex of names) {
    if (used.has(hex)) continue;
    bytes += layerSize(p, `sha256:${hex}`);
    // Renamed away first, so that a box starting now cannot find half a layer.
    const doomed = join(p.tmp, `${process.pid}-prune-${hex}`);
    renameSync(join(p.layers, hex), doomed);
    rmSync(doomed, { recursive: true, force: true });
    removed.push(`sha256:${hex}`);
  }
  return { layers: removed, bytes };
}
