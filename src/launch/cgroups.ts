/**
 * The cgroups of a parent: its driver, opened once per process (src/runtime.ts keeps it), with a
 * few empty run cgroups made ahead of time: making a cgroup (a mkdir in each hierarchy) costs
 * more than the rest of a box's start, and need not happen while a caller waits. After its run a
 * cgroup comes back here: readied for the next run (`RunCgroup.reuse`: empty, limits lifted,
 * counters from zero) it is kept, else removed.
 */
import { cleanupOrphans, openCgroupDriver, type CgroupDriver, type CgroupLimits, type RunCgroup } from '../cgroup/index.js';
import { debug, debugging } from '../debug.js';
import type { ResolvedOptions } from '../options.js';

/** The pool each run cgroup was taken from, and the cgroup it was made below (if any). */
const origins = new WeakMap<RunCgroup, { pool: CgroupPool; under: RunCgroup | undefined }>();

/**
 * Ends a run's cgroup once its run is over: back to its pool when it can be readied for the next
 * run, else removed (what is left inside killed first).
 */
export async function retireRunCgroup(rc: RunCgroup): Promise<void> {
  const origin = origins.get(rc);
  if (origin) await origin.pool.giveBack(rc, origin.under);
  else await rc.destroy();
}

/** Cgroups kept for reuse below one cgroup (a living box's runs): at most this many. */
const SPARES_PER_PARENT = 2;

/** Run cgroups, made in the background or kept from finished runs, handed out with their limits written. */
export class CgroupPool {
  private readonly ready: RunCgroup[] = [];
  /** Cgroups below another (a living box's), readied after their runs, by that cgroup. */
  private readonly spares = new WeakMap<RunCgroup, RunCgroup[]>();
  private refilling: Promise<void> | null = null;

  constructor(
    readonly driver: CgroupDriver,
    private readonly size: number,
  ) {}

  /** A new cgroup with these limits, below `under` if given (those are not made ahead). */
  async take(limits: CgroupLimits, under?: RunCgroup): Promise<RunCgroup> {
    const rc = await this.takeFrom(limits, under);
    origins.set(rc, { pool: this, under });
    return rc;
  }

  private async takeFrom(limits: CgroupLimits, under?: RunCgroup): Promise<RunCgroup> {
    const made = under ? this.spares.get(under)?.pop() : this.ready.pop();
    if (!made) {
      if (!under) this.refill();
      return this.driver.create(limits, under);
    }
    try {
      await made.applyLimits(limits);
    } catch (e) {
      await made.destroy();
      throw e;
    }
    if (!under) this.refill();
    return made;
  }

  /**
   * A cgroup whose run is over: kept for another run if it can be readied as a fresh one and
   * there is room, else removed. One that cannot be emptied is never kept.
   */
  async giveBack(rc: RunCgroup, under: RunCgroup | undefined): Promise<void> {
    const list = under ? (this.spares.get(under) ?? []) : this.ready;
    const room = under ? SPARES_PER_PARENT : 2 * this.size;
    // Room is looked at again after the reset: other cgroups may have come back meanwhile.
    if (list.length >= room || !(await rc.reuse()) || list.length >= room) {
      await rc.destroy();
      return;
    }
    list.push(rc);
    if (under) this.spares.set(under, list);
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

/** Run cgroups a pool keeps made ahead, unless its process asks otherwise (`openCgroups`). */
export const POOL_SIZE = 4;

/**
 * Opens the cgroup driver of a parent (null: the default below this process's own cgroup) and
 * its pool, keeping `ahead` run cgroups made ahead. `sweepOrphans` first removes cgroups left by
 * sandcell processes that died.
 */
export async function openCgroups(parent: string | null, sweepOrphans: boolean, ahead = POOL_SIZE): Promise<CgroupAvailability> {
  if (sweepOrphans) {
    try {
      await cleanupOrphans(parent === null ? {} : { parent });
    } catch {
      // Best effort: an unreadable layout shows up again, with a reason, in the open below.
    }
  }
  const opened = await openCgroupDriver(parent === null ? {} : { parent });
  const name = parent ?? '(own cgroup)';
  if (opened.driver === null) {
    if (debugging) debug({ event: 'cgroups', parent: name, driver: 'none', reason: `${opened.reason}: rlimits stand in for the memory, CPU-time and process limits` });
    return { pool: null, reason: opened.reason };
  }
  const d = opened.driver;
  if (debugging) debug({ event: 'cgroups', parent: name, driver: d.version, controllers: d.controllers, warnings: d.warnings });
  return { pool: new CgroupPool(d, ahead), reason: null };
}

/**
 * The cgroup limits of a box or run. One object literal per combination of limits, not
 * conditional spreads: spread, the object had a V8 shape of its own on every run, and every read
 * of it (the limits' check, their writes) went to V8's runtime.
 */
export function cgroupLimits(o: ResolvedOptions): CgroupLimits {
  const { memoryBytes, processes: pids, cpus } = o.limits;
  if (memoryBytes === null) return cpus === null ? { pids } : { pids, cpus };
  return cpus === null ? { memoryBytes, pids } : { memoryBytes, pids, cpus };
}
