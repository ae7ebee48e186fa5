/**
 * `sandcell/client`: the daemon's engine with the library's own shapes. `engine.run()` takes
 * run()'s options and resolves with run()'s result; `engine.Sandbox.create()` gives a box with
 * `run()` and `destroy()`; `engine.spawn()` streams a program's stdio over a WebSocket, with
 * the shape of a SandboxProcess; option and setup errors are the library's SandboxOptionsError
 * and SandboxSetupError. Loads no native code: a client needs neither root nor the addon.
 */
import type { IncomingMessage } from 'node:http';
import { Readable, Writable } from 'node:stream';

import type { WebSocket } from 'ws';
import type { z } from 'zod';

import { bytesToJson, resultFromJson, type ErrorJson, type FileContentJson, type ResultJson } from '../daemon/wire.js';
import { SandboxOptionsError, SandboxSetupError } from '../errors.js';
import { SandcellRemoteError } from './errors.js';
import { WsReplyClock } from './frames.js';
import { Http1Pool, tlsOptions, untrusted, type TlsOptions } from './http1.js';
import { boxIdJson, boxListJson, decodeJson, errorJson, fileIdJson, healthJson, resultJson, serverFrame, versionJson } from './replies.js';
import type { EncodedOutput, FileContent, OutputEncoding, Result, RunOptions, RunResult, SandboxOptions, SandboxRunOptions, SpawnOptions } from '../index.js';

export type { BytesJson, ErrorJson, FileContentJson, OutputJson, ResultJson } from '../daemon/wire.js';
export { SandcellRemoteError } from './errors.js';
export type { TlsOptions } from './http1.js';

/**
 * The default of `maxReplyBytes`: 512 MiB. A result carries at most the daemon's output limit
 * (64 MiB by default, stdout and stderr together, up to about twice that as JSON text) and its
 * collected files (256 MiB at most, a third more in base64): under 500 MiB. A reply is decoded as
 * one JavaScript string, which V8 caps at about 512 MiB, so a larger one could not be read anyway.
 */
export const DEFAULT_MAX_REPLY_BYTES = 512 * 1024 * 1024;

/** The default of `replyTimeoutMs`: two minutes, time for 512 MiB at about 40 Mbit/s. */
export const DEFAULT_REPLY_TIMEOUT_MS = 120_000;

export interface ConnectOptions {
  /** Path of the daemon's Unix socket. */
  socket?: string;
  /** `http://host:port` (or https) of a daemon listening on TCP, or `unix:///path/to.sock`. */
  url?: string;
  /** Bearer token (required on TCP). */
  token?: string;
  /**
   * For `https://`: what to trust of the TLS terminator in front of the daemon; without it, the
   * certificate must chain to one of Node's bundled CAs.
   */
  tls?: TlsOptions;
  /**
   * Largest reply body (and WebSocket frame) read from the daemon, in bytes; a larger one fails
   * with SandcellRemoteError `reply-too-large` and its connection is closed. Default
   * `DEFAULT_MAX_REPLY_BYTES` (512 MiB): raise the daemon's output or collect limits past its
   * defaults and raise this too.
   */
  maxReplyBytes?: number;
  /**
   * Milliseconds from the first byte of a reply to its last; a reply still incomplete then fails
   * with SandcellRemoteError `reply-timeout` and its connection is closed. The wait for the reply
   * to begin is not bounded: that is the run; nor is the wait after an interim reply (`100
   * Continue` from a proxy, say), each of which is bounded on its own. Over a WebSocket the same
   * holds of each frame, and of a message sent in fragments from its first frame to its last,
   * but not of the time between them. Default `DEFAULT_REPLY_TIMEOUT_MS` (2 minutes).
   */
  replyTimeoutMs?: number;
}

/** A living box on the daemon; the same life as a local Sandbox. */
export interface RemoteSandbox extends AsyncDisposable {
  readonly id: string;
  /** box.run(): with `encoding: 'buffer'` the output comes back as Buffers, byte for byte. */
  run<Encoding extends OutputEncoding>(options: SandboxRunOptions<Encoding> & { encoding: Encoding }): Promise<RunResult<EncodedOutput<Encoding>>>;
  run(options: SandboxRunOptions): Promise<RunResult>;
  destroy(): Promise<void>;
}

