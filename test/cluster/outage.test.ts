// Redis gone for good while a farm client and a worker are connected: closing either must not
// wait for a Redis that will not come back. Before, `farm.close()` waited forever (BullMQ's event
// reader waited for an end ioredis never gave while between two attempts to reconnect, and every
// QUIT waited in the offline queue), and `sandcell worker` needed a second signal to exit.
import { afterEach, expect, it } from 'vitest';

import { connectCluster, FarmJobError } from '../../src/cluster/index.js';
import { startRedis } from '../helpers/redis.js';
import { steps, workerLogs } from './steps.js';
import { startWorker, stillAlive, type TestWorker } from './workers.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups.length = 0;
}, 120_000);

/** Resolves once `test()` holds, checked every 20 ms; fails naming `what` after `ms`. */
async function until(what: string, test: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!test()) {
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

it('Redis killed for good: farm.close() and a SIGTERMed worker end within seconds, the pending run is rejected, nothing is left', async () => {
  const seen: TestWorker[] = [];
  const step = steps(() => workerLogs(seen));
  const redis = await startRedis();
  cleanups.push(() => redis.stop());
  const worker = await step.wait('the worker to start', startWorker(redis.url, { name: 'cut-off' }, cleanups), 100_000);
  seen.push(worker);
  const farm = connectCluster({ redis: redis.url });
  cleanups.push(() => farm.close());

  // Every kind of connection the two hold is open and has been used: the queue, the event reader,
  // the services client, the worker's blocking and main connections, its service agent.
  expect(await step.wait('a first run', farm.run({ command: ['/bin/echo', 'up'] }), 60_000)).toMatchObject({ status: 'ok', stdout: 'up\n' });
  expect(await farm.services.ls()).toEqual([]);
  const queue = farm.queue();
  let started!: () => void;
  const isStarted = new Promise<void>((r) => (started = r));
  const pending = farm.run({ command: ['/bin/sleep', '1'] }, { onProgress: (p) => p.event === 'started' && started() });
  const rejected = pending.then(
    () => null,
    (e: unknown) => e,
  );
  await step.wait('the second run to start on the worker', isStarted, 60_000);
  const boxes = worker.descendants();

  await redis.stop();
  await until("the farm's connection to see Redis gone", () => farm.redis.status !== 'ready', 10_000);

  await step.wait('farm.close() with Redis gone', farm.close(), 15_000);
  const client = await queue.getBackend().client;
  await until("the farm's connections to end", () => farm.redis.status === 'end' && client.status === 'end', 5_000);
  const e = await rejected;
  expect(e).toBeInstanceOf(FarmJobError);
  expect((e as Error).message).toMatch(/closed before the job ended/);

  // The worker finishes the run it holds (its result cannot be stored), then exits as a drain does.
  worker.proc.kill('SIGTERM');
  expect(await step.wait('the worker to exit after one SIGTERM', worker.exited, 30_000)).toEqual({ code: 0, signal: null });
  expect(boxes.filter(stillAlive)).toEqual([]);
}, 240_000);
