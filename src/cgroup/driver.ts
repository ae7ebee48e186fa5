/**
 * The cgroup layer's contract. The run pipeline gives each box a run cgroup (made, or one readied
 * by `reuse()` after an earlier run), writes the box's first pid into `procsFiles` before that
 * process runs its own code, polls the cheap readers while the box runs, reads `outcome()` at the
 * end and calls `reuse()` or `destroy()`. Making a run cgroup,
 * writing its limits and reading its outcome happen on a worker thread, off the event loop.
 *
 * Files sandcell writes, and nothing else:
 *  - it creates (mkdir) `sandcell-<pid>` below the parent and `run-<n>-<hex>` below that;
 *  - in `run-*`: memory.max, memory.swap.max, pids.max, cpu.max (v2);
 *    memory.limit_in_bytes, memory.memsw.limit_in_bytes, pids.max, cpu.cfs_period_us,
 *    cpu.cfs_quota_us, and on reuse cpuacct.usage (v1); cgroup.kill (v2, on destroy);
 *  - in `sandcell-<pid>` (v2): cgroup.subtree_control;
 *  - in an explicitly configured parent (v2 only, `DetectOptions.parent`): cgroup.subtree_control,
 *    and only when that parent holds no processes. The caller's own cgroup is never written.
 *  - signals: SIGKILL, only to pids the kernel lists in a run cgroup's cgroup.procs and whose
 *    /proc/<pid>/cgroup still names that run cgroup.
 */

export type CgroupVersion = 'v1' | 'v2';

export interface CgroupLimits {
  /** Hard memory limit of the whole tree in bytes, swap included (swap is forbidden when the kernel lets us). */
  memoryBytes?: number;
  /** pids.max: tasks (processes and threads) alive at once. */
  pids?: number;
  /** CPU bandwidth as a number of CPUs (0.5, 2). At least 0.01. */
  cpus?: number;
}

export type Mechanism = 'cgroup' | 'none';

/** What a run's result needs of its cgroup, read once at its end. */
export interface RunOutcome {
  /** CPU time of the whole tree in µs (may be fractional). NaN when there is no CPU accounting. */
  cpuTimeUs: number;
  /** The tree's peak memory: from the kernel's peak file, else the maximum seen by `memoryCurrentBytes()`. */
  memoryPeakBytes?: number;
  memoryPeakSource: 'cgroup' | 'sampled' | 'none';
  /** The kernel's OOM killer killed something in this cgroup (v2 memory.events oom_kill/oom_group_kill; v1 memory.oom_control oom_kill). */
  oomKilled: boolean;
}

export interface EnforcedLimits {
  /** The memory controller is attached: memoryBytes is enforced and usage measured. */
  readonly memory: Mechanism;
  /** The pids controller is attached: pids is enforced. */
  readonly processes: Mechanism;
  /** CPU time accounting of the whole tree is available (v2 cpu.stat, v1 cpuacct). */
  readonly cpuTime: Mechanism;
  /** CPU bandwidth control is available (v2 cpu.max, v1 cpu.cfs_quota_us). */
  readonly cpus: Mechanism;
}

