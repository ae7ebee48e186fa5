// `sandcell serve --cluster`: the daemon's /v1/run answered by the farm's workers.
import { afterEach, describe, expect, it } from 'vitest';

import { connect } from '../../src/client/index.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { http, startDaemon } from '../daemon/daemon.js';
import { startRedis } from '../helpers/redis.js';
import { startWorker } from './workers.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups.length = 0;
}, 120_000);

describe('serve --cluster', () => {
  it('/v1/run goes to a worker of the farm and comes back with its placement', async () => {
    const redis = await startRedis();
    cleanups.push(() => redis.stop());
    await startWorker(redis.url, { name: 'behind-daemon' }, cleanups);
    const daemon = await startDaemon({ args: ['--cluster', redis.url] });
    cleanups.push(async () => {
      await daemon.stop();
    });
    const engine = connect({ socket: daemon.socket });
    const r = await engine.run({ command: ['/bin/sh', '-c', 'read x; echo "got $x"; exit 4'], stdin: 'it\n' });
    expect(r).toMatchObject({ status: 'nonzero-exit', exitCode: 4, stdout: 'got it\n' });
    expect((r as unknown as { placement: { worker: string } }).placement).toMatchObject({ worker: 'behind-daemon', attempt: 1, stalled: 0 });
  }, 180_000);

  it('a request the workers refuse is answered as a local daemon answers it: 400 naming the field, 500 naming the setup stage; what reaches a worker\'s machine is 403', async () => {
    const redis = await startRedis();
    cleanups.push(() => redis.stop());
    await startWorker(redis.url, { name: 'refuser' }, cleanups);
    const shared = mkdtempSync(join(tmpdir(), 'sandcell-serve-bind-'));
    cleanups.push(async () => rmSync(shared, { recursive: true, force: true }));
    // Beyond the strict default, so that these requests pass the daemon and reach run().
    const policy = { images: ['no-such-image'], allowCustomSeccomp: true, binds: [{ source: shared }] };
    const local = await startDaemon({ policy });
    cleanups.push(async () => void (await local.stop()));
    const farmed = await startDaemon({ policy, args: ['--cluster', redis.url] });
    cleanups.push(async () => void (await farmed.stop()));
    const ask = async (socket: string, body: unknown): Promise<{ status: number; json: unknown }> => {
      const r = await http(socket, 'POST', '/v1/run', JSON.stringify(body));
      return { status: r.status, json: JSON.parse(r.body) as unknown };
    };
    const bad = [
      { command: ['/bin/true'], image: 'no-such-image' },
      { command: ['/bin/true'], seccomp: { defaultAction: 'explode' } },
      { command: ['/no/such/program'] },
    ];
    for (const body of bad) {
      const here = await ask(local.socket, body);
      const there = await ask(farmed.socket, body);
      expect(there).toEqual(here);
    }
    expect((await ask(local.socket, bad[0])).json).toMatchObject({ error: { code: 'invalid-options', field: 'image' } });
    expect((await ask(local.socket, bad[1])).status).toBe(400);
    expect(await ask(local.socket, bad[2])).toMatchObject({ status: 500, json: { error: { code: 'setup-failed', stage: 'execve', errnoCode: 'ENOENT' } } });
    // The server's policy lets this bind through; a worker takes no host path from the queue.
    const bind = { command: ['/bin/true'], binds: [{ source: shared }] };
    expect((await ask(local.socket, bind)).status).toBe(200);
    expect(await ask(farmed.socket, bind)).toEqual({
      status: 403,
      json: { error: { code: 'forbidden', message: 'binds: host paths are not accepted from the queue', field: 'binds' } },
    });
  }, 180_000);

  it('a malformed --cluster address is refused before anything starts', async () => {
    const e = await startDaemon({ args: ['--cluster', 'http://nope'] }).catch((x: unknown) => x);
    expect(String(e)).toMatch(/--cluster: .*scheme must be redis:, rediss: or unix:/);
  });
});
