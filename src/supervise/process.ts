/**
 * The supervisor of one run: it watches a program the launcher started. It hands out the
 * program's stdio, holds the limits that act over time (wall clock, CPU time of the whole tree,
 * output: each in its own file in src/limits/), ends the run (exit, limit, kill, abort) and makes
 * the result. `spawn()` hands this object to the caller; `run()` is built on it.
 */
import { constants as osConstants } from 'node:os';
import { Readable, type Writable } from 'node:stream';

import type { RunCgroup } from '../cgroup/index.js';
import { debug, type Stages } from '../debug.js';
import { AbortError } from '../errors.js';
import { CpuTimeLimit } from '../limits/cpu-time.js';
import { OutputBudget } from '../limits/output.js';
import { WallTimeLimit } from '../limits/wall-time.js';
import { nativeExit, type NativeBox, type NativeExit, type NativeSpawned } from '../native.js';
import type { BoxNetwork } from '../network/box.js';
import type { PublishedAddress } from '../network/publish.js';
import type { OutputEncoding, ResolvedOptions } from '../options.js';
import { deriveStatus, describeViolation, signalName, type KillReason, type LimitsEnforced, type Result } from '../result.js';
import { removeAfterRun } from '../runtime.js';
import { CollectedOutput, outputText, programInput, programOutput, type KeptOutput, type ProgramOutput } from './io.js';

/** After asking the init to end the box, how long before the init itself is killed. */
const TERMINATE_GRACE_MS = 1000;
const SIGKILL = osConstants.signals.SIGKILL;

/** What the launcher hands the supervisor: a started program and how its run is set up. */
export interface Supervised {
  native: NativeSpawned;
  /** The run's cgroup, removed by the supervisor when the run has ended. */
  cgroup: RunCgroup | null;
  options: ResolvedOptions;
  enforced: LimitsEnforced;
  /** `streams` for the caller to read (spawn), or `collect`: kept in memory for the result (run). */
  output: 'streams' | 'collect';
  stages: Stages | null;
  /** The host side of the box's network (egress proxy, published ports), closed when the box ends. */
  network: BoxNetwork | null;
}

/** A running box. */
export class SandboxProcess {
  /** Host pid of the box's init (PID 1 inside); the program is its child. */
  readonly pid: number;
  /** Where the box's published ports listen on the host (empty: none published). */
  readonly published: readonly PublishedAddress[];
  /** The box's address on its private network (null: it is on none). */
  readonly address: string | null;

  private readonly run: Supervised;
  /** spawn(): the caller's streams. */
  private readonly streams: ProgramOutput | null;
  private readonly input: Writable | null;
  /** run(): the output kept in memory, and the stdin pipe until it is fed. */
  private readonly collected: CollectedOutput | null;
  private stdinFd: number | null;
  private emptyOutput: Readable | null = null;
  private readonly wall: WallTimeLimit | null;
  private readonly cpu: CpuTimeLimit | null;
  private killReason: KillReason | null = null;
  private ended = false;
  private endedAtMs: number | null = null;
  private terminateTimer: NodeJS.Timeout | null = null;
  private readonly result: Promise<Result>;
  /** run(): the result with the output kept, once both are in. */
  private readonly whole: Promise<[Result, KeptOutput]> | null;
  private readonly onAbort = (): void => {
    this.end('aborted');
  };

