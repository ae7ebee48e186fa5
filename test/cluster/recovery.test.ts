// What a farm does when a worker dies, stops or loses Redis: the lost job runs again on another
// worker and is reported once, with the loss counted in its placement.
import { afterEach, describe, expect, it } from 'vitest';

import { listSandcellCgroups } from '../../src/cgroup/index.js';
import { connectCluster, FarmJobError, type Farm, type FarmProgress, type FarmResult } from '../../src/cluster/index.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { jobTrace, steps, workerLogs } from './steps.js';
import { startWorker, stillAlive, type TestWorker } from './workers.js';

const LOCK = '2s';
const STALL = '1s';

let cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups = [];
}, 120_000);

async function farmOf(n: number, opts: { lockTime?: string; concurrency?: number } = {}): Promise<{ redis: TestRedis; farm: Farm; workers: TestWorker[] }> {
  const redis = await startRedis();
  cleanups.push(() => redis.stop());
  const workers = await Promise.all(
    Array.from({ length: n }, (_, i) => startWorker(redis.url, { name: `w${i + 1}`, lockTime: opts.lockTime ?? LOCK, stallInterval: STALL, concurrency: opts.concurrency ?? 1 }, cleanups)),
  );
  const farm = connectCluster({ redis: redis.url });
  cleanups.push(() => farm.close());
  return { redis, farm, workers };
}

/** Runs `options` and resolves with its job's id once queued, the worker that started it first, and then the result. */
function runWatched(farm: Farm, command: string[]): { queued: Promise<string>; started: Promise<{ worker: string; jobId: string }>; result: Promise<FarmResult> } {
  let queued!: (jobId: string) => void;
  let started!: (s: { worker: string; jobId: string }) => void;
  const isQueued = new Promise<string>((r) => (queued = r));
  const first = new Promise<{ worker: string; jobId: string }>((r) => (started = r));
  const result = farm.run({ command, limits: { wallTime: '60s' } }, {
    onProgress: (p: FarmProgress) => {
      if (p.event === 'queued') queued(p.jobId);
      if (p.event === 'started') started({ worker: p.worker, jobId: p.jobId });
    },
  });
  return { queued: isQueued, started: first, result };
}

