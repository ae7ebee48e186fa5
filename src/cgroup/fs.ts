/**
 * Tiny file helpers for cgroupfs: synchronous reads for polling; a run's mkdirs, limit writes and
 * end-of-run reads as one batch on a libuv worker thread (the addon's `cgroupFiles`), so that the
 * cgroupfs syscalls of a run's setup and result do not hold the event loop.
 */
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { mkdir, rmdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { SandboxSetupError } from '../errors.js';
import { cgroupFiles, errnoName } from '../native.js';
import type { FakeCgroupFs } from './driver.js';

/** Reads a small file; undefined when it does not exist (or cannot be read). */
export function readOpt(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** Parses an integer file's contents ("123\n"); "max" → Infinity; undefined when missing or unparsable. */
export function parseNumber(text: string | undefined): number | undefined {
  const s = text?.trim();
  if (s === undefined || s === '') return undefined;
  if (s === 'max') return Infinity;
  const n = Number(s);
  return Number.isFinite(n) ? n : undefined;
}

/** Reads an integer file; undefined when missing or unparsable. */
export function readNumber(path: string): number | undefined {
  return parseNumber(readOpt(path));
}

/** The value of one key of a flat keyed file ("oom_kill 0\n…"); undefined when absent or not a number. */
export function keyedValue(text: string | undefined, key: string): number | undefined {
  if (text === undefined) return undefined;
  let at = 0;
  for (;;) {
    at = text.indexOf(key, at);
    if (at < 0) return undefined;
    const end = at + key.length;
    if ((at === 0 || text.charCodeAt(at - 1) === 10) && text.charCodeAt(end) === 32) {
      const eol = text.indexOf('\n', end);
      const n = Number(text.slice(end + 1, eol < 0 ? undefined : eol));
      return Number.isFinite(n) ? n : undefined;
    }
    at = end;
  }
}

/** Parses a flat keyed file ("usage_usec 123\nuser_usec 100\n") into a map. */
export function parseKeyed(text: string | undefined): Map<string, number> {
  const out = new Map<string, number>();
  if (text === undefined) return out;
  for (const line of text.split('\n')) {
    const [k, v] = line.trim().split(/\s+/);
    if (k === undefined || v === undefined) continue;
    const n = Number(v);
    if (Number.isFinite(n)) out.set(k, n);
  }
  return out;
}

export function readKeyed(path: string): Map<string, number> | undefined {
  const t = readOpt(path);
  return t === undefined ? undefined : parseKeyed(t);
}

/** The pids listed in a cgroup.procs file ([] when missing). */
export function readPids(procsFile: string): number[] {
  return parsePids(readOpt(procsFile));
}

/** The pids in a cgroup.procs file's contents ([] for none). */
export function parsePids(text: string | null | undefined): number[] {
  if (text == null) return [];
  return text
    .split('\n')
    .map((l) => Number(l.trim()))
    .filter((n) => Number.isInteger(n) && n > 0);
}

export function exists(path: string): boolean {
  return existsSync(path);
}

/** Names of subdirectories ([] when the dir cannot be read). */
export function subdirs(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => e.name);
  } catch {
    return [];
  }
}

/** One control file write: the directory, the file's name, the value. */
export type ControlWrite = readonly [dir: string, file: string, value: string];

/**
 * Removes `rmdirs`, makes `mkdirs` (each in order), then writes `writes` (in order), then reads
 * `reads`, on a worker thread; a read that fails gives undefined. A refused rmdir, mkdir or write
 * stops the batch and becomes a SandboxSetupError naming the directory, or the file and value
 * (what was done before it stays done). With a fake tree, its `populate` runs between the mkdirs
 * and the writes, as the kernel's would (and it has no rmdirs: a fake tree's cgroups are never
 * reused).
 */
export async function cgroupBatch(
  mkdirs: readonly string[],
  writes: readonly ControlWrite[],
  reads: readonly string[] = [],
  fake?: FakeCgroupFs,
  rmdirs: readonly string[] = [],
): Promise<(string | undefined)[]> {
  // Nothing to do (a cgroup made or readied without limits, given none): no trip to a worker.
  if (mkdirs.length + writes.length + reads.length + rmdirs.length === 0) return [];
  const flat: string[] = [];
  // The directories are clean absolute paths (the driver's own): a join() would only normalize them again.
  for (const [dir, file, value] of writes) flat.push(`${dir}/${file}`, value);
  try {
    if (fake && mkdirs.length > 0) {
      await cgroupFiles(mkdirs, [], []);
      for (const d of mkdirs) fake.populate(d);
      mkdirs = [];
    }
    const got = await cgroupFiles(mkdirs, flat, reads, rmdirs);
    return got.map((t) => t ?? undefined);
  } catch (e) {
    const err = e as { op?: unknown; path?: unknown; value?: unknown; errno?: unknown; message?: string };
    if (typeof err.errno !== 'number' || typeof err.path !== 'string') throw e;
    const code = errnoName(err.errno);
    if (err.op === 'mkdir' || err.op === 'rmdir') throw new SandboxSetupError(`cgroup ${err.op}`, err.errno, code, `${err.path}: ${err.message ?? code}`);
    throw new SandboxSetupError(`cgroup write ${basename(err.path)}`, err.errno, code, `${JSON.stringify(err.value)} → ${err.path}: ${err.message ?? code}`);
  }
}