/** A program running on the daemon, streamed over a WebSocket; the shape of a local SandboxProcess. */
export interface RemoteProcess {
  /** Host pid of the box's init on the daemon's machine. */
  readonly pid: number;
  readonly stdin: Writable;
  readonly stdout: Readable;
  readonly stderr: Readable;
  /** SIGKILL (the default) ends the box; other signals go to the program. False once it has ended. */
  kill(signal?: NodeJS.Signals | number): boolean;
  /** The result once the box has ended; rejects if the connection is lost first. */
  wait(): Promise<Result>;
}

/**
 * Many runs over one WebSocket to the daemon: each `run()` is a frame, answered as it ends, so
 * runs in flight at once share one connection and none pays for an HTTP request of its own.
 * Closing it (`close()`, `await using`, or `engine.close()`) aborts the runs still in flight.
 */
export interface RunSession extends AsyncDisposable {
  /**
   * run(): the library's options and result. Aborting `options.signal` cancels this run alone
   * (its box ends on the daemon) and rejects with an AbortError; the session stays open. Rejects
   * with SandcellRemoteError `closed` once the connection is gone (the daemon drained or went
   * away): open another session then. With `encoding: 'buffer'` the output comes back as
   * Buffers, byte for byte.
   */
  run<Encoding extends OutputEncoding>(options: RunOptions<Encoding> & { encoding: Encoding }): Promise<RunResult<EncodedOutput<Encoding>>>;
  run(options: RunOptions): Promise<RunResult>;
  /** Runs called and not yet settled. */
  readonly pending: number;
  /** Closes the connection; runs still in flight are aborted on the daemon and reject with an AbortError. */
  close(): Promise<void>;
}

export interface Engine {
  /** run(): with `encoding: 'buffer'` the output comes back as Buffers, byte for byte. */
  run<Encoding extends OutputEncoding>(options: RunOptions<Encoding> & { encoding: Encoding }): Promise<RunResult<EncodedOutput<Encoding>>>;
  run(options: RunOptions): Promise<RunResult>;
  /** A connection of runs (a WebSocket): resolves once it is open. */
  session(): Promise<RunSession>;
  /** spawn(): resolves once the program runs; the WebSocket lives as long as the box. */
  spawn(options: SpawnOptions): Promise<RemoteProcess>;
  Sandbox: { create(options?: SandboxOptions): Promise<RemoteSandbox> };
  files: {
    put(data: string | Uint8Array): Promise<{ id: string; size: number }>;
    get(id: string): Promise<Buffer>;
    delete(id: string): Promise<void>;
  };
  boxes(): Promise<{ id: string; ageMs: number; idleMs: number; runs: number }[]>;
  version(): Promise<{ version: string; api: number; features: string[] }>;
  health(): Promise<{ ok: boolean; draining: boolean; running: number; queued: number }>;
  /** Closes the kept-alive connections and the open sessions (their runs in flight are aborted). */
  close(): void;
}

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

function abortError(signal: AbortSignal): Error {
  return abortedBy(signal.reason);
}

function abortedBy(cause: unknown): Error {
  const e = new Error('the sandboxed run was aborted', { cause });
  e.name = 'AbortError';
  return e;
}

async function bytesOf(stdin: RunOptions['stdin']): Promise<string | Uint8Array | undefined> {
  if (!(stdin instanceof Readable)) return stdin;
  const chunks: Buffer[] = [];
  for await (const c of stdin) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c as string));
  return Buffer.concat(chunks);
}

function filesToJson(files: Record<string, FileContent> | undefined): Record<string, FileContentJson> | undefined {
  if (files === undefined || typeof files !== 'object' || files === null) return files;
  const out: Record<string, FileContentJson> = {};
  for (const [name, c] of Object.entries(files)) {
    out[name] =
      typeof c === 'string' || c instanceof Uint8Array
        ? bytesToJson(c)
        : { ...c, data: typeof c.data === 'string' || c.data instanceof Uint8Array ? bytesToJson(c.data) : c.data };
  }
  return out;
}

