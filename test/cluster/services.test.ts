/**
 * Services over several nodes: a real redis-server on a Unix socket, three agents in processes
 * of their own standing in for machines, real boxes as replicas.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ServicesClient } from '../../src/cluster/services/index.js';
import { processesOf, until } from '../daemon/daemon.js';
import { killAllNodes, startNode } from './nodes.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';

/** Answers each line with it and the replica's own id, so a test sees which replica answered. */
const ECHO = `id=$(cat /proc/sys/kernel/random/uuid)
while IFS= read -r line; do printf '{"echo":%s,"replica":"%s"}\\n' "$line" "$id"; done`;

const HEARTBEAT = { interval: 250, timeout: 1500 };

let redis: TestRedis;

beforeAll(async () => {
  redis = await startRedis();
});

afterAll(async () => {
  await killAllNodes();
  await redis?.stop();
});

describe('services across nodes', () => {
  it('3 replicas over 3 nodes; kill -9 one: the count is back to 3 and 200 calls made meanwhile all get an answer', async () => {
    const prefix = 'accept';
    const nodes = await Promise.all(['n1', 'n2', 'n3'].map((n) => startNode(redis.socket, prefix, n, HEARTBEAT)));
    const client = new ServicesClient({ connection: { path: redis.socket }, prefix });
    try {
      await client.create({ name: 'echo', replicas: 3, command: ['/bin/sh', '-c', ECHO] });
      expect(await until(async () => (await client.ls())[0]?.running === 3)).toBe(true);
      const [before] = await client.ls();
      expect(new Set(before?.replicas.map((r) => r.worker))).toEqual(new Set(['n1', 'n2', 'n3']));

      const victim = nodes[1]!;
      const victimPids = before!.replicas.filter((r) => r.worker === victim.name).map((r) => r.pid);
      expect(victimPids).toHaveLength(1);

      let killedAt = 0;
      let recoveredAt = 0;
      const watch = (async () => {
        while (killedAt === 0) await new Promise((r) => setTimeout(r, 10));
        for (;;) {
          const [s] = await client.ls();
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
        calls.push(client.call('echo', { i }, { timeout: 30_000 }));
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
      console.log(`services: replica count back to 3 ${recoveryMs} ms after kill -9 (heartbeat interval ${HEARTBEAT.interval} ms, timeout ${HEARTBEAT.timeout} ms); ${replies.length}/200 calls answered by ${new Set(replies.map((r) => r.replica)).size} replicas`);
      // Noticing the loss takes the heartbeat timeout plus at most one reconcile tick; then a box starts.
      expect(recoveryMs).toBeLessThan(HEARTBEAT.timeout + HEARTBEAT.interval + 2000);
      expect(new Set(replies.map((r) => r.replica)).size).toBeGreaterThanOrEqual(3);
      expect(after.lastCrash).toMatchObject({ worker: victim.name, reason: 'worker-lost' });

      // The lost node's replica died with it (parent death): nothing of it runs on.
      await victim.exited;
      expect(await until(() => processesOf(victim.pid).length === 0, 5000)).toBe(true);
      for (const pid of victimPids) expect(() => process.kill(pid as number, 0)).toThrow(/ESRCH/);
    } finally {
      await client.close();
    }
  });
});
