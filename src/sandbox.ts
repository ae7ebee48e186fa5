/**
 * A box that lives: its namespaces, root filesystem, working directory and cgroup stay while
 * programs run in it one after another (compile, then run the binary against fifty inputs) or
 * side by side (a plugin and its helper on the box's own loopback).
 */
import { Stages } from './debug.js';
import { SandboxSetupError } from './errors.js';
import { endStaging, launch, stageRun, startLivingBox, type LivingBox } from './launch/launcher.js';
import { namespacesReleased } from './native.js';
import { BoxNetwork } from './network/box.js';
import type { PublishedAddress } from './network/publish.js';
import {
  checkBoxOptions,
  resolveSandboxOptions,
  resolveSandboxRun,
  type BoxShape,
  type EncodedOutput,
  type FileContent,
  type Limits,
  type OutputEncoding,
  type ProgramOptions,
  type ResolvedOptions,
  type RunOptions,
} from './options.js';
import type { Result } from './result.js';
import type { PresetName, SeccompPolicy } from './seccomp/index.js';
import { collectFiles, DEFAULT_COLLECT_LIMITS, type CollectLimits, type Collected } from './supervise/collect.js';
import type { SandboxProcess } from './supervise/process.js';

/** What a box is made of, and the defaults of the programs run in it. */
export interface SandboxOptions extends BoxShape {
  env?: Record<string, string>;
  cwd?: string;
  /** Limits of the whole box (memory, processes, tmpfs, cpus) and defaults for each run. */
  limits?: Limits;
  files?: Record<string, FileContent>;
  seccomp?: PresetName | SeccompPolicy;
}

/** One run in the box; `Encoding` as in `RunOptions`. */
export type SandboxRunOptions<Encoding extends OutputEncoding = 'utf8'> = ProgramOptions & Pick<RunOptions<Encoding>, 'stdin' | 'collect' | 'encoding'>;

/**
 * The result of `run()` and `box.run()`: `stdout` and `stderr` of type `Output` (Buffers for a run
 * given `encoding: 'buffer'`), and the files collected for a run that asked for them.
 */
export interface RunResult<Output extends string | Buffer = string> extends Result<Output> {
  /** Collected files by path relative to the working directory (only with `collect`). */
  files?: Record<string, Buffer>;
  /** Collected names or patterns that could not be read, and why (only with `collect`). */
  fileErrors?: Record<string, string>;
}

/**
 * `Sandbox.create()`'s options checked once, as `checkOptions` checks `run()`'s: a deep-frozen copy
 * that `Sandbox.create()` and `parseOptions('sandbox', …)` take without walking the schema again,
 * for a layer that judges options before it hands them on (a service checking a request against
 * its own rules). The copy is made first and is what is checked; bytes are taken as they are.
 * What reads the host (bind sources, an image) is checked by `Sandbox.create()`, after that
 * judgement. A spread of the copy is plain options again. Throws SandboxOptionsError for options
 * the schema refuses, as `Sandbox.create()` would.
 */
export function checkSandboxOptions<T extends SandboxOptions>(options: T): Readonly<T> {
  return checkBoxOptions('sandbox', options);
}

/**
 * A box's run's options checked once, in the same way: a deep-frozen copy that `box.run()`,
 * `box.spawn()` and `parseOptions('sandboxRun', …)` take without walking the schema again, in any
 * box and as many times as it is run. Its stdin and signal are taken as they are, so a run with
 * a signal of its own (a request's) is checked with it: `{ ...checked, signal }` is plain options.
 */
export function checkSandboxRunOptions<T extends SandboxRunOptions<OutputEncoding>>(options: T): Readonly<T> {
  return checkBoxOptions('sandboxRun', options);
}

const ENDED = 3; // ESRCH

export class Sandbox implements AsyncDisposable {
  private readonly options: ResolvedOptions;
  private readonly box: LivingBox;
  private readonly network: BoxNetwork | null;
  private readonly ended: Promise<void>;
  private destroyed = false;

  private constructor(options: ResolvedOptions, box: LivingBox, network: BoxNetwork | null) {
    this.options = options;
    this.box = box;
    this.network = network;
    this.ended = new Promise((resolve) => box.native.box.watch(() => resolve()));
  }

  /** Builds a box and keeps it until `destroy()`. */
  static async create(options: SandboxOptions = {}): Promise<Sandbox> {
    const o = resolveSandboxOptions(options);
    return Sandbox.build(o, o, true);
  }

  /**
   * The box, and the host side of its network (egress proxy, published ports) for all its runs.
   * A box for many runs has its next run staged ahead from the start (see `stageRun`).
   */
  private static async build(o: ResolvedOptions, shape: ResolvedOptions, staging: boolean): Promise<Sandbox> {
    const box = await startLivingBox(shape, staging);
    let network: BoxNetwork | null = null;
    try {
      if (BoxNetwork.wanted(o)) network = await BoxNetwork.open(box.native, o);
    } catch (e) {
      await new Sandbox(o, box, null).destroy();
      throw e;
    }
    stageRun(box);
    return new Sandbox(o, box, network);
  }

