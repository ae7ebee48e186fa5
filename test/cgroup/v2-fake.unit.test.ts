/**
 * The cgroup v2 driver against a fake cgroupfs (this machine has no v2 controllers): which files
 * are written with which values, what is refused and why, how a run's outcome is parsed.
 */
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openCgroupDriver, type CgroupDriver, type DetectOptions, type FakeCgroupFs } from '../../src/cgroup/index.js';
import { SandboxSetupError } from '../../src/errors.js';
import { FakeV2Tree, type FakeFeatures } from './fake-cgroupfs.js';

const PID = 424242;
let trees: FakeV2Tree[] = [];
afterEach(() => {
  for (const t of trees) t.dispose();
  trees = [];
});

function tree(selfPath: string, features?: FakeFeatures): FakeV2Tree {
  const t = new FakeV2Tree(selfPath, features);
  trees.push(t);
  return t;
}
const opts = (t: FakeV2Tree, extra: Partial<DetectOptions> = {}): DetectOptions => ({
  mountinfo: t.mountinfo,
  procSelfCgroup: t.procSelfCgroup,
  pid: PID,
  fake: t.fake,
  ...extra,
});
async function open(t: FakeV2Tree, extra: Partial<DetectOptions> = {}): Promise<CgroupDriver> {
  const r = await openCgroupDriver(opts(t, extra));
  if (!r.driver) throw new Error(`expected a driver, got: ${r.reason}`);
  return r.driver;
}
/** Files whose content differs (or that appeared/disappeared) between two snapshots. */
function diff(a: Record<string, string>, b: Record<string, string>): Record<string, [string | undefined, string | undefined]> {
  const out: Record<string, [string | undefined, string | undefined]> = {};
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) if (a[k] !== b[k]) out[k] = [a[k], b[k]];
  return out;
}

/** A systemd-like layout: controllers delegated down to /system.slice/app.service, whose own process sits in /main. */
function delegatedService(features?: FakeFeatures): FakeV2Tree {
  const t = tree('/system.slice/app.service/main', features);
  t.write('/', 'cgroup.subtree_control', 'cpu memory pids\n');
  t.mkcg('/system.slice');
  t.write('/system.slice', 'cgroup.subtree_control', 'cpu memory pids\n');
  t.mkcg('/system.slice/app.service');
  t.write('/system.slice/app.service', 'cgroup.subtree_control', 'cpu memory pids\n');
  t.mkcg('/system.slice/app.service/main', [1234]);
  return t;
}

