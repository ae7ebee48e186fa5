/**
 * The daemon: the library's run() and Sandbox behind HTTP/1.1 on a Unix socket (and, with tokens,
 * on TCP). It adds only what a shared engine needs: who may ask (socket permissions, tokens),
 * what they may ask for (the policy), how much at once (admission), and that a client that goes
 * away takes its runs with it (an AbortSignal per request).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { timingSafeEqual, createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocketServer } from 'ws';
import type { z } from 'zod';

import { SandboxOptionsError, SandboxSetupError, checkOptions, checkSandboxOptions, checkSandboxRunOptions, onDebugEvent, parseOptions, peerCredentials, run, shutdown, type DebugEvent, type Result, type RunOptions, type SandboxOptions, type SandboxRunOptions } from '../index.js';
import { Admission } from './admission.js';
import { Boxes } from './boxes.js';
import { HttpError, badRequest } from './http-error.js';
import { Metrics } from './metrics.js';
import { openApiDocument } from './openapi.js';
import { applyPolicy, withCeilings, type Policy } from './policy.js';
import { matchRoute, type Operation } from './routes.js';
import { FILE_ID, boxRequest, boxRunRequest, bytesJson, checkBody, filesJson, runRequest, spawnRequest } from './schemas.js';
import { MAX_CLIENT_FRAME, serveSpawn } from './spawn-ws.js';
import { FileStore } from './store.js';
import { API_VERSION, resultToJson, type BytesJson, type ErrorJson } from './wire.js';

export interface DaemonConfig {
  policy: Policy;
  /** Bearer tokens by client name; required on TCP, optional on the socket (it names the client). */
  tokens: Map<string, string> | null;
  parallelism: number;
  maxQueue: number;
  maxBodyBytes: number;
  boxIdleTtlMs: number;
  storeMaxBytes: number;
  storeMaxFiles: number;
  /** Time a client has to send a whole request (not to wait for its answer). */
  requestTimeoutMs: number;
  logger: Logger;
  /**
   * What answers /v1/run (default: run() here; `serve --cluster` sends runs to a farm). Options
   * asking for `encoding: 'buffer'` are answered with the output as Buffers, sent as bytes.
   */
  runner?: (options: RunOptions) => Promise<Result<string | Buffer>>;
}

export type Transport = 'unix' | 'tcp';

interface Ctx {
  id: number;
  client: string;
  signal: AbortSignal;
  req: IncomingMessage;
}

/** A request's admitted work, as the library's debug events are attributed to it. */
interface Working {
  req: number;
  box?: string;
  /** Pids of the runs it started, forgotten when it ends. */
  pids: number[];
}

const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
const FEATURES = ['run', 'boxes', 'files', 'metrics', 'spawn', 'openapi'];

/**
 * How long the rest of a refused body is still read, and thrown away. Closing at once, with the
 * client's bytes unread, resets the connection under a client that is still sending: it would
 * see a broken pipe instead of the 413. Past this the connection is cut, whatever is left.
 */
const REFUSED_BODY_LINGER_MS = 1000;

function refuseBody(req: IncomingMessage, max: number): HttpError {
  req.removeAllListeners('data');
  req.resume();
  const cut = setTimeout(() => req.socket.destroy(), REFUSED_BODY_LINGER_MS);
  cut.unref();
  const done = (): void => clearTimeout(cut);
  req.once('end', done);
  req.socket.once('close', done);
  return new HttpError(413, 'too-large', `the body is over ${max} bytes`);
}

/**
 * A path of plain segments (letters, digits, `_`, `-`, `:`: every route, box id and file id), with
 * no query: as a URL it resolves and decodes to itself, so it is split as it is.
 */
const PLAIN_PATH = /^(?:\/[\w:-]*)+$/;