  /** @internal started by the launcher (src/launch/launcher.ts) */
  constructor(run: Supervised) {
    const { native, cgroup, options } = run;
    this.run = run;
    this.pid = native.pid;
    this.published = run.network?.published ?? [];
    this.address = run.network?.address ?? null;

    const exceeded = (): void => {
      this.end('output-limit');
    };
    if (run.output === 'collect') {
      this.streams = null;
      this.input = null;
      this.collected = new CollectedOutput([native.stdout, native.stderr], options.limits.outputBytes, exceeded);
      this.stdinFd = native.stdin;
    } else {
      this.streams = programOutput([native.stdout, native.stderr], new OutputBudget(options.limits.outputBytes, exceeded));
      this.input = programInput(native.stdin);
      this.collected = null;
      this.stdinFd = null;
    }

    this.result = new Promise<Result>((resolve, reject) => {
      native.box.watch((slots) => {
        const exit = nativeExit(slots);
        // When the init saw the program end (its clock is CLOCK_MONOTONIC, as process.hrtime's):
        // two boxes ending together reach this callback in the event loop's order, after
        // teardowns of their own.
        const main = exit.main;
        this.endedAtMs ??= main ? Number(main.endedNs) / 1e6 : monotonicMs();
        this.finish(exit).then(resolve, reject);
      });
    });

    this.whole = this.collected ? Promise.all([this.result, this.collected.done]) : null;
    // Its rejection is the result's, which the caller gets from collectOutput() or wait().
    this.whole?.catch(() => undefined);

    const l = options.limits;
    this.wall = l.wallTimeMs !== null ? new WallTimeLimit(l.wallTimeMs, () => this.end('wall-time-limit')) : null;
    this.cpu =
      l.cpuTimeMs !== null && cgroup && run.enforced.cpuTime === 'cgroup'
        ? new CpuTimeLimit(cgroup, l.cpuTimeMs, native.cpuUsageAtStart, native.pid, () => this.end('time-limit'))
        : null;
    options.signal?.addEventListener('abort', this.onAbort, { once: true });
    if (options.signal?.aborted) this.end('aborted');
  }

  /** The program's stdin (null when the run was given no pipe, or when its input is given up front). */
  get stdin(): Writable | null {
    return this.input;
  }

  /**
   * The program's output. Each stream holds its pipe open until it is read to its end or
   * destroyed; leaving an `await using` scope destroys the streams nobody started to read.
   */
  get stdout(): Readable {
    return this.streams?.stdout ?? this.noOutput();
  }

  /** The program's stderr, as `stdout`. */
  get stderr(): Readable {
    return this.streams?.stderr ?? this.noOutput();
  }

  /** A box whose output is kept for its result has no stream to read. */
  private noOutput(): Readable {
    return (this.emptyOutput ??= Readable.from([]));
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
    return this.run.native.box.kill(n);
  }

  /**
   * When the box ended, in milliseconds on the monotonic clock of `process.hrtime.bigint()`;
   * null while it runs. A box that was ended (by a limit, `kill()` or its signal) ended when that
   * was decided, any other when its init saw its program end (or, without the init's report, when
   * its last process was seen gone). Boxes that talk to each other are ordered by it, not by when
   * their results came: a result is ready some time after the end, and a box killed at its limit
   * has more to tear down than one its end made exit.
   */
  get endedAt(): number | null {
    return this.endedAtMs;
  }

  /**
   * Resolves when the box has ended and everything it used is released, but for its output
   * streams: what the program wrote stays readable from them after its end, and each keeps its
   * pipe open until it is read to its end or destroyed (or the process disposed).
   */
  wait(): Promise<Result> {
    return this.result;
  }

  /**
   * `await using p = await spawn(...)`: leaving the scope ends the box (as `kill()` does) and
   * waits until everything it used is released, the output streams nobody started to read
   * included: they are destroyed (what they held is dropped) and their pipes closed. A stream
   * being read (`on('data')`, `pipe()`, `resume()`, an iterator) is left to its reader. The
   * result stays available from `wait()`.
   */
  async [Symbol.asyncDispose](): Promise<void> {
    this.kill();
    try {
      await this.result;
    } finally {
      const unread = this.streams ? [this.streams.stdout, this.streams.stderr].filter((s) => s.readableFlowing === null && !s.closed) : [];
      await Promise.all(
        unread.map(
          (s) =>
            new Promise((resolve) => {
              s.once('close', resolve);
              s.destroy();
            }),
        ),
      );
    }
  }

  /**
   * @internal Settles once the run is over for its caller: its result, and with `output: 'collect'`
   * its output too (which may come after the result).
   */
  settled(): Promise<unknown> {
    return this.whole ?? this.result;
  }

  /** @internal The run's input, given up front (a box started with `output: 'collect'`). */
  feed(input: string | Uint8Array | Readable | null): void {
    const fd = this.stdinFd;
    this.stdinFd = null;
    if (fd !== null) this.collected?.feed(fd, input);
  }

