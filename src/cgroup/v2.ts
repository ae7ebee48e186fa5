/**
 * cgroup v2 (unified hierarchy). One directory per run: `<base>/sandcell-<pid>/run-<n>-<hex>`.
 *
 * The no-internal-processes rule: a non-root cgroup can only hand controllers to its children
 * (cgroup.subtree_control) while it holds no processes. `sandcell-<pid>` never holds processes, so
 * sandcell enables memory/pids/cpu there. Those controllers must first reach `sandcell-<pid>`
 * through its parent (the base):
 *  - default base = this process's own cgroup. It holds at least the Node process, so its
 *    subtree_control can't gain controllers; sandcell never writes it. It works when whoever
 *    set the cgroup up already enabled them (the root cgroup, some container setups).
 *  - configured base (`parent`): sandcell enables the controllers in its cgroup.subtree_control
 *    if they are missing and it holds no processes. The usual deployment: a service in a
 *    delegated cgroup (systemd Delegate=yes) moves itself into a leaf (e.g. `<svc>/main`) and
 *    passes `<svc>/sandcell` (or `<svc>`) as parent.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CgroupDriver, CgroupLimits, EnforcedLimits, FakeCgroupFs, RunCgroup, RunOutcome } from './driver.js';
import { Once, CPU_CAP_PERIOD_US, CPU_PERIOD_US, cappedQuotaUs, cpuQuotaUs, killAndRemove, newRunName, pidsIn, validateLimits } from './common.js';
import { SandboxSetupError } from '../errors.js';
import { cgroupBatch, exists, mkdirCgroup, parseKeyed, parseNumber, readKeyed, readNumber, readOpt, rmdirCgroup, writeControl, type ControlWrite } from './fs.js';

export const V2_WANTED = ['memory', 'pids', 'cpu'] as const;

export function readControllers(dir: string): string[] {
  return (readOpt(join(dir, 'cgroup.controllers')) ?? '').split(/\s+/).filter(Boolean);
}

/** subtree_control as listed (a fake tree may store what was written: "+memory +pids"). */
export function readSubtreeControl(dir: string): string[] {
  return (readOpt(join(dir, 'cgroup.subtree_control')) ?? '')
    .split(/\s+/)
    .filter(Boolean)
    .map((c) => c.replace(/^\+/, ''));
}

/**
 * Enables `wanted ∩ cgroup.controllers` in `dir`'s subtree_control (one write with every missing
 * controller, then one write per controller if that fails). Returns what is enabled afterwards.
 */
export async function enableSubtree(dir: string, wanted: readonly string[]): Promise<string[]> {
  const available = readControllers(dir);
  const current = readSubtreeControl(dir);
  const missing = wanted.filter((c) => available.includes(c) && !current.includes(c));
  if (missing.length > 0) {
    try {
      await writeControl(dir, 'cgroup.subtree_control', missing.map((c) => `+${c}`).join(' '));
    } catch {
      for (const c of missing) await writeControl(dir, 'cgroup.subtree_control', `+${c}`).catch(() => undefined);
    }
  }
  return readSubtreeControl(dir).filter((c) => wanted.includes(c));
}

export class V2RunCgroup implements RunCgroup {
  readonly version = 'v2' as const;
  readonly procsFiles: readonly string[];
  readonly dirs: readonly string[];
  readonly enforced: EnforcedLimits;
  private sampledPeak: number | undefined;
  /**
   * cpu.max as this object last wrote it ("max 100000", the kernel's default, in a new cgroup;
   * undefined after a failed write: then unknown). Nothing else writes it, so a write of the value
   * already there is skipped: each one walks every CPU.
   */
  private cpuMax: string | undefined = `max ${CPU_PERIOD_US}`;
  private noPeakFile: boolean | undefined;
  private readonly teardown = new Once();

