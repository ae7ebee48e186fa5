// Hostile requests, generated: whatever a client sends (any JSON as a run's, a box's or a box
// run's options, mutations of a valid body, bytes that are not HTTP), the daemon answers with a
// status it documents and, for an error, the error shape; it never crashes, and nothing it ran
// is left. Valid bodies that get through run /bin/true or fail their setup: both are fine.
import fc from 'fast-check';
import { connect as netConnect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { requireRoot } from '../helpers/host.js';
import { http, isInit, processesOf, startDaemon, until, type TestDaemon } from './daemon.js';

const RUNS = Number(process.env.SANDCELL_FUZZ_RUNS ?? 300);
/** Every status the daemon may answer a request with (the OpenAPI document's, and the error shape's). */
const STATUSES = new Set([200, 201, 204, 400, 403, 404, 413, 415, 429, 500]);

let d: TestDaemon;
let box: string;
beforeAll(async () => {
  requireRoot();
  d = await startDaemon({ args: ['--max-body', '64KiB', '--request-timeout', '2s'] });
  const made = await http(d.socket, 'POST', '/v1/boxes', '{}');
  box = (JSON.parse(made.body) as { id: string }).id;
});
afterAll(async () => {
  if (d) expect(await d.stop()).toEqual({ code: 0, leftCgroups: [] });
});

function expectAnswered(r: { status: number; body: string }, what: string): void {
  expect(STATUSES.has(r.status), `${r.status} for ${what}: ${r.body.slice(0, 300)}`).toBe(true);
  if (r.status >= 400) {
    const e = (JSON.parse(r.body) as { error: { code: unknown; message: unknown } }).error;
    expect(typeof e.code === 'string' && typeof e.message === 'string', r.body).toBe(true);
  }
}

const valid = { command: ['/bin/true'], limits: { wallTime: '2s', memory: '64MiB' }, stdin: 'x', files: { 'a.txt': { base64: 'eA==' } } };

/** A valid body with one field replaced, added or removed, at any depth. */
const mutated = fc
  .tuple(fc.constantFrom('command', 'limits', 'stdin', 'files', 'env', 'cwd', 'binds', 'mounts', 'network', 'seccomp', 'collect', 'image', 'limits.memory', 'limits.wallTime', 'files.a.txt', '__proto__', 'constructor'), fc.jsonValue({ maxDepth: 3 }), fc.boolean())
  .map(([path, value, drop]) => {
    const body = JSON.parse(JSON.stringify(valid)) as Record<string, unknown>;
    const keys = path.split('.');
    let at: Record<string, unknown> = body;
    for (const k of keys.slice(0, -1)) at = (at[k] ??= {}) as Record<string, unknown>;
    const last = keys[keys.length - 1] as string;
    if (drop) delete at[last];
    else Object.defineProperty(at, last, { value, enumerable: true, writable: true, configurable: true });
    return JSON.stringify(body);
  });

const body = fc.oneof(mutated, fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)), fc.string({ maxLength: 200 }));
const path = fc.constantFrom('/v1/run', '/v1/boxes', '/v1/boxes/BOX/run', '/v1/boxes/box-0/run', '/v1/files', '/v1/files/sha256:00', '/v1/nothing', '/v1/run/../boxes', '/v1/%ZZ');

function raw(socket: string, bytes: Uint8Array): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = netConnect(socket);
    let text = '';
    s.on('data', (c: Buffer) => (text += c.toString('latin1')));
    s.on('close', () => resolve(text));
    s.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code !== 'EPIPE' && e.code !== 'ECONNRESET') reject(e);
    });
    s.on('connect', () => s.end(bytes));
  });
}

describe('the daemon fuzzed', () => {
  it('any JSON body on any route: a documented status and the error shape', { timeout: 600_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(path, body, fc.constantFrom('POST', 'GET', 'DELETE', 'PUT'), async (p, b, method) => {
        const r = await http(d.socket, method, p.replace('BOX', box), method === 'GET' ? undefined : b);
        expectAnswered(r, `${method} ${p} ${b.slice(0, 200)}`);
      }),
      { numRuns: RUNS },
    );
    expect((await http(d.socket, 'GET', '/v1/health')).status).toBe(200);
    expect(await until(() => processesOf(d.pid).filter((p) => !isInit(p)).length === 0)).toBe(true);
  });

  it('bytes that are not HTTP, or HTTP cut anywhere: a 4xx or a closed connection, never a crash', { timeout: 600_000 }, async () => {
    const request = Buffer.from(`POST /v1/run HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${JSON.stringify(valid).length}\r\n\r\n${JSON.stringify(valid)}`);
    const input = fc.oneof(
      fc.uint8Array({ maxLength: 512 }),
      fc.nat({ max: request.length }).map((n) => request.subarray(0, n)),
      fc.tuple(fc.nat({ max: request.length - 1 }), fc.integer({ min: 0, max: 255 })).map(([at, byte]) => {
        const copy = Buffer.from(request);
        copy[at] = byte;
        return copy;
      }),
    );
    await fc.assert(
      fc.asyncProperty(input, async (bytes) => {
        const answer = await raw(d.socket, bytes);
        const status = /^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1];
        expect(answer === '' || (status !== undefined && (STATUSES.has(Number(status)) || status === '408')), answer.slice(0, 200)).toBe(true);
      }),
      { numRuns: RUNS },
    );
    expect((await http(d.socket, 'GET', '/v1/health')).status).toBe(200);
    expect(await until(() => processesOf(d.pid).filter((p) => !isInit(p)).length === 0)).toBe(true);
  });
});
