// Output as bytes through a real daemon: a run given `encoding: 'buffer'` is answered with its
// stdout and stderr as bytes JSON (a string where the bytes are UTF-8, `{ base64 }` otherwise) on
// /v1/run, a box's run and a session's `run` frame, read by curl, Python and the TS client (which
// gives Buffers back); without it, the answer is the text it always was. A spawn refuses it.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { connect, type Engine } from '../../src/client/index.js';
import { SandboxOptionsError, type SpawnOptions } from '../../src/index.js';
import { requireRoot } from '../helpers/host.js';
import { http, startDaemon, type TestDaemon } from './daemon.js';

const PY_CLIENT = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'client.py');

const NOT_UTF8 = Buffer.from([0xff, 0xfe, 0x00, 0x41]);
const PRINTF = "printf '\\377\\376\\000A'";
const EVERY_BYTE = Buffer.from(Array.from({ length: 1 << 20 }, (_, i) => (i * 7) & 0xff));
/** A program writing EVERY_BYTE. */
const WRITE_EVERY_BYTE = 'import sys; sys.stdout.buffer.write(bytes((i * 7) & 255 for i in range(1 << 20)))';
const limits = { wallTime: '20s' };
const sh = (script: string) => ['/bin/sh', '-c', script];

let d: TestDaemon;
let engine: Engine;

beforeAll(async () => {
  requireRoot();
  d = await startDaemon();
  engine = connect({ socket: d.socket });
});

afterAll(async () => {
  engine?.close();
  expect(await d?.stop()).toEqual({ code: 0, leftCgroups: [] });
});

function viaCurl(path: string, body: unknown): { status: number; json: Record<string, unknown> } {
  const file = join(d.dir, 'body.json');
  writeFileSync(file, JSON.stringify(body));
  const out = execFileSync('curl', ['-sS', '--unix-socket', d.socket, '-H', 'content-type: application/json', '--data-binary', `@${file}`, '-w', '\n%{http_code}', `http://sandcell${path}`], { encoding: 'utf8' });
  const at = out.lastIndexOf('\n');
  return { status: Number(out.slice(at + 1)), json: JSON.parse(out.slice(0, at)) as Record<string, unknown> };
}

function viaPython(path: string, body: unknown): { status: number; json: Record<string, unknown> } {
  const file = join(d.dir, 'body-py.json');
  writeFileSync(file, JSON.stringify(body));
  const r = JSON.parse(execFileSync('python3', [PY_CLIENT, d.socket, 'POST', path, file], { encoding: 'utf8' })) as { status: number; body: Record<string, unknown> };
  return { status: r.status, json: r.body };
}

describe("the daemon's answer to a run given encoding: 'buffer'", () => {
  it('/v1/run: { base64 } for bytes that are not UTF-8 and a plain string for text, to curl and to Python; text as before without it', () => {
    for (const ask of [viaCurl, viaPython]) {
      const bytes = ask('/v1/run', { command: sh(`${PRINTF}; echo hi >&2`), limits, encoding: 'buffer' });
      expect(bytes.status).toBe(200);
      expect(bytes.json).toMatchObject({ status: 'ok', stdout: { base64: NOT_UTF8.toString('base64') }, stderr: 'hi\n', stdoutTruncated: false });
      const ascii = ask('/v1/run', { command: sh('echo hi'), limits, encoding: 'buffer' });
      expect(ascii.json).toMatchObject({ stdout: 'hi\n', stderr: '' });
      const text = ask('/v1/run', { command: sh(PRINTF), limits });
      expect(text.json).toMatchObject({ stdout: '\ufffd\ufffd\u0000A', stderr: '' });
      const utf8 = ask('/v1/run', { command: sh(PRINTF), limits, encoding: 'utf8' });
      expect(utf8.json).toMatchObject({ stdout: '\ufffd\ufffd\u0000A' });
    }
  });

  it("a box's run: the same", () => {
    const made = viaCurl('/v1/boxes', {});
    expect(made.status).toBe(201);
    const id = made.json.id as string;
    try {
      const r = viaCurl(`/v1/boxes/${id}/run`, { command: sh(`${PRINTF} >&2; echo out`), limits, encoding: 'buffer' });
      expect(r.json).toMatchObject({ status: 'ok', stdout: 'out\n', stderr: { base64: NOT_UTF8.toString('base64') } });
      expect(viaPython(`/v1/boxes/${id}/run`, { command: sh(PRINTF), limits }).json).toMatchObject({ stdout: '\ufffd\ufffd\u0000A' });
    } finally {
      execFileSync('curl', ['-sS', '--unix-socket', d.socket, '-X', 'DELETE', `http://sandcell/v1/boxes/${id}`]);
    }
  });

  it('refuses any other encoding with 400 naming the field, and refuses it in a spawn frame', async () => {
    for (const encoding of ['latin1', null, 'hex']) {
      const r = viaCurl('/v1/run', { command: ['/bin/true'], encoding });
      expect(r.status).toBe(400);
      expect(r.json).toMatchObject({ error: { code: 'invalid-options', field: 'encoding', issues: [{ path: 'encoding', message: "must be one of 'utf8', 'buffer'" }] } });
    }
    const e = await engine.spawn({ command: ['/bin/true'], encoding: 'buffer' } as SpawnOptions).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(SandboxOptionsError);
    expect((e as SandboxOptionsError).issues).toEqual([{ path: '', message: 'Unrecognized key: "encoding"' }]);
  });

  it('the OpenAPI document takes encoding in a run request and output as text or { base64 } in a result', async () => {
    const doc = JSON.parse((await http(d.socket, 'GET', '/v1/openapi.json')).body) as {
      paths: Record<string, Record<string, { requestBody: { content: Record<string, { schema: { properties: Record<string, unknown> } }> }; responses: Record<string, { content: Record<string, { schema: { properties: Record<string, unknown> } }> }> }>>;
    };
    for (const path of ['/v1/run', '/v1/boxes/{id}/run']) {
      const op = doc.paths[path]?.post;
      expect(op?.requestBody.content['application/json']?.schema.properties.encoding).toEqual({ type: 'string', enum: ['utf8', 'buffer'] });
      const stdout = op?.responses['200']?.content['application/json']?.schema.properties.stdout;
      expect(stdout).toMatchObject({ anyOf: [{ type: 'string' }, { type: 'object', properties: { base64: { type: 'string' } }, required: ['base64'], additionalProperties: false }] });
    }
  });
});

