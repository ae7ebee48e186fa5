// Output as bytes through a farm on a real redis-server: `farm.run({ encoding: 'buffer' })` gives
// back the Buffers the program wrote, byte for byte, whether they came inline in the job's result
// (small: text or base64) or as blobs (large); without it, text as before. `serve --cluster`
// answers such a run as a local daemon does.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { Farm } from '../../src/cluster/index.js';
import { http, startDaemon, type TestDaemon } from '../daemon/daemon.js';
import { startFarm, type TestFarm } from './workers.js';

const NOT_UTF8 = Buffer.from([0xff, 0xfe, 0x00, 0x41]);
const PRINTF = "printf '\\377\\376\\000A'";
const EVERY_BYTE = Buffer.from(Array.from({ length: 1 << 20 }, (_, i) => (i * 7) & 0xff));
const sh = (script: string) => ['/bin/sh', '-c', script];

describe("a farm run with encoding: 'buffer'", () => {
  let t: TestFarm;
  let farm: Farm;
  let daemon: TestDaemon;

  beforeAll(async () => {
    t = await startFarm(['bytes']);
    farm = t.farm;
    daemon = await startDaemon({ args: ['--cluster', t.redis.url] });
  }, 240_000);

  afterAll(async () => {
    expect(await daemon?.stop()).toMatchObject({ code: 0 });
    await t?.stop();
  }, 120_000);

  it('gives back bytes that are not UTF-8 exactly, on stdout and on stderr; empty Buffers for nothing written', async () => {
    const r = await farm.run({ command: sh(`${PRINTF}; ${PRINTF} >&2`), encoding: 'buffer' });
    expect(r.status).toBe('ok');
    expect(Buffer.isBuffer(r.stdout) && r.stdout.equals(NOT_UTF8)).toBe(true);
    expect(Buffer.isBuffer(r.stderr) && r.stderr.equals(NOT_UTF8)).toBe(true);
    const ascii = await farm.run({ command: sh('echo hi'), encoding: 'buffer' });
    expect([ascii.stdout, ascii.stderr]).toEqual([Buffer.from('hi\n'), Buffer.alloc(0)]);
  });

  it('gives back 1 MiB of every byte value exactly (a blob each way), on stdout and on stderr', async () => {
    const out = await farm.run({ command: ['/bin/cat'], stdin: EVERY_BYTE, encoding: 'buffer' });
    expect(out.stdout.equals(EVERY_BYTE)).toBe(true);
    expect(out.stderr).toEqual(Buffer.alloc(0));
    const err = await farm.run({ command: sh('cat >&2'), stdin: EVERY_BYTE, encoding: 'buffer' });
    expect(err.stderr.equals(EVERY_BYTE)).toBe(true);
  });

  it('gives text without it, as before', async () => {
    const r = await farm.run({ command: sh(`${PRINTF}; echo é >&2`) });
    expect([r.stdout, r.stderr]).toEqual(['\ufffd\ufffd\u0000A', 'é\n']);
    const big = await farm.run({ command: ['/bin/cat'], stdin: EVERY_BYTE, encoding: 'utf8' });
    expect(big.stdout).toBe(EVERY_BYTE.toString('utf8'));
  });

  it('an output limit still truncates and says so', async () => {
    const r = await farm.run({ command: ['/usr/bin/yes'], limits: { output: '4KiB' }, encoding: 'buffer' });
    expect(r.status).toBe('output-limit');
    expect(r.stdoutTruncated).toBe(true);
    expect(Buffer.isBuffer(r.stdout) && r.stdout.length <= 4096).toBe(true);
  });

  it('a bad encoding fails the job at once, naming the field', async () => {
    const e = await farm.run({ command: ['/bin/true'], encoding: 'latin1' } as unknown as Parameters<Farm['run']>[0]).catch((x: unknown) => x);
    expect(e).toMatchObject({ kind: 'options', code: 'invalid-options', field: 'encoding' });
  });

  it('serve --cluster answers with bytes JSON, as a local daemon', async () => {
    const r = await http(daemon.socket, 'POST', '/v1/run', JSON.stringify({ command: sh(`${PRINTF}; echo hi >&2`), encoding: 'buffer' }));
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toMatchObject({ status: 'ok', stdout: { base64: NOT_UTF8.toString('base64') }, stderr: 'hi\n', placement: { worker: 'bytes' } });
    const text = await http(daemon.socket, 'POST', '/v1/run', JSON.stringify({ command: sh(PRINTF) }));
    expect(JSON.parse(text.body)).toMatchObject({ stdout: '\ufffd\ufffd\u0000A' });
  });
});