  constructor(
    readonly name: string,
    readonly dir: string,
    private current: Readonly<CgroupLimits>,
    readonly tail: string,
    private readonly fake: FakeCgroupFs | undefined,
  ) {
    this.procsFiles = [join(dir, 'cgroup.procs')];
    this.dirs = [dir];
    this.enforced = {
      memory: exists(join(dir, 'memory.max')) ? 'cgroup' : 'none',
      processes: exists(join(dir, 'pids.max')) ? 'cgroup' : 'none',
      cpuTime: exists(join(dir, 'cpu.stat')) ? 'cgroup' : 'none',
      cpus: exists(join(dir, 'cpu.max')) ? 'cgroup' : 'none',
    };
  }

  get limits(): Readonly<CgroupLimits> {
    return this.current;
  }

  async applyLimits(limits: CgroupLimits): Promise<void> {
    validateLimits(limits);
    this.current = { ...limits };
    try {
      await cgroupBatch([], this.limitWrites());
    } catch (e) {
      this.cpuMax = undefined; // some of the writes may have been done
      throw e;
    }
  }

  capCpu(quotaUs: number | null): void {
    if (this.enforced.cpus !== 'cgroup') return;
    const cpus = this.current.cpus;
    const value =
      quotaUs === null
        ? `${cpus !== undefined ? cpuQuotaUs(cpus) : 'max'} ${CPU_PERIOD_US}`
        : `${cappedQuotaUs(quotaUs, cpus)} ${CPU_CAP_PERIOD_US}`;
    this.writeCpuMax(value);
  }

  unthrottle(): void {
    if (this.enforced.cpus !== 'cgroup' || this.cpuMax?.startsWith('max ')) return;
    const period = this.cpuMax?.split(' ')[1];
    // "max" alone keeps the period.
    this.writeCpuMax('max', period !== undefined ? `max ${period}` : undefined);
  }

  /** Writes cpu.max, unless it already holds `value`; `holds`: what the kernel then holds. */
  private writeCpuMax(value: string, holds: string | undefined = value): void {
    if (this.cpuMax === value) return;
    this.cpuMax = undefined;
    writeFileSync(join(this.dir, 'cpu.max'), value);
    this.cpuMax = holds;
  }

  /** The writes of the limits, in order: by the driver right after mkdir, or later through applyLimits. */
  limitWrites(): ControlWrite[] {
    const { dir, current: l } = this;
    const w: ControlWrite[] = [];
    if (l.memoryBytes !== undefined && this.enforced.memory === 'cgroup') {
      w.push([dir, 'memory.max', String(l.memoryBytes)]);
      if (exists(join(dir, 'memory.swap.max'))) w.push([dir, 'memory.swap.max', '0']);
      // memory.oom.group stays 0: with it the kernel kills the whole cgroup on OOM, the box's init
      // included, so the run loses its exact end report (status, rusage) and a living box dies
      // with any one run; the OOM killer then picks one process, as on v1, and memory.events
      // oom_kill gives the verdict either way.
    }
    if (l.pids !== undefined && this.enforced.processes === 'cgroup') w.push([dir, 'pids.max', String(l.pids)]);
    if (l.cpus !== undefined && this.enforced.cpus === 'cgroup') {
      // What the batch writes (applyLimits forgets it if the batch fails).
      this.cpuMax = `${cpuQuotaUs(l.cpus)} ${CPU_PERIOD_US}`;
      w.push([dir, 'cpu.max', this.cpuMax]);
    }
    return w;
  }

  get cpuTimeFile(): string | undefined {
    return this.enforced.cpuTime === 'cgroup' ? join(this.dir, 'cpu.stat') : undefined;
  }

  cpuTimeUs(): number {
    return readKeyed(join(this.dir, 'cpu.stat'))?.get('usage_usec') ?? NaN;
  }

  cpuTimeUsFrom(text: string): number {
    return parseKeyed(text).get('usage_usec') ?? NaN;
  }

  /** Looked at once, by the first run that polls (a CPU-time limit's): most runs never ask. */
  get peakSampled(): boolean {
    this.noPeakFile ??= this.enforced.memory === 'cgroup' && !exists(join(this.dir, 'memory.peak'));
    return this.noPeakFile;
  }

  memoryCurrentBytes(): number | undefined {
    const v = readNumber(join(this.dir, 'memory.current'));
    if (v !== undefined && (this.sampledPeak === undefined || v > this.sampledPeak)) this.sampledPeak = v;
    return v;
  }

