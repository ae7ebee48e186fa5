/**
 * Supervision of one box: its stdio, its limits while it runs (wall clock, CPU time of the whole
 * tree, output), its end (exit, limit, kill, abort) and the result. `spawn()` hands this object
 * to the caller; `run()` is built on it.
 */
import { readlinkSync } from 'node:fs';
import { Socket } from 'node:net';
import { availableParallelism, constants as osConstants } from 'node:os';
import { Readable, type Writable } from 'node:stream';

import type { CgroupLimits, RunCgroup } from '../cgroup/index.js';
import { INIT_PATH, nativeSpawn, nativeStart, type NativeBox, type NativeExit, type NativePlan, type NativeSpawned } from '../native.js';
import type { ResolvedOptions } from '../options.js';
import { buildPlan } from '../plan/build.js';
import { deriveStatus, signalName, type Enforcement, type KillReason, type Result } from '../result.js';
import type { PresetName, SeccompPolicy } from '../seccomp/index.js';
import { cgroupsFor, removeAfterRun, type CgroupPool } from './cgroups.js';
import { describeViolation, filterFor, type BoxFilter } from './filter.js';
import { CollectedOutput, OutputBudget, type MeteredStream, type OutputSink } from './output.js';
import { bindIdentity, stillBound, warmBoxes, type WarmBox } from './warm.js';

/** After asking the init to end the box, how long before the init itself is killed. */
const TERMINATE_GRACE_MS = 1000;
const SIGKILL = osConstants.signals.SIGKILL;

export class AbortError extends Error {
  override readonly name = 'AbortError';
  constructor(cause: unknown) {
    super('the sandboxed run was aborted', { cause });
  }
}

export interface BoxStart {
  options: ResolvedOptions;
  seccomp: PresetName | SeccompPolicy;
  stdin: 'pipe' | 'null';
  /** `streams` for the caller to read (spawn), or `collect`: kept in memory for the result (run). */
  output: 'streams' | 'collect';
  /**
   * Test-only: alters the finished plan, to show that the security suite detects a weakened box.
   * Not reachable from the public API (src/index.ts does not export startBox).
   */
  weakenPlan?: (plan: NativePlan) => void;
  /** Run inside a living box (Sandbox) instead of a box of its own. */
  join?: { box: NativeBox; cgroup: RunCgroup | null };
}

/** A running box. */
export class SandboxProcess {
  /** Host pid of the box's init (PID 1 inside); the program is its child. */
  readonly pid: number;
  /** The program's stdin (null when the run was given no pipe). */
  readonly stdin: Writable | null;
  readonly stdout: Readable;
  readonly stderr: Readable;

  private readonly native: NativeSpawned;
  private readonly sinks: [OutputSink, OutputSink];
  private readonly collected: [CollectedOutput, CollectedOutput] | null;
  private readonly cgroup: RunCgroup | null;
  private readonly options: ResolvedOptions;
  private readonly enforced: Result['limitsEnforced'];
  private readonly cpuBaseUs: number;
  private killReason: KillReason | null = null;
  private ended = false;
  private terminateTimer: NodeJS.Timeout | null = null;
  private wallTimer: NodeJS.Timeout | null = null;
  private cpuTimer: NodeJS.Timeout | null = null;
  /** The kernel holds the tree's CPU at what is left of the CPU-time limit (see pollCpu). */
  private cpuCapped = false;
  private readonly result: Promise<Result>;
  private readonly onAbort = (): void => {
    this.end('aborted');
  };

  /** @internal use spawn() */
  constructor(native: NativeSpawned, cgroup: RunCgroup | null, options: ResolvedOptions, enforced: Result['limitsEnforced'], output: BoxStart['output']) {
    this.native = native;
    this.pid = native.pid;
    this.cgroup = cgroup;
    this.options = options;
    this.enforced = enforced;
    // The executor read the cgroup's CPU time the moment the program started: the setup's share.
    const base = cgroup && native.cpuUsageAtStart !== null ? cgroup.cpuTimeUsFrom(native.cpuUsageAtStart) : NaN;
    this.cpuBaseUs = Number.isFinite(base) ? base : 0;

    const budget = new OutputBudget(options.limits.outputBytes, () => this.end('output-limit'));
    if (output === 'collect') {
      const out = readSocket(native.stdout);
      const err = readSocket(native.stderr);
      this.collected = [new CollectedOutput(budget, out), new CollectedOutput(budget, err)];
      this.sinks = this.collected;
      this.stdout = out ?? Readable.from([]);
      this.stderr = err ?? Readable.from([]);
    } else {
      const out = pipeFrom(native.stdout, budget.meter());
      const err = pipeFrom(native.stderr, budget.meter());
      this.collected = null;
      this.sinks = [out, err];
      this.stdout = out;
      this.stderr = err;
    }
    if (native.stdin !== null) {
      const s = new Socket({ fd: native.stdin, readable: false, writable: true });
      // A program that exits without reading its input closes the pipe: not the caller's error.
      s.on('error', () => undefined);
      this.stdin = s;
    } else {
      this.stdin = null;
    }

    this.result = new Promise<Result>((resolve, reject) => {
      native.box.watch((exit) => {
        this.finish(exit).then(resolve, reject);
      });
    });

    const l = options.limits;
    if (l.wallTimeMs !== null) this.wallTimer = setTimeout(() => this.end('wall-time-limit'), l.wallTimeMs);
    if (l.cpuTimeMs !== null && this.enforced.cpuTime === 'cgroup') this.pollCpu();
    options.signal?.addEventListener('abort', this.onAbort, { once: true });
    if (options.signal?.aborted) this.end('aborted');
  }

