// Memory of the whole box, measured and limited by its cgroup (v1 here): the peak a program
// reaches, and the `memory-limit` verdict for malloc-and-touch, a static array and tmpfs files.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { run, type Result } from '../../src/index.js';
import { buildFixtures, type Fixtures } from '../helpers/fixtures.js';
import { childPids, requireRoot, runCgroupsInUse } from '../helpers/host.js';

const MiB = 1024 * 1024;
let fx: Fixtures;
/** Peak of a box whose program touches nothing: the init, the program's own image and libc. */
let baseline: number;

beforeAll(async () => {
  requireRoot();
  fx = buildFixtures();
  const peaks: number[] = [];
  for (let i = 0; i < 3; i++) {
    const r = await run({ command: [fx.inBox('alloc'), '0'], binds: [fx.bind], limits: { memory: '256MiB', wallTime: '10s' } });
    expect(r.status).toBe('ok');
    peaks.push(r.usage.memoryPeakBytes!);
  }
  baseline = Math.max(...peaks);
});
afterAll(() => fx?.remove());

function expectOom(r: Result): void {
  expect(r.status).toBe('memory-limit');
  expect(r.signal).toBe('SIGKILL');
  expect(r.limitsEnforced.memory).toBe('cgroup');
  // It was stopped at the limit, never above it (the limit covers swap too: memsw).
  expect(r.usage.memoryPeakBytes).toBeLessThanOrEqual(256 * MiB);
  expect(r.usage.memoryPeakBytes).toBeGreaterThan(200 * MiB);
}

describe('memory (cgroup)', () => {
  it('the baseline of a box is small and measured by the cgroup', () => {
    expect(baseline).toBeGreaterThan(0);
    expect(baseline).toBeLessThan(16 * MiB);
  });

  it('200 MiB touched under 256 MiB: ok, peak within 5% of 200 MiB + baseline', async () => {
    for (let i = 0; i < 2; i++) {
      const r = await run({ command: [fx.inBox('alloc'), '200'], binds: [fx.bind], limits: { memory: '256MiB', wallTime: '20s' } });
      expect(r.status).toBe('ok');
      expect(r.stdout).toBe('done\n');
      expect(r.limitsEnforced.memory).toBe('cgroup');
      const want = 200 * MiB + baseline;
      expect(Math.abs(r.usage.memoryPeakBytes! - want)).toBeLessThanOrEqual(0.05 * want);
      // rusage's figure is per process and includes the Node process the box was cloned from
      // only for the init; the program's own max RSS is the 200 MiB.
      expect(r.usage.maxRssBytes).toBeGreaterThanOrEqual(200 * MiB);
    }
  });

  it('a 512 MiB static array, 200 MiB of it touched under 256 MiB: ok, peak within 5% of 200 MiB + baseline', async () => {
    const r = await run({ command: [fx.inBox('bss_touch'), '200'], binds: [fx.bind], limits: { memory: '256MiB', wallTime: '20s' } });
    expect(r.status).toBe('ok');
    expect(r.stdout).toBe(`done ${(200 * MiB) / 4096}\n`);
    const want = 200 * MiB + baseline;
    expect(Math.abs(r.usage.memoryPeakBytes! - want)).toBeLessThanOrEqual(0.05 * want);
  });

  it('512 MiB by malloc-and-touch under 256 MiB: memory-limit', async () => {
    const r = await run({ command: [fx.inBox('alloc'), '512'], binds: [fx.bind], limits: { memory: '256MiB', wallTime: '20s' } });
    expectOom(r);
    expect(r.stdout).toBe('');
  });

  it('a 512 MiB static array touched whole under 256 MiB: memory-limit', async () => {
    const r = await run({ command: [fx.inBox('bss_touch')], binds: [fx.bind], limits: { memory: '256MiB', wallTime: '20s' } });
    expectOom(r);
  });

  it('an OOM kill in a forked child is memory-limit of the run, not of the parent alone', async () => {
    const r = await run({
      command: ['/bin/sh', '-c', `${fx.inBox('alloc')} 512; echo child=$?`],
      binds: [fx.bind],
      limits: { memory: '256MiB', wallTime: '20s' },
    });
    // The shell survives (the OOM killer picks the 256 MiB process) and exits 0: the program
    // ended normally, but the box hit its limit and the cgroup says so.
    expect(r.stdout).toBe('child=137\n');
    expect(r.status).toBe('memory-limit');
  });

  it('a SIGKILL that is not the OOM killer is signaled, not memory-limit', async () => {
    const r = await run({ command: ['/bin/sh', '-c', 'kill -9 $$'], limits: { memory: '256MiB', wallTime: '10s' } });
    expect(r.status).toBe('signaled');
    expect(r.signal).toBe('SIGKILL');
  });

  describe('tmpfs files are charged to the box', () => {
    it('300 MiB written to /tmp under 256 MiB with a 1 GiB tmpfs: memory-limit', async () => {
      const r = await run({
        command: [fx.inBox('fill'), '/tmp/f', '300'],
        binds: [fx.bind],
        limits: { memory: '256MiB', tmpfs: '1GiB', fileSize: '1GiB', wallTime: '20s' },
      });
      expect(r.stdout).not.toContain('wrote');
      expectOom(r);
    });

    it('300 MiB written to /tmp with a 100 MiB tmpfs under 256 MiB: ENOSPC from the tmpfs, the program goes on', async () => {
      const r = await run({
        command: [fx.inBox('fill'), '/tmp/f', '300'],
        binds: [fx.bind],
        limits: { memory: '256MiB', tmpfs: '100MiB', fileSize: '1GiB', wallTime: '20s' },
      });
      expect(r.stdout).toBe('error ENOSPC after 100\n');
      expect(r.status).toBe('nonzero-exit');
      expect(r.exitCode).toBe(2);
      // The file's pages were charged while it lived: the peak shows them.
      expect(r.usage.memoryPeakBytes).toBeGreaterThanOrEqual(100 * MiB);
      expect(r.usage.memoryPeakBytes).toBeLessThan(256 * MiB);
    });

    it('the host is never in trouble: 4 boxes filling /tmp at once each stop at their own limit', async () => {
      const rs = await Promise.all(
        Array.from({ length: 4 }, () =>
          run({ command: [fx.inBox('fill'), '/tmp/f', '300'], binds: [fx.bind], limits: { memory: '128MiB', tmpfs: '1GiB', fileSize: '1GiB', wallTime: '20s' } }),
        ),
      );
      for (const r of rs) {
        expect(r.status).toBe('memory-limit');
        expect(r.usage.memoryPeakBytes).toBeLessThanOrEqual(128 * MiB);
      }
    });
  });

  afterAll(async () => {
    expect(await childPids()).toEqual([]);
    expect(await runCgroupsInUse()).toEqual([]);
  });
});
