// Hostile requests, generated: whatever a client sends (any JSON as a run's, a box's or a box
// run's options, mutations of a valid body, bytes that are not HTTP), the daemon answers with a
// status it documents and, for an error, the error shape; it never crashes, and nothing it ran
// is left. Valid bodies that get through run /bin/true or fail their setup: both are fine.
import fc from 'fast-check';
import { createHash } from 'node:crypto';
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

/** A reply as read off the wire: its status, headers (names lowercased) and body. */
interface Answer {
  status: number;
  /** The head's header lines as sent. */
  lines: string[];
  headers: Record<string, string>;
  body: string;
}

/** One connection written to by hand, its replies read one at a time in order. */
class Wire {
  private buf = Buffer.alloc(0);
  private closed = false;
  private wake: (() => void) | null = null;
  readonly socket;

  constructor(path: string) {
    this.socket = netConnect(path);
    this.socket.on('data', (c: Buffer) => {
      this.buf = Buffer.concat([this.buf, c]);
      this.wake?.();
    });
    this.socket.on('close', () => {
      this.closed = true;
      this.wake?.();
    });
    this.socket.on('error', () => undefined);
  }

  write(bytes: string | Buffer): Promise<void> {
    return new Promise((resolve) => this.socket.write(bytes, () => resolve()));
  }

  /** The next reply, or null when the connection closed before a whole one came. */
  async answer(): Promise<Answer | null> {
    for (;;) {
      const end = this.buf.indexOf('\r\n\r\n');
      if (end >= 0) {
        const lines = this.buf.toString('latin1', 0, end).split('\r\n');
        const headers: Record<string, string> = {};
        for (const l of lines.slice(1)) headers[l.slice(0, l.indexOf(':')).toLowerCase()] = l.slice(l.indexOf(':') + 1).trim();
        const length = Number(headers['content-length'] ?? 0);
        if (this.buf.length >= end + 4 + length) {
          const body = this.buf.toString('utf8', end + 4, end + 4 + length);
          this.buf = this.buf.subarray(end + 4 + length);
          return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(lines[0] as string)?.[1]), lines: lines.slice(1), headers, body };
        }
      }
      if (this.closed) return null;
      await new Promise<void>((r) => (this.wake = r));
      this.wake = null;
    }
  }

  /** Resolves once the daemon has closed the connection. */
  async closedByPeer(): Promise<true> {
    while (!this.closed) {
      await new Promise<void>((r) => (this.wake = r));
      this.wake = null;
    }
    return true;
  }

  close(): void {
    this.socket.destroy();
  }
}

const opened = (path: string): Promise<Wire> =>
  new Promise((resolve, reject) => {
    const w = new Wire(path);
    w.socket.once('connect', () => resolve(w));
    w.socket.once('error', reject);
  });

const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 1));
const sha = (data: string): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;

/** The requests of the property below, each with the reply it must get. */
const PLAIN: { bytes: string; expect: (a: Answer) => void }[] = [
  { bytes: 'GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n', expect: (a) => expect(JSON.parse(a.body)).toMatchObject({ ok: true }) },
  { bytes: 'GET /v1/version HTTP/1.1\r\nhost: x\r\nX-Extra:  spaced value  \r\n\r\n', expect: (a) => expect(JSON.parse(a.body)).toMatchObject({ api: 1 }) },
  {
    bytes: `POST /v1/files HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello\r\n\r\nyo`,
    expect: (a) => expect([a.status, JSON.parse(a.body)]).toEqual([201, { id: sha('hello\r\n\r\nyo'), size: 11 }]),
  },
  { bytes: 'DELETE /v1/nothing HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc', expect: (a) => expect(a.status).toBe(404) },
  {
    bytes: `POST /v1/run HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 45\r\n\r\n{"command":["/bin/echo","piped"],"stdin":"x"}`,
    expect: (a) => expect(JSON.parse(a.body)).toMatchObject({ status: 'ok', stdout: 'piped\n' }),
  },
  {
    bytes: 'POST /v1/files HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n',
    expect: (a) => expect([a.status, JSON.parse(a.body)]).toEqual([201, { id: sha('abcde'), size: 5 }]),
  },
];

