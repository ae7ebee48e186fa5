/**
 * cgroup v1: one hierarchy per controller (or combined ones such as `cpu,cpuacct`). A run gets a
 * directory `<base>/sandcell-<pid>/run-<n>-<hex>` in each hierarchy it uses, and the box's first
 * pid has to be written to each one's cgroup.procs (`procsFiles`).
 */
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { SandboxSetupError } from '../errors.js';
import type { CgroupDriver, CgroupLimits, EnforcedLimits, FakeCgroupFs, RunCgroup, RunOutcome } from './driver.js';
import { Once, CPU_CAP_PERIOD_US, CPU_PERIOD_US, cappedQuotaUs, cpuQuotaUs, killAndRemove, newRunName, pidsIn, validateLimits } from './common.js';
import { cgroupBatch, exists, keyedValue, mkdirCgroupIn, parseNumber, readNumber, rmdirCgroup, type ControlWrite } from './fs.js';

/** One v1 hierarchy sandcell uses: its `sandcell-<pid>` dir and the wanted controllers bound to it. */
export interface V1Hierarchy {
  controllers: string[];
  sandcellDir: string;
}

export class V1RunCgroup implements RunCgroup {
  readonly version = 'v1' as const;
  readonly procsFiles: readonly string[];
  readonly dirs: readonly string[];
  readonly enforced: EnforcedLimits;
  private readonly memoryDir: string | undefined;
  private readonly pidsDir: string | undefined;
  private readonly cpuDir: string | undefined;
  private readonly cpuacctDir: string | undefined;
  /** What `outcome()` reads without the CPU counter, and with it (made once: a cgroup serves many runs). */
  private readonly outcomeFiles: readonly string[];
  private readonly outcomeFilesWithCpu: readonly string[];
  /** What `reuse()` reads back: each kept directory's `cgroup.procs`, then `pids.current` and `cpuacct.usage` where kept. */
  private readonly reuseReads: readonly string[];
  private readonly keptDirs: number;
  private sampledPeak: number | undefined;
  /** CPU bandwidth was written since the cgroup was made or readied (a reuse lifts it). */
  private cpuTouched = false;
  /**
   * What cpu.cfs_period_us and cpu.cfs_quota_us hold, as this object last wrote them (the kernel's
   * defaults in a new cgroup; undefined after a failed write: then unknown). Nothing else writes
   * them, so a write of the value already there is skipped: each one walks every CPU.
   */
  private cfs: { period: number | undefined; quota: number | undefined } = { period: CPU_PERIOD_US, quota: -1 };
  private readonly teardown = new Once();

  /**
   * `byController`: controller → this run's dir in the hierarchy of that controller (which may not
   * exist yet). `has` says whether the cgroups of the hierarchy at `dir` have a control file (the
   * driver's, looked at once).
   */
  constructor(
    readonly name: string,
    readonly byController: ReadonlyMap<string, string>,
    private current: Readonly<CgroupLimits>,
    readonly tail: string,
    private readonly fake: FakeCgroupFs | undefined,
    private readonly has: (dir: string, file: string) => boolean,
  ) {
    this.dirs = [...new Set(byController.values())];
    this.procsFiles = this.dirs.map((d) => join(d, 'cgroup.procs'));
    const at = (c: string, file: string): string | undefined => {
      const d = byController.get(c);
      return d !== undefined && has(d, file) ? d : undefined;
    };
    this.memoryDir = at('memory', 'memory.limit_in_bytes');
    this.pidsDir = at('pids', 'pids.max');
    this.cpuDir = at('cpu', 'cpu.cfs_quota_us');
    this.cpuacctDir = at('cpuacct', 'cpuacct.usage');
    const m = this.memoryDir;
    this.outcomeFiles = m ? [join(m, 'memory.max_usage_in_bytes'), join(m, 'memory.oom_control')] : [];
    this.outcomeFilesWithCpu = this.cpuacctDir ? [...this.outcomeFiles, join(this.cpuacctDir, 'cpuacct.usage')] : this.outcomeFiles;
    const kept = this.dirs.filter((d) => d !== m);
    this.keptDirs = kept.length;
    this.reuseReads = [
      ...kept.map((d) => join(d, 'cgroup.procs')),
      ...(this.pidsDir && this.pidsDir !== m ? [join(this.pidsDir, 'pids.current')] : []),
      ...(this.cpuacctDir && this.cpuacctDir !== m ? [join(this.cpuacctDir, 'cpuacct.usage')] : []),
    ];
    this.enforced = {
      memory: this.memoryDir ? 'cgroup' : 'none',
      processes: this.pidsDir ? 'cgroup' : 'none',
      cpuTime: this.cpuacctDir ? 'cgroup' : 'none',
      cpus: this.cpuDir ? 'cgroup' : 'none',
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
      this.cfs = { period: undefined, quota: undefined }; // some of the writes may have been done
      throw e;
    }
  }

