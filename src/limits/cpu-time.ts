/**
 * The CPU-time limit (`limits.cpuTime`): CPU time of the whole process tree, user + system.
 *
 * Enforced by the supervisor from the run cgroup's CPU counter (cpuacct on v1, cpu.stat on v2),
 * polled while the run lasts (`CpuTimeLimit`), with a CPU bandwidth cap as the kernel's backstop
 * for a poll that comes late; RLIMIT_CPU backs both up per process (`cpuTimeRlimit`). Without CPU
 * accounting (rootless, no controller) RLIMIT_CPU is the limit itself. The status is `time-limit`.
 */
import { readlinkSync } from 'node:fs';
import { readdir, readlink } from 'node:fs/promises';
import { availableParallelism, constants as osConstants } from 'node:os';

import type { RunCgroup } from '../cgroup/index.js';
import { parsePids } from '../cgroup/fs.js';
import { INIT_PATH, cgroupFiles, type NativeRlimit } from '../native.js';
import type { Enforcement, Outcome, Status } from '../result.js';

const RLIMIT_CPU = 0;
const SIGKILL = osConstants.signals.SIGKILL;
const SIGXCPU = osConstants.signals.SIGXCPU;
const CPUS = availableParallelism();
/** How far past what is left the kernel's cap is set (see `poll`). */
const CPU_CAP_SLACK_MS = 2;

/** How the limit is enforced in this cgroup (null: the run has none). */
export function cpuTimeEnforcement(limitMs: number | null, cgroup: RunCgroup | null): Enforcement {
  if (limitMs === null) return 'none';
  return cgroup?.enforced.cpuTime === 'cgroup' ? 'cgroup' : 'rlimit';
}

/**
 * RLIMIT_CPU: per process, in whole seconds, SIGXCPU at the soft limit and SIGKILL at the hard
 * one. Without a cgroup it is the limit itself; with one the supervisor ends the whole tree
 * exactly at the limit and this only backs it up, a second later.
 */
export function cpuTimeRlimit(limitMs: number | null, enforcement: Enforcement): NativeRlimit | null {
  if (limitMs === null) return null;
  const s = Math.ceil(limitMs / 1000) + (enforcement === 'cgroup' ? 1 : 0);
  return { resource: RLIMIT_CPU, soft: s, hard: s + 1 };
}

/** Watches a running tree's CPU time in its cgroup and ends the run at the limit. */
export class CpuTimeLimit {
  /** CPU time the box's setup used before the program started: not the program's. */
  private baseUs: number;
  private timer: NodeJS.Timeout | null = null;
  /** The kernel holds the tree's CPU at what is left of the limit (see `poll`). */
  private capped = false;
  private stopped = false;
  /** The counter at the start is known, and the setup's share of it not yet asked for. */
  private shareWanted: boolean;

  /**
   * `usageAtStart`: the cgroup's CPU counter as the executor read it the moment the program
   * started. `initPid`: the box's init, which `killTreeNow` spares.
   */
  constructor(
    private readonly cgroup: RunCgroup,
    private readonly limitMs: number,
    usageAtStart: string | null,
    private readonly initPid: number,
    private readonly onExceeded: () => void,
  ) {
    const base = usageAtStart !== null ? cgroup.cpuTimeUsFrom(usageAtStart) : NaN;
    this.baseUs = Number.isFinite(base) ? base : 0;
    this.shareWanted = Number.isFinite(base);
    this.poll();
  }

