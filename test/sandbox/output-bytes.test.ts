// Output as bytes: with `encoding: 'buffer'`, run() and box.run() give stdout and stderr as the
// Buffers the program wrote, byte for byte (bytes that are not UTF-8 included); without it, text
// as before. A spawned program streams bytes already: `encoding` is refused there.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { checkOptions, checkSandboxRunOptions, run, Sandbox, spawn, type OutputEncoding, type SandboxRunOptions } from '../../src/index.js';
import { requireRoot } from '../helpers/host.js';

/** Bytes that are not UTF-8: what a decoder would replace. */
const NOT_UTF8 = Buffer.from([0xff, 0xfe, 0x00, 0x41]);
const PRINTF = "printf '\\377\\376\\000A'";

/** 1 MiB holding every byte value, 4096 times each. */
const EVERY_BYTE = Buffer.from(Array.from({ length: 1 << 20 }, (_, i) => (i * 7) & 0xff));

const limits = { wallTime: '20s' };
const sh = (script: string) => ['/bin/sh', '-c', script];

/** The refusal a promise rejects with, as `path: message`. */
async function refusedWith(p: Promise<unknown>): Promise<string[]> {
  const e = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(e).toMatchObject({ name: 'SandboxOptionsError' });
  return (e as { issues: { path: string; message: string }[] }).issues.map((i) => `${i.path}: ${i.message}`);
}

const ENCODING_REFUSED = "encoding: must be one of 'utf8', 'buffer'";
const SPAWN_REFUSED = "encoding: is for run() and box.run(): a spawned program's stdout and stderr are streams of bytes";

beforeAll(() => requireRoot());

describe("run() with encoding: 'buffer'", () => {
  it('gives back bytes that are not UTF-8 exactly, on stdout and on stderr', async () => {
    const r = await run({ command: sh(`${PRINTF}; ${PRINTF} >&2`), limits, encoding: 'buffer' });
    expect(r.status).toBe('ok');
    expect(Buffer.isBuffer(r.stdout)).toBe(true);
    expect(Buffer.isBuffer(r.stderr)).toBe(true);
    expect(r.stdout.equals(NOT_UTF8)).toBe(true);
    expect(r.stderr.equals(NOT_UTF8)).toBe(true);
    expect([r.stdoutTruncated, r.stderrTruncated]).toEqual([false, false]);
  });

  it('gives back 1 MiB of every byte value exactly, on stdout and on stderr', async () => {
    const out = await run({ command: ['/bin/cat'], stdin: EVERY_BYTE, limits, encoding: 'buffer' });
    expect(out.status).toBe('ok');
    expect(out.stdout.length).toBe(EVERY_BYTE.length);
    expect(out.stdout.equals(EVERY_BYTE)).toBe(true);
    expect(out.stderr).toEqual(Buffer.alloc(0));
    const err = await run({ command: sh('cat >&2'), stdin: EVERY_BYTE, limits, encoding: 'buffer' });
    expect(err.stderr.equals(EVERY_BYTE)).toBe(true);
    expect(err.stdout).toEqual(Buffer.alloc(0));
  });

  it('gives empty Buffers, not strings, for a program that writes nothing', async () => {
    const r = await run({ command: ['/bin/true'], limits, encoding: 'buffer' });
    expect(Buffer.isBuffer(r.stdout) && Buffer.isBuffer(r.stderr)).toBe(true);
    expect([r.stdout.length, r.stderr.length]).toEqual([0, 0]);
  });

  it("gives text by default and with 'utf8', bytes that are not UTF-8 replaced as before", async () => {
    for (const encoding of [undefined, 'utf8'] as const) {
      const r = await run({ command: sh(`${PRINTF}; echo é >&2`), limits, ...(encoding ? { encoding } : {}) });
      expect(r.stdout).toBe('\ufffd\ufffd\u0000A');
      expect(r.stderr).toBe('é\n');
    }
    const none = await run({ command: ['/bin/true'], limits });
    expect([none.stdout, none.stderr]).toEqual(['', '']);
  });

  it('still truncates at the output limit, and says so', async () => {
    const r = await run({ command: sh('head -c 100000 /dev/zero; yes >&2'), limits: { ...limits, output: '64KiB' }, encoding: 'buffer' });
    expect(r.status).toBe('output-limit');
    expect(Buffer.isBuffer(r.stdout)).toBe(true);
    expect(r.stdoutTruncated).toBe(true);
    expect(r.stdout.length).toBeLessThanOrEqual(64 * 1024);
    expect(r.stdout.every((b) => b === 0)).toBe(true);
  });

  it('with collect (a living box for the run): Buffers, and the files', async () => {
    const r = await run({ command: sh(`${PRINTF}; ${PRINTF} > out.bin`), limits, collect: ['out.bin'], encoding: 'buffer' });
    expect(r.stdout.equals(NOT_UTF8)).toBe(true);
    expect(r.files?.['out.bin']?.equals(NOT_UTF8)).toBe(true);
  });

  it('options of the same content but their encoding each get their own, through the cache of shapes and checkOptions', async () => {
    const options = (encoding?: OutputEncoding) => ({ command: sh(PRINTF), limits, ...(encoding ? { encoding } : {}) });
    // Alternated, so that each run follows one of the other encoding (the last shape taken).
    for (const encoding of ['buffer', undefined, 'buffer', 'utf8', 'buffer', undefined] as const) {
      const r = await run(options(encoding) as Parameters<typeof run>[0]);
      if (encoding === 'buffer') expect(Buffer.isBuffer(r.stdout) && r.stdout.equals(NOT_UTF8)).toBe(true);
      else expect(r.stdout).toBe('\ufffd\ufffd\u0000A');
    }
    const asBytes = checkOptions({ command: sh(PRINTF), limits, encoding: 'buffer' });
    const asText = checkOptions({ command: sh(PRINTF), limits });
    for (let i = 0; i < 2; i++) {
      expect((await run(asBytes)).stdout.equals(NOT_UTF8)).toBe(true);
      expect((await run(asText)).stdout).toBe('\ufffd\ufffd\u0000A');
    }
  });

  it('refuses any other encoding, naming the field and the values it takes', async () => {
    for (const encoding of ['latin1', 'utf-8', null, 1, 'BUFFER']) {
      expect(await refusedWith(run({ command: ['/bin/true'], encoding } as unknown as Parameters<typeof run>[0]))).toEqual([ENCODING_REFUSED]);
    }
    expect(() => checkOptions({ command: ['/bin/true'], encoding: 'hex' } as unknown as Parameters<typeof checkOptions>[0])).toThrow(/encoding: must be one of 'utf8', 'buffer'/);
  });

  it('refuses encoding for spawn(), whatever its value: its output is streams of bytes', async () => {
    for (const encoding of ['buffer', 'utf8']) {
      expect(await refusedWith(spawn({ command: ['/bin/true'], encoding } as Parameters<typeof spawn>[0]))).toEqual([SPAWN_REFUSED]);
    }
  });
});

