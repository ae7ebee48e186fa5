// Runs through a farm of three real worker processes on a real redis-server: results as run()
// gives them, spread over every worker, verdicts as results, bad options refused at once.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { FarmJobError, type Farm, type FarmProgress } from '../../src/cluster/index.js';
import { startFarm, type TestFarm } from './workers.js';

describe('a farm of three workers', () => {
  let t: TestFarm;
  let farm: Farm;

  beforeAll(async () => {
    t = await startFarm(['w1', 'w2', 'w3'], { concurrency: 2 });
    farm = t.farm;
  }, 240_000);

  afterAll(async () => {
    await t?.stop();
  }, 120_000);

  it('30 runs: every result right, every worker ran some', async () => {
    const results = await Promise.all(
      Array.from({ length: 30 }, (_, i) => farm.run({ command: ['/bin/sh', '-c', `echo $(( ${i} * 7 )); read x; echo "$x"`], stdin: `in-${i}\n` })),
    );
    results.forEach((r, i) => {
      expect(r.status).toBe('ok');
      expect(r.stdout).toBe(`${i * 7}\nin-${i}\n`);
      expect(r.placement).toMatchObject({ attempt: 1, stalled: 0 });
    });
    const by = new Set(results.map((r) => r.placement.worker));
    expect([...by].sort()).toEqual(['w1', 'w2', 'w3']);
  });

  it("a program's verdict is a result, not a failed job", async () => {
    const tle = await farm.run({ command: ['/bin/sh', '-c', 'while :; do :; done'], limits: { cpuTime: '200ms' } });
    expect(tle.status).toBe('time-limit');
    const crash = await farm.run({ command: ['/bin/sh', '-c', 'kill -SEGV $$'] });
    expect(crash).toMatchObject({ status: 'signaled', signal: 'SIGSEGV' });
    const exit3 = await farm.run({ command: ['/bin/sh', '-c', 'echo out; echo err >&2; exit 3'] });
    expect(exit3).toMatchObject({ status: 'nonzero-exit', exitCode: 3, stdout: 'out\n', stderr: 'err\n' });
  });

  it('invalid options fail at once, unretried, naming the field', async () => {
    const e = await farm.run({ command: ['/bin/true'], limits: { memory: 'lots' } }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(FarmJobError);
    expect((e as Error).message).toMatch(/options\.limits\.memory/);
    expect(e).toMatchObject({ kind: 'options', code: 'invalid-options', field: 'limits.memory' });
    const job = await farm.queue().getJob((e as FarmJobError).jobId);
    expect(job?.attemptsMade).toBe(1);
    const binds = await farm.run({ command: ['/bin/true'], binds: [{ source: '/etc' }] }).catch((x: unknown) => x);
    expect((binds as Error).message).toMatch(/options\.binds/);
    expect(binds).toMatchObject({ kind: 'policy', code: 'forbidden', field: 'binds', issues: [{ path: 'binds', message: 'host paths are not accepted from the queue' }] });
    const allow = await farm.run({ command: ['/bin/true'], network: { allow: ['127.0.0.1:6379'] } }).catch((x: unknown) => x);
    expect((allow as Error).message).toMatch(/options\.network: only 'none' or 'loopback'/);
    expect(allow).toMatchObject({ kind: 'policy', field: 'network' });
  });

  it('a malformed job from Redis is refused naming its field', async () => {
    const queue = farm.queue();
    const bad = await queue.add('run', { v: 1, kind: 'run', options: { command: ['/bin/true'], stdin: { blob: 'sha256:nothex' } } }, { attempts: 3 });
    const state = await new Promise<string>((resolve) => {
      const t = setInterval(async () => {
        const s = await bad.getState();
        if (s === 'failed' || s === 'completed') {
          clearInterval(t);
          resolve(s);
        }
      }, 50);
    });
    expect(state).toBe('failed');
    const job = await queue.getJob(bad.id as string);
    expect(job?.failedReason).toMatch(/options\.stdin/);
    expect(job?.attemptsMade).toBe(1);
  });

  it('progress events reach the caller: queued, started on a worker, done', async () => {
    const seen: FarmProgress[] = [];
    const r = await farm.run({ command: ['/bin/true'] }, { onProgress: (p) => seen.push(p) });
    expect(seen.map((p) => p.event)).toEqual(['queued', 'started', 'done']);
    expect(seen[1]).toMatchObject({ worker: r.placement.worker, attempt: 1 });
  });

  it('collected files and large outputs come back whole', async () => {
    const r = await farm.run({
      command: ['/bin/sh', '-c', 'head -c 300000 /dev/zero | tr "\\0" x; printf "\\001\\002" > bin.dat'],
      collect: ['bin.dat'],
    });
    expect(r.status).toBe('ok');
    expect(r.stdout.length).toBe(300000);
    expect(r.files?.['bin.dat']).toEqual(Buffer.from([1, 2]));
  });
});
