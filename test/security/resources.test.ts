// Resource attacks, each in a box with limits: the verdict is the expected one, the run ends
// promptly, and the host is as it was (no process, no run cgroup, no descriptor left).
import { statfsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { run } from '../../src/index.js';
import type { Limits, RunOptions } from '../../src/options.js';
import { buildFixtureSet, type Fixtures } from '../helpers/fixtures.js';
import { childPids, openFds, requireRoot, runCgroupsInUse } from '../helpers/host.js';
import { describeRun } from './helpers.js';

let ax: Fixtures;
let fdsBefore = 0;

beforeAll(async () => {
  requireRoot();
  // The bombs only: this setup also built the escape attempts beside them (attacks.test.ts's),
  // three times as many static links, and under load outlasted its hook's minute.
  ax = buildFixtureSet({ sources: [join(dirname(fileURLToPath(import.meta.url)), 'bombs')], target: '/attacks', static: true });
  // The first run loads the addon and opens the cgroup driver's descriptors: measure after it.
  await run({ command: ['/bin/true'], limits: { wallTime: '5s' } });
  fdsBefore = await openFds();
});

afterAll(() => {
  ax?.remove();
});

const runCgroups = runCgroupsInUse;

afterEach(async () => {
  expect(await childPids()).toEqual([]);
  expect(await runCgroups()).toEqual([]);
  expect(await openFds()).toBe(fdsBefore);
});

function bomb(name: string, limits: Limits, args: string[] = [], extra: Partial<RunOptions> = {}) {
  return run({ command: [ax.inBox(name), ...args], binds: [ax.bind], limits: { wallTime: '10s', ...limits }, ...extra });
}

describe('resource attacks are contained', () => {
  it('fork bomb: held at the process limit, ended by the wall clock', async () => {
    const r = await bomb('forkbomb', { wallTime: '2s', processes: 32, memory: '128MiB' });
    expect(r.status, describeRun(r)).toBe('wall-time-limit');
    expect(r.usage.wallTimeMs).toBeLessThan(3500);
    expect(r.limitsEnforced.processes).toBe('cgroup');
  });

  it('memory bomb: memory-limit, peak at the limit', async () => {
    const r = await bomb('membomb', { memory: '64MiB' });
    expect(r.status, describeRun(r)).toBe('memory-limit');
    expect(r.usage.memoryPeakBytes).not.toBeNull();
    expect(r.usage.memoryPeakBytes!).toBeLessThanOrEqual(64 * 1024 * 1024 + 1024 * 1024);
  });

  it('stack bomb: SIGSEGV at the stack limit', async () => {
    const r = await bomb('stackbomb', { memory: '256MiB', stack: '8MiB' });
    expect(r.status, describeRun(r)).toBe('signaled');
    expect(r.signal).toBe('SIGSEGV');
  });

  it('stack bomb with stack = memory (the judges\' setting): memory-limit or SIGSEGV, never more', async () => {
    const r = await bomb('stackbomb', { memory: '64MiB', stack: '64MiB' });
    expect(['memory-limit', 'signaled'], describeRun(r)).toContain(r.status);
  });

  it('/tmp fill: stops at the tmpfs size (ENOSPC), charged to the box, host /tmp untouched', async () => {
    const hostFree = statfsSync('/tmp').bfree;
    const r = await bomb('fill', { memory: '256MiB', tmpfs: '16MiB', fileSize: '1GiB' }, ['/tmp']);
    expect(r.status, describeRun(r)).toBe('ok');
    expect(r.stdout).toMatch(/stopped ENOSPC/);
    const wrote = Number(/wrote (\d+)/.exec(r.stdout)![1]);
    expect(wrote).toBeLessThanOrEqual(16 * 1024 * 1024);
    expect(Math.abs(statfsSync('/tmp').bfree - hostFree) * statfsSync('/tmp').bsize).toBeLessThan(8 * 1024 * 1024);
  });

  it('/tmp fill beyond memory: the tmpfs pages count against the memory limit', async () => {
    const r = await bomb('fill', { memory: '32MiB', tmpfs: '256MiB', fileSize: '1GiB' }, ['/tmp']);
    expect(['memory-limit', 'ok'], describeRun(r)).toContain(r.status);
    if (r.status === 'ok') expect(Number(/wrote (\d+)/.exec(r.stdout)![1])).toBeLessThanOrEqual(32 * 1024 * 1024);
  });

  it('1 GiB of output: output-limit, at most the limit kept', async () => {
    const r = await bomb('output', { output: '1MiB' });
    expect(r.status, describeRun(r)).toBe('output-limit');
    expect(r.stdoutTruncated).toBe(true);
    expect(r.stdout.length).toBeLessThanOrEqual(1024 * 1024);
    expect(r.usage.wallTimeMs).toBeLessThan(5000);
  });

  it('fd exhaustion: stops at the open-files limit', async () => {
    const r = await bomb('fds', { openFiles: 64 });
    expect(r.status, describeRun(r)).toBe('ok');
    expect(r.stdout).toMatch(/stopped EMFILE/);
    expect(Number(/opened (\d+)/.exec(r.stdout)![1])).toBeLessThanOrEqual(64);
  });

  it('a million threads asked for: refused at the process limit', async () => {
    const r = await bomb('threads', { processes: 64, memory: '256MiB' });
    expect(r.status, describeRun(r)).toBe('ok');
    expect(r.stdout).toMatch(/stopped EAGAIN/);
    // The program's main thread and the box's init count too.
    expect(Number(/created (\d+)/.exec(r.stdout)![1])).toBeLessThanOrEqual(64);
  });

  it('sleep forever: wall-time-limit on time', async () => {
    const r = await run({ command: ['/bin/sleep', 'infinity'], limits: { wallTime: '1s' } });
    expect(r.status, describeRun(r)).toBe('wall-time-limit');
    expect(r.usage.wallTimeMs).toBeGreaterThanOrEqual(1000);
    expect(r.usage.wallTimeMs).toBeLessThan(2500);
  });

  it('spin forever: time-limit at the CPU limit', async () => {
    const r = await bomb('spin', { cpuTime: '1s', wallTime: '10s' });
    expect(r.status, describeRun(r)).toBe('time-limit');
    expect(r.usage.cpuTimeMs).toBeGreaterThanOrEqual(1000);
    expect(r.usage.cpuTimeMs).toBeLessThan(1500);
  });

  it('several bombs at once do not disturb each other\'s verdicts', async () => {
    const rs = await Promise.all([
      bomb('forkbomb', { wallTime: '2s', processes: 16, memory: '64MiB' }),
      bomb('membomb', { memory: '32MiB' }),
      bomb('spin', { cpuTime: '500ms' }),
      bomb('output', { output: '64KiB' }),
    ]);
    // The fork bomb is stopped by its pids limit; its 16 processes may also fill its 64 MiB first.
    expect(['wall-time-limit', 'memory-limit']).toContain(rs[0]!.status);
    expect(rs.slice(1).map((r) => r.status)).toEqual(['memory-limit', 'time-limit', 'output-limit']);
  });
});