describe('cgroup v2 detection (fake tree)', () => {
  it('uses a caller cgroup that already delegates controllers (e.g. the root cgroup) and writes only in sandcell-<pid>', async () => {
    const t = tree('/');
    t.write('/', 'cgroup.subtree_control', 'cpu memory pids\n');
    const before = t.snapshot();
    const d = await open(t);
    expect(d.version).toBe('v2');
    expect(d.parents).toEqual({ unified: t.path(`/sandcell-${PID}`) });
    expect([...d.controllers].sort()).toEqual(['cpu', 'memory', 'pids']);
    const changed = Object.keys(diff(before, t.snapshot()));
    expect(changed.every((f) => f.startsWith(`sandcell-${PID}/`))).toBe(true);
    expect(t.read(`/sandcell-${PID}`, 'cgroup.subtree_control').split(/\s+/).filter(Boolean).sort()).toEqual(['+cpu', '+memory', '+pids']);
  });

  it('refuses (with the no-internal-processes reason) a caller cgroup that holds processes and delegates nothing, writing nothing', async () => {
    const t = delegatedService();
    const before = t.snapshot();
    const r = await openCgroupDriver(opts(t));
    expect(r.driver).toBeNull();
    if (r.driver === null) {
      expect(r.reason).toMatch(/no-internal-processes/);
      expect(r.reason).toMatch(/cgroupParent/);
      expect(r.reason).toContain(t.path('/system.slice/app.service/main'));
    }
    expect(t.snapshot()).toEqual(before);
  });

  it.each([
    ['relative to the hierarchy root', (_t: FakeV2Tree) => '/system.slice/app.service/sandcell'],
    ['absolute under the mount', (t: FakeV2Tree) => t.path('/system.slice/app.service/sandcell')],
  ])('a configured parent (%s) is created, given the controllers, and sandcell-<pid> below it', async (_, parent) => {
    const t = delegatedService();
    const before = t.snapshot();
    const d = await open(t, { parent: parent(t) });
    const sandcell = t.path(`/system.slice/app.service/sandcell/sandcell-${PID}`);
    expect(d.parents).toEqual({ unified: sandcell });
    const changed = Object.keys(diff(before, t.snapshot()));
    expect(changed.length).toBeGreaterThan(0);
    // Nothing outside the configured parent was written.
    expect(changed.every((f) => f.startsWith('system.slice/app.service/sandcell/'))).toBe(true);
    expect(t.read('/system.slice/app.service/sandcell', 'cgroup.subtree_control').trim().split(' ').sort()).toEqual(['+cpu', '+memory', '+pids']);
    // The configured parent stays (it is the caller's).
    expect(t.exists('/system.slice/app.service/sandcell')).toBe(true);
  });

  it('refuses a configured parent that holds processes and lacks the controllers', async () => {
    const t = delegatedService();
    const before = t.snapshot();
    const r = await openCgroupDriver(opts(t, { parent: '/system.slice/app.service/main' }));
    expect(r.driver).toBeNull();
    if (r.driver === null) expect(r.reason).toMatch(/holds processes.*no-internal-processes/);
    expect(t.snapshot()).toEqual(before);
  });

  it('does not write a configured parent that already enables the controllers', async () => {
    const t = delegatedService();
    t.mkcg('/system.slice/app.service/sb');
    t.write('/system.slice/app.service/sb', 'cgroup.subtree_control', 'cpu memory pids\n');
    const before = t.snapshot();
    const d = await open(t, { parent: '/system.slice/app.service/sb' });
    const changed = Object.keys(diff(before, t.snapshot()));
    expect(changed.every((f) => f.startsWith(`system.slice/app.service/sb/sandcell-${PID}/`))).toBe(true);
  });

  it('works with only some controllers delegated and says so', async () => {
    const t = tree('/');
    t.write('/', 'cgroup.subtree_control', 'memory\n');
    const d = await open(t);
    expect(d.controllers).toEqual(['memory']);
    expect(d.warnings.join(' ')).toMatch(/pids/);
    const rc = await d.create({ memoryBytes: 1 << 20, pids: 10, cpus: 1 });
    expect(rc.enforced).toEqual({ memory: 'cgroup', processes: 'none', cpuTime: 'cgroup', cpus: 'none' });
    expect(existsSync(join(rc.dirs[0]!, 'pids.max'))).toBe(false);
  });
});

