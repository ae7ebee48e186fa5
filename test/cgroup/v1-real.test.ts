/**
 * The driver on this machine's real cgroupfs (cgroup v1 here), as root: limit files, CPU time,
 * peak memory and OOM kills of real processes, the pids limit, destroy() of a live tree.
 */
import { readFileSync, existsSync } from 'node:fs';
import fsp, { rmdir } from 'node:fs/promises';
import { syncBuiltinESMExports } from 'node:module';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listSandcellCgroups, type CgroupDriver } from '../../src/cgroup/index.js';
import { isV1Memory, joinCgroup, openReal, PY, spawnHeld } from '../helpers/cgroups.js';
import { requireRoot } from '../helpers/host.js';
import { CpuTimeLimit } from '../../src/limits/cpu-time.js';

const read = (dir: string, file: string): string => readFileSync(join(dir, file), 'utf8').trim();

let driver: CgroupDriver;
beforeAll(async () => {
  requireRoot('test/cgroup/v1-real.test.ts');
  driver = await openReal();
});
afterAll(async () => {
  // Every test destroys its run cgroups; the parents are this file's to remove.
  for (const dir of new Set(Object.values(driver?.parents ?? {}))) await rmdir(dir).catch(() => undefined);
  expect(listSandcellCgroups({ pid: process.pid })).toEqual([]);
});