  capCpu(quotaUs: number | null): void {
    if (!this.cpuDir) return;
    this.cpuTouched = true;
    const cpus = this.current.cpus;
    if (quotaUs === null) {
      // Without a `cpus` share an unlimited quota is all there is to put back: the period it
      // leaves does nothing without a quota, and a reuse or a `cpus` limit writes its own.
      if (cpus === undefined) return this.writeCfs('quota', -1);
      // Quota first (unlimited fits any period), so the period can change.
      this.writeCfs('quota', -1);
      this.writeCfs('period', CPU_PERIOD_US);
      this.writeCfs('quota', cpuQuotaUs(cpus));
    } else {
      // Period first when capping: the cap's quota over the shorter period could exceed a parent's
      // share. From the second poll on the period is the cap's already and only the quota changes.
      this.writeCfs('period', CPU_CAP_PERIOD_US);
      this.writeCfs('quota', cappedQuotaUs(quotaUs, cpus));
    }
  }

  unthrottle(): void {
    if (!this.cpuDir) return;
    this.cpuTouched = true;
    this.writeCfs('quota', -1);
  }

  /** Writes one of the two bandwidth files, unless it already holds `v`. */
  private writeCfs(which: 'period' | 'quota', v: number): void {
    if (this.cfs[which] === v) return;
    this.cfs[which] = undefined;
    writeFileSync(join(this.cpuDir!, which === 'period' ? 'cpu.cfs_period_us' : 'cpu.cfs_quota_us'), String(v));
    this.cfs[which] = v;
  }

  /** The writes of the limits, in order: by the driver right after mkdir, or later through applyLimits. */
  limitWrites(): ControlWrite[] {
    const l = this.current;
    const w: ControlWrite[] = [];
    if (l.memoryBytes !== undefined && this.memoryDir) {
      // limit first: memsw must never be below limit_in_bytes (EINVAL).
      w.push([this.memoryDir, 'memory.limit_in_bytes', String(l.memoryBytes)]);
      // Present only with swap accounting on; without it a box can use swap beyond the limit.
      if (this.has(this.memoryDir, 'memory.memsw.limit_in_bytes')) w.push([this.memoryDir, 'memory.memsw.limit_in_bytes', String(l.memoryBytes)]);
    }
    if (l.pids !== undefined && this.pidsDir) w.push([this.pidsDir, 'pids.max', String(l.pids)]);
    if (l.cpus !== undefined && this.cpuDir) {
      this.cpuTouched = true;
      // What the batch writes (applyLimits forgets it if the batch fails).
      this.cfs = { period: CPU_PERIOD_US, quota: cpuQuotaUs(l.cpus) };
      w.push([this.cpuDir, 'cpu.cfs_period_us', String(CPU_PERIOD_US)]);
      w.push([this.cpuDir, 'cpu.cfs_quota_us', String(cpuQuotaUs(l.cpus))]);
    }
    return w;
  }

