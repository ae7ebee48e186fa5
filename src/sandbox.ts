/**
 * A box that lives: its namespaces, root filesystem, working directory and cgroup stay while
 * programs run in it one after another (compile, then run the binary against fifty inputs) or
 * side by side (a plugin and its helper on the box's own loopback).
 */
import type { RunCgroup } from './cgroup/index.js';
import { SandboxSetupError } from './errors.js';
import { nativeSpawn, type NativeSpawned } from './native.js';
import {
  resolveSandboxOptions,
  resolveSandboxRun,
  type BoxShape,
  type FileContent,
  type Limits,
  type ProgramOptions,
  type ResolvedOptions,
  type RunOptions,
} from './options.js';
import { buildPlan } from './plan/build.js';
import type { Result } from './result.js';
import type { PresetName, SeccompPolicy } from './seccomp/index.js';
import { SandboxProcess, cgroupLimits, startBox } from './supervise/box.js';
import { cgroupsFor } from './supervise/cgroups.js';
import { collectFiles, DEFAULT_COLLECT_LIMITS, type CollectLimits, type Collected } from './supervise/collect.js';
import { feed } from './supervise/io.js';

/** What a box is made of, and the defaults of the programs run in it. */
export interface SandboxOptions extends BoxShape {
  env?: Record<string, string>;
  cwd?: string;
  /** Limits of the whole box (memory, processes, tmpfs, cpus) and defaults for each run. */
  limits?: Limits;
  files?: Record<string, FileContent>;
  seccomp?: PresetName | SeccompPolicy;
}

/** One run in the box. */
export type SandboxRunOptions = ProgramOptions & Pick<RunOptions, 'stdin' | 'collect'>;

/** The result of a run that asked to collect files. */
export interface RunResult extends Result {
  /** Collected files by path relative to the working directory (only with `collect`). */
  files?: Record<string, Buffer>;
  /** Collected names or patterns that could not be read, and why (only with `collect`). */
  fileErrors?: Record<string, string>;
}

const ENDED = 3; // ESRCH

export class Sandbox implements AsyncDisposable {
  private readonly options: ResolvedOptions;
  private readonly native: NativeSpawned;
  private readonly cgroup: RunCgroup | null;
  private readonly ended: Promise<void>;
  private destroyed = false;

  private constructor(options: ResolvedOptions, native: NativeSpawned, cgroup: RunCgroup | null) {
    this.options = options;
    this.native = native;
    this.cgroup = cgroup;
    this.ended = new Promise((resolve) => native.box.watch(() => resolve()));
  }

  /** Builds a box and keeps it until `destroy()`. */
  static async create(options: SandboxOptions = {}): Promise<Sandbox> {
    const o = resolveSandboxOptions(options);
    const { pool } = await cgroupsFor(o.cgroupParent);
    // The box's limits hold for everything in it; its init sits in a leaf of its own so that
    // runs can have cgroups below the box's (v2 allows processes only in leaves).
    const cgroup = pool ? await pool.take(cgroupLimits(o)) : null;
    try {
      const initCgroup = pool && cgroup ? await pool.take({}, cgroup) : null;
      const plan = buildPlan(
        o,
        {
          cgroupProcs: initCgroup ? [...initCgroup.procsFiles] : [],
          seccomp: null,
          seccompListener: false,
          memoryRlimitBytes: null,
          cpuLimitByCgroup: false,
          stdio: ['null', 'null', 'null'],
        },
        'box',
      );
      const native = await nativeSpawn(plan);
      return new Sandbox(o, native, cgroup);
    } catch (e) {
      if (cgroup) await cgroup.destroy();
      throw e;
    }
  }

  /** Host pid of the box's init. */
  get pid(): number {
    return this.native.pid;
  }

  /** Starts a program in the box; see `spawn()`. */
  async spawn(options: SandboxRunOptions): Promise<SandboxProcess> {
    const o = this.resolveRun(options);
    return startBox({ options: o, seccomp: o.seccomp, stdin: 'pipe', output: 'streams', join: { box: this.native.box, cgroup: this.cgroup } });
  }

  /** Runs a program in the box to its end; files it wrote stay for the next run. */
  async run(options: SandboxRunOptions): Promise<RunResult> {
    const o = this.resolveRun(options);
    const proc = await startBox({
      options: o,
      seccomp: o.seccomp,
      stdin: o.stdin === null ? 'null' : 'pipe',
      output: 'collect',
      join: { box: this.native.box, cgroup: this.cgroup },
    });
    feed(proc, o.stdin);
    const result: RunResult = await proc.collectOutput();
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
    return collectFiles(this.native.box, cwd, patterns, { ...DEFAULT_COLLECT_LIMITS, ...limits });
  }

  /** Ends everything still running in the box and removes it: processes, mounts, cgroups. */
  async destroy(): Promise<void> {
    if (!this.destroyed) {
      this.destroyed = true;
      this.native.box.terminate();
      const hardKill = setTimeout(() => this.native.box.kill(), 1000);
      await this.ended;
      clearTimeout(hardKill);
    }
    if (this.cgroup) await this.cgroup.destroy();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.destroy();
  }

  private resolveRun(options: SandboxRunOptions): ResolvedOptions {
    this.assertAlive();
    return resolveSandboxRun(options, this.options);
  }

  private assertAlive(): void {
    if (this.destroyed) throw new SandboxSetupError('join box', ENDED, 'ESRCH', 'the box was destroyed');
  }
}
