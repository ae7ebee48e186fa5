/**
 * What sandcell keeps between runs, for the whole process: the boxes built ahead (warm boxes),
 * the cgroup driver and the cgroups made ahead per parent, the run cgroups still being removed,
 * and the exit hook that gives it all back. Also how an embedding service tunes it
 * (`setWarmBoxes()`) or gives it back itself (`shutdown()`): a normal process exit releases it
 * all by itself; a service that ends on a signal of its own calls `shutdown()` first.
 */
import { rmdirSync } from 'node:fs';
import { rmdir } from 'node:fs/promises';

import type { RunCgroup } from './cgroup/index.js';
import { SandboxOptionsError } from './errors.js';
import { openCgroups, POOL_SIZE, retireRunCgroup, type CgroupAvailability, type CgroupPool } from './launch/cgroups.js';
import { WarmPool } from './launch/warm.js';
import { namespacesReleased } from './native.js';
import { sweepNetworks } from './network/private.js';

/** The process's warm boxes. */
export const warmBoxes = new WarmPool();

const cgroupsByParent = new Map<string, Promise<CgroupAvailability>>();
/** The pools opened so far (read synchronously at exit). */
const pools: CgroupPool[] = [];
/** This process's `sandcell-<pid>` parent directories. */
const parentDirs = new Set<string>();
let exitHookInstalled = false;
/** Run cgroups made ahead per parent opened from now on (`setCgroupsAhead`). */
let cgroupsAhead = POOL_SIZE;

/** Run cgroups whose removal is under way, and the removals. */
const removing = new Set<RunCgroup>();
const removals = new Set<Promise<void>>();

/**
 * The cgroups for a parent (null: the default below this process's own cgroup), opened on first
 * use. Every box starts here, with or without cgroups, so this is where the exit hook goes in:
 * a rootless process has warm boxes to end too.
 */
export function cgroupsFor(parent: string | null): Promise<CgroupAvailability> {
  installExitHook();
  const key = parent ?? '';
  let pending = cgroupsByParent.get(key);
  if (!pending) {
    // Orphans are swept once per process, by whichever parent is opened first; so are the
    // private networks whose owner process has ended.
    if (cgroupsByParent.size === 0) void sweepNetworks().catch(() => undefined);
    pending = openCgroups(parent, cgroupsByParent.size === 0, cgroupsAhead).then((a) => {
      if (a.pool) {
        pools.push(a.pool);
        for (const dir of Object.values(a.pool.driver.parents)) parentDirs.add(dir);
      }
      return a;
    });
    cgroupsByParent.set(key, pending);
  }
  return pending;
}

/**
 * Removes a run's cgroup, or gives it back to its pool for another run (`retireRunCgroup`), after
 * its result has gone out: its usage is read, its processes are gone (or, `after` it resolves,
 * the last ones outside the run's PID namespace), and the caller need not wait for either. Removals are tracked: `idleCgroupDirs()` and
 * `shutdown()` wait for them, and one that failed is tried again at process exit.
 */
export function removeAfterRun(cgroup: RunCgroup, after?: Promise<void>): void {
  removing.add(cgroup);
  // Started from an immediate: the caller's own continuation runs first. `after`: the run's
  // processes outside its PID namespace are still leaving (a run in a living box).
  const done = (after ?? Promise.resolve())
    .then(() => new Promise((resolve) => setImmediate(resolve)))
    .then(() => retireRunCgroup(cgroup))
    .then(
      () => {
        removing.delete(cgroup);
      },
      () => undefined,
    );
  removals.add(done);
  void done.finally(() => removals.delete(done));
}

/** Finished runs' cgroups removed, and their boxes' mount namespaces let go (src/native.ts). */
async function removalsDone(): Promise<void> {
  while (removals.size > 0) await Promise.all(removals);
  await namespacesReleased();
}

/**
 * Releases, synchronously, the warm boxes, the cgroups made ahead and this process's
 * `sandcell-<pid>` parents; runs at process exit (and tests call it where the process ends by a
 * signal).
 */
export function releaseSync(): void {
  warmBoxes.releaseSync();
  const runs = [...removing].flatMap((rc) => [...rc.dirs]);
  for (const dir of [...runs, ...pools.flatMap((p) => p.idleDirs()), ...parentDirs]) {
    try {
      rmdirSync(dir);
    } catch {
      // Still in use by a run that outlives us: its box dies with us (PDEATHSIG, control
      // socket EOF), and the next sandcell process sweeps the empty directory as an orphan.
    }
  }
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', releaseSync);
}

/**
 * Run cgroups made ahead and not yet handed out, once none is being made and finished runs' are
 * removed (tests tell them from leaked ones).
 */
export async function idleCgroupDirs(): Promise<string[]> {
  await removalsDone();
  await Promise.all(pools.map((p) => p.settled()));
  return pools.flatMap((p) => p.idleDirs());
}

/** The most run cgroups a caller may ask to keep made ahead. */
const MAX_CGROUPS_AHEAD = 64;

/**
 * How many empty run cgroups sandcell keeps made ahead per cgroup parent (default 4), for the
 * cgroup parents opened after the call: call it before the first run. A run takes one ready
 * instead of making its own, and a finished run's cgroup is kept, readied, for another. 0: each
 * run makes its cgroup and it is removed after the run; a process that runs one box and ends
 * (the `sandcell run` command) makes one cgroup instead of five.
 */
export function setCgroupsAhead(count: number): void {
  checkCount('cgroupsAhead', count, MAX_CGROUPS_AHEAD);
  cgroupsAhead = count;
}

/** A count a caller sets for the process: an integer from 0 to `max`, or a SandboxOptionsError naming it. */
function checkCount(name: string, count: number, max: number): void {
  if (!Number.isInteger(count) || count < 0 || count > max) {
    throw new SandboxOptionsError([{ path: name, message: `must be an integer from 0 to ${max}, got ${String(count)}` }]);
  }
}

/** The most warm boxes a caller may ask for. */
const MAX_WARM_BOXES = 64;

/**
 * How many boxes sandcell keeps built ahead, waiting for a run of their shape (default 4, at most
 * 2 per shape). A run that finds one skips building its box: namespaces, root filesystem and
 * cgroup are ready. Each serves one run. 0 turns this off and ends those there are.
 */
export async function setWarmBoxes(count: number): Promise<void> {
  checkCount('warmBoxes', count, MAX_WARM_BOXES);
  await warmBoxes.setLimit(count);
}

/**
 * Opens this process's cgroups now instead of at its first run, and with them removes the cgroups
 * left by sandcell processes that died (one killed with SIGKILL cannot remove its own). A service
 * calls it as it starts: what a previous instance left is gone before it serves, and its first
 * request does not wait for the cgroups to open. Without cgroups (rootless) it does nothing.
 */
export async function prepare(): Promise<void> {
  await cgroupsFor(null);
}

/**
 * Ends the warm boxes (and builds no more: runs after this build their own box), waits for
 * finished runs' cgroups to be removed, removes the cgroups sandcell made ahead of time and this
 * process's `sandcell-<pid>` parents where no box uses them any more. Boxes still running are the
 * caller's to end first.
 */
export async function shutdown(): Promise<void> {
  await warmBoxes.setLimit(0);
  await removalsDone();
  for (const pool of pools) await pool.release();
  for (const dir of parentDirs) await rmdir(dir).catch(() => undefined);
}