/** A request target's path and its decoded segments, as a URL resolves them (dot segments, escapes, the query dropped). */
function pathOf(target: string): { pathname: string; parts: string[] } {
  if (PLAIN_PATH.test(target)) return { pathname: target, parts: target.split('/').filter((p) => p !== '') };
  const { pathname } = new URL(target, 'http://sandcell');
  const parts = pathname
    .split('/')
    .filter((p) => p !== '')
    .map((p) => {
      try {
        return decodeURIComponent(p);
      } catch {
        throw badRequest('bad-path', `cannot decode ${p}`);
      }
    });
  return { pathname, parts };
}

type Handler = (ctx: Ctx, res: ServerResponse, params: Record<string, string>) => Promise<void> | void;

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

export class Daemon {
  readonly admission: Admission;
  readonly store: FileStore;
  readonly boxes: Boxes;
  readonly metrics = new Metrics(() => ({
    queued: this.admission.queued,
    running: this.admission.running,
    boxes: this.boxes.size,
    storeBytes: this.store.bytes,
    storeFiles: this.store.count,
    draining: this.draining,
  }));
  private readonly log: Logger;
  private readonly servers: Server[] = [];
  private readonly tokens: { name: string; digest: Buffer }[];
  private draining = false;
  private inflight = 0;
  private inflightZero: (() => void)[] = [];
  /** WebSockets told when the daemon drains (a connection of runs closes once its runs end). */
  private readonly drainHooks = new Set<() => void>();
  private nextId = 1;
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: MAX_CLIENT_FRAME });
  private readonly openapi: Record<string, unknown> = openApiDocument(VERSION);
  /** The request a library call is made for, so the library's debug events name it. */
  private readonly working = new AsyncLocalStorage<Working>();
  /** Runs started and not yet ended, by pid: their end event may come from outside the request's context. */
  private readonly startedRuns = new Map<number, Working>();
  private readonly stopDebugEvents: (() => void) | null = null;
  /**
   * The client a Unix connection's peer is, read once per connection: the kernel records the
   * peer's credentials at connect() and never changes them, and reading them is a system call
   * and a native call on every kept-alive request otherwise.
   */
  private readonly peers = new WeakMap<Socket, string>();

  constructor(private readonly config: DaemonConfig) {
    this.log = config.logger;
    this.admission = new Admission(config.parallelism, config.maxQueue);
    this.store = new FileStore(config.storeMaxBytes, config.storeMaxFiles);
    this.boxes = new Boxes(config.boxIdleTtlMs, (box, why) => this.log.info({ box, why }, 'box destroyed'));
    this.tokens = [...(config.tokens ?? new Map<string, string>())].map(([name, t]) => ({ name, digest: digest(t) }));
    // Listened to only when logged: without a listener the library builds no events at all.
    if (this.log.isLevelEnabled('debug')) this.stopDebugEvents = onDebugEvent((e) => this.debugEvent(e));
  }

  /**
   * The library's debug event as a debug line: a run's start and end and a box's build carry the
   * request (and box) they were for; a warm box built ahead or a cgroup parent opened is nobody's.
   */
  private debugEvent(e: DebugEvent): void {
    let w = this.working.getStore();
    if (e.event === 'start') {
      if (w) {
        this.startedRuns.set(e.pid, w);
        w.pids.push(e.pid);
      }
    } else if (e.event === 'end') {
      w ??= this.startedRuns.get(e.pid);
      this.startedRuns.delete(e.pid);
    } else if (e.event !== 'box') w = undefined;
    // The event's fields are kept apart: its `pid` (the box's) and `box` (new, warm, living)
    // are not the line's `pid` (the daemon's) and `box` (the id a client holds).
    const { event, ...fields } = e;
    this.log.debug({ ...(w ? { req: w.req, ...(w.box ? { box: w.box } : {}) } : {}), library: fields }, `library ${event}`);
  }

  /** An HTTP server answering on this transport; the caller listens on it. */
  server(transport: Transport): Server {
    const server = createServer({ requestTimeout: this.config.requestTimeoutMs, headersTimeout: this.config.requestTimeoutMs, connectionsCheckingInterval: Math.min(1000, this.config.requestTimeoutMs) }, (req, res) => {
      void this.handle(transport, req, res);
    });
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.upgrade(transport, req, socket, head));
    this.servers.push(server);
    return server;
  }

  /**
   * Drains: new work is refused with 503 while what runs or waits finishes; then the living
   * boxes are destroyed, the servers closed and what the library keeps between runs given back.
   */
  async drain(): Promise<void> {
    this.draining = true;
    this.log.info({ inflight: this.inflight, boxes: this.boxes.size }, 'draining');
    for (const close of this.drainHooks) close();
    if (this.inflight > 0) await new Promise<void>((resolve) => this.inflightZero.push(resolve));
    await this.boxes.destroyAll('draining');
    await Promise.all(
      this.servers.map(
        (s) =>
          new Promise<void>((resolve) => {
            s.close(() => resolve());
            s.closeAllConnections();
          }),
      ),
    );
    await shutdown();
    this.stopDebugEvents?.();
    this.log.info('drained');
  }

  private async handle(transport: Transport, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const id = this.nextId++;
    const started = process.hrtime.bigint();
    const ac = new AbortController();
    let client: string | null = null;
    // 'close' before the answer was written: the client went away (or half-closed its socket
    // before reading the answer). Its runs end, its place in the queue is given up.
    res.on('close', () => {
      if (!res.writableFinished) ac.abort(new Error('the client went away'));
      this.metrics.countRequest(res.writableFinished ? res.statusCode : 499);
      this.log.info(
        { req: id, client, method: req.method, url: req.url, status: res.writableFinished ? res.statusCode : null, clientGone: !res.writableFinished, ms: Number(process.hrtime.bigint() - started) / 1e6 },
        'request',
      );
    });
    this.inflight++;
    try {
      client = this.authenticate(transport, req);
      await this.route({ id, client, signal: ac.signal, req }, res);
    } catch (e) {
      if (ac.signal.aborted) return;
      this.sendError(res, e, id);
    } finally {
      this.workDone();
    }
  }

  private workDone(): void {
    this.inflight--;
    if (this.inflight === 0) for (const f of this.inflightZero.splice(0)) f();
  }

  /**
   * Who asks: a token names its client; on the socket without one, the client is the peer's uid
   * as the kernel recorded it at connect(), so local users are told apart (boxes, fairness).
   * A peer whose credentials cannot be read is refused.
   */
  private authenticate(transport: Transport, req: IncomingMessage): string {
    const header = req.headers.authorization;
    if (header === undefined) {
      if (transport === 'tcp') throw new HttpError(401, 'unauthorized', 'a bearer token is required', undefined, { 'www-authenticate': 'Bearer' });
      const known = this.peers.get(req.socket);
      if (known !== undefined) return known;
      try {
        const who = `uid:${peerCredentials(req.socket).uid}`;
        this.peers.set(req.socket, who);
        return who;
      } catch (e) {
        throw new HttpError(401, 'unauthorized', `the socket peer's credentials cannot be read (${(e as Error).message})`);
      }
    }
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
    const given = m ? digest(m[1] as string) : null;
    let found: string | null = null;
    // Every token is compared, in constant time, whichever matches.
    for (const t of this.tokens) if (given !== null && timingSafeEqual(given, t.digest)) found = t.name;
    if (found === null) throw new HttpError(401, 'unauthorized', 'the token is not valid', undefined, { 'www-authenticate': 'Bearer' });
    return `token:${found}`;
  }

  private async route(ctx: Ctx, res: ServerResponse): Promise<void> {
    const { req } = ctx;
    const { pathname, parts } = pathOf(req.url ?? '/');
    const method = req.method ?? 'GET';
    const work = method !== 'GET' && method !== 'HEAD';
    if (work && this.draining) throw new HttpError(503, 'draining', 'the daemon is shutting down', undefined, { 'retry-after': '1' });
    const found = matchRoute(method, parts);
    if (found === null) throw new HttpError(404, 'not-found', `no route ${method} ${pathname}`);
    await this.handlers[found.route.operation as Operation](ctx, res, found.params);
  }

  /** What answers each route of the table (src/daemon/routes.ts); a route without one does not compile. */
  private readonly handlers: Record<Operation, Handler> = {
    version: (_ctx, res) => this.send(res, 200, { version: VERSION, api: API_VERSION, features: FEATURES }),
    health: (_ctx, res) =>
      this.send(res, this.draining ? 503 : 200, { ok: !this.draining, draining: this.draining, running: this.admission.running, queued: this.admission.queued }),
    openapi: (_ctx, res) => this.send(res, 200, this.openapi),
    metrics: async (_ctx, res) => {
      const { text, contentType } = await this.metrics.render();
      res.writeHead(200, { 'content-type': contentType, 'content-length': Buffer.byteLength(text) });
      res.end(text);
    },
    run: async (ctx, res) => {
      const options = this.checkRun(runRequest, await this.readJson(ctx.req), ctx.signal);
      const runner = this.config.runner ?? run;
      this.send(res, 200, resultToJson(await this.admitted(ctx, 'run', () => runner(options))));
    },
    spawn: () => {
      throw new HttpError(426, 'upgrade-required', 'GET /v1/ws is a WebSocket: send Connection: Upgrade and Upgrade: websocket', undefined, { upgrade: 'websocket', connection: 'Upgrade' });
    },
    createBox: async (ctx, res) => {
      const checked = this.wireChecked(boxRequest, await this.readJson(ctx.req), (b) => checkSandboxOptions(withCeilings(this.config.policy, b as SandboxOptions)));
      const judged = applyPolicy(this.config.policy, parseOptions('sandbox', checked), checked, false);
      const options = judged === checked ? checked : checkSandboxOptions(judged);
      if (this.boxes.countOf(ctx.client) >= this.config.policy.maxBoxesPerClient) {
        throw new HttpError(403, 'forbidden', `a client may hold at most ${this.config.policy.maxBoxesPerClient} boxes`);
      }
      const boxId = await this.admitted(ctx, 'create box', async (signal) => {
        const made = await this.boxes.create(ctx.client, options);
        // The client went away while its box was being built: nobody would ever delete it.
        if (signal.aborted) await this.boxes.destroy(ctx.client, made);
        return made;
      });
      this.log.info({ req: ctx.id, box: boxId, client: ctx.client }, 'box created');
      this.send(res, 201, { id: boxId });
    },
    listBoxes: (ctx, res) => this.send(res, 200, { boxes: this.boxes.list(ctx.client) }),
    destroyBox: async (ctx, res, { id }) => {
      await this.boxes.destroy(ctx.client, id as string);
      res.writeHead(204).end();
    },
    boxRun: async (ctx, res, params) => {
      const id = params.id as string;
      this.boxes.get(ctx.client, id);
      // Checked with the request's signal in: a copy spread to add it would be walked again.
      const checked = this.wireChecked(boxRunRequest, await this.readJson(ctx.req), (b) => checkSandboxRunOptions({ ...(b as SandboxRunOptions), signal: ctx.signal }));
      const judged = applyPolicy(this.config.policy, parseOptions('sandboxRun', checked), checked, false);
      const options = judged === checked ? checked : checkSandboxRunOptions(judged);
      const result = await this.admitted(ctx, 'box run', () => this.boxes.use(ctx.client, id, (box) => box.run(options)), id);
      this.send(res, 200, resultToJson(result));
    },
    putFile: async (ctx, res) => {
      const data = await this.readBody(ctx.req);
      const fileId = this.store.put(data);
      this.send(res, 201, { id: fileId, size: data.length });
    },
    getFile: (_ctx, res, { id }) => {
      const data = FILE_ID.test(id as string) ? this.store.get(id as string) : undefined;
      if (data === undefined) throw new HttpError(404, 'not-found', `no file ${id}`);
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': data.length });
      res.end(data);
    },
    deleteFile: (_ctx, res, { id }) => {
      if (!FILE_ID.test(id as string) || !this.store.delete(id as string)) throw new HttpError(404, 'not-found', `no file ${id}`);
      res.writeHead(204).end();
    },
  };

  /**
   * A WebSocket upgrade: only /v1/ws, authenticated as a request is, refused while draining.
   * The connection counts as work in flight until its spawn has ended.
   */
  private upgrade(transport: Transport, req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const id = this.nextId++;
    const started = process.hrtime.bigint();
    socket.on('error', () => undefined);
    let client: string | null = null;
    try {
      client = this.authenticate(transport, req);
      if (new URL(req.url ?? '/', 'http://sandcell').pathname !== '/v1/ws') throw new HttpError(404, 'not-found', `no WebSocket at ${req.url}`);
      if (this.draining) throw new HttpError(503, 'draining', 'the daemon is shutting down', undefined, { 'retry-after': '1' });
    } catch (e) {
      const { status, body, headers } = this.reply(e, id);
      const text = JSON.stringify(body);
      const lines = [`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}`, 'content-type: application/json', `content-length: ${Buffer.byteLength(text)}`, 'connection: close'];
      for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
      socket.end(`${lines.join('\r\n')}\r\n\r\n${text}`);
      this.metrics.countRequest(status);
      this.log.info({ req: id, client, method: req.method, url: req.url, status }, 'request');
      return;
    }
    const who = client;
    this.inflight++;
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      const ac = new AbortController();
      ws.on('close', () => ac.abort(new Error('the client went away')));
      const ctx: Ctx = { id, client: who, signal: ac.signal, req };
      this.metrics.countRequest(101);
      void serveSpawn(ws, {
        signal: ac.signal,
        spawnTimeoutMs: this.config.requestTimeoutMs,
        options: (body) => {
          if (this.draining) throw new HttpError(503, 'draining', 'the daemon is shutting down', undefined, { 'retry-after': '1' });
          if (typeof body !== 'object' || body === null || Array.isArray(body)) throw badRequest('invalid-options', 'options must be an object', 'options');
          return this.checkRun(spawnRequest, body as Record<string, unknown>, ac.signal);
        },
        admitted: (fn) => this.admitted(ctx, 'spawn', fn),
        run: async (body, cancel) => {
          if (this.draining) throw new HttpError(503, 'draining', 'the daemon is shutting down', undefined, { 'retry-after': '1' });
          if (typeof body !== 'object' || body === null || Array.isArray(body)) throw badRequest('invalid-options', 'options must be an object', 'options');
          // The run ends when its connection drops or its client cancels it, whichever comes first.
          const one: Ctx = { ...ctx, signal: AbortSignal.any([ac.signal, cancel]) };
          const options = this.checkRun(runRequest, body as Record<string, unknown>, one.signal);
          return resultToJson(await this.admitted(one, 'run', () => run(options)));
        },
        onDrain: (close) => {
          this.drainHooks.add(close);
          return () => this.drainHooks.delete(close);
        },
        reply: (e) => this.reply(e, id),
      }).finally(() => {
        this.log.info({ req: id, client: who, method: req.method, url: req.url, status: 101, ms: Number(process.hrtime.bigint() - started) / 1e6 }, 'request');
        this.workDone();
      });
    });
  }

  /** Waits for the client's turn, runs, and logs the run with its timings. */
  private async admitted<T>(ctx: Ctx, what: string, fn: (signal: AbortSignal) => Promise<T>, box?: string): Promise<T> {
    const queuedAt = process.hrtime.bigint();
    const release = await this.admission.acquire(ctx.client, ctx.signal);
    const startedAt = process.hrtime.bigint();
    let status = 'error';
    const working: Working = { req: ctx.id, ...(box ? { box } : {}), pids: [] };
    try {
      // Entered only when the events are logged: an AsyncLocalStorage in use costs every promise
      // of the process a hook.
      const r = await (this.stopDebugEvents ? this.working.run(working, () => fn(ctx.signal)) : fn(ctx.signal));
      if (typeof r === 'object' && r !== null && 'status' in r) status = String(r.status);
      else status = 'ok';
      return r;
    } catch (e) {
      status = ctx.signal.aborted ? 'aborted' : e instanceof SandboxSetupError ? 'setup-error' : e instanceof SandboxOptionsError ? 'invalid-options' : 'error';
      throw e;
    } finally {
      release();
      for (const pid of working.pids) this.startedRuns.delete(pid);
      const ended = process.hrtime.bigint();
      // The line is a synchronous write (into a journal's socket or a pipe, a wake-up of its
      // reader): written on the next tick, after the caller's continuation (a microtask) has
      // written the reply, so the client does not wait for it; the run is counted there too.
      process.nextTick(() => {
        if (what !== 'create box') this.metrics.countRun(status, Number(ended - startedAt) / 1e9);
        this.log.info({ req: ctx.id, client: ctx.client, ...(box ? { box } : {}), what, status, queuedMs: Number(startedAt - queuedAt) / 1e6, runMs: Number(ended - startedAt) / 1e6 }, what);
      });
    }
  }

  private readBody(req: IncomingMessage): Promise<Buffer> {
    const max = this.config.maxBodyBytes;
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > max) return Promise.reject(refuseBody(req, max));
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      req.on('data', (c: Buffer) => {
        size += c.length;
        if (size > max) {
          reject(refuseBody(req, max));
          return;
        }
        chunks.push(c);
      });
      req.on('end', () => resolve(Buffer.concat(chunks, size)));
      req.on('error', reject);
      req.on('aborted', () => reject(new Error('the client went away')));
    });
  }

  private async readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
    const type = req.headers['content-type'] ?? '';
    if (!/^application\/json\b/i.test(type)) throw new HttpError(415, 'unsupported-media-type', 'the body must be application/json');
    const body = await this.readBody(req);
    let value: unknown;
    try {
      value = JSON.parse(body.toString('utf8'));
    } catch (e) {
      throw badRequest('malformed-json', `the body is not valid JSON (${(e as Error).message})`);
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw badRequest('invalid-options', 'options must be an object');
    return value as Record<string, unknown>;
  }

  /** Bytes in a JSON form its schema let through. */
  private bytes(v: BytesJson, field: string): string | Buffer {
    if (typeof v === 'string') return v;
    if ('base64' in v) return Buffer.from(v.base64, 'base64');
    const data = this.store.get(v.fileId);
    if (data === undefined) throw badRequest('unknown-file', `no file ${v.fileId} in the store (it may have been evicted)`, `${field}.fileId`);
    return data;
  }

  private decodeFiles(files: unknown): unknown {
    if (typeof files !== 'object' || files === null || Array.isArray(files)) return files;
    const out: Record<string, unknown> = {};
    for (const [name, v] of Object.entries(files)) {
      const isEntry = typeof v === 'object' && v !== null && 'data' in v;
      out[name] = isEntry ? { ...v, data: this.bytes((v as { data: BytesJson }).data, `files.${name}.data`) } : this.bytes(v as BytesJson, `files.${name}`);
    }
    return out;
  }

  /** The JSON form of run()'s (or box.run()'s) options, checked by its schema: stdin and files to bytes, the rest as it is. */
  private decodeRun(schema: z.ZodType, body: Record<string, unknown>): RunOptions {
    checkBody(schema, body);
    return this.decodeBytes(body);
  }

  private decodeBytes(body: Record<string, unknown>): RunOptions {
    const out: Record<string, unknown> = { ...body };
    if (body.stdin !== undefined) out.stdin = this.bytes(body.stdin as BytesJson, 'stdin');
    if (body.files !== undefined) out.files = this.decodeFiles(body.files);
    return out as unknown as RunOptions;
  }

  /**
   * A run's (or a spawn's, `schema` its wire form) JSON options decoded and checked by the
   * library, with the limits the policy sets and the request's signal, then judged by the policy:
   * `run()` and `spawn()` take them without a second check. Options the policy changes (a bind
   * source given as its real path) are checked again.
   */
  private checkRun(schema: z.ZodObject, json: Record<string, unknown>, signal: AbortSignal): RunOptions {
    const checked = this.wireChecked(schema, json, (body) => checkOptions({ ...withCeilings(this.config.policy, body), signal }));
    const options = applyPolicy(this.config.policy, parseOptions('run', checked), checked, false);
    return options === checked ? checked : checkOptions(options);
  }

  /**
   * JSON options decoded and handed to `check`, a walk of the library's schema. The wire schema
   * is the library's with stdin and files in their JSON forms and no signal, so once those forms
   * are checked the library's schema checks everything else the wire schema would: the body is
   * walked by one schema, not two (the second walk was a quarter of the daemon's CPU on a run's
   * path, with its caches cold after idling). Whatever is refused is checked by the wire schema
   * first, so the error is the one that schema gives, as when it checked every body. A field the
   * wire schema does not take (a signal; a spawn's stdin, which comes in frames) goes to it first.
   */
  private wireChecked<T>(schema: z.ZodObject, json: Record<string, unknown>, check: (body: RunOptions) => T): T {
    const formsOk = Object.keys(json).every((k) => Object.hasOwn(schema.shape, k)) && (json.stdin === undefined || typeof json.stdin === 'string' || bytesJson.safeParse(json.stdin).success) && (json.files === undefined || filesJson.safeParse(json.files).success);
    if (!formsOk) return check(this.decodeRun(schema, json));
    try {
      return check(this.decodeBytes(json));
    } catch (e) {
      checkBody(schema, json);
      throw e;
    }
  }

  private send(res: ServerResponse, status: number, value: unknown, headers?: Record<string, string>): void {
    const text = JSON.stringify(value);
    // Names and values in one flat list: node:http takes it as it is, with no object to copy and walk per reply.
    const head = ['content-type', 'application/json', 'content-length', String(Buffer.byteLength(text))];
    if (headers !== undefined) for (const [k, v] of Object.entries(headers)) head.push(k, v);
    res.writeHead(status, head);
    res.end(text);
  }

  /** The status, body and headers an error is answered with. */
  private reply(e: unknown, id: number): { status: number; body: ErrorJson; headers: Record<string, string> } {
    if (e instanceof HttpError) return { status: e.status, body: e.toJson(), headers: e.headers };
    if (e instanceof SandboxOptionsError) return { status: 400, body: { error: { code: 'invalid-options', message: e.message, field: e.path, issues: [...e.issues] } }, headers: {} };
    if (e instanceof SandboxSetupError) {
      return { status: 500, body: { error: { code: 'setup-failed', message: e.message, stage: e.stage, errno: e.errno, errnoCode: e.code } }, headers: {} };
    }
    this.log.error({ req: id, err: e }, 'internal error');
    return { status: 500, body: { error: { code: 'internal', message: e instanceof Error ? e.message : String(e) } }, headers: {} };
  }

  private sendError(res: ServerResponse, e: unknown, id: number): void {
    const { status, body, headers } = this.reply(e, id);
    if (res.headersSent) {
      res.destroy();
      return;
    }
    this.send(res, status, body, headers);
  }
}