/**
 * Writes one cgroup control file outside a run's setup (detection's subtree_control, cgroup.kill);
 * a failure becomes a SandboxSetupError naming the file and value. Without the addon, like
 * `mkdirCgroup`.
 */
export async function writeControl(dir: string, file: string, value: string): Promise<void> {
  const path = join(dir, file);
  try {
    writeFileSync(path, value);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new SandboxSetupError(`cgroup write ${file}`, err.errno ?? 0, err.code ?? 'EIO', `${JSON.stringify(value)} → ${path}: ${err.message}`);
  }
}

/**
 * mkdir of a new cgroup (exclusive unless `allowExisting`); returns true when it was created now.
 * On the event loop's own thread pool, without the addon: detection uses it in processes that
 * may have no cgroups and no addon at all.
 */
export async function mkdirCgroup(dir: string, fake: FakeCgroupFs | undefined, allowExisting = false): Promise<boolean> {
  try {
    await mkdir(dir);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (allowExisting && err.code === 'EEXIST') return false;
    throw new SandboxSetupError('cgroup mkdir', err.errno ?? 0, err.code ?? 'EIO', `${dir}: ${err.message}`);
  }
  fake?.populate(dir);
  return true;
}

/**
 * mkdir of a new cgroup in `parent`, making `parent` again first only if it is gone (another
 * driver of this process may have closed it): the usual case costs one mkdir and no exception.
 * Returns true when `parent` was made now.
 */
export async function mkdirCgroupIn(parent: string, dir: string, fake: FakeCgroupFs | undefined): Promise<boolean> {
  try {
    await mkdirCgroup(dir, fake);
    return false;
  } catch (e) {
    if (!(e instanceof SandboxSetupError) || e.code !== 'ENOENT') throw e;
  }
  const made = await mkdirCgroup(parent, fake, true);
  await mkdirCgroup(dir, fake);
  return made;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * rmdir of a cgroup, retrying EBUSY/ENOTEMPTY (a just-killed task leaves the cgroup asynchronously)
 * for up to `timeoutMs`. A missing dir counts as removed. Throws the last error otherwise.
 */
export async function rmdirCgroup(dir: string, fake: FakeCgroupFs | undefined, timeoutMs = 1000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let delay = 1; ; delay = Math.min(delay * 2, 50)) {
    try {
      if (fake) {
        if (existsSync(dir)) await fake.rmdir(dir);
      } else {
        await rmdir(dir);
      }
      return;
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      if (err.code === 'ENOENT') return;
      if ((err.code !== 'EBUSY' && err.code !== 'ENOTEMPTY') || Date.now() >= deadline) throw err;
    }
    await sleep(delay);
  }
}

/** Is a process with this pid alive (in our pid namespace)? EPERM means alive (someone else's). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Does /proc/<pid>/cgroup still place the process in (or below) a cgroup whose path ends in
 * `tail` (e.g. "/sandcell-12/run-1-ab")? Checked right before each SIGKILL so that a pid that left
 * the cgroup and was reused by an unrelated process is not signalled.
 */
export function pidInCgroup(pid: number, tail: string): boolean {
  const t = readOpt(`/proc/${pid}/cgroup`);
  if (t === undefined) return false;
  return t.split('\n').some((line) => {
    const path = line.slice(line.indexOf(':', line.indexOf(':') + 1) + 1);
    return path.endsWith(tail) || path.includes(`${tail}/`);
  });
}

/** Every directory below `dir` (not `dir` itself), deepest first: the order in which to rmdir them. */
export function descendantsDeepestFirst(dir: string, maxDepth = 16): string[] {
  const out: string[] = [];
  const walk = (d: string, depth: number): void => {
    if (depth > maxDepth) return;
    for (const name of subdirs(d)) {
      const child = join(d, name);
      walk(child, depth + 1);
      out.push(child);
    }
  };
  walk(dir, 1);
  return out;
}