  /** The run is ending (for any reason): no more polls, and throttled tasks must run to die. */
  release(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.capped) this.cgroup.capCpu(null);
    this.capped = false;
  }

  /** Checks the whole tree's CPU time often enough that the limit cannot be overrun by much. */
  private poll(): void {
    if (this.stopped) return;
    const cg = this.cgroup;
    const usedMs = (cg.cpuTimeUs() - this.baseUs) / 1000;
    if (usedMs >= this.limitMs) {
      this.killTreeNow();
      this.onExceeded();
      return;
    }
    // A backstop in the kernel for a timer that fires late on a loaded host: a CPU bandwidth quota
    // per 1 s period of what is left of the limit, plus a little, rewritten at every poll. It is
    // set just past the limit because the kernel enforces it late by its own grain (runtime
    // handed out in slices, charged at ticks: up to ~10 ms per CPU here), which a timely poll beats.
    const remainingMs = this.limitMs - usedMs;
    cg.capCpu((remainingMs + CPU_CAP_SLACK_MS) * 1000);
    this.capped = true;
    // Where the kernel keeps no memory peak, these samples are the peak.
    if (cg.peakSampled) cg.memoryCurrentBytes();
    // At most every CPU of the machine burns for the box: wait no longer than half the remaining
    // budget spread over all of them (a timer may fire late), and never longer than 50 ms.
    const next = Math.min(50, Math.max(1, remainingMs / (2 * CPUS)));
    this.timer = setTimeout(() => {
      this.askSetupShare();
      this.poll();
    }, next);
  }

  /**
   * The counter at the start is the base until the setup's share of it is known, a few worker
   * trips after the first timed poll and long before the next one of any limit but the shortest:
   * meanwhile the limit counts the program's CPU before its start late, never early, and the cap
   * is that much looser until the next poll writes it again. Not asked for at the start: most
   * runs of a judge end within milliseconds, before that poll, and for them the share (half a
   * millisecond of the main thread and the pool per run) would be read for nothing, the verdict
   * coming from the init's exact report.
   */
  private askSetupShare(): void {
    if (!this.shareWanted) return;
    this.shareWanted = false;
    setupShareUs(this.cgroup, this.initPid).then(
      (share) => {
        if (share < this.baseUs) this.baseUs = share;
      },
      () => undefined, // the base stays the counter at the start: late, never early
    );
  }

  /**
   * SIGKILLs every process of the run cgroup but sandcell's own inits, at once. The init's own
   * kill(-1) follows, but it has to be scheduled first, on CPUs the box is burning: with four
   * burners on two cores that took up to 30 ms (60 ms of CPU past the limit). The inits (one for a
   * box, three for a run in a living box) are spared so they still reap the tree and report its
   * exact usage. The pids are those the kernel lists in the run cgroup this moment; one that exits
   * in between frees its number, which the cyclic pid allocator does not hand out again before it
   * has gone round pid_max.
   */
  private killTreeNow(): void {
    for (const pid of this.cgroup.pids()) {
      if (pid === this.initPid || isInit(pid)) continue;
      try {
        process.kill(pid, SIGKILL);
      } catch {
        // ESRCH: gone already
      }
    }
  }
}

/**
 * The setup's share of the run cgroup's CPU time, taken now: all of it but what the program's
 * processes have used since they were forked. The counter read when the program started also
 * holds the program's own CPU from its fork to that read (its exec, and whatever it ran before
 * the read was scheduled), which its own clock and the reported usage count: left in the base,
 * that time would go uncounted by the limit. Infinity when it cannot be told. Read off the event
 * loop (the /proc reads of a process that has just started can wait in the kernel for
 * milliseconds): the pids in one worker trip, each one's threads and executable on the thread
 * pool, every thread's clock and then the counter in one more trip.
 */
async function setupShareUs(cgroup: RunCgroup, initPid: number): Promise<number> {
  const procsFile = cgroup.cpuProcsFile;
  const counterFile = cgroup.cpuTimeFile;
  if (procsFile === undefined || counterFile === undefined) return Infinity;
  const [listed] = await cgroupFiles([], [], [procsFile]);
  const clocks = await Promise.all(
    parsePids(listed)
      .filter((pid) => pid !== initPid)
      .map(async (pid) => {
        const [exe, tasks] = await Promise.all([
          readlink(`/proc/${pid}/exe`).catch(() => null),
          readdir(`/proc/${pid}/task`).catch(() => [] as string[]), // gone since the listing
        ]);
        return exe === INIT_PATH ? [] : tasks.map((tid) => `/proc/${pid}/task/${tid}/schedstat`);
      }),
  );
  const files = clocks.flat();
  // The counter is read after the program's clocks, so that what it runs meanwhile stays in the
  // base: the limit may then count a little late, never early. A clock that cannot be read is
  // a thread gone since the listing.
  const got = await cgroupFiles([], [], [...files, counterFile]);
  let programNs = 0;
  for (let i = 0; i < files.length; i++) programNs += Number(got[i]?.split(' ')[0] ?? 0);
  const counter = got[files.length];
  const share = counter != null ? cgroup.cpuTimeUsFrom(counter) - programNs / 1000 : NaN;
  return Number.isFinite(share) && share >= 0 ? share : Infinity;
}

function isInit(pid: number): boolean {
  try {
    return readlinkSync(`/proc/${pid}/exe`) === INIT_PATH;
  } catch {
    return false;
  }
}

/**
 * `time-limit` when the supervisor ended the run at the limit, when RLIMIT_CPU's SIGXCPU ended
 * it, or when the tree had used the limit by the time anything ended it.
 */
export function cpuTimeVerdict(o: Outcome): Status | null {
  if (o.killReason === 'time-limit' || o.signal === SIGXCPU) return 'time-limit';
  if (o.cpuLimitMs !== null && o.cpuTimeMs >= o.cpuLimitMs && (o.signal !== null || o.killReason !== null)) return 'time-limit';
  return null;
}