  get cpuTimeFile(): string | undefined {
    return this.cpuacctDir ? join(this.cpuacctDir, 'cpuacct.usage') : undefined;
  }

  cpuTimeUs(): number {
    if (!this.cpuacctDir) return NaN;
    const ns = readNumber(join(this.cpuacctDir, 'cpuacct.usage'));
    return ns === undefined ? NaN : ns / 1000;
  }

  cpuTimeUsFrom(text: string): number {
    const ns = Number(text.trim());
    return text.trim() !== '' && Number.isFinite(ns) ? ns / 1000 : NaN;
  }

  /** memory.max_usage_in_bytes is in every v1 memory cgroup. */
  readonly peakSampled = false;

  memoryCurrentBytes(): number | undefined {
    if (!this.memoryDir) return undefined;
    const v = readNumber(join(this.memoryDir, 'memory.usage_in_bytes'));
    if (v !== undefined && (this.sampledPeak === undefined || v > this.sampledPeak)) this.sampledPeak = v;
    return v;
  }

  pids(): number[] {
    return pidsIn(this.dirs);
  }

  get cpuProcsFile(): string | undefined {
    return this.cpuacctDir ? join(this.cpuacctDir, 'cgroup.procs') : undefined;
  }

  async outcome(cpuTime = true): Promise<RunOutcome> {
    const d = this.memoryDir;
    const usage = cpuTime && this.cpuacctDir !== undefined;
    const files = usage ? this.outcomeFilesWithCpu : this.outcomeFiles;
    const got = files.length > 0 ? await cgroupBatch([], [], files) : [];
    const u: RunOutcome = { cpuTimeUs: NaN, memoryPeakSource: 'none', oomKilled: false };
    if (usage) {
      const t = got[files.length - 1];
      u.cpuTimeUs = t === undefined ? NaN : this.cpuTimeUsFrom(t);
    }
    if (d) {
      const peak = parseNumber(got[0]);
      if (peak !== undefined) {
        u.memoryPeakBytes = peak;
        u.memoryPeakSource = 'cgroup';
      } else if (this.sampledPeak !== undefined) {
        u.memoryPeakBytes = this.sampledPeak;
        u.memoryPeakSource = 'sampled';
      }
      // "oom_kill N" exists since 4.13; before that the caller has failcnt and the SIGKILL.
      u.oomKilled = (keyedValue(got[1], 'oom_kill') ?? 0) > 0;
    }
    return u;
  }

  async reuse(): Promise<boolean> {
    if (this.fake) return false;
    const m = this.memoryDir;
    // The memory cgroup is made again: the run leaves charges in it (dentries, inodes and other
    // kernel objects it allocated, tmpfs pages until its mount namespace is gone) that a reset
    // cannot empty, and that would count against the next run's limit and peak. Its rmdir is
    // also the check that nothing is left in its hierarchy (EBUSY while a task or child is): a
    // refused rmdir stops the batch before anything else is done.
    const w: ControlWrite[] = [];
    if (this.pidsDir && this.pidsDir !== m) w.push([this.pidsDir, 'pids.max', 'max']);
    // Written only when the last run set them: a write of CPU bandwidth walks every CPU.
    if (this.cpuDir && this.cpuDir !== m && this.cpuTouched) w.push([this.cpuDir, 'cpu.cfs_quota_us', '-1'], [this.cpuDir, 'cpu.cfs_period_us', String(CPU_PERIOD_US)]);
    if (this.cpuacctDir && this.cpuacctDir !== m) w.push([this.cpuacctDir, 'cpuacct.usage', '0']);
    let got: (string | undefined)[];
    try {
      got = await cgroupBatch(m ? [m] : [], w, this.reuseReads, undefined, m ? [m] : []);
    } catch {
      return false;
    }
    // Every hierarchy's cgroup empty (pids.current counts the tasks below too: a box cannot make
    // child cgroups, having no cgroupfs, but nothing is assumed), the CPU counter back at zero.
    const kept = this.keptDirs;
    if (!got.every((t, i) => (i < kept ? t !== undefined && t.trim() === '' : parseNumber(t) === 0))) return false;
    this.current = {};
    this.sampledPeak = undefined;
    this.cpuTouched = false;
    this.cfs = { period: CPU_PERIOD_US, quota: -1 };
    return true;
  }