export interface RunCgroup {
  readonly name: string;
  readonly version: CgroupVersion;
  /** Files the box's first pid must be written to before it runs its own code (v1: cgroup.procs of each hierarchy's run cgroup; v2: the one cgroup.procs). */
  readonly procsFiles: readonly string[];
  /** The run cgroup's directories (one per v1 hierarchy, one on v2). */
  readonly dirs: readonly string[];
  /** Which mechanisms this cgroup really has (independent of which limits were asked for). */
  readonly enforced: EnforcedLimits;
  /** The limits written. */
  readonly limits: Readonly<CgroupLimits>;
  /**
   * Writes limits into a cgroup that holds no process yet (one made ahead of time with none), so
   * that making cgroups can happen before a run needs one.
   */
  applyLimits(limits: CgroupLimits): Promise<void>;
  /**
   * Caps the tree's CPU at `quotaUs` per 1 s period (synchronous; the supervisor of a CPU-time
   * limit sets it to what is left of the limit at every poll, so the kernel stops the box at the
   * limit even when the supervisor is late by up to a period). The `cpus` share still applies.
   * null restores the `cpus` limit alone, or none. A no-op without CPU bandwidth control.
   */
  capCpu(quotaUs: number | null): void;
  /**
   * Lifts every CPU bandwidth limit, the `cpus` share included, for good: the run is being ended,
   * and tasks the kernel throttles must still run to die (a fork bomb at half a CPU took seconds
   * to end on a loaded host). Synchronous; a no-op without CPU bandwidth control.
   */
  unthrottle(): void;
  /** Cheap synchronous read of the whole tree's CPU time so far (µs); NaN without CPU accounting. */
  cpuTimeUs(): number;
  /** The file `cpuTimeUs()` reads (for the executor to read at the program's start); undefined without CPU accounting. */
  readonly cpuTimeFile: string | undefined;
  /** Parses the contents of `cpuTimeFile` into µs (NaN when unparsable). */
  cpuTimeUsFrom(text: string): number;
  /** Current memory usage in bytes (undefined without the memory controller). Each call also feeds the sampled peak used when the kernel has no peak file. */
  memoryCurrentBytes(): number | undefined;
  /**
   * The kernel keeps no peak of this cgroup's memory (v2 before 5.19): the peak a result reports
   * is the maximum `memoryCurrentBytes()` returned, so whoever polls should sample it. False
   * without the memory controller.
   */
  readonly peakSampled: boolean;
  /**
   * Read at the end of every run, on a worker thread. `cpuTime: false` leaves the CPU time unread
   * (NaN), for a caller that has the tree's exact time from elsewhere: one file fewer per run.
   */
  outcome(cpuTime?: boolean): Promise<RunOutcome>;
  /** The pids the kernel lists in the run cgroup now (union over v1 hierarchies). */
  pids(): number[];
  /**
   * The cgroup.procs of the cgroup whose CPU `cpuTimeUs()` counts (undefined without CPU
   * accounting): the pids in it, without those of cgroups below it (a box has no cgroupfs to make
   * any), in one read, where `pids()` walks every hierarchy.
   */
  readonly cpuProcsFile: string | undefined;
  /**
   * After its run, readies this cgroup for another run exactly as strict as a fresh one: true only
   * when it holds no process and no charge, with every limit back to none and every counter a
   * result reports starting again from zero (or from a baseline taken now). False when it cannot
   * be (something is left inside, a write refused, or a cgroup version where this is not done):
   * the caller then destroys it.
   */
  reuse(): Promise<boolean>;
  /** Kill everything still inside, wait until empty, remove the run cgroup. Idempotent; concurrent calls share one attempt. */
  destroy(): Promise<void>;
}

export interface CgroupDriver {
  readonly version: CgroupVersion;
  /** The `sandcell-<pid>` parent directory under which run cgroups are created, per controller on v1 (key: controller name) and under key `unified` on v2. */
  readonly parents: Readonly<Record<string, string>>;
  /** Controllers this driver can use (subset of memory, pids, cpu, cpuacct). */
  readonly controllers: readonly string[];
  /** Things that work less well than they could (a hierarchy not writable, a controller not delegated). */
  readonly warnings: readonly string[];
  /**
   * A new cgroup with these limits, below `sandcell-<pid>`, or below `under` (a cgroup of this
   * driver that will then hold no process of its own: on v2 only leaves may). Destroying `under`
   * destroys what is below it.
   */
  create(limits: CgroupLimits, under?: RunCgroup): Promise<RunCgroup>;
}

/** What a fake cgroupfs must do by itself, for tests: the kernel populates new cgroup dirs and rmdir()s them with their interface files. */
export interface FakeCgroupFs {
  /** Called right after sandcell mkdirs a cgroup directory. */
  populate(dir: string): void;
  /** Replaces rmdir(2) (a real cgroup dir is removable with its interface files still listed). */
  rmdir(dir: string): Promise<void>;
}

export interface DetectOptions {
  /**
   * Explicit parent cgroup, a path relative to each hierarchy's root ("/sandcell") or an absolute
   * path under a cgroup mount. It is created when missing (and never removed); `sandcell-<pid>` is
   * created below it. Default: `sandcell-<pid>` below this process's own cgroup (/proc/self/cgroup).
   */
  parent?: string;
  /** For tests: alternative mountinfo file (default /proc/self/mountinfo). Its mount points may point into a fake tree. */
  mountinfo?: string;
  /** For tests: alternative /proc/self/cgroup. */
  procSelfCgroup?: string;
  /** For tests: the pid used in `sandcell-<pid>` (default process.pid). */
  pid?: number;
  /** For tests: kernel behaviour of a fake tree. */
  fake?: FakeCgroupFs;
  /** Use only this version (default: choose). */
  version?: CgroupVersion;
}

export type OpenResult = { driver: CgroupDriver } | { driver: null; reason: string };