async function until<T>(what: string, f: () => T | undefined | false, ms = 20_000): Promise<T> {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 50))) {
    const v = f();
    if (v) return v;
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** `completed` events of a job in the queue's event stream: how many results it reported. */
async function completions(farm: Farm, jobId: string): Promise<number> {
  const entries = (await farm.redis.xrange(`sandcell:runs:events`, '-', '+')) as [string, string[]][];
  return entries.filter(([, f]) => {
    const m = new Map<string, string>();
    for (let i = 0; i < f.length; i += 2) m.set(f[i] as string, f[i + 1] as string);
    return m.get('event') === 'completed' && m.get('jobId') === jobId;
  }).length;
}

describe('recovery', () => {
  it('kill -9 of the worker running a long job: it completes elsewhere, counted as stalled once, and nothing of the killed worker survives', async () => {
    let seen: { farm?: Farm; workers: TestWorker[]; jobId?: string } = { workers: [] };
    const trace = async (): Promise<string> => [seen.farm && seen.jobId ? await jobTrace(seen.farm, seen.jobId) : 'no job yet', workerLogs(seen.workers)].join('\n');
    const step = steps(() => workerLogs(seen.workers));
    const { redis, farm, workers } = await step.wait('3 workers and a farm', farmOf(3), 150_000);
    seen = { farm, workers };
    const { queued, started, result } = runWatched(farm, ['/bin/sh', '-c', 'sleep 3; echo finished']);
    seen.jobId = await queued;
    const first = await step.wait('the run to start on a worker', started, 60_000, trace);
    step.note(`started on ${first.worker}`);
    const victim = workers.find((w) => w.name === first.worker) as TestWorker;
    // Its box (and any warm box) is below it: recorded before the kill to look for survivors after.
    const boxes = await until('the box of the run', () => {
      const d = victim.descendants();
      return d.length > 0 ? d : undefined;
    });
    const itsCgroups = (): string[] => listSandcellCgroups().filter((d) => d.endsWith(`/sandcell-${victim.pid}`));
    expect(itsCgroups().length).toBeGreaterThan(0);
    const killedAt = Date.now();
    await step.wait(`${victim.name} to die of SIGKILL`, victim.kill('SIGKILL'), 10_000);
    // Lock time + stall interval to be found lost, the run's 3 s again, and room for a loaded
    // machine; with BullMQ's defaults (30 s + 30 s) instead of the worker's options it would not be.
    const r = await step.wait('the run to complete on another worker', result, 2000 + 1000 + 3000 + 30_000, trace);
    const took = Date.now() - killedAt;
    expect(r.status).toBe('ok');
    expect(r.stdout).toBe('finished\n');
    expect(r.placement.worker).not.toBe(victim.name);
    expect(r.placement.stalled).toBe(1);
    expect(r.placement.attempt).toBe(2);
    expect(took).toBeLessThan(2000 + 1000 + 3000 + 30_000);
    await until('the killed worker\'s boxes to end', () => boxes.every((p) => !stillAlive(p)), 10_000);
    expect(await completions(farm, first.jobId)).toBe(1);

    // A worker started on this machine sweeps the cgroups the killed one left (so may any other
    // sandcell process starting meanwhile: the sweep is the library's, whoever runs it first).
    await step.wait('w4 to start', startWorker(redis.url, { name: 'w4', lockTime: LOCK, stallInterval: STALL }, cleanups), 100_000);
    expect(itsCgroups()).toEqual([]);
    // Four worker processes start here: each builds its first box before it takes jobs.
  }, 240_000);

  it('SIGSTOP past the lock time, the job finishes elsewhere, SIGCONT: exactly one result', async () => {
    const { farm, workers } = await farmOf(2);
    const step = steps(() => workerLogs(workers));
    const { queued, started, result } = runWatched(farm, ['/bin/sh', '-c', 'sleep 2; echo once']);
    const jobId = await queued;
    const first = await step.wait('the run to start on a worker', started, 60_000, () => jobTrace(farm, jobId));
    const late = workers.find((w) => w.name === first.worker) as TestWorker;
    late.proc.kill('SIGSTOP');
    const r = await step.wait('the run to complete on the other worker', result, 60_000, () => jobTrace(farm, jobId));
    expect(r.placement.worker).not.toBe(late.name);
    expect(r.placement.stalled).toBe(1);
    // Its own run ended long ago (the box was not stopped); let it see that and try to report.
    await new Promise((res) => setTimeout(res, 1000));
    late.proc.kill('SIGCONT');
    // It learns the job is no longer its own (its lock renewal is refused) and BullMQ refuses its
    // report (moveToFinished checks the lock token): whichever comes first, nothing is reported.
    await until('the late worker to be fenced off', () =>
      late.events().some((e) => (e.event === 'lost' && e.job === first.jobId) || (e.event === 'error' && String(e.message).startsWith(`Missing lock for job ${first.jobId}`))),
    );
    await until('the late worker to end the job', () => late.events().some((e) => e.event === 'error' && String(e.message).startsWith(`Missing lock for job ${first.jobId}`)), 10_000);
    expect(await completions(farm, first.jobId)).toBe(1);
    const job = await farm.queue().getJob(first.jobId);
    expect(JSON.parse(JSON.stringify(job?.returnvalue)).placement.worker).toBe(r.placement.worker);
  }, 180_000);

  it('Redis restarted mid-load: everyone reconnects, no run is lost, none completes twice unreported', async () => {
    const { redis, farm, workers } = await farmOf(3, { lockTime: '5s', concurrency: 2 });
    const step = steps(() => workerLogs(workers));
    const ids: string[] = [];
    const runs = Array.from({ length: 40 }, (_, i) =>
      new Promise((r) => setTimeout(r, i * 50)).then(() =>
        farm.run({ command: ['/bin/sh', '-c', `sleep 0.2; echo ${i}`] }, { onProgress: (p) => p.event === 'queued' && (ids[i] = p.jobId) }),
      ),
    );
    await new Promise((r) => setTimeout(r, 700));
    await redis.restart({ hard: true, downMs: 1000 });
    const results = await step.wait('the 40 runs to complete', Promise.all(runs), 120_000, async () => (await Promise.all(ids.map((id) => jobTrace(farm, id)))).join('\n'));
    results.forEach((r, i) => expect(r.stdout).toBe(`${i}\n`));
    for (const [i, id] of ids.entries()) {
      expect(await completions(farm, id)).toBe(1);
      const ends = workers.flatMap((w) => w.events()).filter((e) => e.event === 'end' && e.job === id).length;
      const p = (results[i] as FarmResult).placement;
      if (ends > 1) expect(p.attempt > 1 || p.stalled > 0).toBe(true);
    }
  }, 180_000);

  it('a job whose workers are killed under it, one after another, fails as the infrastructure\'s, with no field', async () => {
    const { redis, farm, workers } = await farmOf(1);
    const all = [...workers];
    const step = steps(() => workerLogs(all));
    let starts = 0;
    let onStart: () => void = () => undefined;
    let jobId = '';
    const result = farm
      .run({ command: ['/bin/sh', '-c', 'sleep 60'], limits: { wallTime: '90s' } }, { onProgress: (p) => (p.event === 'queued' && (jobId = p.jobId), p.event === 'started' && (starts++, onStart())) })
      .catch((e: unknown) => e);
    // A job lost more often than a worker's stalled count allows (twice) fails: three workers are
    // killed while they run it, and a fourth finds it lost a third time.
    let victim = workers[0] as TestWorker;
    for (let n = 1; n <= 3; n++) {
      if (starts < n) await step.wait(`attempt ${n} to start on ${victim.name}`, new Promise<void>((r) => (onStart = r)), 60_000, () => jobTrace(farm, jobId));
      await until(`the box of attempt ${n}`, () => victim.descendants().length > 0);
      await victim.kill('SIGKILL');
      victim = await step.wait(`w${n + 1} to start`, startWorker(redis.url, { name: `w${n + 1}`, lockTime: LOCK, stallInterval: STALL }, cleanups), 100_000);
      all.push(victim);
    }
    const e = await step.wait('the job to fail', result, 60_000, () => jobTrace(farm, jobId));
    expect(e).toBeInstanceOf(FarmJobError);
    const f = e as FarmJobError;
    expect({ kind: f.kind, code: f.code, field: f.field, issues: f.issues }).toEqual({ kind: 'infrastructure', code: 'infrastructure', field: undefined, issues: [] });
    expect(f.message).toMatch(/stalled/);
    expect(starts).toBe(3);
  }, 240_000);
});
