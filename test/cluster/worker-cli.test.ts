// `sandcell worker`: its usage errors, and draining on SIGTERM.
import { execFile } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';

import { connectCluster, type Farm } from '../../src/cluster/index.js';
import { startRedis } from '../helpers/redis.js';
import { jobTrace, steps, workerLogs } from './steps.js';
import { CLI, startWorker, type TestWorker } from './workers.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups.length = 0;
}, 120_000);

describe('sandcell worker', () => {
  it('--help, and usage errors that name the option (exit 125, nothing started)', async () => {
    const cli = (args: readonly string[]) =>
      new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
        const child = execFile(process.execPath, [CLI, 'worker', ...args], { encoding: 'utf8' }, (_e, stdout, stderr) => resolve({ status: child.exitCode, stdout, stderr }));
      });
    const help = await cli(['--help']);
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/--lock-time <dur>/);
    const cases = [
      [[], /--redis is required/],
      [['--redis', 'http://x'], /--redis: .*scheme/],
      [['--redis', '/tmp/x.sock', '--lock-time', '0'], /--lock-time: must be greater than zero/],
      [['--redis', '/tmp/x.sock', '--concurrency', '0'], /--concurrency needs an integer from 1 to 1024/],
      [['--redis', '/tmp/x.sock', '--labels', 'gpu'], /--labels: label "gpu": expected key=value/],
      [['--redis', '/tmp/x.sock', '--bogus'], /unknown option --bogus/],
    ] as const;
    const results = await Promise.all(cases.map(([args]) => cli(args)));
    results.forEach((r, i) => {
      expect(r.status).toBe(125);
      expect(r.stderr).toMatch(cases[i]![1]);
    });
  }, 180_000);

  it('SIGTERM drains: the run it holds finishes and is reported, the next waits for another worker', async () => {
    const seen: { farm?: Farm; workers: TestWorker[]; jobs: string[] } = { workers: [], jobs: [] };
    const trace = async (): Promise<string> => {
      const jobs = seen.farm ? await Promise.all(seen.jobs.map((id) => jobTrace(seen.farm as Farm, id))) : [];
      return [...jobs, workerLogs(seen.workers)].join('\n');
    };
    const step = steps(() => workerLogs(seen.workers));
    const redis = await startRedis();
    cleanups.push(() => redis.stop());
    const w1 = await step.wait('the worker to start', startWorker(redis.url, { name: 'drained' }, cleanups), 100_000);
    seen.workers.push(w1);
    const farm = connectCluster({ redis: redis.url });
    seen.farm = farm;
    cleanups.push(() => farm.close());
    let started!: () => void;
    const isStarted = new Promise<void>((r) => (started = r));
    const first = farm.run({ command: ['/bin/sh', '-c', 'sleep 2; echo first'] }, { onProgress: (p) => (p.event === 'queued' && seen.jobs.push(p.jobId), p.event === 'started' && started()) });
    await step.wait('the first run to start', isStarted, 60_000, trace);
    w1.proc.kill('SIGTERM');
    step.note('SIGTERM sent');
    let secondId = '';
    const second = farm.run({ command: ['/bin/echo', 'second'] }, { onProgress: (p) => p.event === 'queued' && seen.jobs.push((secondId = p.jobId)) });
    expect(await step.wait('the first run to complete', first, 60_000, trace)).toMatchObject({ stdout: 'first\n', placement: { worker: 'drained', attempt: 1, stalled: 0 } });
    expect(await step.wait('the drained worker to exit', w1.exited, 60_000, trace)).toEqual({ code: 0, signal: null });
    expect(await (await farm.queue().getJob(secondId))?.getState()).toBe('waiting');
    seen.workers.push(await step.wait('the next worker to start', startWorker(redis.url, { name: 'next' }, cleanups), 100_000));
    expect(await step.wait('the second run to complete', second, 60_000, trace)).toMatchObject({ stdout: 'second\n', placement: { worker: 'next' } });
  }, 180_000);
});