  destroy(): Promise<void> {
    return this.teardown.run(() => killAndRemove({ dirs: this.dirs, tail: this.tail, fake: this.fake }));
  }
}

/** The control files a run cgroup's setup and result use, by the controller they belong to. */
const CONTROL_FILES: Readonly<Record<string, readonly string[]>> = {
  memory: ['memory.limit_in_bytes', 'memory.memsw.limit_in_bytes'],
  pids: ['pids.max'],
  cpu: ['cpu.cfs_quota_us'],
  cpuacct: ['cpuacct.usage'],
};

export class V1Driver implements CgroupDriver {
  readonly version = 'v1' as const;
  readonly parents: Readonly<Record<string, string>>;
  readonly controllers: readonly string[];
  /**
   * Which control files the cgroups of this driver have, by file name. In v1 every cgroup of a
   * hierarchy has the same files (its controllers' and, for memory.memsw.*, the kernel's swap
   * accounting), and each file belongs to one controller: looked at once, in each hierarchy's
   * `sandcell-<pid>` (never a root) when the driver is made, so that a run cgroup's writes are
   * known before its directories exist.
   */
  private readonly present = new Map<string, boolean>();
  private readonly has = (_dir: string, file: string): boolean => this.present.get(file) ?? false;

  constructor(
    private readonly hierarchies: readonly V1Hierarchy[],
    private readonly sandcellName: string,
    private readonly fake: FakeCgroupFs | undefined,
    readonly warnings: readonly string[] = [],
  ) {
    const parents: Record<string, string> = {};
    for (const h of hierarchies) for (const c of h.controllers) parents[c] = h.sandcellDir;
    this.parents = parents;
    this.controllers = Object.keys(parents);
    for (const h of hierarchies) {
      for (const c of h.controllers) for (const file of CONTROL_FILES[c] ?? []) this.present.set(file, exists(join(h.sandcellDir, file)));
    }
  }

  async create(limits: CgroupLimits, under?: RunCgroup): Promise<RunCgroup> {
    validateLimits(limits);
    if (under !== undefined && !(under instanceof V1RunCgroup)) throw new TypeError('under: not a cgroup of this driver');
    const parent = under as V1RunCgroup | undefined;
    const name = newRunName();
    const byController = new Map<string, string>();
    for (const h of this.hierarchies) {
      const base = parent ? parent.byController.get(h.controllers[0] ?? '') : h.sandcellDir;
      if (base === undefined) continue;
      for (const c of h.controllers) byController.set(c, join(base, name));
    }
    const tail = parent ? `${parent.tail}/${name}` : `/${this.sandcellName}/${name}`;
    const rc = new V1RunCgroup(name, byController, { ...limits }, tail, this.fake, this.has);
    try {
      try {
        // The usual case: every mkdir and limit write in one trip to a worker thread.
        await cgroupBatch(rc.dirs, rc.limitWrites(), [], this.fake);
      } catch (e) {
        // A `sandcell-<pid>` gone (another driver of this process closed it) is made again.
        if (parent || !(e instanceof SandboxSetupError) || e.stage !== 'cgroup mkdir' || e.code !== 'ENOENT') throw e;
        await this.removeAll(rc.dirs);
        for (const dir of rc.dirs) await mkdirCgroupIn(dirname(dir), dir, this.fake);
        await cgroupBatch([], rc.limitWrites());
      }
      return rc;
    } catch (e) {
      await this.removeAll(rc.dirs);
      throw e;
    }
  }

  private async removeAll(dirs: readonly string[]): Promise<void> {
    for (const d of dirs) await rmdirCgroup(d, this.fake).catch(() => undefined);
  }
}