  pids(): number[] {
    return pidsIn(this.dirs);
  }

  get cpuProcsFile(): string | undefined {
    return this.enforced.cpuTime === 'cgroup' ? this.procsFiles[0] : undefined;
  }

  async outcome(cpuTime = true): Promise<RunOutcome> {
    const files = [join(this.dir, 'memory.peak'), join(this.dir, 'memory.events'), ...(cpuTime ? [join(this.dir, 'cpu.stat')] : [])];
    const [peakText, eventsText, statText] = await cgroupBatch([], [], files);
    const peak = parseNumber(peakText);
    const mev = parseKeyed(eventsText);
    const u: RunOutcome = {
      cpuTimeUs: statText === undefined ? NaN : this.cpuTimeUsFrom(statText),
      memoryPeakSource: 'none',
      oomKilled: (mev.get('oom_kill') ?? 0) > 0 || (mev.get('oom_group_kill') ?? 0) > 0,
    };
    if (peak !== undefined && Number.isFinite(peak)) {
      u.memoryPeakBytes = peak;
      u.memoryPeakSource = 'cgroup';
    } else if (this.sampledPeak !== undefined) {
      u.memoryPeakBytes = this.sampledPeak;
      u.memoryPeakSource = 'sampled';
    }
    return u;
  }

  /**
   * Never: a v2 cgroup's counters (memory.peak, memory.events, cpu.stat) cannot all be reset, and
   * cgroup v2 with controllers cannot be tested on every machine this is built on; each run gets
   * a fresh one.
   */
  reuse(): Promise<boolean> {
    return Promise.resolve(false);
  }

  destroy(): Promise<void> {
    return this.teardown.run(
      () =>
        killAndRemove({
          dirs: this.dirs,
          tail: this.tail,
          fake: this.fake,
          killAll: async () => {
            if (!exists(join(this.dir, 'cgroup.kill'))) return false;
            await writeControl(this.dir, 'cgroup.kill', '1');
            return true;
          },
        }),
    );
  }
}

export class V2Driver implements CgroupDriver {
  readonly version = 'v2' as const;
  readonly parents: Readonly<Record<string, string>>;

  /** `sandcellDir` exists and has `controllers` enabled in its subtree_control. */
  constructor(
    readonly sandcellDir: string,
    readonly controllers: readonly string[],
    private readonly fake: FakeCgroupFs | undefined,
    readonly warnings: readonly string[] = [],
  ) {
    this.parents = { unified: sandcellDir };
  }

  async create(limits: CgroupLimits, under?: RunCgroup): Promise<RunCgroup> {
    validateLimits(limits);
    if (under !== undefined && !(under instanceof V2RunCgroup)) throw new TypeError('under: not a cgroup of this driver');
    const parent = under as V2RunCgroup | undefined;
    const name = newRunName();
    const dir = join(parent ? parent.dir : this.sandcellDir, name);
    if (parent) {
      await enableSubtree(parent.dir, this.controllers);
      await cgroupBatch([dir], [], [], this.fake);
    } else {
      try {
        await cgroupBatch([dir], [], [], this.fake);
      } catch (e) {
        if (!(e instanceof SandboxSetupError) || e.stage !== 'cgroup mkdir' || e.code !== 'ENOENT') throw e;
        // sandcell-<pid> is gone (another driver of this process closed it): made again, its
        // children get their controllers once it lends them.
        await mkdirCgroup(this.sandcellDir, this.fake, true);
        await enableSubtree(this.sandcellDir, this.controllers);
        await cgroupBatch([dir], [], [], this.fake);
      }
    }
    const tail = parent ? `${parent.tail}/${name}` : `/${this.sandcellDir.split('/').pop() ?? ''}/${name}`;
    const rc = new V2RunCgroup(name, dir, { ...limits }, tail, this.fake);
    try {
      await cgroupBatch([], rc.limitWrites());
    } catch (e) {
      await rmdirCgroup(dir, this.fake).catch(() => undefined);
      throw e;
    }
    return rc;
  }

}
