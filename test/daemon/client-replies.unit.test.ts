// The client takes a daemon's replies as untrusted input: a fake daemon written here answers
// with crafted bytes (HTTP replies and WebSocket frames), and every malformed, oversized,
// truncated or dripped reply must end in a SandcellRemoteError of its own code, the connection
// closed, and nothing left behind in this process: no socket, no fd, no timer.
import { createHook } from 'node:async_hooks';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer as httpServer } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { WebSocketServer, type WebSocket as ServerSocket } from 'ws';

import { connect, DEFAULT_MAX_REPLY_BYTES, SandcellRemoteError, type ConnectOptions } from '../../src/client/index.js';
import { decodeJson, isResultFrame, isResultJson, resultJson, serverFrame } from '../../src/client/replies.js';
import { fakeHttpServer, jsonReply } from '../helpers/fake-http.js';

const RESULT = {
  status: 'ok',
  exitCode: 0,
  signal: null,
  stdout: 'hi\n',
  stderr: '',
  stdoutTruncated: false,
  stderrTruncated: false,
  usage: { cpuTimeMs: 1, userTimeMs: 1, systemTimeMs: 0, wallTimeMs: 2, memoryPeakBytes: null, maxRssBytes: 1024 },
  violation: null,
  limitsEnforced: { memory: 'cgroup', cpuTime: 'cgroup', processes: 'cgroup' },
};

/** A fake daemon: `answer` writes whatever it likes for each request (its path given). */
async function fakeDaemon(answer: (socket: Socket, path: string) => void): Promise<{ socket: string; stop: () => Promise<void> }> {
  const srv = await fakeHttpServer((r, socket) => answer(socket, r.head.split(' ')[1] as string));
  return { socket: srv.path, stop: srv.stop };
}

/**
 * Timers and sockets made from now on that are still alive, and the fds this process holds more
 * than now: what a case left behind. Tracked by their async resources, so that vitest's own
 * timers, which come and go meanwhile, are not counted.
 */
