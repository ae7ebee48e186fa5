/** Pieces shared by the v1 and v2 drivers: names, limit validation, kill-and-remove. */
import { join } from 'node:path';
import type { CgroupLimits, FakeCgroupFs } from './driver.js';
import { cgroupBatch, descendantsDeepestFirst, pidInCgroup, readPids, rmdirCgroup, sleep } from './fs.js';

let runCounter = 0;

/**
 * `run-<counter>-<random>`: unique within the process (counter) and across reused pids (32 random
 * bits). `Math.random` (seeded from the system's entropy in each process) and not `node:crypto`,
 * whose load is milliseconds of every one-shot run: the name need not be secret, as the parent it
 * is made in is written by this process only.
 */
export function newRunName(): string {
  runCounter += 1;
  return `run-${runCounter}-${Math.floor(Math.random() * 2 ** 32).toString(16).padStart(8, '0')}`;
}

export const sandcellDirName = (pid: number): string => `sandcell-${pid}`;
export const SANDCELL_DIR_RE = /^sandcell-(\d+)$/;
export const RUN_DIR_RE = /^run-\d+-[0-9a-f]+$/;

/** cpu bandwidth period used for both versions (µs). */
export const CPU_PERIOD_US = 100_000;
/** The kernel refuses quotas below 1 ms. */
export const CPU_MIN_QUOTA_US = 1000;

export function validateLimits(l: CgroupLimits): void {
  if (l.memoryBytes !== undefined && !(Number.isSafeInteger(l.memoryBytes) && l.memoryBytes > 0)) {
    throw new RangeError(`cgroup memoryBytes must be a positive integer, got ${l.memoryBytes}`);
  }
  if (l.pids !== undefined && !(Number.isSafeInteger(l.pids) && l.pids > 0)) {
    throw new RangeError(`cgroup pids must be a positive integer, got ${l.pids}`);
  }
  if (l.cpus !== undefined && !(Number.isFinite(l.cpus) && Math.round(l.cpus * CPU_PERIOD_US) >= CPU_MIN_QUOTA_US)) {
    throw new RangeError(`cgroup cpus must be a number ≥ ${CPU_MIN_QUOTA_US / CPU_PERIOD_US}, got ${l.cpus}`);
  }
}

export const cpuQuotaUs = (cpus: number): number => Math.round(cpus * CPU_PERIOD_US);

/** The period of a CPU cap (the longest the kernel allows), and the quota for it: what is left, within the `cpus` share. */
export const CPU_CAP_PERIOD_US = 1_000_000;
export function cappedQuotaUs(quotaUs: number, cpus: number | undefined): number {
  const share = cpus === undefined ? Infinity : cpus * CPU_CAP_PERIOD_US;
  return Math.max(CPU_MIN_QUOTA_US, Math.round(Math.min(quotaUs, share)));
}

/** Every pid in the run cgroups and their descendants (union, deduplicated). */
export function pidsIn(dirs: readonly string[]): number[] {
  const set = new Set<number>();
  for (const d of dirs) {
    for (const sub of [d, ...descendantsDeepestFirst(d)]) for (const p of readPids(join(sub, 'cgroup.procs'))) set.add(p);
  }
  return [...set];
}

export interface KillOptions {
  dirs: readonly string[];
  /** Tail of the cgroup path in /proc/<pid>/cgroup: "/sandcell-<pid>/run-…". */
  tail: string;
  /** Something that kills the whole tree at once (v2 cgroup.kill); when it returns true, pids are not signalled one by one. */
  killAll?: () => Promise<boolean>;
  fake?: FakeCgroupFs;
  /** How long to wait for the cgroup to empty. */
  timeoutMs?: number;
}

/**
 * Kills what is in the run cgroup, waits until it is empty, removes the dirs (children first).
 * The pids are the box's: they are in a cgroup sandcell created, and each one is checked in
 * /proc/<pid>/cgroup right before the signal.
 */
export async function killAndRemove(o: KillOptions): Promise<void> {
  // The usual end of a run: its processes are gone and its cgroups are empty leaves.
  if (!o.fake && (await removedAtOnce(o.dirs))) return;
  const deadline = Date.now() + (o.timeoutMs ?? 3000);
  const usedKillAll = o.killAll ? await o.killAll() : false;
  for (let delay = 1; ; delay = Math.min(delay * 2, 20)) {
    const pids = pidsIn(o.dirs);
    if (pids.length === 0) break;
    if (Date.now() >= deadline) {
      throw new Error(`cgroup ${o.dirs.join(', ')} still holds pids ${pids.join(' ')} after SIGKILL`);
    }
    // Repeat the kill on every round: a task may have forked while we were reading the list.
    if (!usedKillAll || delay >= 20) {
      for (const pid of pids) {
        if (!pidInCgroup(pid, o.tail)) continue;
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* ESRCH: already gone */
        }
      }
    }
    await sleep(delay);
  }
  for (const d of o.dirs) {
    for (const sub of descendantsDeepestFirst(d)) await rmdirCgroup(sub, o.fake);
    await rmdirCgroup(d, o.fake, Math.max(200, deadline - Date.now()));
  }
}

/**
 * rmdir of every dir in one trip to a worker thread; false (and some perhaps removed) when one
 * is refused (still holds something, or already gone): the careful path then removes the rest.
 */
async function removedAtOnce(dirs: readonly string[]): Promise<boolean> {
  try {
    await cgroupBatch([], [], [], undefined, dirs);
    return true;
  } catch {
    return false;
  }
}

/**
 * A teardown that happens once: concurrent calls share the attempt in flight, a finished one is
 * not repeated, and a failed one may be tried again.
 */
export class Once {
  private pending: Promise<void> | undefined;
  private done = false;

  run(work: () => Promise<void>): Promise<void> {
    if (this.done) return Promise.resolve();
    this.pending ??= work().then(
      () => {
        this.done = true;
        this.pending = undefined;
      },
      (e: unknown) => {
        this.pending = undefined;
        throw e;
      },
    );
    return this.pending;
  }
}