  /**
   * @internal The result with the output kept in memory (a box started with `output: 'collect'`):
   * as text, or (`'buffer'`) as the Buffers the addon filled, an empty one for a stream with none.
   */
  collectOutput(): Promise<Result>;
  collectOutput(encoding: OutputEncoding): Promise<Result<string | Buffer>>;
  async collectOutput(encoding: OutputEncoding = 'utf8'): Promise<Result<string | Buffer>> {
    if (!this.whole) throw new Error('this box streams its output');
    const [result, kept] = await this.whole;
    const output = encoding === 'buffer' ? (bytes: Buffer | undefined) => bytes ?? Buffer.alloc(0) : outputText;
    return {
      ...result,
      stdout: output(kept.stdout),
      stderr: output(kept.stderr),
      stdoutTruncated: kept.stdoutTruncated,
      stderrTruncated: kept.stderrTruncated,
    };
  }

  /** Ends the box for a reason of the supervisor's (null: the caller's kill). */
  private end(reason: KillReason | null): boolean {
    if (this.ended || this.terminateTimer) return false;
    this.endedAtMs = monotonicMs();
    this.killReason ??= reason;
    this.cpu?.release();
    this.run.cgroup?.unthrottle();
    const box = this.run.native.box;
    box.terminate();
    // The init normally ends the box within a millisecond; if it does not, it is killed, and
    // the kernel takes every process of the PID namespace with it.
    this.terminateTimer = setTimeout(() => box.kill(SIGKILL), TERMINATE_GRACE_MS);
    return true;
  }

  private async finish(exit: NativeExit): Promise<Result> {
    this.ended = true;
    const { native, cgroup: cg, options, stages } = this.run;
    stages?.mark('run');
    if (this.terminateTimer) clearTimeout(this.terminateTimer);
    this.wall?.stop();
    this.cpu?.release();
    options.signal?.removeEventListener('abort', this.onAbort);
    // Nothing reads the program's stdin any more: close our end, or a caller that never ended
    // it (spawn() and then kill(), or a stdin stream that never ends) leaks one pipe per box.
    this.input?.destroy();
    this.feed(null);
    this.collected?.runEnded();

    const network = this.run.network;
    if (network) await network.close();
    const main = exit.main;
    // The init's report has the tree's exact CPU time; the cgroup's is needed only without it.
    const cgUsage = cg ? await cg.outcome(!main) : null;
    if (cg) removeAfterRun(cg, reaped(native.box));

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
    const status =
      this.killReason === 'aborted'
        ? null
        : deriveStatus({
            exitCode,
            signal,
            killReason: this.killReason,
            violation,
            oomKilled: cgUsage?.oomKilled ?? false,
            cpuTimeMs,
            cpuLimitMs: options.limits.cpuTimeMs,
          });
    if (stages) {
      stages.mark('result');
      debug({ event: 'end', pid: this.pid, status: status ?? 'aborted', ms: stages.ms });
    }
    if (status === null) throw new AbortError(options.signal?.reason);
    const sinks = this.streams?.sinks;
    return {
      status,
      exitCode,
      signal: signal === null ? null : signalName(signal),
      stdout: '',
      stderr: '',
      stdoutTruncated: sinks?.[0].truncated ?? false,
      stderrTruncated: sinks?.[1].truncated ?? false,
      usage: {
        cpuTimeMs: round3(cpuTimeMs),
        userTimeMs: round3(userMs),
        systemTimeMs: round3(systemMs),
        wallTimeMs: round3(Number(exit.endedNs - native.startedNs) / 1e6),
        memoryPeakBytes: cgUsage?.memoryPeakBytes ?? null,
        maxRssBytes: (main ? main.maxRssKiB : 0) * 1024,
      },
      violation,
      limitsEnforced: this.run.enforced,
      ...(network?.report() ? { network: network.report() } : {}),
    };
  }
}

/** Once the box's process the addon cloned is reaped (a run in a living box may end before it). */
function reaped(box: NativeBox): Promise<void> | undefined {
  const whenReaped = box.whenReaped?.bind(box);
  return whenReaped ? new Promise((resolve) => whenReaped(resolve)) : undefined;
}

/** The clock of `endedAt`: process.hrtime's, which needs no perf_hooks loaded (performance.now() loads it). */
function monotonicMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}
