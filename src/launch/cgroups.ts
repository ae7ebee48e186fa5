/**
 * The cgroups of a parent: its driver, opened once per process (src/runtime.ts keeps it), with a
 * few empty run cgroups made ahead of time: making a cgroup (a mkdir in each hierarchy) costs
 * more than the rest of a box's start, and need not happen while a caller waits. Each cgroup
 * serves one run and is removed after it; none is reused.
 */
import { cleanupOrphans, openCgroupDriver, type CgroupDriver, type CgroupLimits, type RunCgroup } from '../cgroup/index.js';
import { debug, debugging } from '../debug.js';
import type { ResolvedOptions } from '../options.js';

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

/**
 * Opens the cgroup driver of a parent (null: the default below this process's own cgroup) and
 * its pool. `sweepOrphans` first removes cgroups left by sandcell processes that died.
 */
export async function openCgroups(parent: string | null, sweepOrphans: boolean): Promise<CgroupAvailability> {
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
  return { pool: new CgroupPool(d, POOL_SIZE), reason: null };
}

/** The cgroup limits of a box or run. */
export function cgroupLimits(o: ResolvedOptions): CgroupLimits {
  const l = o.limits;
  return {
    ...(l.memoryBytes !== null ? { memoryBytes: l.memoryBytes } : {}),
    pids: l.processes,
    ...(l.cpus !== null ? { cpus: l.cpus } : {}),
  };
}