function watchLeaks(): () => Promise<Record<string, number>> {
  const fds = readdirSync('/proc/self/fd').length;
  const alive = new Map<number, string>();
  /** Set while the check makes a timer of its own to wait on: that one is no leak. */
  let own = false;
  const hook = createHook({
    init(id, type) {
      if (own) return;
      if (type === 'Timeout' || type === 'PIPEWRAP' || type === 'TCPWRAP' || type === 'TLSWRAP') alive.set(id, type);
    },
    destroy(id) {
      alive.delete(id);
    },
  }).enable();
  const left = (): Record<string, number> => {
    const out: Record<string, number> = {};
    for (const type of alive.values()) out[type] = (out[type] ?? 0) + 1;
    const more = readdirSync('/proc/self/fd').length - fds;
    if (more > 0) out.fds = more;
    return out;
  };
  return async () => {
    // Closing and destroying are reported a turn or two later: a bound on a wait, not a timing.
    for (let i = 0; i < 200 && Object.keys(left()).length > 0; i++) await new Promise((r) => setImmediate(r));
    // A timer's destroy is reported a turn after it fired: the wait's own timers would otherwise
    // be counted, and a wait that reached this loop could never end clean.
    for (let i = 0; i < 100 && Object.keys(left()).length > 0; i++) {
      own = true;
      const waited = new Promise((r) => setTimeout(r, 10));
      own = false;
      await waited;
    }
    hook.disable();
    return left();
  };
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Drips `text` a few bytes at a time, every 20 ms, until it is all out or the socket is gone. */
function drip(socket: Socket, text: string): void {
  let at = 0;
  const t = setInterval(() => {
    if (socket.destroyed || at >= text.length) {
      clearInterval(t);
      return;
    }
    socket.write(text.slice(at, at + 3));
    at += 3;
  }, 20);
  socket.once('close', () => clearInterval(t));
}

interface Case {
  name: string;
  /** What the fake daemon writes (and whether it then closes), or writes by itself. */
  answer: string | ((socket: Socket) => void);
  /** Which call of the engine: `version` (any JSON reply) or `run` (a run's result). */
  call?: 'version' | 'run';
  code: string;
  message: RegExp;
  field?: string;
  /** Over LIMITS. */
  options?: ConnectOptions;
}

/** A reply timeout long enough that a timer the client failed to clear is still there to be seen. */
const LIMITS: ConnectOptions = { maxReplyBytes: 4096, replyTimeoutMs: 60_000 };
const DRIP: ConnectOptions = { replyTimeoutMs: 400 };
const end = (text: string) => (socket: Socket) => socket.end(text);

const cases: Case[] = [
  { name: 'not HTTP', answer: 'SSH-2.0-OpenSSH\r\n\r\n', code: 'bad-reply', message: /no HTTP\/1\.x status line: "SSH-2\.0-OpenSSH"/ },
  { name: 'a status that is no number', answer: 'HTTP/1.1 2OO OK\r\ncontent-length: 0\r\n\r\n', code: 'bad-reply', message: /no HTTP\/1\.x status line/ },
  { name: 'a status of two digits', answer: 'HTTP/1.1 20 OK\r\n\r\n', code: 'bad-reply', message: /no HTTP\/1\.x status line/ },
  { name: 'a header line without a colon', answer: 'HTTP/1.1 200 OK\r\nno colon here\r\n\r\n', code: 'bad-reply', message: /a malformed header line "no colon here"/ },
  { name: 'a folded header line', answer: 'HTTP/1.1 200 OK\r\nx-a: 1\r\n folded: 2\r\n\r\n', code: 'bad-reply', message: /a malformed header line/ },
  { name: 'a content-length that is no number', answer: 'HTTP/1.1 200 OK\r\ncontent-length: 12abc\r\n\r\n', code: 'bad-reply', message: /a bad content-length "12abc"/ },
  { name: 'a negative content-length', answer: 'HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n', code: 'bad-reply', message: /a bad content-length "-1"/ },
  { name: 'two different content-lengths', answer: 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\n{}', code: 'bad-reply', message: /a bad content-length "2, 3"/ },
  { name: 'an overflowing content-length', answer: 'HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999\r\n\r\n', code: 'bad-reply', message: /a content-length past 2\^53/ },
  { name: 'a content-length over maxReplyBytes', answer: 'HTTP/1.1 200 OK\r\ncontent-length: 4097\r\n\r\n', code: 'reply-too-large', message: /a body over 4096 bytes \(connect\(\)'s maxReplyBytes\)/, field: 'maxReplyBytes' },
  { name: 'a body to the end of the connection over maxReplyBytes', answer: (s) => s.write(`HTTP/1.1 200 OK\r\n\r\n${'x'.repeat(5000)}`), code: 'reply-too-large', message: /a body over 4096 bytes/, field: 'maxReplyBytes' },
  { name: 'a chunk size that is no number', answer: 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n', code: 'bad-reply', message: /a bad chunk size "zz"/ },
  { name: 'a negative chunk size', answer: 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n', code: 'bad-reply', message: /a bad chunk size "-5"/ },
  { name: 'an overflowing chunk size', answer: 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nfffffffffffffffff\r\n', code: 'bad-reply', message: /a chunk size past 2\^52/ },
  { name: 'chunks over maxReplyBytes', answer: `HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n800\r\n${'x'.repeat(2048)}\r\n801\r\n`, code: 'reply-too-large', message: /a body over 4096 bytes/, field: 'maxReplyBytes' },
  { name: 'a chunk size line without end', answer: `HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1;${'e'.repeat(5000)}`, code: 'bad-reply', message: /a chunk size line over 4096 bytes/ },
  { name: 'a chunk not followed by CRLF', answer: 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\n{}xx\r\n0\r\n\r\n', code: 'bad-reply', message: /a chunk not followed by CRLF/ },
  { name: 'a chunked body that ends early', answer: end('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\n{"ve'), code: 'closed', message: /within its chunked body, after 4 bytes/ },
  { name: 'a chunked body without its last chunk', answer: end('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\n{}\r\n'), code: 'closed', message: /within its chunked body, after 2 bytes/ },
  { name: 'a body shorter than its content-length', answer: end('HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n{"v'), code: 'closed', message: /after 3 of the 10 bytes of its body/ },
  { name: 'a connection closed within the head', answer: end('HTTP/1.1 200 OK\r\ncontent-'), code: 'closed', message: /within its head/ },
  { name: 'a connection destroyed within the body', answer: (s) => s.write('HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n{', () => s.destroy()), code: 'closed', message: /after 1 of the 10 bytes/ },
  { name: 'a head over 64 KiB', answer: `HTTP/1.1 200 OK\r\nx-big: ${'a'.repeat(70_000)}\r\n\r\n`, code: 'reply-too-large', message: /a head over 65536 bytes/ },
  { name: 'interim replies without end', answer: 'HTTP/1.1 102 Processing\r\n\r\n'.repeat(3000), code: 'reply-too-large', message: /over 100 interim \(1xx\) replies before it/ },
  { name: 'interim replies over 64 KiB', answer: `HTTP/1.1 103 Early Hints\r\nlink: ${'a'.repeat(30_000)}\r\n\r\n`.repeat(3), code: 'reply-too-large', message: /a head over 65536 bytes/ },
  { name: 'an interim reply that drips', answer: (s) => drip(s, `HTTP/1.1 100 Continue\r\n${'x-slow: 1\r\n'.repeat(100)}\r\n`), code: 'reply-timeout', message: /not whole 400 ms after it began/, field: 'replyTimeoutMs', options: DRIP },
  { name: 'a protocol switch not asked for', answer: `HTTP/1.1 101 Switching Protocols\r\nupgrade: h2c\r\n\r\n${jsonReply('{"version":"1.0.0","api":1,"features":[]}')}`, code: 'bad-reply', message: /a 101 Switching Protocols the client did not ask for/ },
  { name: 'too many header lines', answer: `HTTP/1.1 200 OK\r\n${'x-n: 1\r\n'.repeat(200)}content-length: 0\r\n\r\n`, code: 'reply-too-large', message: /over 128 header lines/ },
  { name: 'trailers over 64 KiB', answer: `HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\n${'x-t: 1234567890\r\n'.repeat(5000)}\r\n`, code: 'reply-too-large', message: /a head and trailers over 65536 bytes/ },
  { name: 'a head that drips', answer: (s) => drip(s, `HTTP/1.1 200 OK\r\n${'x-slow: 1\r\n'.repeat(100)}\r\n`), code: 'reply-timeout', message: /not whole 400 ms after it began/, field: 'replyTimeoutMs', options: DRIP },
  { name: 'a chunked body that drips', answer: (s) => drip(s, `HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n${'1\r\nx\r\n'.repeat(200)}0\r\n\r\n`), code: 'reply-timeout', message: /not whole 400 ms/, field: 'replyTimeoutMs', options: DRIP },
  { name: 'a reply that is not JSON', answer: jsonReply('<html>hello</html>'), code: 'bad-reply', message: /the daemon's version is not what the client expects: not JSON/ },
  { name: 'an empty JSON reply', answer: 'HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n', code: 'bad-reply', message: /the daemon's version is not what the client expects: not JSON/ },
  { name: 'a version of the wrong type', answer: jsonReply('{"version":1,"api":1,"features":[]}'), code: 'bad-reply', message: /version: Invalid input: expected string, received number/ },
  { name: 'a run result without its fields', call: 'run', answer: jsonReply('{"status":"ok"}'), code: 'bad-reply', message: /the daemon's run result is not what the client expects: exitCode: .*expected number/ },
  { name: 'a run result of an unknown status', call: 'run', answer: jsonReply(JSON.stringify({ ...RESULT, status: 'great' })), code: 'bad-reply', message: /status: Invalid option/ },
  { name: 'a run result with a wrong-typed usage', call: 'run', answer: jsonReply(JSON.stringify({ ...RESULT, usage: { ...RESULT.usage, cpuTimeMs: 'fast' } })), code: 'bad-reply', message: /usage\.cpuTimeMs: Invalid input: expected number/ },
  { name: 'a run result that is an array', call: 'run', answer: jsonReply('[]'), code: 'bad-reply', message: /\(root\): Invalid input: expected object, received array/ },
];

describe('the client and a daemon answering malformed replies', () => {
  it.each(cases)('$name: SandcellRemoteError $code, nothing left', async (c) => {
    const leaks = watchLeaks();
    const d = await fakeDaemon((socket) => (typeof c.answer === 'string' ? socket.write(c.answer) : c.answer(socket)));
    cleanups.push(d.stop);
    const engine = connect({ socket: d.socket, ...LIMITS, ...c.options });
    const call = c.call === 'run' ? engine.run({ command: ['/bin/true'] }) : engine.version();
    const e = await call.catch((err: unknown) => err);
    expect(e).toBeInstanceOf(SandcellRemoteError);
    expect(e).toMatchObject({ code: c.code, message: expect.stringMatching(c.message) });
    if (c.field !== undefined) expect((e as SandcellRemoteError).field).toBe(c.field);
    engine.close();
    await d.stop();
    cleanups.pop();
    expect(await leaks()).toEqual({});
  });

  it('a well-formed reply in the same bounds is read, and the connection kept', async () => {
    const d = await fakeDaemon((socket, path) => {
      if (path === '/v1/run') socket.write(jsonReply(JSON.stringify({ ...RESULT, network: { connections: [] } })));
      else socket.write(`HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n${Buffer.byteLength('{"version":"1.0.0","api":1,"features":[]}').toString(16)}\r\n{"version":"1.0.0","api":1,"features":[]}\r\n0\r\nx-trailer: 1\r\n\r\n`);
    });
    cleanups.push(d.stop);
    const engine = connect({ socket: d.socket, ...LIMITS });
    cleanups.push(() => engine.close());
    expect(await engine.version()).toEqual({ version: '1.0.0', api: 1, features: [] });
    // Checked, not rewritten: a field the client's shape does not name still reaches the caller.
    expect(await engine.run({ command: ['/bin/true'] })).toEqual({ ...RESULT, network: { connections: [] } });
  });

  it('interim replies are skipped, and the reply timed from its own first byte: not from theirs', async () => {
    const leaks = watchLeaks();
    const version = '{"version":"1.0.0","api":1,"features":[]}';
    const d = await fakeDaemon((socket) => {
      socket.write('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\nx-a: 1\r\n\r\n');
      // Later than the bound after them: the run's own time.
      setTimeout(() => socket.write(`HTTP/1.1 103 Early Hints\r\n\r\n${jsonReply(version)}`), 1000);
    });
    cleanups.push(d.stop);
    const engine = connect({ socket: d.socket, ...LIMITS, ...DRIP });
    expect(await engine.version()).toEqual(JSON.parse(version));
    expect(await engine.version()).toEqual(JSON.parse(version));
    engine.close();
    await d.stop();
    cleanups.pop();
    expect(await leaks()).toEqual({});
  });

  it('connect() refuses limits that are no positive whole number, and TLS options on a plain url', () => {
    expect(() => connect({ socket: '/x', maxReplyBytes: 0 })).toThrow(/maxReplyBytes must be a positive whole number, not 0/);
    expect(() => connect({ socket: '/x', maxReplyBytes: 1.5 })).toThrow(/maxReplyBytes/);
    expect(() => connect({ socket: '/x', replyTimeoutMs: -1 })).toThrow(/replyTimeoutMs must be a positive whole number, not -1/);
    expect(() => connect({ url: 'http://127.0.0.1:1', tls: { ca: 'x' } })).toThrow(/tls is for an https:\/\/ url/);
    expect(() => connect({ url: 'https://127.0.0.1:1', tls: { ca: 7 as unknown as string } })).toThrow(/tls\.ca must be PEM text/);
    expect(() => connect({ url: 'https://127.0.0.1:1', tls: { rejectUnauthorized: false } as never })).toThrow(/tls\.rejectUnauthorized is not an option/);
    expect(DEFAULT_MAX_REPLY_BYTES).toBe(512 * 1024 * 1024);
  });
});

/** A fake daemon's WebSocket endpoint: `onFrame` answers each frame the client sends, through `ws` or in raw bytes on `raw`. */
async function fakeWs(onFrame: (ws: ServerSocket, frame: { type: string; id?: number }, raw: Duplex) => void): Promise<{ socket: string; stop: () => Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'sandcell-client-ws-'));
  const path = join(dir, 'd.sock');
  const wss = new WebSocketServer({ noServer: true });
  const srv = httpServer();
  srv.on('upgrade', (req, socket, head) => wss.handleUpgrade(req, socket, head, (ws) => ws.on('message', (d: Buffer) => onFrame(ws, JSON.parse(d.toString()) as { type: string; id?: number }, socket))));
  await new Promise<void>((r) => srv.listen(path, r));
  return {
    socket: path,
    stop: async () => {
      for (const ws of wss.clients) ws.terminate();
      srv.closeAllConnections();
      await new Promise<void>((r) => srv.close(() => r()));
      wss.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

describe('the client and a daemon sending malformed WebSocket frames', () => {
  const frames: { name: string; mode: 'session' | 'spawn'; send: (ws: ServerSocket, id: number) => void; code: string; message: RegExp }[] = [
    { name: 'a session frame over maxReplyBytes', mode: 'session', send: (ws, id) => ws.send(JSON.stringify({ type: 'result', id, result: { ...RESULT, stdout: 'x'.repeat(5000) } })), code: 'reply-too-large', message: /a frame from the daemon is over 4096 bytes/ },
    { name: 'a session frame that is not JSON', mode: 'session', send: (ws) => ws.send('hello'), code: 'bad-reply', message: /the daemon's frame is not what the client expects: not JSON/ },
    { name: 'a session result without its fields', mode: 'session', send: (ws, id) => ws.send(JSON.stringify({ type: 'result', id, result: { status: 'ok' } })), code: 'bad-reply', message: /result\.exitCode/ },
    { name: 'a frame of an unknown type', mode: 'session', send: (ws) => ws.send(JSON.stringify({ type: 'surprise' })), code: 'bad-reply', message: /type: Invalid discriminator value/ },
    { name: 'a spawn output frame over maxReplyBytes', mode: 'spawn', send: (ws) => ws.send(JSON.stringify({ type: 'stdout', data: { base64: 'A'.repeat(8000) } })), code: 'reply-too-large', message: /over 4096 bytes/ },
    { name: 'a started frame without a pid', mode: 'spawn', send: (ws) => ws.send(JSON.stringify({ type: 'started' })), code: 'bad-reply', message: /pid: Invalid input: expected number/ },
    {
      name: 'output that is not base64',
      mode: 'spawn',
      send: (ws) => {
        ws.send(JSON.stringify({ type: 'started', pid: 1 }));
        ws.send(JSON.stringify({ type: 'stdout', data: { base64: '%%%' } }));
      },
      code: 'bad-reply',
      message: /data\.base64: is not valid base64/,
    },
  ];

  it.each(frames)('$name: SandcellRemoteError $code, nothing left', async (c) => {
    const leaks = watchLeaks();
    const d = await fakeWs((ws, f) => c.send(ws, f.id ?? 0));
    cleanups.push(d.stop);
    const engine = connect({ socket: d.socket, ...LIMITS });
    let e: unknown;
    if (c.mode === 'session') {
      const s = await engine.session();
      e = await s.run({ command: ['/bin/true'] }).catch((err: unknown) => err);
    } else {
      e = await engine
        .spawn({ command: ['/bin/cat'] })
        .then((p) => p.wait())
        .catch((err: unknown) => err);
    }
    expect(e).toBeInstanceOf(SandcellRemoteError);
    expect(e).toMatchObject({ code: c.code, message: expect.stringMatching(c.message) });
    engine.close();
    await d.stop();
    cleanups.pop();
    expect(await leaks()).toEqual({});
  });
});

/** A server's frame (unmasked) of `text`, final or not: RFC 6455's header, then the payload. */
function rawFrame(text: string, fin = true, opcode = 1): Buffer {
  const payload = Buffer.from(text);
  const head = payload.length < 126 ? Buffer.from([(fin ? 0x80 : 0) | opcode, payload.length]) : Buffer.from([(fin ? 0x80 : 0) | opcode, 126, payload.length >> 8, payload.length & 0xff]);
  return Buffer.concat([head, payload]);
}

describe('the client and a daemon whose WebSocket replies stall', () => {
  const STALL: ConnectOptions = { replyTimeoutMs: 300 };
  const result = (id: number): string => JSON.stringify({ type: 'result', id, result: RESULT });
  const stalls: { name: string; mode: 'session' | 'spawn' | 'spawned'; send: (raw: Duplex, id: number) => void }[] = [
    { name: 'half a session result frame', mode: 'session', send: (raw, id) => raw.write(rawFrame(result(id)).subarray(0, 40)) },
    { name: 'a frame header cut within its length', mode: 'session', send: (raw) => raw.write(Buffer.from([0x81, 126, 0x01])) },
    { name: 'the first fragment of a message', mode: 'session', send: (raw, id) => raw.write(rawFrame(result(id).slice(0, 30), false)) },
    {
      name: 'a fragment, a ping, and no more of the message',
      mode: 'session',
      send: (raw, id) => {
        raw.write(rawFrame(result(id).slice(0, 30), false));
        raw.write(rawFrame('', true, 9));
      },
    },
    { name: 'half a frame before the started frame', mode: 'spawn', send: (raw) => raw.write(rawFrame(JSON.stringify({ type: 'started', pid: 7 })).subarray(0, 10)) },
    {
      name: 'half an output frame after the started one',
      mode: 'spawned',
      send: (raw) => raw.write(Buffer.concat([rawFrame(JSON.stringify({ type: 'started', pid: 7 })), rawFrame(JSON.stringify({ type: 'stdout', data: { base64: 'aGk=' } })).subarray(0, 20)])),
    },
  ];

  it.each(stalls)('$name: SandcellRemoteError reply-timeout, the connection closed, nothing left', async (c) => {
    const leaks = watchLeaks();
    let closed = 0;
    const d = await fakeWs((_ws, f, raw) => {
      raw.once('close', () => closed++);
      c.send(raw, f.id ?? 0);
    });
    cleanups.push(d.stop);
    const engine = connect({ socket: d.socket, ...LIMITS, ...STALL });
    let e: unknown;
    if (c.mode === 'session') {
      const s = await engine.session();
      e = await s.run({ command: ['/bin/true'] }).catch((err: unknown) => err);
    } else if (c.mode === 'spawn') {
      e = await engine.spawn({ command: ['/bin/cat'] }).catch((err: unknown) => err);
    } else {
      const p = await engine.spawn({ command: ['/bin/cat'] });
      expect(p.pid).toBe(7);
      e = await p.wait().catch((err: unknown) => err);
    }
    expect(e).toBeInstanceOf(SandcellRemoteError);
    expect(e).toMatchObject({ code: 'reply-timeout', field: 'replyTimeoutMs', message: expect.stringMatching(/the daemon's WebSocket frame was not whole 300 ms after it began/) });
    // The client closed it: the fake daemon kept it open.
    for (let i = 0; i < 200 && closed === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(closed).toBe(1);
    engine.close();
    await d.stop();
    cleanups.pop();
    expect(await leaks()).toEqual({});
  });

  it('an upgrade whose reply stalls within its head: reply-timeout, nothing left', async () => {
    const leaks = watchLeaks();
    const d = await fakeDaemon((socket) => socket.write('HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n'));
    cleanups.push(d.stop);
    const engine = connect({ socket: d.socket, ...LIMITS, ...STALL });
    const e = await engine.spawn({ command: ['/bin/cat'] }).catch((err: unknown) => err);
    expect(e).toMatchObject({ name: 'SandcellRemoteError', code: 'reply-timeout', message: expect.stringMatching(/the daemon's reply to the WebSocket's upgrade was not whole 300 ms/) });
    engine.close();
    await d.stop();
    cleanups.pop();
    expect(await leaks()).toEqual({});
  });

  it('over TCP too: a session and a spawn on a daemon at http://127.0.0.1', async () => {
    const leaks = watchLeaks();
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise((r) => wss.once('listening', r));
    wss.on('connection', (ws) =>
      ws.on('message', (d: Buffer) => {
        const f = JSON.parse(d.toString()) as { type: string; id?: number };
        if (f.type === 'run') ws.send(result(f.id ?? 0));
        if (f.type === 'spawn') {
          ws.send(JSON.stringify({ type: 'started', pid: 7 }));
          ws.send(JSON.stringify({ type: 'exit', result: RESULT }));
        }
      }),
    );
    const engine = connect({ url: `http://127.0.0.1:${(wss.address() as { port: number }).port}`, token: 't', ...STALL });
    const s = await engine.session();
    expect(await s.run({ command: ['/bin/true'] })).toEqual(RESULT);
    await s.close();
    const p = await engine.spawn({ command: ['/bin/true'] });
    p.stdout.resume();
    expect(await p.wait()).toEqual(RESULT);
    engine.close();
    for (const ws of wss.clients) ws.terminate();
    await new Promise((r) => wss.close(r));
    expect(await leaks()).toEqual({});
  });

  it('a frame left half read while the caller does not read its output is not timed: the client stopped reading, not the daemon', async () => {
    const leaks = watchLeaks();
    const chunk = Buffer.alloc(8192, 'x');
    const d = await fakeWs((_ws, f, raw) => {
      if (f.type !== 'spawn') return;
      const output = Array.from({ length: 30 }, () => rawFrame(JSON.stringify({ type: 'stdout', data: { base64: chunk.toString('base64') } })));
      const exit = rawFrame(JSON.stringify({ type: 'exit', result: { ...RESULT, stdout: '' } }));
      // The client's stdout fills and it stops reading, with the exit frame half read.
      raw.write(Buffer.concat([rawFrame(JSON.stringify({ type: 'started', pid: 7 })), ...output, exit.subarray(0, 10)]));
      setTimeout(() => raw.write(exit.subarray(10)), 600);
    });
    cleanups.push(d.stop);
    const engine = connect({ socket: d.socket, ...STALL });
    const p = await engine.spawn({ command: ['/bin/cat'] });
    await new Promise((r) => setTimeout(r, 1000));
    const read = (async () => {
      let n = 0;
      for await (const c of p.stdout) n += (c as Buffer).length;
      return n;
    })();
    expect(await p.wait()).toMatchObject({ status: 'ok' });
    expect(await read).toBe(30 * 8192);
    engine.close();
    await d.stop();
    cleanups.pop();
    expect(await leaks()).toEqual({});
  });

  it('a frame in pieces, a message in fragments with a ping between them, each whole within the bound, after a wait longer than it: read', async () => {
    const leaks = watchLeaks();
    const later = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
    const d = await fakeWs((_ws, f, raw) => {
      void (async () => {
        // Nothing begun for longer than the bound: the run's own time, not a stalled reply.
        await later(700);
        const ping = rawFrame('are you there', true, 9);
        raw.write(ping.subarray(0, 5));
        await later(100);
        raw.write(ping.subarray(5));
        await later(400);
        const text = result(f.id ?? 0);
        raw.write(rawFrame(text.slice(0, 20), false));
        await later(100);
        raw.write(rawFrame('', true, 9));
        await later(100);
        raw.write(rawFrame(text.slice(20), true, 0));
      })();
    });
    cleanups.push(d.stop);
    const engine = connect({ socket: d.socket, ...LIMITS, ...STALL });
    const s = await engine.session();
    expect(await s.run({ command: ['/bin/true'] })).toEqual(RESULT);
    await s.close();
    engine.close();
    await d.stop();
    cleanups.pop();
    expect(await leaks()).toEqual({});
  });
});

describe("the client's quick check of a run result, against the result's schema", () => {
  /** A result with every field the schema names, the optional ones included. */
  const FULL = { ...RESULT, violation: { syscall: 'ptrace', nr: 101, arch: 'x86_64' }, files: { 'a.txt': 'aGk=' }, fileErrors: { 'b.txt': 'too large' } };
  /** Each field in turn takes each of these (undefined: the field left out); 1e400 is what JSON.parse makes of it. */
  const VALUES: unknown[] = [undefined, null, 0, -1, 1.5, 2 ** 53, 1e400, -1e400, '', 'ok', 'signaled', 'cgroup', 'rlimit', 'x', true, false, [], ['x'], {}, { a: 'b' }, { a: 1 }];
  const leaves = (v: unknown, at: string[] = []): string[][] =>
    typeof v === 'object' && v !== null ? [at, ...Object.entries(v).flatMap(([k, c]) => leaves(c, [...at, k]))] : [at];
  const withValue = (root: unknown, path: string[], value: unknown): unknown => {
    if (path.length === 0) return value;
    const copy = structuredClone(root) as Record<string, unknown>;
    let o = copy;
    for (const k of path.slice(0, -1)) o = o[k] as Record<string, unknown>;
    const last = path[path.length - 1] as string;
    if (value === undefined) delete o[last];
    else o[last] = value;
    return copy;
  };
  const disagreements = (root: unknown, quick: (v: unknown) => boolean, schema: { safeParse(v: unknown): { success: boolean } }): string[] => {
    const out: string[] = [];
    for (const path of leaves(root))
      for (const value of VALUES) {
        const v = withValue(root, path, value);
        if (quick(v) !== schema.safeParse(v).success) out.push(`${path.join('.') || '(root)'} = ${String(JSON.stringify(value))}: quick ${quick(v)}`);
      }
    return out;
  };

  it('names every field of the schema, and accepts exactly what the schema accepts, field by field', () => {
    // A field the schema gains and this sample lacks fails here first: the quick check must learn it too.
    expect(Object.keys(FULL).sort()).toEqual(Object.keys(resultJson.shape).sort());
    expect(Object.keys(FULL.usage).sort()).toEqual(Object.keys(resultJson.shape.usage.shape).sort());
    expect(Object.keys(FULL.limitsEnforced).sort()).toEqual(Object.keys(resultJson.shape.limitsEnforced.shape).sort());
    expect(Object.keys(FULL.violation).sort()).toEqual(Object.keys(resultJson.shape.violation.unwrap().shape).sort());
    expect(isResultJson(FULL)).toBe(true);
    expect(isResultJson(RESULT)).toBe(true);
    expect(disagreements(FULL, isResultJson, resultJson)).toEqual([]);
    expect(disagreements(RESULT, isResultJson, resultJson)).toEqual([]);
  });

  it("takes a run's output as text or as { base64 } alone (a run given encoding: 'buffer'), as the schema does", () => {
    const BYTES = { ...FULL, stdout: { base64: '//4AQQ==' }, stderr: { base64: '' } };
    expect(isResultJson(BYTES)).toBe(true);
    expect(disagreements(BYTES, isResultJson, resultJson)).toEqual([]);
    for (const stdout of [{ base64: 'not base64!' }, { base64: 'AA==', more: 'x' }, { base64: ['AA=='] }, { data: 'AA==' }, { base64: 'AA==\n' }]) {
      expect({ stdout, quick: isResultJson({ ...RESULT, stdout }) }).toEqual({ stdout, quick: resultJson.safeParse({ ...RESULT, stdout }).success });
    }
    expect(isResultFrame({ type: 'result', id: 1, result: BYTES })).toBe(true);
  });

  it('accepts exactly the result frames the frame schema accepts, and no other frame', () => {
    const frame = { type: 'result', id: 7, result: FULL };
    expect(isResultFrame(frame)).toBe(true);
    expect(disagreements(frame, isResultFrame, serverFrame)).toEqual([]);
    for (const id of ['x'.repeat(256), 'x'.repeat(257), -3, 1.5, 2 ** 53, null]) {
      expect(isResultFrame({ ...frame, id })).toBe(serverFrame.safeParse({ ...frame, id }).success);
    }
    // Every other frame is zod's to check.
    expect(isResultFrame({ type: 'exit', result: FULL })).toBe(false);
  });

  it('a run\'s answer that the quick check passes is not walked by zod; one it refuses is, and its error names the field', () => {
    const resultWalk = vi.spyOn(resultJson, 'safeParse');
    const frameWalk = vi.spyOn(serverFrame, 'safeParse');
    try {
      expect(decodeJson(resultJson, Buffer.from(JSON.stringify(FULL)), 200, 'run result')).toEqual(FULL);
      expect(decodeJson(serverFrame, Buffer.from(JSON.stringify({ type: 'result', id: 1, result: RESULT })), 0, 'frame')).toMatchObject({ id: 1 });
      expect(resultWalk).not.toHaveBeenCalled();
      expect(frameWalk).not.toHaveBeenCalled();
      const bad = { ...RESULT, usage: { ...RESULT.usage, wallTimeMs: 'soon' } };
      expect(() => decodeJson(resultJson, Buffer.from(JSON.stringify(bad)), 200, 'run result')).toThrow(/usage\.wallTimeMs/);
      expect(resultWalk).toHaveBeenCalledTimes(1);
    } finally {
      resultWalk.mockRestore();
      frameWalk.mockRestore();
    }
  });
});
