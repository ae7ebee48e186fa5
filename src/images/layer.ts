/**
 * Unpacking one tar stream (an image layer, or the archive an image came in) into a directory of
 * the store, treating every byte as hostile. `tar`'s Parser only reads headers; every file is
 * written here, entry by entry, synchronously, so that no later entry can race an earlier one:
 *
 * - a path is relative, without `..`; `./` is dropped; an absolute path is taken as relative
 *   to the archive's root (never the host's);
 * - no entry is written through a symlink: every parent of an entry is checked with lstat (and
 *   made as a directory when missing), the entry itself replaces whatever was there, and files
 *   are opened O_EXCL|O_NOFOLLOW: a symlink an earlier entry made is never followed;
 * - a hard link must name a regular file this same archive already wrote;
 * - device nodes and FIFOs are skipped (a box has its own /dev), setuid/setgid bits dropped
 *   (boxes mount nosuid anyway, but a layer should not hold them), extended attributes and
 *   owners' names ignored: both are reported as warnings naming the entry;
 * - an entry whose data ends before its declared size, or an archive cut short, is refused;
 * - the uncompressed stream and the number of entries are bounded (a decompression bomb stops
 *   at the bound, with the bytes written so far removed by the caller).
 */
import { createHash } from 'node:crypto';
import {
  closeSync,
  constants as fsConstants,
  createReadStream,
  fchmodSync,
  fchownSync,
  futimesSync,
  lchownSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeSync,
  chmodSync,
  chownSync,
  type Stats,
} from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { setImmediate } from 'node:timers/promises';
import { Parser, type ReadEntry } from 'tar';

import { overlayMark } from '../native.js';
import { HOST_ID_BASE, HOST_ID_LAST } from '../plan/ids.js';
import { ImageArchiveError, ImageError } from './errors.js';

/** Bounds on what one archive may expand to. */
export interface UnpackLimits {
  /** Bytes of the uncompressed tar stream. */
  maxBytes: number;
  /** Entries (files, directories, links...). */
  maxEntries: number;
}

export const DEFAULT_LIMITS: Readonly<UnpackLimits> = Object.freeze({ maxBytes: 64 * 2 ** 30, maxEntries: 2_000_000 });

export interface UnpackOptions {
  /** An empty directory, made by the caller: it becomes the archive's root. */
  dir: string;
  /** The archive's name in errors and warnings (a layer digest, a file name). */
  layer: string;
  /** The media type it was declared with, for the error about a compression we cannot read. */
  mediaType?: string;
  /** OCI whiteouts (`.wh.name`, `.wh..wh..opq`) become overlayfs whiteouts and opaque marks. */
  whiteouts: boolean;
  /** Files owned by the ids a box maps them to (root only); otherwise by the caller. */
  mapOwners: boolean;
  /**
   * The archive's owners may already be host ids of the box range (a directory prepared for
   * `image: dir`, owned by 100000 as rootfs/busybox.sh leaves it): they are read back as the
   * ids inside they stand for.
   */
  boxRangeOwners?: boolean;
  limits: UnpackLimits;
  /** Called with the compressed bytes read so far. */
  onBytes?: (bytes: number) => void;
  /** What was neutralised, one line each, naming the entry. */
  warnings: string[];
}

export interface Unpacked {
  /** sha256 of the uncompressed tar stream: the OCI diff id, `sha256:<hex>`. */
  diffId: string;
  /** sha256 of the bytes as read (compressed or not), `sha256:<hex>`. */
  digest: string;
  /** Bytes of file data written. */
  size: number;
  entries: number;
}

/** Ids above this are not mapped into any box; they become its `nobody`. */
const MAX_BOX_ID = 65535;
const NOBODY = 65534;

/**
 * The host id a file owned by `inside` in an image must have for a box to see it owned by
 * `inside`: the box's root maps to HOST_ID_BASE and any other id of the program to the id just
 * above HOST_ID_BASE + inside (src/plan/ids.ts). Ids a box cannot map become its nobody.
 */
export function hostOwnerOf(inside: number): number {
  const id = inside > MAX_BOX_ID ? NOBODY : inside;
  return id === 0 ? HOST_ID_BASE : HOST_ID_BASE + id + 1;
}

type Compression = 'gzip' | 'none';

