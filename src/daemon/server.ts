/**
 * The daemon: the library's run() and Sandbox behind HTTP/1.1 on a Unix socket (and, with tokens,
 * on TCP). It adds only what a shared engine needs: who may ask (socket permissions, tokens),
 * what they may ask for (the policy), how much at once (admission), and that a client that goes
 * away takes its runs with it (an AbortSignal per request).
 */
import { timingSafeEqual, createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Logger } from 'pino';

import { SandboxOptionsError, SandboxSetupError, run, shutdown, type RunOptions, type SandboxOptions, type SandboxRunOptions } from '../index.js';
import { parseOptions } from '../options.js';
import { Admission } from './admission.js';
import { Boxes } from './boxes.js';
import { HttpError, badRequest } from './http-error.js';
import { Metrics } from './metrics.js';
import { applyPolicy, type Policy } from './policy.js';
import { FileStore } from './store.js';
import { API_VERSION, resultToJson, type ErrorJson } from './wire.js';

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
}

export type Transport = 'unix' | 'tcp';

interface Ctx {
  id: number;
  client: string;
  signal: AbortSignal;
  req: IncomingMessage;
}

const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
const FEATURES = ['run', 'boxes', 'files', 'metrics'];
const FILE_ID = /^sha256:[0-9a-f]{64}$/;

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

export class Daemon {
  readonly admission: Admission;
  readonly store: FileStore;
  readonly boxes: Boxes;
  readonly metrics = new Metrics();
  private readonly log: Logger;
  private readonly servers: Server[] = [];
  private readonly tokens: { name: string; digest: Buffer }[];
  private draining = false;
  private inflight = 0;
  private inflightZero: (() => void)[] = [];
  private nextId = 1;

  constructor(private readonly config: DaemonConfig) {
    this.log = config.logger;
    this.admission = new Admission(config.parallelism, config.maxQueue);
    this.store = new FileStore(config.storeMaxBytes, config.storeMaxFiles);
    this.boxes = new Boxes(config.boxIdleTtlMs, (box, why) => this.log.info({ box, why }, 'box destroyed'));
    this.tokens = [...(config.tokens ?? new Map<string, string>())].map(([name, t]) => ({ name, digest: digest(t) }));
  }