  /**
   * @internal `run()` with `collect`: one run in a living box built for it, whose files are read
   * before the box goes. The run's files are placed by the run, not by the box.
   */
  static async runOnce(o: ResolvedOptions, stages: Stages | null): Promise<RunResult<string | Buffer>> {
    const box = await Sandbox.build(o, { ...o, files: [] }, false);
    try {
      return await box.runResolved(o, stages);
    } finally {
      await box.destroy();
    }
  }

  /** Where the box's published ports listen on the host (empty: none published). */
  get published(): PublishedAddress[] {
    return this.network?.published ?? [];
  }

  /** The box's address on its private network (null: it is on none). */
  get address(): string | null {
    return this.network?.address ?? null;
  }

  /** Host pid of the box's init. */
  get pid(): number {
    return this.box.native.pid;
  }

  /** Starts a program in the box; see `spawn()`. */
  async spawn(options: Omit<SandboxRunOptions, 'encoding'>): Promise<SandboxProcess> {
    const stages = Stages.start();
    const o = this.resolveRun(options, 'spawn');
    stages?.mark('options');
    return launch(o, { stdin: 'pipe', output: 'streams', into: this.box, stages });
  }

  /**
   * Runs a program in the box to its end; files it wrote stay for the next run. With `encoding:
   * 'buffer'` its `stdout` and `stderr` are Buffers, byte for byte; otherwise strings.
   */
  run<Encoding extends OutputEncoding>(options: SandboxRunOptions<Encoding> & { encoding: Encoding }): Promise<RunResult<EncodedOutput<Encoding>>>;
  run(options: SandboxRunOptions): Promise<RunResult>;
  async run(options: SandboxRunOptions<OutputEncoding>): Promise<RunResult<string | Buffer>> {
    const stages = Stages.start();
    const o = this.resolveRun(options, 'run');
    stages?.mark('options');
    return this.runResolved(o, stages);
  }

  private async runResolved(o: ResolvedOptions, stages: Stages | null): Promise<RunResult<string | Buffer>> {
    const proc = await launch(o, { stdin: o.stdin === null ? 'null' : 'pipe', output: 'collect', into: this.box, stages });
    const seen = this.network?.report()?.connections.length ?? 0;
    proc.feed(o.stdin);
    const result: RunResult<string | Buffer> = await proc.collectOutput(o.encoding);
    // The box's proxy serves all its runs: a run's result has what was asked for while it ran.
    const report = this.network?.report();
    if (report) result.network = { connections: report.connections.slice(seen), unrecorded: report.unrecorded };
    if (o.collect.length > 0) {
      const c = await this.collect(o.collect, o.cwd);
      result.files = c.files;
      result.fileErrors = c.errors;
    }
    return result;
  }

  /**
   * Reads files from the box, off the event loop: names or patterns relative to `cwd` (the box's
   * working directory by default). Symlinks anywhere on the way, special files and files past
   * the limits (64 MiB each, 256 MiB in all, unless given) are refused and reported in `errors`;
   * so are patterns cut short by the limits on the work (20,000 directory entries read and 1,000
   * files considered, all patterns together, unless given).
   */
  async collect(patterns: string[], cwd = this.options.cwd, limits: Partial<CollectLimits> = {}): Promise<Collected> {
    this.assertAlive();
    return collectFiles(this.box.native.box, cwd, patterns, { ...DEFAULT_COLLECT_LIMITS, ...limits });
  }

  /** Ends everything still running in the box and removes it: processes, mounts, cgroups. */
  async destroy(): Promise<void> {
    if (!this.destroyed) {
      this.destroyed = true;
      await endStaging(this.box);
      this.box.native.box.terminate();
      const hardKill = setTimeout(() => this.box.native.box.kill(), 1000);
      await this.ended;
      clearTimeout(hardKill);
      // The box's mount tree, and with it its owner id, is let go off the event loop once its
      // init is reaped: destroy() resolves when it has, so that an id is free again by then.
      await namespacesReleased();
      await this.network?.close();
    }
    if (this.box.cgroup) await this.box.cgroup.destroy();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.destroy();
  }

  private resolveRun(options: SandboxRunOptions<OutputEncoding>, kind: 'run' | 'spawn'): ResolvedOptions {
    this.assertAlive();
    return resolveSandboxRun(options, this.options, kind);
  }

  private assertAlive(): void {
    if (this.destroyed) throw new SandboxSetupError('join box', ENDED, 'ESRCH', 'the box was destroyed');
  }
}