describe('cgroup v2 run cgroups (fake tree)', () => {
  it('writes the limits: memory.max, memory.swap.max=0, pids.max, cpu.max; memory.oom.group stays 0', async () => {
    const t = delegatedService();
    const d = await open(t, { parent: '/system.slice/app.service/sandcell' });
    const rc = await d.create({ memoryBytes: 256 * 1024 * 1024, pids: 64, cpus: 0.5 });
    const dir = rc.dirs[0]!;
    expect(rc.name).toMatch(/^run-\d+-[0-9a-f]{8}$/);
    expect(dir).toBe(join(d.parents.unified!, rc.name));
    expect(rc.procsFiles).toEqual([join(dir, 'cgroup.procs')]);
    expect(rc.version).toBe('v2');
    expect(rc.enforced).toEqual({ memory: 'cgroup', processes: 'cgroup', cpuTime: 'cgroup', cpus: 'cgroup' });
    const rel = `/system.slice/app.service/sandcell/sandcell-${PID}/${rc.name}`;
    expect(t.read(rel, 'memory.max')).toBe('268435456');
    expect(t.read(rel, 'memory.swap.max')).toBe('0');
    // Group OOM kills would take the box's init too (seen on a real 6.1 kernel): one process is killed, as on v1.
    expect(t.read(rel, 'memory.oom.group')).toBe('0\n');
    expect(t.read(rel, 'pids.max')).toBe('64');
    expect(t.read(rel, 'cpu.max')).toBe('50000 100000');
    // A run being ended is no longer throttled: its tasks must run to die.
    rc.unthrottle();
    expect(t.read(rel, 'cpu.max')).toBe('max');
    // A CPU cap writes cpu.max only when its value changes (the fake keeps what was last written).
    rc.capCpu(20_000);
    expect(t.read(rel, 'cpu.max')).toBe('20000 1000000');
    t.write(rel, 'cpu.max', 'untouched');
    rc.capCpu(20_000);
    expect(t.read(rel, 'cpu.max')).toBe('untouched');
    rc.capCpu(10_000);
    expect(t.read(rel, 'cpu.max')).toBe('10000 1000000');
    rc.capCpu(null);
    expect(t.read(rel, 'cpu.max')).toBe('50000 100000');
    rc.unthrottle();
    expect(t.read(rel, 'cpu.max')).toBe('max');
    t.write(rel, 'cpu.max', 'untouched');
    rc.unthrottle();
    expect(t.read(rel, 'cpu.max')).toBe('untouched');
    await rc.destroy();
    expect(existsSync(dir)).toBe(false);
    // cgroup.kill was written before the rmdir.
    expect(t.removed.get(dir)?.['cgroup.kill']).toBe('1');
  });

  it('writes nothing when no limit is asked for, and two runs get distinct dirs', async () => {
    const t = tree('/');
    t.write('/', 'cgroup.subtree_control', 'cpu memory pids\n');
    const d = await open(t);
    const a = await d.create({});
    const b = await d.create({ cpus: 2 });
    expect(a.name).not.toBe(b.name);
    const ra = `/sandcell-${PID}/${a.name}`;
    expect(t.read(ra, 'memory.max')).toBe('max\n');
    expect(t.read(ra, 'pids.max')).toBe('max\n');
    expect(t.read(ra, 'cpu.max')).toBe('max 100000\n');
    expect(t.read(ra, 'memory.oom.group')).toBe('0\n');
    expect(t.read(`/sandcell-${PID}/${b.name}`, 'cpu.max')).toBe('200000 100000');
    await a.destroy();
    await b.destroy();
  });

  it('rejects nonsense limits before creating anything', async () => {
    const t = tree('/');
    t.write('/', 'cgroup.subtree_control', 'cpu memory pids\n');
    const d = await open(t);
    await expect(d.create({ memoryBytes: -1 })).rejects.toThrow(RangeError);
    await expect(d.create({ pids: 1.5 })).rejects.toThrow(RangeError);
    await expect(d.create({ cpus: 0.001 })).rejects.toThrow(RangeError);
    expect(t.snapshot()[`sandcell-${PID}/cgroup.procs`]).toBe('');
  });

  it('a limit write the kernel refuses is a SandboxSetupError naming the file and value, and the run cgroup is removed', async () => {
    const t = tree('/');
    t.write('/', 'cgroup.subtree_control', 'cpu memory pids\n');
    // memory.max made a directory right after the "kernel" populates a run cgroup: the write gets EISDIR.
    const isRun = (dir: string): boolean => basename(dir).startsWith('run-');
    const fake: FakeCgroupFs = {
      populate: (dir) => {
        t.fake.populate(dir);
        if (!isRun(dir)) return;
        rmSync(join(dir, 'memory.max'));
        mkdirSync(join(dir, 'memory.max'));
      },
      rmdir: async (dir) => {
        if (isRun(dir)) rmSync(join(dir, 'memory.max'), { recursive: true, force: true });
        await t.fake.rmdir(dir);
      },
    };
    const d = await open(t, { fake });
    const err = await d.create({ memoryBytes: 1 << 24, pids: 5 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SandboxSetupError);
    const e = err as SandboxSetupError;
    expect(e.stage).toBe('cgroup write memory.max');
    expect(e.code).toBe('EISDIR');
    expect(e.message).toContain(`"${1 << 24}"`);
    expect(e.message).toContain(`/sandcell-${PID}/run-`);
    expect(readdirSync(t.path(`/sandcell-${PID}`), { withFileTypes: true }).filter((x) => x.isDirectory())).toEqual([]);
  });

  it('parses the outcome: cpu.stat, memory.peak, memory.events', async () => {
    const t = tree('/');
    t.write('/', 'cgroup.subtree_control', 'cpu memory pids\n');
    const d = await open(t);
    const rc = await d.create({ memoryBytes: 1 << 24 });
    const rel = `/sandcell-${PID}/${rc.name}`;
    t.write(rel, 'cpu.stat', 'usage_usec 1234567\nuser_usec 1000000\nsystem_usec 234567\nnr_periods 3\nnr_throttled 1\nthrottled_usec 5\n');
    t.write(rel, 'memory.peak', '5242880\n');
    expect(rc.peakSampled).toBe(false);
    t.write(rel, 'memory.current', '4096\n');
    t.write(rel, 'memory.events', 'low 0\nhigh 0\nmax 17\noom 1\noom_kill 1\noom_group_kill 0\n');
    expect(rc.cpuTimeUs()).toBe(1234567);
    expect(rc.memoryCurrentBytes()).toBe(4096);
    expect(await rc.outcome()).toEqual({
      cpuTimeUs: 1234567,
      memoryPeakBytes: 5242880,
      memoryPeakSource: 'cgroup',
      oomKilled: true,
    });
    // Without the CPU time (the caller has it from the init): the rest is read the same.
    expect(await rc.outcome(false)).toEqual({
      cpuTimeUs: NaN,
      memoryPeakBytes: 5242880,
      memoryPeakSource: 'cgroup',
      oomKilled: true,
    });
    t.write(rel, 'memory.events', 'low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 1\n');
    expect((await rc.outcome()).oomKilled).toBe(true);
    t.write(rel, 'memory.events', 'low 0\nhigh 0\nmax 3\noom 1\noom_kill 0\noom_group_kill 0\n');
    expect((await rc.outcome()).oomKilled).toBe(false);
  });

  it('on an older kernel (no memory.peak, swap, oom.group, cgroup.kill, pids.peak) writes only what exists and samples the peak', async () => {
    const t = tree('/', { peak: false, swap: false, oomGroup: false, kill: false, pidsPeak: false });
    t.write('/', 'cgroup.subtree_control', 'cpu memory pids\n');
    const d = await open(t);
    const rc = await d.create({ memoryBytes: 1 << 24 });
    const rel = `/sandcell-${PID}/${rc.name}`;
    expect(t.read(rel, 'memory.max')).toBe(String(1 << 24));
    for (const f of ['memory.swap.max', 'memory.oom.group', 'cgroup.kill']) expect(existsSync(t.path(rel, f))).toBe(false);
    // The CPU-time limit's polls sample memory.current only here.
    expect(rc.peakSampled).toBe(true);
    let u = await rc.outcome();
    expect(u.memoryPeakSource).toBe('none');
    expect(u.memoryPeakBytes).toBeUndefined();
    t.write(rel, 'memory.current', '9000\n');
    expect(rc.memoryCurrentBytes()).toBe(9000);
    t.write(rel, 'memory.current', '500\n');
    rc.memoryCurrentBytes();
    u = await rc.outcome();
    expect(u.memoryPeakSource).toBe('sampled');
    expect(u.memoryPeakBytes).toBe(9000);
    const dir = rc.dirs[0]!;
    await Promise.all([rc.destroy(), rc.destroy()]);
    await rc.destroy();
    expect(existsSync(dir)).toBe(false);
    expect(t.removed.get(dir)?.['cgroup.kill']).toBeUndefined();
  });
});

describe('cgroup v2 driver robustness (fake tree)', () => {
  it('re-creates sandcell-<pid> (with its subtree_control) if it was removed meanwhile', async () => {
    const t = tree('/');
    t.write('/', 'cgroup.subtree_control', 'cpu memory pids\n');
    const d = await open(t);
    await t.fake.rmdir(t.path(`/sandcell-${PID}`));
    expect(t.exists(`/sandcell-${PID}`)).toBe(false);
    const rc = await d.create({ pids: 5 });
    expect(t.read(`/sandcell-${PID}/${rc.name}`, 'pids.max')).toBe('5');
    await rc.destroy();
  });
});