describe("the daemon's HTTP/1.1 at its edges", () => {
  it('a request split at every byte, on one kept-alive connection: the same answer each time', { timeout: 120_000 }, async () => {
    const body = '{"command":["/bin/true"]}';
    const request = Buffer.from(`POST /v1/files HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    const w = await opened(d.socket);
    for (let at = 1; at < request.length; at++) {
      await w.write(request.subarray(0, at));
      await tick();
      await w.write(request.subarray(at));
      const a = await w.answer();
      expect([at, a?.status, a && JSON.parse(a.body)]).toEqual([at, 201, { id: sha(body), size: body.length }]);
    }
    w.close();
  });

  it('pipelined requests, cut anywhere, a chunked one among them: every answer, in order', { timeout: 600_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.nat({ max: PLAIN.length - 1 }), { minLength: 1, maxLength: 6 }), fc.array(fc.nat(), { maxLength: 5 }), async (which, cuts) => {
        const stream = Buffer.from(which.map((i) => (PLAIN[i] as { bytes: string }).bytes).join(''), 'latin1');
        const at = [...new Set(cuts.map((c) => c % stream.length))].sort((x, y) => x - y);
        const w = await opened(d.socket);
        let from = 0;
        for (const c of [...at, stream.length]) {
          await w.write(stream.subarray(from, c));
          await tick();
          from = c;
        }
        for (const i of which) {
          const a = await w.answer();
          expect(a, `answer to ${JSON.stringify(PLAIN[i]?.bytes)}`).not.toBeNull();
          (PLAIN[i] as { expect: (a: Answer) => void }).expect(a as Answer);
        }
        w.close();
      }),
      { numRuns: Math.min(RUNS, 60) },
    );
  });

  it('Connection: close is answered, then the connection is closed with the requests after it unread', async () => {
    const w = await opened(d.socket);
    await w.write('GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /v1/version HTTP/1.1\r\nHost: x\r\n\r\n');
    const a = await w.answer();
    expect([a?.status, a?.headers.connection]).toEqual([200, 'close']);
    expect(await w.answer()).toBeNull();
  });

  it('limits of the head: 16 KiB of headers answered, more refused with 431; 150 headers answered', async () => {
    const at = async (head: string): Promise<number | undefined> => {
      const w = await opened(d.socket);
      await w.write(`GET /v1/health HTTP/1.1\r\nHost: x\r\n${head}\r\n`);
      const a = await w.answer();
      w.close();
      return a?.status;
    };
    expect(await at(`X-Big: ${'a'.repeat(16 * 1024 - 64)}\r\n`)).toBe(200);
    expect(await at(`X-Big: ${'a'.repeat(20 * 1024)}\r\n`)).toBe(431);
    expect(await at(Array.from({ length: 150 }, (_, i) => `X-H${i}: ${i}\r\n`).join(''))).toBe(200);
  });

  it('malformed heads and bad lengths: 400, or 413 past the body limit, then the connection closes', async () => {
    const cases: [string, number][] = [
      ['POST /v1/files HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n', 400],
      ['POST /v1/files HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n', 400],
      ['POST /v1/files HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab', 400],
      ['POST /v1/files HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400],
      ['GET /v1/health HTTP/1.1\r\nHost : x\r\n\r\n', 400],
      ['GET /v1/health HTTP/1.1\r\n\r\n', 400],
      ['GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Bad: a\x01b\r\n\r\n', 400],
      ['GET /v1/health HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n', 400],
      [`POST /v1/files HTTP/1.1\r\nHost: x\r\nContent-Length: ${64 * 1024 + 1}\r\n\r\n`, 413],
    ];
    for (const [bytes, status] of cases) {
      const w = await opened(d.socket);
      await w.write(bytes);
      const a = await w.answer();
      expect([bytes, a?.status]).toEqual([bytes, status]);
      if (status === 400) expect(await w.closedByPeer()).toBe(true);
      w.close();
    }
  });

  it('a WebSocket upgrade after plain requests on the same connection is still answered with 101', async () => {
    const w = await opened(d.socket);
    await w.write('GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n');
    expect((await w.answer())?.status).toBe(200);
    await w.write('GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
    expect((await w.answer())?.status).toBe(101);
    w.close();
  });

  it('an answer with a Connection header of its own (426) has that one alone', async () => {
    const w = await opened(d.socket);
    await w.write('GET /v1/ws HTTP/1.1\r\nHost: x\r\n\r\n');
    const a = await w.answer();
    expect([a?.status, (a?.lines ?? []).filter((l) => /^connection:/i.test(l)).map((l) => l.slice(11).trim())]).toEqual([426, ['Upgrade']]);
    w.close();
  });

  it('a client too slow with its head or its body gets 408; one idle between requests is closed quietly', { timeout: 30_000 }, async () => {
    for (const partial of ['GET /v1/health HTTP/1.1\r\nHo', 'POST /v1/files HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc']) {
      const w = await opened(d.socket);
      await w.write(partial);
      expect((await w.answer())?.status).toBe(408);
      w.close();
    }
    const w = await opened(d.socket);
    await w.write('GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n');
    expect((await w.answer())?.status).toBe(200);
    expect(await w.closedByPeer()).toBe(true);
  });

  it('a client that half-closes mid-run: its run ends, nothing of it is left', { timeout: 60_000 }, async () => {
    const body = JSON.stringify({ command: ['/bin/sleep', '30'], limits: { wallTime: '60s' } });
    const w = await opened(d.socket);
    await w.write(`POST /v1/run HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    expect(await until(() => processesOf(d.pid).some((p) => !isInit(p)))).toBe(true);
    w.socket.end();
    expect(await w.answer()).toBeNull();
    expect(await until(() => processesOf(d.pid).filter((p) => !isInit(p)).length === 0)).toBe(true);
  });
});