  /**
   * SIGKILL (the default) ends the box: every process in it dies. Other signals go to the
   * program's main process. Returns false when the box has already ended.
   */
  kill(signal: NodeJS.Signals | number = 'SIGKILL'): boolean {
    const n = typeof signal === 'number' ? signal : osConstants.signals[signal];
    if (n === undefined) throw new TypeError(`unknown signal ${String(signal)}`);
    if (this.ended) return false;
    if (n === SIGKILL) return this.end(null);
    return this.native.box.kill(n);
  }

  /** Resolves when the box has ended and everything it used is released. */
  wait(): Promise<Result> {
    return this.result;
  }

  /** @internal The result with the output kept in memory (a box started with `output: 'collect'`). */
  async collectOutput(): Promise<Result> {
    if (!this.collected) throw new Error('this box streams its output');
    const [out, err] = this.collected;
    const [result] = await Promise.all([this.result, out.done, err.done]);
    return { ...result, stdout: out.text(), stderr: err.text() };
  }

  /** Ends the box for a reason of the supervisor's (null: the caller's kill). */
  private end(reason: KillReason | null): boolean {
    if (this.ended || this.terminateTimer) return false;
    this.killReason ??= reason;
    if (reason === 'time-limit') this.killTreeNow();
    // Throttled tasks must run to die: lift the cap once the signals are on their way.
    if (this.cpuCapped) this.cgroup?.capCpu(null);
    this.native.box.terminate();
    // The init normally ends the box within a millisecond; if it does not, it is killed, and
    // the kernel takes every process of the PID namespace with it.
    this.terminateTimer = setTimeout(() => this.native.box.kill(SIGKILL), TERMINATE_GRACE_MS);
    return true;
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
    if (!this.cgroup) return;
    for (const pid of this.cgroup.pids()) {
      if (pid === this.pid || isInit(pid)) continue;
      try {
        process.kill(pid, SIGKILL);
      } catch {
        // ESRCH: gone already
      }
    }
  }

  /** Checks the whole tree's CPU time often enough that the limit cannot be overrun by much. */
  private pollCpu(): void {
    const cg = this.cgroup;
    const limitMs = this.options.limits.cpuTimeMs;
    if (!cg || limitMs === null || this.ended) return;
    const usedMs = (cg.cpuTimeUs() - this.cpuBaseUs) / 1000;
    if (usedMs >= limitMs) {
      this.end('time-limit');
      return;
    }
    // A backstop in the kernel for a timer that fires late on a loaded host: a CPU bandwidth quota
    // per 1 s period of what is left of the limit, plus a little, rewritten at every poll. It is
    // set just past the limit because the kernel enforces it late by its own grain (runtime
    // handed out in slices, charged at ticks: up to ~10 ms per CPU here), which a timely poll beats.
    const remainingMs = limitMs - usedMs;
    cg.capCpu((remainingMs + CPU_CAP_SLACK_MS) * 1000);
    this.cpuCapped = true;
    // At most every CPU of the machine burns for the box: wait no longer than half the remaining
    // budget spread over all of them (a timer may fire late), and never longer than 50 ms
    // (memory is sampled here too).
    cg.memoryCurrentBytes();
    const next = Math.min(50, Math.max(1, remainingMs / (2 * CPUS)));
    this.cpuTimer = setTimeout(() => this.pollCpu(), next);
  }