  /** An HTTP server answering on this transport; the caller listens on it. */
  server(transport: Transport): Server {
    const server = createServer({ requestTimeout: this.config.requestTimeoutMs, headersTimeout: this.config.requestTimeoutMs, connectionsCheckingInterval: Math.min(1000, this.config.requestTimeoutMs) }, (req, res) => {
      void this.handle(transport, req, res);
    });
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
      this.inflight--;
      if (this.inflight === 0) for (const f of this.inflightZero.splice(0)) f();
    }
  }

  private authenticate(transport: Transport, req: IncomingMessage): string {
    const header = req.headers.authorization;
    if (header === undefined) {
      if (transport === 'tcp') throw new HttpError(401, 'unauthorized', 'a bearer token is required', undefined, { 'www-authenticate': 'Bearer' });
      return 'local';
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
    const url = new URL(req.url ?? '/', 'http://sandcell');
    const path = url.pathname;
    const method = req.method ?? 'GET';
    const parts = path.split('/').filter((p) => p !== '').map((p) => {
      try {
        return decodeURIComponent(p);
      } catch {
        throw badRequest('bad-path', `cannot decode ${p}`);
      }
    });
    const work = method !== 'GET' && method !== 'HEAD';
    if (work && this.draining) throw new HttpError(503, 'draining', 'the daemon is shutting down', undefined, { 'retry-after': '1' });

    if (path === '/v1/version' && method === 'GET') return this.send(res, 200, { version: VERSION, api: API_VERSION, features: FEATURES });
    if (path === '/v1/health' && method === 'GET') {
      return this.send(res, this.draining ? 503 : 200, { ok: !this.draining, draining: this.draining, running: this.admission.running, queued: this.admission.queued });
    }
    if (path === '/metrics' && method === 'GET') {
      const text = this.metrics.render({
        queued: this.admission.queued,
        running: this.admission.running,
        boxes: this.boxes.size,
        storeBytes: this.store.bytes,
        storeFiles: this.store.count,
        draining: this.draining,
      });
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4', 'content-length': Buffer.byteLength(text) });
      res.end(text);
      return;
    }
    if (path === '/v1/run' && method === 'POST') {
      const body = this.decodeRun(await this.readJson(req));
      const options = applyPolicy(this.config.policy, parseOptions('run', body), body, true);
      return this.send(res, 200, resultToJson(await this.admitted(ctx, 'run', (signal) => run({ ...options, signal }))));
    }
    if (parts[0] === 'v1' && parts[1] === 'boxes') return this.routeBoxes(ctx, res, method, parts.slice(2));
    if (parts[0] === 'v1' && parts[1] === 'files') return this.routeFiles(ctx, res, method, parts.slice(2));
    throw new HttpError(404, 'not-found', `no route ${method} ${path}`);
  }

  private async routeBoxes(ctx: Ctx, res: ServerResponse, method: string, rest: string[]): Promise<void> {
    const [id, verb, ...extra] = rest;
    if (id === undefined && method === 'POST') {
      const body = this.decodeBox(await this.readJson(ctx.req));
      const options = applyPolicy(this.config.policy, parseOptions('sandbox', body), body, true);
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
      return this.send(res, 201, { id: boxId });
    }
    if (id === undefined && method === 'GET') return this.send(res, 200, { boxes: this.boxes.list(ctx.client) });
    if (id !== undefined && verb === undefined && method === 'DELETE') {
      await this.boxes.destroy(ctx.client, id);
      res.writeHead(204).end();
      return;
    }
    if (id !== undefined && verb === 'run' && extra.length === 0 && method === 'POST') {
      this.boxes.get(ctx.client, id);
      const body = this.decodeRun(await this.readJson(ctx.req));
      const options: SandboxRunOptions = applyPolicy(this.config.policy, parseOptions('sandboxRun', body), body, false);
      const result = await this.admitted(ctx, 'box run', (signal) => this.boxes.use(ctx.client, id, (box) => box.run({ ...options, signal })), id);
      return this.send(res, 200, resultToJson(result));
    }
    throw new HttpError(404, 'not-found', `no route ${method} /v1/boxes/${rest.join('/')}`);
  }

  private async routeFiles(ctx: Ctx, res: ServerResponse, method: string, rest: string[]): Promise<void> {
    const [id, ...extra] = rest;
    if (id === undefined && method === 'POST') {
      const data = await this.readBody(ctx.req);
      const fileId = this.store.put(data);
      return this.send(res, 201, { id: fileId, size: data.length });
    }
    if (id !== undefined && extra.length === 0 && FILE_ID.test(id)) {
      if (method === 'GET') {
        const data = this.store.get(id);
        if (data === undefined) throw new HttpError(404, 'not-found', `no file ${id}`);
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': data.length });
        res.end(data);
        return;
      }
      if (method === 'DELETE') {
        if (!this.store.delete(id)) throw new HttpError(404, 'not-found', `no file ${id}`);
        res.writeHead(204).end();
        return;
      }
    }
    throw new HttpError(404, 'not-found', `no route ${method} /v1/files/${rest.join('/')}`);
  }

  /** Waits for the client's turn, runs, and logs the run with its timings. */
  private async admitted<T>(ctx: Ctx, what: string, fn: (signal: AbortSignal) => Promise<T>, box?: string): Promise<T> {
    const queuedAt = process.hrtime.bigint();
    const release = await this.admission.acquire(ctx.client, ctx.signal);
    const startedAt = process.hrtime.bigint();
    let status = 'error';
    try {
      const r = await fn(ctx.signal);
      if (typeof r === 'object' && r !== null && 'status' in r) status = String(r.status);
      else status = 'ok';
      return r;
    } catch (e) {
      status = ctx.signal.aborted ? 'aborted' : e instanceof SandboxSetupError ? 'setup-error' : e instanceof SandboxOptionsError ? 'invalid-options' : 'error';
      throw e;
    } finally {
      release();
      const ended = process.hrtime.bigint();
      if (what !== 'create box') this.metrics.countRun(status, Number(ended - startedAt) / 1e9);
      this.log.info(
        { req: ctx.id, client: ctx.client, ...(box ? { box } : {}), what, status, queuedMs: Number(startedAt - queuedAt) / 1e6, runMs: Number(ended - startedAt) / 1e6 },
        what,
      );
    }
  }

  private readBody(req: IncomingMessage): Promise<Buffer> {
    const max = this.config.maxBodyBytes;
    const tooLarge = (): HttpError => new HttpError(413, 'too-large', `the body is over ${max} bytes`, undefined, { connection: 'close' });
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > max) return Promise.reject(tooLarge());
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      req.on('data', (c: Buffer) => {
        size += c.length;
        if (size > max) {
          req.removeAllListeners('data');
          req.pause();
          reject(tooLarge());
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

  private bytes(v: unknown, field: string): string | Buffer {
    if (typeof v === 'string') return v;
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
      const keys = Object.keys(v);
      const o = v as Record<string, unknown>;
      if (keys.length === 1 && typeof o.base64 === 'string') {
        if (!/^[A-Za-z0-9+/\s]*={0,2}\s*$/.test(o.base64)) throw badRequest('invalid-options', 'is not valid base64', `${field}.base64`);
        return Buffer.from(o.base64, 'base64');
      }
      if (keys.length === 1 && typeof o.fileId === 'string') {
        const data = this.store.get(o.fileId);
        if (data === undefined) throw badRequest('unknown-file', `no file ${o.fileId} in the store (it may have been evicted)`, `${field}.fileId`);
        return data;
      }
    }
    throw badRequest('invalid-options', 'must be a string, { "base64": ... } or { "fileId": ... }', field);
  }

  private decodeFiles(files: unknown): unknown {
    if (typeof files !== 'object' || files === null || Array.isArray(files)) return files;
    const out: Record<string, unknown> = {};
    for (const [name, v] of Object.entries(files)) {
      const isEntry = typeof v === 'object' && v !== null && 'data' in v;
      out[name] = isEntry ? { ...v, data: this.bytes((v as { data: unknown }).data, `files.${name}.data`) } : this.bytes(v, `files.${name}`);
    }
    return out;
  }

  /** The JSON form of run()'s (or box.run()'s) options: stdin and files to bytes, the rest as it is. */
  private decodeRun(body: Record<string, unknown>): RunOptions {
    const out: Record<string, unknown> = { ...body };
    if (body.stdin !== undefined) out.stdin = this.bytes(body.stdin, 'stdin');
    if (body.files !== undefined) out.files = this.decodeFiles(body.files);
    return out as unknown as RunOptions;
  }

  private decodeBox(body: Record<string, unknown>): SandboxOptions {
    const out: Record<string, unknown> = { ...body };
    if (body.files !== undefined) out.files = this.decodeFiles(body.files);
    return out as SandboxOptions;
  }

  private send(res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
    const text = JSON.stringify(value);
    res.writeHead(status, { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }

  private sendError(res: ServerResponse, e: unknown, id: number): void {
    let status: number;
    let body: ErrorJson;
    let headers: Record<string, string> = {};
    if (e instanceof HttpError) {
      status = e.status;
      body = e.toJson();
      headers = e.headers;
    } else if (e instanceof SandboxOptionsError) {
      status = 400;
      body = { error: { code: 'invalid-options', message: e.message, field: e.path, issues: [...e.issues] } };
    } else if (e instanceof SandboxSetupError) {
      status = 500;
      body = { error: { code: 'setup-failed', message: e.message, stage: e.stage, errno: e.errno, errnoCode: e.code } };
    } else {
      status = 500;
      body = { error: { code: 'internal', message: e instanceof Error ? e.message : String(e) } };
      this.log.error({ req: id, err: e }, 'internal error');
    }
    if (res.headersSent) {
      res.destroy();
      return;
    }
    this.send(res, status, body, headers);
  }
}