/** The JSON body of run()'s options; the signal stays here (it aborts the request). */
async function optionsToJson(options: RunOptions<OutputEncoding> | SandboxRunOptions<OutputEncoding> | SandboxOptions): Promise<Record<string, unknown>> {
  const { signal: _signal, ...rest } = options as RunOptions;
  const out: Record<string, unknown> = { ...rest };
  if ('stdin' in rest && rest.stdin !== undefined) {
    const b = await bytesOf(rest.stdin);
    out.stdin = b === undefined ? undefined : bytesToJson(b);
  }
  if (rest.files !== undefined) out.files = filesToJson(rest.files);
  return out;
}

/** The output a run asked for: the daemon refuses any `encoding` but its own values. */
function encodingOf(o: { encoding?: OutputEncoding }): OutputEncoding {
  return o.encoding === 'buffer' ? 'buffer' : 'utf8';
}

function fromError(r: Reply): Error {
  let e: ErrorJson['error'];
  try {
    e = decodeJson(errorJson, r.body, r.status, 'error').error;
  } catch {
    // Not the daemon's error body (a proxy's page, say): the status says enough.
    return new SandcellRemoteError(r.status, 'http', `the daemon answered ${r.status}: ${r.body.subarray(0, 200).toString('utf8')}`);
  }
  const retry = Number(r.headers['retry-after']);
  return errorOf(r.status, e, Number.isFinite(retry) ? retry : undefined);
}

/** The library's error for an error body, or the daemon's own refusal. */
function errorOf(status: number, e: ErrorJson['error'], retryAfter?: number): Error {
  if (e.code === 'invalid-options' && e.issues) return new SandboxOptionsError(e.issues);
  if (e.code === 'setup-failed' && e.stage !== undefined) {
    const err = new SandboxSetupError(e.stage, e.errno ?? 0, e.errnoCode ?? 'EIO');
    err.message = e.message;
    return err;
  }
  return new SandcellRemoteError(status, e.code, e.message, e.field, retryAfter);
}

/** Largest stdin frame sent (the daemon takes frames of up to 1 MiB, base64 included). */
const STDIN_FRAME = 256 * 1024;

/** A limit of connect()'s: a positive whole number, or its default when not given. */
function limitOf(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value <= 0) throw new TypeError(`connect(): ${name} must be a positive whole number, not ${String(value)}`);
  return value;
}

function checkTls(tls: unknown): TlsOptions {
  const pem = (v: unknown): boolean => typeof v === 'string' || Buffer.isBuffer(v);
  if (typeof tls !== 'object' || tls === null) throw new TypeError('connect(): tls must be an object ({ ca, servername })');
  const { ca, servername, ...rest } = tls as TlsOptions;
  const unknown = Object.keys(rest);
  if (unknown.length > 0) throw new TypeError(`connect(): tls.${unknown[0]} is not an option (tls takes ca and servername)`);
  if (ca !== undefined && !pem(ca) && !(Array.isArray(ca) && ca.every(pem))) throw new TypeError('connect(): tls.ca must be PEM text or a Buffer, or an array of them');
  if (servername !== undefined && (typeof servername !== 'string' || servername === '')) throw new TypeError('connect(): tls.servername must be a host name');
  return { ...(ca !== undefined ? { ca } : {}), ...(servername !== undefined ? { servername } : {}) };
}

/** A WebSocket's own error (a frame over the limit, frames it cannot read) or an untrusted certificate as the client's error. */
function frameError(e: Error & { code?: string }, maxReplyBytes: number): Error {
  if (e.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') {
    return new SandcellRemoteError(0, 'reply-too-large', `a frame from the daemon is over ${maxReplyBytes} bytes (connect()'s maxReplyBytes)`, 'maxReplyBytes', undefined, { cause: e });
  }
  if (e.code?.startsWith('WS_ERR_')) return new SandcellRemoteError(0, 'bad-reply', `the daemon's WebSocket frames are not ones the client can read: ${e.message}`, undefined, undefined, { cause: e });
  return untrusted(e);
}