  private async finish(exit: NativeExit): Promise<Result> {
    this.ended = true;
    for (const t of [this.terminateTimer, this.wallTimer, this.cpuTimer]) if (t) clearTimeout(t);
    this.options.signal?.removeEventListener('abort', this.onAbort);
    // Nothing reads the program's stdin any more: close our end, or a caller that never ended
    // it (spawn() and then kill(), or a stdin stream that never ends) leaks one pipe per box.
    this.stdin?.destroy();

    const cg = this.cgroup;
    const cgUsage = cg ? cg.outcome() : null;
    if (cg) removeAfterRun(cg);

    const main = exit.main;
    let exitCode: number | null = null;
    let signal: number | null = null;
    if (main?.terminated) signal = SIGKILL;
    else if (main?.exited) exitCode = main.value;
    else if (main) signal = main.value;
    else signal = SIGKILL;

    // The init reaped the whole tree before reporting, so its children's rusage is the tree's
    // exact CPU time; only when the init itself was killed does the cgroup (or the init's own
    // rusage) stand in.
    const ru = main ?? exit.rusage;
    let userMs = ru.userUs / 1000;
    let systemMs = ru.systemUs / 1000;
    if (!main && cgUsage && Number.isFinite(cgUsage.cpuTimeUs)) {
      const total = cgUsage.cpuTimeUs / 1000;
      const split = userMs + systemMs > 0 ? userMs / (userMs + systemMs) : 1;
      userMs = total * split;
      systemMs = total - userMs;
    }
    const cpuTimeMs = userMs + systemMs;
    const violation = exit.violation ? describeViolation(exit.violation.nr, exit.violation.arch) : null;
    if (this.killReason === 'aborted') throw new AbortError(this.options.signal?.reason);

    const status = deriveStatus({
      exitCode,
      signal,
      killReason: this.killReason,
      violation,
      oomKilled: cgUsage?.oomKilled ?? false,
      cpuTimeMs,
      cpuLimitMs: this.options.limits.cpuTimeMs,
    });
    const [meteredOut, meteredErr] = this.sinks;
    return {
      status,
      exitCode,
      signal: signal === null ? null : signalName(signal),
      stdout: '',
      stderr: '',
      stdoutTruncated: meteredOut.truncated,
      stderrTruncated: meteredErr.truncated,
      usage: {
        cpuTimeMs: round3(cpuTimeMs),
        userTimeMs: round3(userMs),
        systemTimeMs: round3(systemMs),
        wallTimeMs: round3(Number(exit.endedNs - this.native.startedNs) / 1e6),
        memoryPeakBytes: cgUsage?.memoryPeakBytes ?? null,
        maxRssBytes: (main ? main.maxRssKiB : 0) * 1024,
      },
      violation,
      limitsEnforced: this.enforced,
    };
  }
}

const CPUS = availableParallelism();
const CPU_CAP_SLACK_MS = 2;

