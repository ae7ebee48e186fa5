/**
 * One cgroup driver per parent for the whole process, opened on first use, with a few empty run
 * cgroups made ahead of time: making a cgroup (a mkdir in each hierarchy) costs more than the
 * rest of a box's start, and need not happen while a caller waits. Each cgroup serves one run
 * and is removed after it; none is reused. The first open also removes cgroups orphaned by
 * sandcell processes that died; process exit removes what is left of ours.
 */
import { rmdirSync } from 'node:fs';
import { rmdir } from 'node:fs/promises';

import { cleanupOrphans, openCgroupDriver, type CgroupDriver, type CgroupLimits, type RunCgroup } from '../cgroup/index.js';
import { warmBoxes } from './warm.js';

/** Fresh run cgroups, made in the background, handed out with their limits written. */
export class CgroupPool {
  private readonly ready: RunCgroup[] = [];
  private refilling: Promise<void> | null = null;

  constructor(
    readonly driver: CgroupDriver,
    private readonly size: number,
  ) {}

  /** A new cgroup with these limits, below `under` if given (those are not made ahead). */
  async take(limits: CgroupLimits, under?: RunCgroup): Promise<RunCgroup> {
    if (under) return this.driver.create(limits, under);
    const made = this.ready.pop();
    if (!made) {
      this.refill();
      return this.driver.create(limits);
    }
    try {
      await made.applyLimits(limits);
    } catch (e) {
      await made.destroy();
      throw e;
    }
    this.refill();
    return made;
  }

  /** Directories of the cgroups made ahead and not handed out, deepest first per hierarchy. */
  idleDirs(): string[] {
    return this.ready.flatMap((rc) => rc.dirs);
  }

  /** Removes the cgroups made ahead; later takes make new ones. */
  async release(): Promise<void> {
    await this.settled();
    for (const rc of this.ready.splice(0)) await rc.destroy();
  }

  /** Resolves when no cgroup is being made ahead (tests look at the hierarchy only then). */
  async settled(): Promise<void> {
    while (this.refilling) await this.refilling;
  }

  private refill(): void {
    if (this.refilling || this.ready.length >= this.size) return;
    // Cleared in a then-callback, which always runs after this assignment: an async function
    // that finished without awaiting would otherwise clear it first and leave it set for good.
    this.refilling = this.fill().then(() => {
      this.refilling = null;
    });
  }

  private async fill(): Promise<void> {
    try {
      while (this.ready.length < this.size) this.ready.push(await this.driver.create({}));
    } catch {
      // The next take() makes its own cgroup, and reports the error if it persists.
    }
  }
}

export interface CgroupAvailability {
  pool: CgroupPool | null;
  /** Why there are no cgroups (not root, no delegation, no controllers). */
  reason: string | null;
}

const POOL_SIZE = 4;
const pools = new Map<string, Promise<CgroupAvailability>>();
const openedParents = new Set<string>();
const openPools: CgroupPool[] = [];
let orphansSwept = false;
let exitHookInstalled = false;

const removing = new Set<RunCgroup>();
const removals = new Set<Promise<void>>();

/**
 * Removes a run's cgroup after its result has gone out: its usage is read, its processes are
 * gone, and the caller need not wait for the rmdir. Removals are tracked: `idleCgroupDirs()` waits
 * for them, and one that failed is tried again at process exit.
 */
export function removeAfterRun(cgroup: RunCgroup): void {
  removing.add(cgroup);
  // Started from an immediate: the caller's own continuation runs first.
  const done = new Promise((resolve) => setImmediate(resolve)).then(() => cgroup.destroy()).then(
    () => {
      removing.delete(cgroup);
    },
    () => undefined,
  );
  removals.add(done);
  void done.finally(() => removals.delete(done));
}

async function removalsDone(): Promise<void> {
  while (removals.size > 0) await Promise.all(removals);
}

/**
 * Removes, synchronously, the warm boxes, the cgroups made ahead and this process's
 * `sandcell-<pid>` parents; runs at process exit (and tests call it where the process ends by a
 * signal).
 */
export function releaseCgroupsSync(): void {
  warmBoxes.releaseSync();
  const runs = [...removing].flatMap((rc) => [...rc.dirs]);
  for (const dir of [...runs, ...openPools.flatMap((p) => p.idleDirs()), ...openedParents]) {
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
  process.once('exit', releaseCgroupsSync);
}

async function open(parent: string | null): Promise<CgroupAvailability> {
  if (!orphansSwept) {
    orphansSwept = true;
    try {
      await cleanupOrphans(parent === null ? {} : { parent });
    } catch {
      // Best effort: an unreadable layout shows up again, with a reason, in the open below.
    }
  }
  const opened = await openCgroupDriver(parent === null ? {} : { parent });
  if (opened.driver === null) return { pool: null, reason: opened.reason };
  for (const dir of Object.values(opened.driver.parents)) openedParents.add(dir);
  installExitHook();
  const pool = new CgroupPool(opened.driver, POOL_SIZE);
  openPools.push(pool);
  return { pool, reason: null };
}

/**
 * Waits for finished runs' cgroups to be removed, removes those made ahead and this process's
 * `sandcell-<pid>` parents where no box uses them any more.
 */
export async function releaseCgroups(): Promise<void> {
  await removalsDone();
  for (const pool of openPools) await pool.release();
  for (const dir of openedParents) await rmdir(dir).catch(() => undefined);
}

/**
 * Run cgroups made ahead and not yet handed out, once none is being made and finished runs' are
 * removed (tests tell them from leaked ones).
 */
export async function idleCgroupDirs(): Promise<string[]> {
  await removalsDone();
  await Promise.all(openPools.map((p) => p.settled()));
  return openPools.flatMap((p) => p.idleDirs());
}

/** The cgroups for a parent (null: the default below this process's own cgroup). */
export function cgroupsFor(parent: string | null): Promise<CgroupAvailability> {
  const key = parent ?? '';
  let pending = pools.get(key);
  if (!pending) {
    pending = open(parent);
    pools.set(key, pending);
  }
  return pending;
}
