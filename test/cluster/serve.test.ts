// `sandcell serve --cluster`: the daemon's /v1/run answered by the farm's workers.
import { afterEach, describe, expect, it } from 'vitest';

import { connect } from '../../src/client/index.js';
import { startDaemon } from '../daemon/daemon.js';
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

  it('a malformed --cluster address is refused before anything starts', async () => {
    const e = await startDaemon({ args: ['--cluster', 'http://nope'] }).catch((x: unknown) => x);
    expect(String(e)).toMatch(/--cluster: .*scheme must be redis:, rediss: or unix:/);
  });
});