function isInit(pid: number): boolean {
  try {
    return readlinkSync(`/proc/${pid}/exe`) === INIT_PATH;
  } catch {
    return false;
  }
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

function readSocket(fd: number | null): Socket | null {
  return fd === null ? null : new Socket({ fd, readable: true, writable: false });
}

function pipeFrom(fd: number | null, meter: MeteredStream): MeteredStream {
  if (fd === null) {
    meter.end();
    return meter;
  }
  const s = new Socket({ fd, readable: true, writable: false });
  s.on('error', (e) => meter.destroy(e));
  s.pipe(meter);
  return meter;
}

/**
 * Starts a program: in a box built ahead for its shape when one waits (and then another is built
 * for the next run), else in a box built now. Nothing is left behind if it fails.
 */
export async function startBox(start: BoxStart): Promise<SandboxProcess> {
  const o = start.options;
  if (o.signal?.aborted) throw new AbortError(o.signal.reason);
  const filter = filterFor(start.seccomp);
  const { pool } = await cgroupsFor(o.cgroupParent);
  // A weakened plan (tests) must build its own box from it; a run in a living box has one.
  if (start.join || start.weakenPlan || !warmBoxes.enabled) return startNew(start, filter, pool);
  const shape = boxShape(o);
  const prepare = (): Promise<WarmBox> => prepareBox(shape.plan, pool);
  const warm = warmBoxes.take(shape.key);
  let proc: SandboxProcess | null = null;
  if (warm) {
    try {
      proc = await startWarm(warm, start, filter);
    } catch {
      // Whatever went wrong (the box died meanwhile, a limit its setup already exceeds, a program
      // that cannot start), a box built now for this run tries again and reports it.
      await discardWarm(warm);
    }
  }
  proc ??= await startNew(start, filter, pool);
  // The next box of this shape is built once this run is over, not while it starts or runs.
  const again = (): void => warmBoxes.want(shape.key, prepare);
  proc.wait().then(again, again);
  return proc;
}

/** What a box is, apart from what runs in it: runs with the same key can use the same warm box. */
function boxShape(o: ResolvedOptions): { key: string; plan: NativePlan } {
  const plan = buildPlan(o, { cgroupProcs: [], seccomp: null, seccompListener: false, memoryRlimitBytes: null, cpuLimitByCgroup: false, stdio: ['null', 'null', 'null'] }, 'prepared');
  return { key: `${o.cgroupParent ?? ''}\0${JSON.stringify(plan)}`, plan };
}

/** Builds a box of this shape that waits for its run, in a run cgroup without limits yet. */
async function prepareBox(plan: NativePlan, pool: CgroupPool | null): Promise<WarmBox> {
  const cgroup = pool ? await pool.take({}) : null;
  let native: NativeSpawned;
  const binds = bindIdentity(plan);
  try {
    native = await nativeSpawn({ ...plan, cgroupProcs: cgroup ? [...cgroup.procsFiles] : [] });
  } catch (e) {
    if (cgroup) await cgroup.destroy();
    throw e;
  }
  const box = { native, cgroup, binds };
  // A source replaced while the init opened it: which one it bound is unknown.
  if (!stillBound(box)) {
    await discardWarm(box);
    throw new Error('a bind source changed while the box was built');
  }
  return box;
}

async function discardWarm(warm: WarmBox): Promise<void> {
  warm.native.box.close();
  if (warm.cgroup) await warm.cgroup.destroy();
}

/** The run's limits go on the warm box's cgroup, then the init gets the run's plan and stdio. */
async function startWarm(warm: WarmBox, start: BoxStart, filter: BoxFilter | null): Promise<SandboxProcess> {
  const o = start.options;
  if (!stillBound(warm)) throw new Error('a bind source of the warm box was replaced');
  if (warm.cgroup) await warm.cgroup.applyLimits(cgroupLimits(o));
  const { plan, enforced } = runPlan(start, filter, warm.cgroup, true);
  const started = await nativeStart(warm.native.box, plan);
  return new SandboxProcess({ ...started, pid: warm.native.pid, box: warm.native.box }, warm.cgroup, o, enforced, start.output);
}

/** Builds the box now: cgroup first, then the native spawn. */
async function startNew(start: BoxStart, filter: BoxFilter | null, pool: CgroupPool | null): Promise<SandboxProcess> {
  const o = start.options;
  // A run in a living box gets its cgroup below the box's, so the box's limits still hold.
  const cgroup = pool && (!start.join || start.join.cgroup) ? await pool.take(cgroupLimits(o), start.join?.cgroup ?? undefined) : null;
  const { plan, enforced } = runPlan(start, filter, cgroup, false);
  start.weakenPlan?.(plan);
  let native: NativeSpawned;
  try {
    native = await nativeSpawn(plan, start.join?.box);
  } catch (e) {
    if (cgroup) await cgroup.destroy();
    throw e;
  }
  return new SandboxProcess(native, cgroup, o, enforced, start.output);
}

/** The plan of a run in this cgroup (in a warm box: the one it waits in), and how its limits are enforced. */
function runPlan(start: BoxStart, filter: BoxFilter | null, cgroup: RunCgroup | null, warm: boolean): { plan: NativePlan; enforced: Result['limitsEnforced'] } {
  const o = start.options;
  const l = o.limits;
  const memoryByCgroup = cgroup?.enforced.memory === 'cgroup';
  const enforced: Result['limitsEnforced'] = {
    memory: l.memoryBytes === null ? 'none' : memoryByCgroup ? 'cgroup' : 'rlimit',
    cpuTime: l.cpuTimeMs === null ? 'none' : cgroup?.enforced.cpuTime === 'cgroup' ? 'cgroup' : 'rlimit',
    processes: cgroup?.enforced.processes === 'cgroup' ? 'cgroup' : 'rlimit',
  } satisfies Record<string, Enforcement>;
  const plan = buildPlan(o, {
    // A warm box's init is in its cgroup already.
    cgroupProcs: cgroup && !warm ? [...cgroup.procsFiles] : [],
    seccomp: filter?.program ?? null,
    seccompListener: filter?.listener ?? false,
    memoryRlimitBytes: l.memoryBytes !== null && !memoryByCgroup ? l.memoryBytes : null,
    cpuLimitByCgroup: enforced.cpuTime === 'cgroup',
    stdio: [start.stdin, 'pipe', 'pipe'],
  }, warm || start.join ? 'join' : 'run');
  if (cgroup?.cpuTimeFile !== undefined && l.cpuTimeMs !== null) plan.cpuUsageFile = cgroup.cpuTimeFile;
  if (filter) {
    plan.seccompExecPathLo = filter.execPathLo;
    plan.seccompExecPathHi = filter.execPathHi;
  }
  return { plan, enforced };
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
