// Limits of the core: wall clock, CPU time, output, and that nothing of the box outlives its run.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { run, spawn } from '../../src/index.js';
import { buildFixtures, type Fixtures } from '../helpers/fixtures.js';
import { pidsRunning, requireRoot } from '../helpers/host.js';

let fx: Fixtures;
beforeAll(() => {
  requireRoot();
  fx = buildFixtures();
});
afterAll(() => fx?.remove());

describe('limits', () => {
  it('ends a sleeping program at the wall-clock limit', async () => {
    const r = await run({ command: ['/bin/sleep', '100'], limits: { wallTime: '500ms' } });
    expect(r.status).toBe('wall-time-limit');
    expect(r.signal).toBe('SIGKILL');
    expect(r.exitCode).toBeNull();
    expect(r.usage.wallTimeMs).toBeGreaterThanOrEqual(500);
    expect(r.usage.wallTimeMs).toBeLessThanOrEqual(600);
  });

  it('ends a CPU spinner at the CPU-time limit', async () => {
    const r = await run({ command: ['/bin/sh', '-c', 'while :; do :; done'], limits: { cpuTime: '1s', wallTime: '10s' } });
    expect(r.status).toBe('time-limit');
    expect(r.usage.cpuTimeMs).toBeGreaterThanOrEqual(1000);
    expect(r.usage.cpuTimeMs).toBeLessThan(1100);
    expect(r.usage.wallTimeMs).toBeLessThan(5000);
  });

  it('stops at the output limit and returns exactly the limit, flagged truncated', async () => {
    const r = await run({
      command: ['/bin/sh', '-c', 'head -c 10485760 /dev/zero | tr "\\0" a'],
      limits: { output: '1MiB', wallTime: '10s' },
    });
    expect(r.status).toBe('output-limit');
    expect(r.stdout.length).toBe(1024 * 1024);
    expect(r.stdout).toMatch(/^a+$/);
    expect(r.stdoutTruncated).toBe(true);
    expect(r.stderrTruncated).toBe(false);
  });

  it('counts stdout and stderr against one output budget', async () => {
    const r = await run({
      command: ['/bin/sh', '-c', 'head -c 600000 /dev/zero; head -c 600000 /dev/zero >&2'],
      limits: { output: '1MB', wallTime: '10s' },
    });
    expect(r.status).toBe('output-limit');
    expect(r.stdout.length + r.stderr.length).toBe(1_000_000);
  });

  it('leaves nothing behind: a double-forked daemon dies with its run', async () => {
    const marker = String(100000 + Math.floor(Math.random() * 800000));
    const r = await run({
      command: ['/bin/sh', '-c', `(setsid /bin/sleep ${marker} </dev/null >/dev/null 2>&1 &); sleep 0.2; echo started`],
      limits: { wallTime: '10s' },
    });
    expect(r.stdout).toBe('started\n');
    expect(r.status).toBe('ok');
    expect(pidsRunning(['/bin/sleep', marker])).toEqual([]);
  });

  it('a daemon also dies when the box is killed while it runs', async () => {
    const marker = String(100000 + Math.floor(Math.random() * 800000));
    const box = await spawn({ command: ['/bin/sh', '-c', `(setsid /bin/sleep ${marker} &); echo up; exec sleep 1000`] });
    box.stdout.resume();
    for (let i = 0; i < 100 && pidsRunning(['/bin/sleep', marker]).length === 0; i++) await sleep(20);
    expect(pidsRunning(['/bin/sleep', marker]).length).toBe(1);
    expect(box.kill()).toBe(true);
    const r = await box.wait();
    expect(r.status).toBe('signaled');
    expect(r.signal).toBe('SIGKILL');
    expect(pidsRunning(['/bin/sleep', marker])).toEqual([]);
  });

  it('applies RLIMIT_FSIZE, RLIMIT_NOFILE and RLIMIT_STACK', async () => {
    const r = await run({
      command: ['/bin/sh', '-c', 'ulimit -f; ulimit -n; ulimit -s; head -c 200000 /dev/zero > /tmp/f; echo rc=$?'],
      limits: { fileSize: '100KiB', openFiles: 64, stack: '16MiB', wallTime: '10s' },
    });
    // ulimit -f counts 512-byte blocks, -s KiB.
    expect(r.stdout).toMatch(/^200\n64\n16384\n/);
    expect(r.stdout).not.toContain('rc=0');
  });

  it('runs compiled programs from a bind with their CPU time measured', async () => {
    const r = await run({ command: [fx.inBox('burn'), '200'], binds: [fx.bind], limits: { wallTime: '10s' } });
    expect(r.status).toBe('ok');
    const selfUs = Number(r.stdout.trim());
    expect(Math.abs(r.usage.cpuTimeMs - selfUs / 1000)).toBeLessThan(2 + selfUs / 1000 / 100);
  });
});