/** What the first bytes say the stream is; a compression Node cannot read is refused by name. */
function compressionOf(head: Buffer, o: UnpackOptions): Compression {
  const is = (...bytes: number[]): boolean => bytes.every((b, i) => head[i] === b);
  if (is(0x1f, 0x8b)) return 'gzip';
  const refuse = (what: string): never => {
    throw new ImageError(
      'UNSUPPORTED_COMPRESSION',
      `${o.layer}${o.mediaType ? ` (${o.mediaType})` : ''} is ${what}-compressed: this Node has no ${what} decompressor; convert the image to gzip layers (e.g. skopeo copy --dest-compress-format gzip)`,
    );
  };
  if (is(0x28, 0xb5, 0x2f, 0xfd)) refuse('zstd');
  if (is(0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00)) refuse('xz');
  if (is(0x42, 0x5a, 0x68)) refuse('bzip2');
  return 'none';
}

function readHead(path: string): Buffer {
  const fd = openSync(path, 'r');
  try {
    const head = Buffer.alloc(6);
    const n = readSync(fd, head, 0, 6, 0);
    return head.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

/** Unpacks the tar (plain or gzip) in file `path` into `o.dir`. */
export async function unpackFile(path: string, o: UnpackOptions): Promise<Unpacked> {
  const compression = compressionOf(readHead(path), o);
  const raw = createReadStream(path, { highWaterMark: 1 << 20 });
  const digest = createHash('sha256');
  let read = 0;
  raw.on('data', (c) => {
    digest.update(c as Buffer);
    read += (c as Buffer).length;
    o.onBytes?.(read);
  });
  const plain: Readable = compression === 'gzip' ? raw.pipe(createGunzip()) : raw;
  if (compression === 'gzip') raw.on('error', (e) => plain.destroy(e));
  const r = await unpackStream(plain, o);
  return { ...r, digest: `sha256:${digest.digest('hex')}` };
}

/** Bytes of tar handed to the parser at once: a few dozen small entries at most. */
const PARSE_SLICE = 16 * 1024;
/** How long unpacking may hold the event loop before it lets other work run. */
const LOOP_BUDGET_MS = 10;

/** Unpacks an uncompressed tar stream into `o.dir`. */
export async function unpackStream(input: Readable, o: UnpackOptions): Promise<Omit<Unpacked, 'digest'>> {
  const writer = new LayerWriter(o);
  // zstd: false stops the parser from sniffing compression of its own; gzip it always sniffs,
  // so a stream that is still gzip after decompression (a nested bomb) is refused below.
  const parser = new Parser({ strict: true, zstd: false, brotli: false });
  let failure: unknown = null;
  parser.on('entry', (e: ReadEntry) => writer.entry(e, (err) => (failure ??= err)));
  parser.on('error', (e: Error & { tarCode?: string }) => {
    failure ??= new ImageArchiveError(
      e.tarCode === 'TAR_BAD_ARCHIVE' && writer.current !== null ? 'TRUNCATED' : 'BAD_ARCHIVE',
      o.layer,
      writer.current,
      e.message,
    );
  });
  // A strict parser's error may come instead of its end or its drain: neither is waited for then.
  const ended = new Promise<void>((resolve) => {
    parser.on('end', resolve);
    parser.on('error', () => resolve());
  });
  const drained = (): Promise<void> =>
    new Promise<void>((resolve) => {
      parser.once('drain', resolve);
      parser.once('error', () => resolve());
    });
  const hash = createHash('sha256');
  let bytes = 0;
  let first = true;
  let heldSince = performance.now();
  try {
    for await (const chunk of input as AsyncIterable<Buffer>) {
      if (first && chunk.length >= 2 && chunk[0] === 0x1f && chunk[1] === 0x8b) {
        throw new ImageArchiveError('BAD_ARCHIVE', o.layer, null, 'is compressed twice (gzip inside the tar stream)');
      }
      first = false;
      bytes += chunk.length;
      if (bytes > o.limits.maxBytes) {
        throw new ImageArchiveError('TOO_LARGE', o.layer, writer.current, `expands beyond ${o.limits.maxBytes} bytes (a decompression bomb, or a larger limit is needed)`);
      }
      hash.update(chunk);
      // Every entry is written synchronously as the parser reads it: fed a slice at a time, with
      // the event loop given back once a slice ends past the budget, so that a chunk of
      // thousands of small files does not hold the loop for the whole of it.
      for (let at = 0; at < chunk.length; at += PARSE_SLICE) {
        if (!parser.write(chunk.subarray(at, at + PARSE_SLICE)) && !failure) await drained();
        if (failure) throw failure;
        if (performance.now() - heldSince > LOOP_BUDGET_MS) {
          await setImmediate();
          heldSince = performance.now();
        }
      }
    }
    parser.end();
    await ended;
    if (failure) throw failure;
    writer.finish();
  } catch (e) {
    input.destroy();
    writer.abandon();
    if (e instanceof ImageError) throw e;
    throw new ImageArchiveError('BAD_ARCHIVE', o.layer, writer.current, (e as Error).message);
  }
  return { diffId: `sha256:${hash.digest('hex')}`, size: writer.size, entries: writer.entries };
}

/**
 * An archive path made relative to the layer's root and checked: an absolute path is taken as
 * relative to it (umoci writes its root as "/"; containerd reads them so), `..` is refused.
 */
function cleanPath(raw: string, layer: string, entry: string, hardlink = false): string {
  const what = hardlink ? 'hard link target' : 'path';
  const parts = raw.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw new ImageArchiveError(hardlink ? 'HARDLINK_OUTSIDE' : 'PARENT_PATH', layer, entry, `${what} ${JSON.stringify(raw)} contains '..'`);
  if (raw.includes('\0')) throw new ImageArchiveError('BAD_ARCHIVE', layer, entry, `${what} contains a NUL byte`);
  return parts.join('/');
}

function lstatOrNull(path: string): Stats | null {
  try {
    return lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

const O_NEW_FILE = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW;
const SETID_BITS = 0o6000;

class LayerWriter {
  size = 0;
  entries = 0;
  /** The entry being written: named by errors about the stream itself (truncation, size). */
  current: string | null = null;
  private fd: number | null = null;
  private absoluteSeen = false;
  private failed = false;
  private readonly madeDirs = new Set<string>();

  constructor(private readonly o: UnpackOptions) {
    // The layer's root belongs to the box's root unless the archive says otherwise ("./").
    this.own(o.dir, 0, 0);
  }

  private refuse(code: string, entry: string, reason: string): never {
    throw new ImageArchiveError(code, this.o.layer, entry, reason);
  }

  private id(id: number): number {
    if (this.o.boxRangeOwners && id >= HOST_ID_BASE && id <= HOST_ID_LAST) return id === HOST_ID_BASE ? 0 : id - HOST_ID_BASE - 1;
    return id;
  }

  private own(path: string, uid: number, gid: number, link = false): void {
    if (!this.o.mapOwners) return;
    (link ? lchownSync : chownSync)(path, hostOwnerOf(this.id(uid)), hostOwnerOf(this.id(gid)));
  }

  private mode(e: ReadEntry, rel: string): number {
    const mode = (e.mode ?? 0o644) & 0o7777;
    if (mode & SETID_BITS) this.o.warnings.push(`${this.o.layer}: ${rel}: setuid/setgid bits dropped`);
    return mode & ~SETID_BITS;
  }

  /** Every directory above `rel`, checked (never a symlink) or made. */
  private parents(rel: string, entry: string): void {
    const parts = rel.split('/').slice(0, -1);
    let at = '';
    for (const part of parts) {
      at = at ? `${at}/${part}` : part;
      if (this.madeDirs.has(at)) continue;
      const abs = join(this.o.dir, at);
      const st = lstatOrNull(abs);
      if (st === null) {
        mkdirSync(abs, 0o755);
        this.own(abs, 0, 0);
      } else if (st.isSymbolicLink()) {
        this.refuse('THROUGH_SYMLINK', entry, `would be written through the symlink ${JSON.stringify(at)} an earlier entry made`);
      } else if (!st.isDirectory()) {
        this.refuse('BAD_ARCHIVE', entry, `${JSON.stringify(at)} is not a directory`);
      }
      this.madeDirs.add(at);
    }
  }

  /** Clears the way for a new entry at `rel` (a later entry replaces an earlier one). */
  private replace(rel: string, keepDir: boolean): Stats | null {
    const abs = join(this.o.dir, rel);
    const st = lstatOrNull(abs);
    if (st === null) return null;
    if (st.isDirectory()) {
      if (keepDir) return st;
      rmSync(abs, { recursive: true, force: true });
      for (const d of this.madeDirs) if (d === rel || d.startsWith(`${rel}/`)) this.madeDirs.delete(d);
    } else {
      unlinkSync(abs);
    }
    return null;
  }

  entry(e: ReadEntry, report: (err: unknown) => void): void {
    const entry = e.path;
    // After the first refusal nothing more is written: the layer is thrown away.
    if (this.failed) {
      e.resume();
      return;
    }
    const fail = (err: unknown): void => {
      this.failed = true;
      report(err);
    };
    try {
      if (++this.entries > this.o.limits.maxEntries) {
        this.refuse('TOO_MANY_ENTRIES', entry, `the archive has more than ${this.o.limits.maxEntries} entries`);
      }
      this.write(e, entry, fail);
    } catch (err) {
      fail(err);
      e.resume();
    }
  }

  private write(e: ReadEntry, entry: string, fail: (err: unknown) => void): void {
    const rel = cleanPath(entry, this.o.layer, entry);
    if (entry.startsWith('/') && rel !== '' && !this.absoluteSeen) {
      this.absoluteSeen = true;
      this.o.warnings.push(`${this.o.layer}: ${entry}: absolute paths taken as relative to the layer's root`);
    }
    if (rel === '') {
      if (e.type === 'Directory') {
        chmodSync(this.o.dir, this.mode(e, '.') || 0o755);
        this.own(this.o.dir, e.uid ?? 0, e.gid ?? 0);
      }
      e.resume();
      return;
    }
    this.parents(rel, entry);
    const abs = join(this.o.dir, rel);
    const slash = rel.lastIndexOf('/');
    const base = rel.slice(slash + 1);
    const parent = slash < 0 ? '' : rel.slice(0, slash);
    if (this.o.whiteouts && base.startsWith('.wh.')) {
      e.resume();
      if (base === '.wh..wh..opq') {
        overlayMark('opaque', parent === '' ? this.o.dir : join(this.o.dir, parent));
      } else if (base.startsWith('.wh..wh.')) {
        this.o.warnings.push(`${this.o.layer}: ${rel}: AUFS metadata ignored`);
      } else {
        const hidden = cleanPath(`${parent}/${base.slice(4)}`, this.o.layer, entry);
        this.replace(hidden, false);
        overlayMark('whiteout', join(this.o.dir, hidden));
        this.own(join(this.o.dir, hidden), 0, 0, true);
      }
      return;
    }
    switch (e.type) {
      case 'File':
      case 'OldFile':
      case 'ContiguousFile':
        this.replace(rel, false);
        this.file(e, entry, abs, this.mode(e, rel), fail);
        return;
      case 'Directory': {
        const mode = this.mode(e, rel);
        if (this.replace(rel, true) === null) mkdirSync(abs, mode);
        chmodSync(abs, mode);
        this.own(abs, e.uid ?? 0, e.gid ?? 0);
        this.madeDirs.add(rel);
        e.resume();
        return;
      }
      case 'SymbolicLink':
        this.replace(rel, false);
        symlinkSync(e.linkpath ?? '', abs);
        this.own(abs, e.uid ?? 0, e.gid ?? 0, true);
        e.resume();
        return;
      case 'Link': {
        const target = cleanPath(e.linkpath ?? '', this.o.layer, entry, true);
        this.parents(target, entry);
        const st = lstatOrNull(join(this.o.dir, target));
        if (st === null || !st.isFile()) {
          this.refuse('HARDLINK_OUTSIDE', entry, `hard link to ${JSON.stringify(e.linkpath)}, which is not a file this archive wrote before it`);
        }
        if (target !== rel) {
          this.replace(rel, false);
          linkSync(join(this.o.dir, target), abs);
        }
        e.resume();
        return;
      }
      case 'CharacterDevice':
      case 'BlockDevice':
      case 'FIFO':
        this.o.warnings.push(`${this.o.layer}: ${rel}: ${e.type} skipped (a box has its own /dev)`);
        e.resume();
        return;
      default:
        this.refuse('UNSUPPORTED_ENTRY', entry, `entry type ${String(e.type)} is not supported`);
    }
  }

  private file(e: ReadEntry, entry: string, abs: string, mode: number, fail: (err: unknown) => void): void {
    const fd = openSync(abs, O_NEW_FILE, 0o600);
    this.fd = fd;
    this.current = entry;
    const declared = e.size ?? 0;
    let written = 0;
    e.on('data', (chunk: Buffer) => {
      if (this.fd !== fd) return;
      try {
        writeSync(fd, chunk);
        written += chunk.length;
        this.size += chunk.length;
      } catch (err) {
        this.closeFile();
        fail(err);
      }
    });
    e.on('end', () => {
      if (this.fd !== fd || written !== declared) return;
      try {
        fchmodSync(fd, mode);
        if (this.o.mapOwners) fchownSync(fd, hostOwnerOf(this.id(e.uid ?? 0)), hostOwnerOf(this.id(e.gid ?? 0)));
        if (e.mtime) futimesSync(fd, e.mtime, e.mtime);
        this.current = null;
      } catch (err) {
        fail(err);
      }
      this.closeFile();
    });
  }

  private closeFile(): void {
    if (this.fd === null) return;
    closeSync(this.fd);
    this.fd = null;
  }

  /** The stream ended: an entry still open had less data than its header declared. */
  finish(): void {
    if (this.current !== null) this.refuse('TRUNCATED', this.current, 'the archive ends before the size its header declares');
  }

  /** Closes the file being written when the stream failed. */
  abandon(): void {
    this.closeFile();
  }
}
