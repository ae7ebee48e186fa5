/**
 * Services over a farm: a real redis-server on a Unix socket, three `sandcell worker` processes
 * standing in for machines, real boxes as replicas, reached through `connectCluster().services`.
 */
import { afterEach, describe, expect, it } from 'vitest';

import { listSandcellCgroups } from '../../src/cgroup/index.js';
import { connectCluster } from '../../src/cluster/index.js';
import { until } from '../daemon/daemon.js';
import { startRedis } from '../helpers/redis.js';
import { startWorker, stillAlive } from './workers.js';

/** Answers each line with it and the replica's own id, so a test sees which replica answered. */
const ECHO = `id=$(cat /proc/sys/kernel/random/uuid)
while IFS= read -r line; do printf '{"echo":%s,"replica":"%s"}\\n' "$line" "$id"; done`;

const HEARTBEAT = { interval: 250, timeout: 1500 };

let cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups = [];
});

describe('services across workers', () => {
  it('3 replicas over 3 workers; kill -9 one: the count is back to 3 within the heartbeat timeout, and 200 calls made meanwhile all get an answer', async () => {
    const redis = await startRedis();
    cleanups.push(() => redis.stop());
    const beat = ['--heartbeat', `${HEARTBEAT.interval}ms`, '--heartbeat-timeout', `${HEARTBEAT.timeout}ms`];
    const workers = await Promise.all(['w1', 'w2', 'w3'].map((name) => startWorker(redis.url, { name, args: beat }, cleanups)));
    const farm = connectCluster({ redis: redis.url });
    cleanups.push(() => farm.close());

    await farm.services.create({ name: 'echo', replicas: 3, command: ['/bin/sh', '-c', ECHO] });
    expect(await until(async () => (await farm.services.ls())[0]?.running === 3)).toBe(true);
    const [before] = await farm.services.ls();
    expect(new Set(before?.replicas.map((r) => r.worker))).toEqual(new Set(['w1', 'w2', 'w3']));

    const victim = workers[1]!;
    const victimBoxes = victim.descendants();
    expect(before!.replicas.filter((r) => r.worker === victim.name)).toHaveLength(1);
    expect(victimBoxes.length).toBeGreaterThan(0);
    // Recorded while the worker lives: once it is dead, any sandcell process starting on the
    // machine (another test worker) may sweep its cgroups before this test looks.
    const left = (): string[] => listSandcellCgroups().filter((d) => d.endsWith(`/sandcell-${victim.pid}`));
    expect(left().length).toBeGreaterThan(0);

    let killedAt = 0;
    let recoveredAt = 0;
    const watch = (async () => {
      while (killedAt === 0) await new Promise((r) => setTimeout(r, 10));
      for (;;) {
        const [s] = await farm.services.ls();
        const live = s!.replicas.filter((r) => r.workerAlive && r.state === 'running' && r.slot < s!.desired);
        if (live.length === 3 && live.every((r) => r.worker !== victim.name)) {
          recoveredAt = Date.now();
          return s!;
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    })();

    const calls: Promise<unknown>[] = [];
    for (let i = 0; i < 200; i++) {
      calls.push(farm.services.call('echo', { i }, { timeout: 30_000 }));
      if (i === 40) {
        victim.proc.kill('SIGKILL');
        killedAt = Date.now();
      }
      await new Promise((r) => setTimeout(r, 15));
    }
    const replies = (await Promise.all(calls)) as { echo: { i: number }; replica: string }[];
    expect(replies.map((r) => r.echo.i)).toEqual([...Array(200).keys()]);
    const after = await watch;
    const recoveryMs = recoveredAt - killedAt;
    console.log(
      `services: replica count back to 3 ${recoveryMs} ms after kill -9 (heartbeat every ${HEARTBEAT.interval} ms, timeout ${HEARTBEAT.timeout} ms); ` +
        `${replies.length}/200 calls answered, by ${new Set(replies.map((r) => r.replica)).size} replicas`,
    );
    // The heartbeat lapses at most `timeout` after the kill (it was last renewed before it); the
    // next reconcile of a live worker, within one interval, claims the slot and starts a box.
    expect(recoveryMs).toBeLessThan(HEARTBEAT.timeout + HEARTBEAT.interval + 2000);
    expect(new Set(replies.map((r) => r.replica)).size).toBeGreaterThanOrEqual(3);
    expect(after.lastCrash).toMatchObject({ worker: victim.name, reason: 'worker-lost' });

    // The lost worker's replica died with it (parent death): nothing of it runs on.
    await victim.exited;
    expect(await until(() => !victimBoxes.some(stillAlive), 10_000)).toBe(true);

    // Once the machine's worker has started again (under its old name) none of the killed one's
    // cgroups are left, and the service stays at 3: the slot its old self held was filled elsewhere.
    const again = await startWorker(redis.url, { name: victim.name, args: beat }, cleanups);
    expect(left()).toEqual([]);
    const [settled] = await farm.services.ls();
    expect(settled).toMatchObject({ desired: 3, running: 3 });
    expect(settled!.replicas.filter((r) => r.worker === victim.name)).toEqual([]);

    // SIGTERM drains a worker: its replicas stop, and it leaves no process and no cgroup.
    for (const w of [again, workers[0]!, workers[2]!]) {
      const boxes = w.descendants();
      await w.kill('SIGTERM');
      expect(await w.exited).toEqual({ code: 0, signal: null });
      expect(boxes.filter(stillAlive)).toEqual([]);
      expect(listSandcellCgroups().filter((d) => d.endsWith(`/sandcell-${w.pid}`))).toEqual([]);
    }
  }, 180_000);
});