/**
 * A frame from the daemon, checked; a frame that is not one ends the connection (`end` told why
 * first) and gives null.
 */
function frameOf(data: Buffer, ws: WebSocket, end: (e: Error) => void): z.input<typeof serverFrame> | null {
  try {
    return decodeJson(serverFrame, data, 0, 'frame');
  } catch (e) {
    end(e as Error);
    ws.terminate();
    return null;
  }
}

/**
 * ws, imported at the first spawn() or session(): its entry loads its server half as well (and
 * with it http, crypto and zlib), which a client that only runs programs over HTTP never uses.
 */
let wsModule: Promise<typeof import('ws')> | undefined;

/** An engine on a daemon: `{ socket }`, `{ url: 'unix:///…' }` or `{ url: 'http://…', token }`. */
export function connect(options: ConnectOptions): Engine {
  let socketPath: string | undefined = options.socket;
  let base: URL | null = null;
  if (socketPath === undefined) {
    if (options.url === undefined) throw new TypeError('connect() needs a socket or a url');
    const u = new URL(options.url);
    if (u.protocol === 'unix:') socketPath = u.pathname;
    else if (u.protocol === 'http:' || u.protocol === 'https:') base = u;
    else throw new TypeError(`connect(): unsupported url ${options.url} (unix:, http: or https:)`);
  }
  const https = base?.protocol === 'https:';
  if (options.tls !== undefined && !https) throw new TypeError('connect(): tls is for an https:// url');
  const tls = https ? checkTls(options.tls ?? {}) : null;
  const maxReplyBytes = limitOf(options.maxReplyBytes, DEFAULT_MAX_REPLY_BYTES, 'maxReplyBytes');
  const replyTimeoutMs = limitOf(options.replyTimeoutMs, DEFAULT_REPLY_TIMEOUT_MS, 'replyTimeoutMs');
  const host = base?.hostname.replace(/^\[(.*)\]$/, '$1') ?? '';
  const pool = new Http1Pool(
    socketPath !== undefined ? { socketPath } : { host, port: Number((base as URL).port || (https ? 443 : 80)), tls, authority: (base as URL).host },
    { maxBodyBytes: maxReplyBytes, timeoutMs: replyTimeoutMs },
  );
  const authorization: Record<string, string> = options.token !== undefined ? { authorization: `Bearer ${options.token}` } : {};

  // Aborting closes the connection: the daemon sees its client gone and ends the run.
  const request = (method: string, path: string, body?: Buffer | string, type = 'application/json', signal?: AbortSignal): Promise<Reply> =>
    pool.request({ method, path, headers: body === undefined ? authorization : { ...authorization, 'content-type': type }, body, signal }, abortError);

  /** A request answered by JSON of `schema` (nothing, for null), checked before it is handed on. */
  const json = async <S extends z.ZodType>(schema: S | null, what: string, method: string, path: string, value?: unknown, signal?: AbortSignal, ok = [200, 201, 204]): Promise<z.input<S>> => {
    const r = await request(method, path, value === undefined ? undefined : JSON.stringify(value), 'application/json', signal);
    if (!ok.includes(r.status)) throw fromError(r);
    return (schema === null ? undefined : decodeJson(schema, r.body, r.status, what)) as z.input<S>;
  };

  const runAt = async (path: string, o: RunOptions<OutputEncoding> | SandboxRunOptions<OutputEncoding>): Promise<RunResult<string | Buffer>> =>
    resultFromJson((await json(resultJson, 'run result', 'POST', path, await optionsToJson(o), o.signal)) as ResultJson, encodingOf(o));

  const wsUrl = socketPath !== undefined ? `ws+unix://${socketPath}:/v1/ws` : `${https ? 'wss' : 'ws'}://${base?.host ?? ''}/v1/ws`;
  const wsOptions = {
    headers: authorization,
    maxPayload: maxReplyBytes,
    ...(tls !== null ? tlsOptions(host, tls) : {}),
  };
  /** A refused upgrade: the daemon's error reply, as for any request, within the same bounds (`ms` left of its time). */
  const refused = (res: IncomingMessage, ms: number): Promise<Error> =>
    new Promise((resolve) => {
      const chunks: Buffer[] = [];
      let size = 0;
      const give = (e: Error): void => {
        clearTimeout(deadline);
        res.destroy();
        resolve(e);
      };
      const deadline = setTimeout(() => give(new SandcellRemoteError(res.statusCode ?? 0, 'reply-timeout', `the daemon's reply was not whole ${replyTimeoutMs} ms after it began (connect()'s replyTimeoutMs)`, 'replyTimeoutMs')), ms);
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > maxReplyBytes) give(new SandcellRemoteError(res.statusCode ?? 0, 'reply-too-large', `the daemon's reply has a body over ${maxReplyBytes} bytes (connect()'s maxReplyBytes)`, 'maxReplyBytes'));
        else chunks.push(c);
      });
      res.on('end', () => give(fromError({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) })));
      res.on('error', (e) => give(e));
    });

  /**
   * A WebSocket to the daemon whose replies are bounded in time as well as in size: `expired`
   * gets the error once something begun was not whole in time (the connection then ends).
   */
  const openWs = (Ws: typeof WebSocket, expired: (e: Error) => void): { ws: WebSocket; clock: WsReplyClock } => {
    const clock = new WsReplyClock(replyTimeoutMs, https, (what) => {
      const which = what === 'head' ? "reply to the WebSocket's upgrade" : 'WebSocket frame';
      expired(new SandcellRemoteError(0, 'reply-timeout', `the daemon's ${which} was not whole ${replyTimeoutMs} ms after it began (connect()'s replyTimeoutMs)`, 'replyTimeoutMs'));
      ws.terminate();
    });
    const ws = new Ws(wsUrl, { ...wsOptions, createConnection: clock.connect as unknown as typeof import('node:net').createConnection });
    ws.on('upgrade', (res: IncomingMessage) => clock.upgraded(res.socket));
    return { ws, clock };
  };

  const sessions = new Set<RunSession>();

  const session = async (): Promise<RunSession> => {
    const { WebSocket: Ws } = await (wsModule ??= import('ws'));
    return new Promise<RunSession>((resolveOpen, rejectOpen) => {
      const { ws, clock } = openWs(Ws, (e) => end(e));
      let nextId = 1;
      let open = false;
      let closedBy: Error | null = null;
      const waiting = new Map<number, { resolve: (r: RunResult<string | Buffer>) => void; reject: (e: Error) => void; signal: AbortSignal | undefined; onAbort: () => void; encoding: OutputEncoding }>();
      const settle = (id: number): ReturnType<typeof waiting.get> => {
        const w = waiting.get(id);
        if (w === undefined) return undefined;
        waiting.delete(id);
        w.signal?.removeEventListener('abort', w.onAbort);
        return w;
      };
      const end = (e: Error): void => {
        if (closedBy !== null) return;
        closedBy = e;
        sessions.delete(s);
        for (const id of [...waiting.keys()]) settle(id)?.reject(e);
        if (!open) rejectOpen(e);
      };
      const closed = new Promise<void>((resolve) => ws.once('close', () => resolve()));
      const gone = (): SandcellRemoteError => new SandcellRemoteError(0, 'closed', 'the session\'s connection is closing: open another session');
      const close = async (): Promise<void> => {
        end(abortedBy(new Error('the session was closed')));
        if (ws.readyState === ws.CONNECTING) ws.terminate();
        else if (ws.readyState === ws.OPEN) ws.close(1000, 'done');
        await closed;
      };
      let unsettled = 0;
      const runOne = async (o: RunOptions<OutputEncoding>): Promise<RunResult<string | Buffer>> => {
          const signal = o.signal;
          if (signal?.aborted) throw abortError(signal);
          const body = await optionsToJson(o);
          if (closedBy !== null) throw closedBy;
          // Closing: the daemon said it is done with this connection (it drains), or close() ran.
          if (ws.readyState !== ws.OPEN) throw gone();
          if (signal?.aborted) throw abortError(signal);
          const id = nextId++;
          return new Promise<RunResult<string | Buffer>>((resolve, reject) => {
            // The run alone is cancelled: its box ends on the daemon, whose answer is then ignored.
            const onAbort = (): void => {
              if (settle(id) === undefined) return;
              reject(abortError(signal as AbortSignal));
              if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ type: 'cancel', id }));
            };
            waiting.set(id, { resolve, reject, signal, onAbort, encoding: encodingOf(o) });
            signal?.addEventListener('abort', onAbort, { once: true });
            ws.send(JSON.stringify({ type: 'run', id, options: body }), (err) => {
              if (err) settle(id)?.reject(closedBy ?? gone());
            });
          });
      };
      const s: RunSession = {
        run: (async (o: RunOptions<OutputEncoding>): Promise<RunResult<string | Buffer>> => {
          unsettled++;
          try {
            return await runOne(o);
          } finally {
            unsettled--;
          }
        }) as RunSession['run'],
        get pending() {
          return unsettled;
        },
        close,
        [Symbol.asyncDispose]: close,
      };
      ws.on('open', () => {
        open = true;
        sessions.add(s);
        resolveOpen(s);
      });
      ws.on('unexpected-response', (_req, res) => {
        void refused(res, clock.headLeft()).then((e) => {
          end(e);
          ws.terminate();
        });
      });
      ws.on('message', (data: Buffer) => {
        const f = frameOf(data, ws, end);
        if (f === null) return;
        if (f.type === 'result') {
          const w = settle(f.id as number);
          w?.resolve(resultFromJson(f.result as ResultJson, w.encoding));
        }
        else if (f.type === 'error' && f.id !== undefined) settle(f.id as number)?.reject(errorOf(f.status, f.error));
        // An error without an id ends the connection: its close follows, and says so to every run.
        else if (f.type === 'error') end(errorOf(f.status, f.error));
      });
      ws.on('error', (e) => end(frameError(e, maxReplyBytes)));
      ws.on('close', (code, reason) => end(new SandcellRemoteError(0, 'closed', `the daemon closed the session (${code} ${reason.toString()})`)));
    });
  };

  const spawnAt = async (o: SpawnOptions): Promise<RemoteProcess> => {
    const body = await optionsToJson(o);
    const signal = o.signal;
    const { WebSocket: Ws } = await (wsModule ??= import('ws'));
    if (signal?.aborted) throw abortError(signal);
    return new Promise<RemoteProcess>((resolveStarted, rejectStarted) => {
      const { ws, clock } = openWs(Ws, (e) => finish(e));
      let started = false;
      let ended = false;
      let resolveResult!: (r: Result) => void;
      let rejectResult!: (e: Error) => void;
      const result = new Promise<Result>((resolve, reject) => {
        resolveResult = resolve;
        rejectResult = reject;
      });
      // Not waited on by every caller: a lost connection must not become an unhandled rejection.
      result.catch(() => undefined);
      // Reading from the daemon waits while a stream the caller does not read is full.
      const full = new Set<Readable>();
      const flow = (s: Readable): void => {
        full.delete(s);
        if (full.size === 0) {
          ws.resume();
          clock.resume();
        }
      };
      const stdout: Readable = new Readable({ read: () => flow(stdout) });
      const stderr: Readable = new Readable({ read: () => flow(stderr) });
      const push = (s: Readable, data: Buffer): void => {
        if (!s.push(data)) {
          full.add(s);
          ws.pause();
          clock.pause();
        }
      };
      const frame = (f: unknown, cb?: (err?: Error) => void): void => {
        if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(f), cb);
        else cb?.();
      };
      const stdin = new Writable({
        write(chunk: Buffer, _enc, cb) {
          // Input after the end of the box goes nowhere, as it would into a closed pipe.
          if (ended) return cb();
          for (let at = 0; at < chunk.length; at += STDIN_FRAME) {
            const last = at + STDIN_FRAME >= chunk.length;
            frame({ type: 'stdin', data: { base64: chunk.subarray(at, at + STDIN_FRAME).toString('base64') } }, last ? () => cb() : undefined);
          }
          if (chunk.length === 0) cb();
        },
        final(cb) {
          frame({ type: 'stdin-end' }, () => cb());
        },
      });
      const finish = (e: Error | null, r?: Result): void => {
        if (ended) return;
        ended = true;
        signal?.removeEventListener('abort', onAbort);
        stdout.push(null);
        stderr.push(null);
        if (e === null) resolveResult(r as Result);
        else {
          rejectResult(e);
          if (!started) rejectStarted(e);
        }
      };
      const onAbort = (): void => {
        finish(abortError(signal as AbortSignal));
        ws.terminate();
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      const proc = (pid: number): RemoteProcess => ({
        pid,
        stdin,
        stdout,
        stderr,
        kill(sig: NodeJS.Signals | number = 'SIGKILL') {
          if (ended || ws.readyState !== ws.OPEN) return false;
          frame({ type: 'kill', signal: sig });
          return true;
        },
        wait: () => result,
      });
      ws.on('open', () => frame({ type: 'spawn', options: body }));
      ws.on('unexpected-response', (_req, res) => {
        void refused(res, clock.headLeft()).then((e) => {
          finish(e);
          ws.terminate();
        });
      });
      ws.on('message', (data: Buffer) => {
        // Frames ws had already read when the box's end was decided (a stalled frame, a bad one) go nowhere.
        if (ended) return;
        const f = frameOf(data, ws, finish);
        if (f === null) return;
        if (f.type === 'started') {
          started = true;
          resolveStarted(proc(f.pid));
        } else if (f.type === 'stdout' || f.type === 'stderr') push(f.type === 'stdout' ? stdout : stderr, Buffer.from(f.data.base64, 'base64'));
        else if (f.type === 'exit') finish(null, resultFromJson(f.result as ResultJson));
        else if (f.type === 'error') finish(errorOf(f.status, f.error));
      });
      ws.on('error', (e) => finish(frameError(e, maxReplyBytes)));
      ws.on('close', (code, reason) => finish(new SandcellRemoteError(0, 'closed', `the daemon closed the connection before the box ended (${code} ${reason.toString()})`)));
    });
  };

  return {
    run: ((o: RunOptions<OutputEncoding>) => runAt('/v1/run', o)) as Engine['run'],
    session,
    spawn: spawnAt,
    Sandbox: {
      async create(o: SandboxOptions = {}): Promise<RemoteSandbox> {
        const { id } = await json(boxIdJson, 'box', 'POST', '/v1/boxes', await optionsToJson(o));
        let destroyed = false;
        const destroy = async (): Promise<void> => {
          if (destroyed) return;
          destroyed = true;
          await json(null, 'reply', 'DELETE', `/v1/boxes/${encodeURIComponent(id)}`);
        };
        const run = (r: SandboxRunOptions<OutputEncoding>) => runAt(`/v1/boxes/${encodeURIComponent(id)}/run`, r);
        return { id, run: run as RemoteSandbox['run'], destroy, [Symbol.asyncDispose]: destroy };
      },
    },
    files: {
      async put(data) {
        const r = await request('POST', '/v1/files', Buffer.from(data), 'application/octet-stream');
        if (r.status !== 201) throw fromError(r);
        return decodeJson(fileIdJson, r.body, r.status, 'stored file');
      },
      async get(id) {
        const r = await request('GET', `/v1/files/${encodeURIComponent(id)}`);
        if (r.status !== 200) throw fromError(r);
        return r.body;
      },
      async delete(id) {
        await json(null, 'reply', 'DELETE', `/v1/files/${encodeURIComponent(id)}`);
      },
    },
    boxes: async () => (await json(boxListJson, 'box list', 'GET', '/v1/boxes')).boxes,
    version: () => json(versionJson, 'version', 'GET', '/v1/version'),
    health: () => json(healthJson, 'health', 'GET', '/v1/health', undefined, undefined, [200, 503]),
    close: () => {
      pool.close();
      for (const s of [...sessions]) void s.close();
    },
  };
}