describe('cgroup driver on the real cgroupfs', () => {
  it('is v1 on this hybrid machine, below our own cgroup in each hierarchy', () => {
    expect(isV1Memory()).toBe(true); // this suite is written for the v1 development machines
    expect(driver.version).toBe('v1');
    expect([...driver.controllers].sort()).toEqual(['cpu', 'cpuacct', 'memory', 'pids']);
    const self = readFileSync('/proc/self/cgroup', 'utf8');
    const memPath = /^\d+:memory:(.*)$/m.exec(self)![1]!;
    expect(driver.parents.memory).toBe(join('/sys/fs/cgroup/memory', memPath, `sandcell-${process.pid}`));
    expect(driver.warnings).toEqual([]);
    // Separate cpu and cpuacct mounts here: two dirs.
    expect(driver.parents.cpu).not.toBe(driver.parents.cpuacct);
    for (const p of Object.values(driver.parents)) expect(existsSync(p)).toBe(true);
  });

  it('writes the limit files and removes the run cgroup', async () => {
    const rc = await driver.create({ memoryBytes: 64 * 1024 * 1024, pids: 32, cpus: 0.5 });
    expect(rc.procsFiles).toHaveLength(4);
    expect(rc.enforced).toEqual({ memory: 'cgroup', processes: 'cgroup', cpuTime: 'cgroup', cpus: 'cgroup' });
    const dir = (c: string): string => join(driver.parents[c]!, rc.name);
    expect(read(dir('memory'), 'memory.limit_in_bytes')).toBe(String(64 * 1024 * 1024));
    expect(read(dir('memory'), 'memory.memsw.limit_in_bytes')).toBe(String(64 * 1024 * 1024));
    expect(read(dir('pids'), 'pids.max')).toBe('32');
    expect(read(dir('cpu'), 'cpu.cfs_period_us')).toBe('100000');
    expect(read(dir('cpu'), 'cpu.cfs_quota_us')).toBe('50000');
    const u = await rc.outcome();
    expect(u.cpuTimeUs).toBe(0);
    expect(u.oomKilled).toBe(false);
    expect(u.memoryPeakSource).toBe('cgroup');
    expect(await rc.outcome(false)).toEqual({ ...u, cpuTimeUs: NaN });
    await rc.destroy();
    for (const d of rc.dirs) expect(existsSync(d)).toBe(false);
    await rc.destroy(); // idempotent
  });

  it('measures the CPU time a process burns inside, and throttles to cpus', async () => {
    const rc = await driver.create({ cpus: 0.5 });
    try {
      // A pure loop (checking the clock costs a syscall, so only every 100000 rounds).
      const burn =
        'import sys,time\nsys.stdin.readline()\nt=time.process_time()\ni=0\nwhile True:\n  i+=1\n  if i%100000==0 and time.process_time()-t>=0.3: break\nprint(time.process_time()-t)';
      const h = await spawnHeld([PY, '-c', burn]);
      joinCgroup(rc.procsFiles, h.child.pid!);
      expect(rc.pids()).toEqual([h.child.pid]);
      const t0 = Date.now();
      h.release();
      const r = await h.exit;
      const wall = Date.now() - t0;
      expect(r.code).toBe(0);
      const u = await rc.outcome();
      expect(rc.cpuTimeUs()).toBeCloseTo(u.cpuTimeUs, -3);
      // ≥ the 300 ms burnt, plus a little interpreter exit work.
      expect(u.cpuTimeUs).toBeGreaterThan(295_000);
      expect(u.cpuTimeUs).toBeLessThan(450_000);
      // 0.5 CPU: 300 ms of CPU needs more than 400 ms of wall time (50 ms per 100 ms period, at most 6 periods touched).
      expect(wall).toBeGreaterThan(400);
    } finally {
      await rc.destroy();
    }
  });

  it('an allocation beyond the memory limit is OOM-killed and reported', async () => {
    const limit = 32 * 1024 * 1024;
    const rc = await driver.create({ memoryBytes: limit });
    try {
      const h = await spawnHeld([PY, '-c', 'import sys\nsys.stdin.readline()\nx = b"x" * (200 << 20)\nprint(len(x))']);
      joinCgroup(rc.procsFiles, h.child.pid!);
      h.release();
      const r = await h.exit;
      expect(r.signal).toBe('SIGKILL');
      const u = await rc.outcome();
      expect(u.oomKilled).toBe(true);
      expect(u.memoryPeakSource).toBe('cgroup');
      expect(u.memoryPeakBytes).toBeGreaterThan(limit / 2);
      expect(u.memoryPeakBytes).toBeLessThanOrEqual(limit);
    } finally {
      await rc.destroy();
    }
  });

  it('a process within the limit is not OOM-killed; memory is measured', async () => {
    const rc = await driver.create({ memoryBytes: 64 * 1024 * 1024 });
    try {
      const h = await spawnHeld([PY, '-c', 'import sys\nsys.stdin.readline()\nx = b"x" * (20 << 20)\nprint(len(x))']);
      joinCgroup(rc.procsFiles, h.child.pid!);
      h.release();
      const r = await h.exit;
      expect(r.code).toBe(0);
      const u = await rc.outcome();
      expect(u.oomKilled).toBe(false);
      expect(u.memoryPeakBytes).toBeGreaterThan(20 * 1024 * 1024);
      expect(u.memoryPeakBytes).toBeLessThan(64 * 1024 * 1024);
    } finally {
      await rc.destroy();
    }
  });

  it('the pids limit makes forks fail (the kernel counts them)', async () => {
    const rc = await driver.create({ pids: 3 });
    try {
      const h = await spawnHeld(['/bin/sh', '-c', 'read x; for i in 1 2 3 4 5 6; do /bin/sleep 0.3 2>/dev/null & done; wait; echo done']);
      joinCgroup(rc.procsFiles, h.child.pid!);
      h.release();
      await h.exit;
      const pidsDir = join(driver.parents.pids!, rc.name);
      expect(Number(/^max (\d+)$/m.exec(read(pidsDir, 'pids.events'))?.[1])).toBeGreaterThan(0);
      const peak = Number(read(pidsDir, 'pids.peak'));
      expect(peak).toBeLessThanOrEqual(3);
      expect(peak).toBeGreaterThanOrEqual(2);
    } finally {
      await rc.destroy();
    }
  });

  it('a CPU cap, its rewrites, its lift and an unthrottle leave the bandwidth files as the kernel must hold them', async () => {
    const plain = await driver.create({});
    const shared = await driver.create({ cpus: 0.5 });
    try {
      const bw = (rc: typeof plain): string[] => [read(join(driver.parents.cpu!, rc.name), 'cpu.cfs_period_us'), read(join(driver.parents.cpu!, rc.name), 'cpu.cfs_quota_us')];
      plain.capCpu(20_000);
      expect(bw(plain)).toEqual(['1000000', '20000']);
      plain.capCpu(15_000);
      expect(bw(plain)).toEqual(['1000000', '15000']);
      plain.capCpu(null);
      // No quota: the period left over limits nothing.
      expect(bw(plain)[1]).toBe('-1');
      plain.capCpu(10_000);
      expect(bw(plain)).toEqual(['1000000', '10000']);
      plain.unthrottle();
      expect(bw(plain)[1]).toBe('-1');
      plain.unthrottle();
      expect(bw(plain)[1]).toBe('-1');

      shared.capCpu(900_000);
      expect(bw(shared)).toEqual(['1000000', '500000']); // within the cpus share
      shared.capCpu(20_000);
      expect(bw(shared)).toEqual(['1000000', '20000']);
      shared.capCpu(null);
      expect(bw(shared)).toEqual(['100000', '50000']);
      shared.capCpu(30_000);
      expect(bw(shared)).toEqual(['1000000', '30000']);
      shared.unthrottle();
      expect(bw(shared)[1]).toBe('-1');
      shared.capCpu(null);
      expect(bw(shared)).toEqual(['100000', '50000']);

      // A reuse puts back the kernel's defaults, and a cap after it writes both files again.
      expect(await plain.reuse()).toBe(true);
      expect(bw(plain)).toEqual(['100000', '-1']);
      plain.capCpu(40_000);
      expect(bw(plain)).toEqual(['1000000', '40000']);

      const h = await spawnHeld([PY, '-c', 'import sys\nsys.stdin.readline()']);
      joinCgroup(plain.procsFiles, h.child.pid!);
      expect(plain.peakSampled).toBe(false); // memory.max_usage_in_bytes: the kernel's peak
      expect(plain.cpuProcsFile).toBe(join(driver.parents.cpuacct!, plain.name, 'cgroup.procs'));
      expect(read(join(driver.parents.cpuacct!, plain.name), 'cgroup.procs')).toBe(String(h.child.pid));
      h.release();
      await h.exit;
    } finally {
      await plain.destroy();
      await shared.destroy();
    }
  });

  it("the CPU-time limit counts a program from its fork: the setup's share of the counter at its start is found and taken out", async () => {
    const rc = await driver.create({});
    try {
      const burnMs = (ms: number, then: string): string[] => [PY, '-c', `import sys, time\nsys.stdin.readline()\nwhile time.process_time() < ${ms / 1000}: pass\n${then}`];
      const usedMs = (): number => rc.cpuTimeUs() / 1000;
      // The setup: a process that burns 100 ms in the cgroup and is gone before the program starts.
      const setup = await spawnHeld(burnMs(100, ''));
      joinCgroup(rc.procsFiles, setup.child.pid!);
      setup.release();
      expect((await setup.exit).code).toBe(0);
      const setupMs = usedMs(); // less its start-up before it joined
      expect(setupMs).toBeGreaterThan(50);
      // The program: 200 ms of its own before the counter is read as "its start", then forever.
      const program = await spawnHeld(burnMs(200, 'print("started", flush=True)\nwhile True: pass'));
      joinCgroup(rc.procsFiles, program.child.pid!);
      program.release();
      await new Promise((resolve) => program.child.stdout!.once('data', resolve));
      const atStart = readFileSync(rc.cpuTimeFile!, 'utf8');
      // No init in this cgroup: the test's own pid stands for it.
      let limit: CpuTimeLimit | undefined;
      const exceededAtMs = await new Promise<number>((resolve) => {
        limit = new CpuTimeLimit(rc, 300, atStart, process.pid, () => resolve(usedMs()));
      });
      limit!.release();
      expect((await program.exit).signal).toBe('SIGKILL');
      // Its CPU in the cgroup at the limit: 300 ms but what it ran before it joined (its start-up,
      // which its own clock counts). Counted from the counter at the start it would be 200 + 300.
      expect(exceededAtMs - setupMs).toBeGreaterThan(250);
      expect(exceededAtMs - setupMs).toBeLessThan(400);
    } finally {
      await rc.destroy();
    }
  });

  it("a CPU-time limit released before its first timed poll never reads the setup's share: a run of milliseconds pays nothing for it", async () => {
    const rc = await driver.create({});
    // The share's reads of /proc (each program process's threads) are counted where they happen.
    const readdir = fsp.readdir;
    let procReads = 0;
    fsp.readdir = ((path: Parameters<typeof readdir>[0], ...rest: unknown[]) => {
      if (String(path).startsWith('/proc/')) procReads++;
      return (readdir as (...a: unknown[]) => unknown)(path, ...rest);
    }) as typeof readdir;
    syncBuiltinESMExports();
    try {
      const program = await spawnHeld([PY, '-c', 'import sys\nsys.stdin.readline()\nwhile True: pass']);
      joinCgroup(rc.procsFiles, program.child.pid!);
      program.release();
      const atStart = readFileSync(rc.cpuTimeFile!, 'utf8');
      // Ended at once, as a judge's run of a few milliseconds is: no poll after the first.
      const short = new CpuTimeLimit(rc, 1000, atStart, process.pid, () => undefined);
      short.release();
      await new Promise((resolve) => setTimeout(resolve, 150));
      expect(procReads).toBe(0);
      // One that lives past its first timed poll asks for it.
      const long = new CpuTimeLimit(rc, 1000, atStart, process.pid, () => undefined);
      await new Promise((resolve) => setTimeout(resolve, 150));
      long.release();
      expect(procReads).toBeGreaterThan(0);
      program.child.kill('SIGKILL');
      await program.exit;
    } finally {
      fsp.readdir = readdir;
      syncBuiltinESMExports();
      await rc.destroy();
    }
  });

  it('a cgroup readied for reuse after an OOM-killed, throttled run is as a fresh one', async () => {
    const limit = 32 * 1024 * 1024;
    const rc = await driver.create({ memoryBytes: limit, pids: 8, cpus: 0.5 });
    const fresh = await driver.create({});
    try {
      const h = await spawnHeld([PY, '-c', 'import sys\nsys.stdin.readline()\nx = b"x" * (200 << 20)\nprint(len(x))']);
      joinCgroup(rc.procsFiles, h.child.pid!);
      h.release();
      expect((await h.exit).signal).toBe('SIGKILL');
      rc.capCpu(20_000);
      const before = await rc.outcome();
      expect(before.oomKilled).toBe(true);
      expect(before.cpuTimeUs).toBeGreaterThan(0);
      expect(before.memoryPeakBytes).toBeGreaterThan(limit / 2);

      expect(await rc.reuse()).toBe(true);
      expect(rc.limits).toEqual({});
      const dir = (c: string): string => join(driver.parents[c]!, rc.name);
      const freshDir = (c: string): string => join(driver.parents[c]!, fresh.name);
      const files: [string, string][] = [
        ['memory', 'memory.limit_in_bytes'],
        ['memory', 'memory.memsw.limit_in_bytes'],
        ['memory', 'memory.usage_in_bytes'],
        ['memory', 'memory.max_usage_in_bytes'],
        ['memory', 'memory.failcnt'],
        ['memory', 'memory.memsw.max_usage_in_bytes'],
        ['memory', 'memory.memsw.failcnt'],
        ['pids', 'pids.max'],
        ['pids', 'pids.current'],
        ['cpu', 'cpu.cfs_period_us'],
        ['cpu', 'cpu.cfs_quota_us'],
        ['cpuacct', 'cpuacct.usage'],
      ];
      for (const [c, f] of files) expect([f, read(dir(c), f)]).toEqual([f, read(freshDir(c), f)]);
      const after = await rc.outcome();
      expect(after).toEqual({ cpuTimeUs: 0, memoryPeakBytes: 0, memoryPeakSource: 'cgroup', oomKilled: false });

      // The next run: its own limits, and an OOM kill of its own is seen again.
      await rc.applyLimits({ memoryBytes: limit });
      expect(read(dir('memory'), 'memory.limit_in_bytes')).toBe(String(limit));
      expect(read(dir('pids'), 'pids.max')).toBe('max');
      const again = await spawnHeld([PY, '-c', 'import sys\nsys.stdin.readline()\nx = b"x" * (200 << 20)\nprint(len(x))']);
      joinCgroup(rc.procsFiles, again.child.pid!);
      again.release();
      expect((await again.exit).signal).toBe('SIGKILL');
      expect((await rc.outcome()).oomKilled).toBe(true);
    } finally {
      await rc.destroy();
      await fresh.destroy();
    }
  });

  it('a cgroup with a process left inside is never readied for reuse', async () => {
    const rc = await driver.create({ pids: 16 });
    const h = await spawnHeld(['/bin/sh', '-c', 'read x; exec /bin/sleep 30']);
    joinCgroup(rc.procsFiles, h.child.pid!);
    h.release();
    try {
      expect(await rc.reuse()).toBe(false);
      expect(rc.pids()).toEqual([h.child.pid]);
    } finally {
      await rc.destroy();
    }
    expect((await h.exit).signal).toBe('SIGKILL');
    for (const d of rc.dirs) expect(existsSync(d)).toBe(false);
  });

  it('destroy() kills a live process tree inside and removes every dir', async () => {
    const rc = await driver.create({ pids: 16 });
    const h = await spawnHeld(['/bin/sh', '-c', 'read x; /bin/sleep 30 & /bin/sleep 30 & wait']);
    joinCgroup(rc.procsFiles, h.child.pid!);
    h.release();
    for (let i = 0; i < 200 && rc.pids().length < 3; i++) await new Promise((r) => setTimeout(r, 5));
    const pids = rc.pids();
    expect(pids).toHaveLength(3);
    expect(pids).toContain(h.child.pid);
    const cur = rc.memoryCurrentBytes();
    expect(cur).toBeGreaterThan(0);
    const t0 = Date.now();
    await Promise.all([rc.destroy(), rc.destroy()]);
    expect(Date.now() - t0).toBeLessThan(2000);
    expect((await h.exit).signal).toBe('SIGKILL');
    for (const d of rc.dirs) expect(existsSync(d)).toBe(false);
    for (const p of pids) expect(readStateOrGone(p)).toMatch(/^(gone|Z)$/);
  });
});

/** "gone", or the state letter of /proc/<pid>/stat (a zombie waiting for its reaper is "Z"). */
function readStateOrGone(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  } catch {
    return 'gone';
  }
}