describe("the TS client with encoding: 'buffer'", () => {
  it('run(), a box\'s run and a session\'s run give Buffers, byte for byte; text without it', async () => {
    const r = await engine.run({ command: sh(`${PRINTF}; ${PRINTF} >&2`), limits, encoding: 'buffer' });
    expect(Buffer.isBuffer(r.stdout) && r.stdout.equals(NOT_UTF8)).toBe(true);
    expect(Buffer.isBuffer(r.stderr) && r.stderr.equals(NOT_UTF8)).toBe(true);
    const big = await engine.run({ command: ['/bin/cat'], stdin: EVERY_BYTE, limits, encoding: 'buffer' });
    expect(big.stdout.equals(EVERY_BYTE)).toBe(true);
    // Output that is text, sent as a string, is still a Buffer; nothing written is an empty one.
    const ascii = await engine.run({ command: sh('echo hi'), limits, encoding: 'buffer' });
    expect([ascii.stdout, ascii.stderr]).toEqual([Buffer.from('hi\n'), Buffer.alloc(0)]);
    expect((await engine.run({ command: sh(PRINTF), limits })).stdout).toBe('\ufffd\ufffd\u0000A');

    const box = await engine.Sandbox.create({});
    try {
      const b = await box.run({ command: sh('cat >&2'), stdin: EVERY_BYTE, limits, encoding: 'buffer' });
      expect(b.stderr.equals(EVERY_BYTE)).toBe(true);
      expect(b.stdout).toEqual(Buffer.alloc(0));
      expect((await box.run({ command: sh(PRINTF), limits })).stdout).toBe('\ufffd\ufffd\u0000A');
    } finally {
      await box.destroy();
    }

    const s = await engine.session();
    try {
      const [bytes, text] = await Promise.all([s.run({ command: sh(PRINTF), limits, encoding: 'buffer' }), s.run({ command: sh(PRINTF), limits })]);
      expect(Buffer.isBuffer(bytes.stdout) && bytes.stdout.equals(NOT_UTF8)).toBe(true);
      expect(text.stdout).toBe('\ufffd\ufffd\u0000A');
      // Made in the box: a session's frame carries at most 1 MiB of input.
      const big2 = await s.run({ command: ['/usr/bin/python3', '-c', WRITE_EVERY_BYTE], limits, encoding: 'buffer' });
      expect(big2.stdout.equals(EVERY_BYTE)).toBe(true);
    } finally {
      await s.close();
    }
  });

  it('an output limit still truncates and says so', async () => {
    const r = await engine.run({ command: ['/usr/bin/yes'], limits: { ...limits, output: '4KiB' }, encoding: 'buffer' });
    expect(r.status).toBe('output-limit');
    expect(r.stdoutTruncated).toBe(true);
    expect(Buffer.isBuffer(r.stdout) && r.stdout.length <= 4096).toBe(true);
  });
});