describe("box.run() with encoding: 'buffer'", () => {
  let box: Sandbox;
  beforeAll(async () => {
    box = await Sandbox.create({ limits: { memory: '256MiB' } });
  });
  afterAll(async () => {
    await box?.destroy();
  });

  it('gives back bytes that are not UTF-8 and 1 MiB of every byte value exactly, on stdout and on stderr', async () => {
    const r = await box.run({ command: sh(`${PRINTF}; ${PRINTF} >&2`), limits, encoding: 'buffer' });
    expect(r.stdout.equals(NOT_UTF8) && r.stderr.equals(NOT_UTF8)).toBe(true);
    const out = await box.run({ command: ['/bin/cat'], stdin: EVERY_BYTE, limits, encoding: 'buffer' });
    expect(out.stdout.equals(EVERY_BYTE)).toBe(true);
    expect(out.stderr).toEqual(Buffer.alloc(0));
    const err = await box.run({ command: sh('cat >&2'), stdin: EVERY_BYTE, limits, encoding: 'buffer' });
    expect(err.stderr.equals(EVERY_BYTE)).toBe(true);
  });

  it('gives text by default; each checked run its own encoding, in any order', async () => {
    expect((await box.run({ command: sh(PRINTF), limits })).stdout).toBe('\ufffd\ufffd\u0000A');
    const asBytes = checkSandboxRunOptions({ command: sh(PRINTF), limits, encoding: 'buffer' });
    const asText = checkSandboxRunOptions({ command: sh(PRINTF), limits, encoding: 'utf8' });
    for (let i = 0; i < 2; i++) {
      expect((await box.run(asText)).stdout).toBe('\ufffd\ufffd\u0000A');
      expect((await box.run(asBytes)).stdout.equals(NOT_UTF8)).toBe(true);
    }
  });

  it('still truncates at the output limit, and says so', async () => {
    const r = await box.run({ command: ['/usr/bin/yes'], limits: { ...limits, output: '4KiB' }, encoding: 'buffer' });
    expect(r.status).toBe('output-limit');
    expect(r.stdoutTruncated).toBe(true);
    expect(Buffer.isBuffer(r.stdout) && r.stdout.length <= 4096).toBe(true);
  });

  it('refuses any other encoding, and any encoding for box.spawn()', async () => {
    expect(await refusedWith(box.run({ command: ['/bin/true'], encoding: 'latin1' } as unknown as SandboxRunOptions))).toEqual([ENCODING_REFUSED]);
    expect(await refusedWith(box.spawn({ command: ['/bin/true'], encoding: 'buffer' } as unknown as SandboxRunOptions))).toEqual([SPAWN_REFUSED]);
  });
});
