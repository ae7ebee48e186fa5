// The client's HTTP/1.1 on its own, against a fake server (test/helpers/fake-http.ts) that answers exactly as told:
// every framing of a reply, kept connections, a kept connection found closed, abort, close().
import { createHook } from 'node:async_hooks';
import { mkdtempSync, rmSync } from 'node:fs';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

import { Http1Pool } from '../../src/client/http1.js';
import { fakeHttpServer as server, jsonReply as ok } from '../helpers/fake-http.js';

/** Generous: these tests are about framing, not bounds. */
const LIMITS = { maxBodyBytes: 1 << 20, timeoutMs: 60_000 };
const aborted = (s: AbortSignal): Error => Object.assign(new Error('aborted'), { name: 'AbortError', cause: s.reason });
const until = async (f: () => boolean): Promise<boolean> => {
  for (let i = 0; i < 200 && !f(); i++) await new Promise((r) => setTimeout(r, 10));
  return f();
};

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('Http1Pool', () => {
  it('writes the request in one piece and reads replies framed by content-length, chunks, or the end of the connection', async () => {
    const s = await server((r, socket) => {
      if (r.head.startsWith('POST /length')) socket.write(ok(`{"got":${JSON.stringify(r.body)}}`, 'x-twice: a\r\nX-Twice: b\r\n'));
      else if (r.head.startsWith('GET /chunked')) {
        // Split anywhere, a chunk extension, a trailer: all of it is HTTP/1.1.
        const text = 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nx-trailer: t\r\n\r\n';
        for (let at = 0; at < text.length; at += 3) setTimeout(() => socket.write(text.slice(at, at + 3)), at);
      } else if (r.head.startsWith('DELETE /nothing')) socket.write('HTTP/1.1 204 No Content\r\n\r\n');
      else socket.end('HTTP/1.1 500 Internal Server Error\r\nconnection: close\r\n\r\nto the end');
    });
    cleanups.push(s.stop);
    const pool = new Http1Pool({ socketPath: s.path }, LIMITS);
    cleanups.push(() => pool.close());
    const a = await pool.request({ method: 'POST', path: '/length', headers: { 'content-type': 'application/json', authorization: 'Bearer t' }, body: '{"x":"é"}' }, aborted);
    expect(a.status).toBe(200);
    expect(JSON.parse(a.body.toString())).toEqual({ got: '{"x":"é"}' });
    expect(a.headers['x-twice']).toBe('a, b');
    expect(s.seen[0]?.head).toMatch(/^POST \/length HTTP\/1\.1\r\n/);
    expect(s.seen[0]?.head).toContain('authorization: Bearer t');
    expect(s.seen[0]?.head).toContain(`content-length: ${Buffer.byteLength('{"x":"é"}')}`);
    const bytes = Buffer.from([0, 1, 2, 255, 10, 13]);
    const raw = await pool.request({ method: 'POST', path: '/length', headers: { 'content-type': 'application/octet-stream' }, body: bytes }, aborted);
    expect(JSON.parse(raw.body.toString())).toEqual({ got: bytes.toString('utf8') });
    expect(s.seen[1]?.head).toContain('content-length: 6');
    const b = await pool.request({ method: 'GET', path: '/chunked', headers: {} }, aborted);
    expect([b.status, b.body.toString()]).toEqual([200, 'hello, world']);
    const c = await pool.request({ method: 'DELETE', path: '/nothing', headers: {} }, aborted);
    expect([c.status, c.body.length]).toEqual([204, 0]);
    // Four requests, one connection: each went back to the pool when its reply was whole.
    expect(s.connections()).toBe(1);
    const d = await pool.request({ method: 'GET', path: '/close', headers: {} }, aborted);
    expect([d.status, d.body.toString()]).toEqual([500, 'to the end']);
    expect(await until(() => s.open() === 0)).toBe(true);
  });

  it('requests in flight at once each have a connection, kept for the next ones', async () => {
    const s = await server((r, socket) => setTimeout(() => socket.write(ok(`"${r.conn}"`)), 20));
    cleanups.push(s.stop);
    const pool = new Http1Pool({ socketPath: s.path }, LIMITS);
    cleanups.push(() => pool.close());
    const first = await Promise.all([1, 2, 3].map(() => pool.request({ method: 'GET', path: '/', headers: {} }, aborted)));
    expect(new Set(first.map((r) => r.body.toString())).size).toBe(3);
    await Promise.all([1, 2, 3].map(() => pool.request({ method: 'GET', path: '/', headers: {} }, aborted)));
    expect(s.connections()).toBe(3);
  });

  it('replies on two connections, each split across reads and interleaved with the other, are read whole and apart', async () => {
    // Every read lands in one buffer shared by all connections: what a reply keeps of a read must be its own copy.
    const bodies = ['a'.repeat(3000), 'b'.repeat(3000)];
    const waiting: { socket: Socket; text: string }[] = [];
    const s = await server((r, socket) => {
      waiting.push({ socket, text: ok(JSON.stringify(bodies[r.conn - 1])) });
      if (waiting.length < 2) return;
      // Pieces of both replies in turn, each cut inside the head, then inside the body.
      for (let at = 0; at < 4000; at += 40) for (const w of waiting) setTimeout(() => w.socket.write(w.text.slice(at, at + 40)), at / 10);
    });
    cleanups.push(s.stop);
    const pool = new Http1Pool({ socketPath: s.path }, LIMITS);
    cleanups.push(() => pool.close());
    const got = await Promise.all([0, 1].map(() => pool.request({ method: 'GET', path: '/', headers: {} }, aborted)));
    expect(got.map((r) => JSON.parse(r.body.toString()) as string).sort()).toEqual(bodies);
    expect(s.connections()).toBe(2);
  });

  it('a reply that comes whole in one read sets no timer, and an idle connection is given up near the keep-alive timeout the server announced', async () => {
    const s = await server((r, socket) => socket.write(ok('"fine"', r.head.startsWith('GET /short') ? 'keep-alive: timeout=2\r\n' : 'keep-alive: timeout=60\r\n')));
    cleanups.push(s.stop);
    const pool = new Http1Pool({ socketPath: s.path }, LIMITS);
    cleanups.push(() => pool.close());
    await pool.request({ method: 'GET', path: '/', headers: {} }, aborted);
    const timers: string[] = [];
    const hook = createHook({
      init(_id, type) {
        if (type === 'Timeout') timers.push(type);
      },
    }).enable();
    try {
      for (let i = 0; i < 5; i++) await pool.request({ method: 'GET', path: '/', headers: {} }, aborted);
    } finally {
      hook.disable();
    }
    expect(timers).toEqual([]);
    expect(s.connections()).toBe(1);
    // timeout=2: the connection is not used again after a second idle, a new one is opened and the old one closed.
    await pool.request({ method: 'GET', path: '/short', headers: {} }, aborted);
    await new Promise((r) => setTimeout(r, 1100));
    await pool.request({ method: 'GET', path: '/', headers: {} }, aborted);
    expect(s.connections()).toBe(2);
    expect(await until(() => s.open() === 1)).toBe(true);
  });

  it('a kept connection the server closed while idle: the request goes again on a new one; a new connection closed unanswered is an error', async () => {
    let drop = true;
    const s = await server((r, socket) => {
      // The server's side of the race: the request arrives on a connection it is closing.
      if (r.conn === 1 && s.seen.length === 2 && drop) socket.destroy();
      else if (r.head.startsWith('GET /never')) socket.destroy();
      else socket.write(ok('"fine"'));
    });
    cleanups.push(s.stop);
    const pool = new Http1Pool({ socketPath: s.path }, LIMITS);
    cleanups.push(() => pool.close());
    await pool.request({ method: 'GET', path: '/', headers: {} }, aborted);
    const again = await pool.request({ method: 'POST', path: '/run', headers: {}, body: '{}' }, aborted);
    expect(again.body.toString()).toBe('"fine"');
    expect(s.seen.map((r) => `${r.conn} ${r.head.split(' ')[1]}`)).toEqual(['1 /', '1 /run', '2 /run']);
    drop = false;
    const fresh = new Http1Pool({ socketPath: s.path }, LIMITS);
    cleanups.push(() => fresh.close());
    await expect(fresh.request({ method: 'GET', path: '/never', headers: {} }, aborted)).rejects.toMatchObject({ code: 'ECONNRESET', message: 'socket hang up' });
    expect(s.seen.filter((r) => r.head.startsWith('GET /never'))).toHaveLength(1);
  });

  it('an aborted signal closes the connection and rejects with the caller\'s error; an aborted one sends nothing', async () => {
    const s = await server(() => undefined);
    cleanups.push(s.stop);
    const pool = new Http1Pool({ socketPath: s.path }, LIMITS);
    cleanups.push(() => pool.close());
    const ac = new AbortController();
    const p = pool.request({ method: 'POST', path: '/v1/run', headers: {}, body: '{}', signal: ac.signal }, aborted);
    expect(await until(() => s.seen.length === 1)).toBe(true);
    ac.abort(new Error('stop'));
    await expect(p).rejects.toMatchObject({ name: 'AbortError', cause: new Error('stop') });
    expect(await until(() => s.open() === 0)).toBe(true);
    await expect(pool.request({ method: 'GET', path: '/', headers: {}, signal: AbortSignal.abort() }, aborted)).rejects.toMatchObject({ name: 'AbortError' });
    expect(s.seen).toHaveLength(1);
  });

  it('no server: the socket\'s error; a malformed reply: an error, the connection dropped', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sandcell-http1-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const none = new Http1Pool({ socketPath: join(dir, 'none.sock') }, LIMITS);
    await expect(none.request({ method: 'GET', path: '/', headers: {} }, aborted)).rejects.toMatchObject({ code: 'ENOENT' });
    const s = await server((_r, socket) => socket.write('SSH-2.0-nope\r\n\r\n'));
    cleanups.push(s.stop);
    const pool = new Http1Pool({ socketPath: s.path }, LIMITS);
    cleanups.push(() => pool.close());
    await expect(pool.request({ method: 'GET', path: '/', headers: {} }, aborted)).rejects.toMatchObject({ name: 'SandcellRemoteError', code: 'bad-reply', message: expect.stringMatching(/no HTTP\/1\.x status line/) });
    expect(await until(() => s.open() === 0)).toBe(true);
  });

  it('close(): a request in flight fails, kept connections are closed', async () => {
    const s = await server((r, socket) => {
      if (r.head.startsWith('GET /slow')) return;
      socket.write(ok('1'));
    });
    cleanups.push(s.stop);
    const pool = new Http1Pool({ socketPath: s.path }, LIMITS);
    await pool.request({ method: 'GET', path: '/', headers: {} }, aborted);
    const slow = pool.request({ method: 'GET', path: '/slow', headers: {} }, aborted);
    expect(await until(() => s.seen.length === 2)).toBe(true);
    pool.close();
    await expect(slow).rejects.toMatchObject({ code: 'ECONNRESET' });
    expect(await until(() => s.open() === 0)).toBe(true);
  });
});
