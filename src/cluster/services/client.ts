/**
 * The client side of services: declaring them (create, scale, rm), seeing where their replicas
 * run (ls), and calling them. It needs no native code and runs no box: any process that reaches
 * the Redis can use it.
 */
import { randomBytes } from 'node:crypto';

import type { Redis, RedisOptions } from 'ioredis';
import type { z } from 'zod';

import { SandboxOptionsError } from '../../errors.js';
import { ReconnectGate } from '../connection.js';
import { redisClient } from './redis.js';
import { serviceKeys, type ServiceKeys } from './keys.js';
import {
  crashSchema,
  MAX_REPLICAS,
  parseStored,
  replicasSchema,
  replySchema,
  serviceName,
  serviceOptionsSchema,
  slotSchema,
  specSchema,
  type Crash,
  type ServiceOptions,
  type ServiceSpec,
  type Slot,
} from './schema.js';
import { Scripts } from './scripts.js';

/** A service: what each replica runs (the options of `spawn()`, as JSON), how many, where. */
export interface CreateServiceOptions extends ServiceOptions {
  name: string;
  replicas: number;
  /** A profile of each worker's sandcell.yaml the options go over. */
  profile?: string;
  /** Labels a worker must have to run a replica (`{ images: 'debian' }`). */
  constraints?: Record<string, string>;
  /** Longest call or reply line in bytes (default 1 MiB). A longer reply restarts the replica. */
  maxLine?: number;
}

export interface ReplicaStatus {
  slot: number;
  id: string;
  worker: string;
  /** Whether that worker still heart-beats. */
  workerAlive: boolean;
  state: Slot['state'];
  /** Redis time (ms) it entered this state. */
  since: number;
  pid?: number;
  restarts: number;
  lastCrash?: Crash;
}

export interface ServiceStatus {
  name: string;
  desired: number;
  /** Replicas running on live workers, within the desired count. */
  running: number;
  replicas: ReplicaStatus[];
  /** The last crash of any replica, or the last replica lost with its worker. */
  lastCrash: Crash | null;
  /** Values in Redis that were not valid, each naming its field (they are left out above). */
  problems: string[];
}

export type ServiceErrorCode = 'exists' | 'no-service' | 'timeout' | 'lost' | 'bad-reply' | 'too-long' | 'removed' | 'closed';

/** A service operation or call failed; `service` names it, `code` says why. */
export class ServiceError extends Error {
  override readonly name = 'ServiceError';
  readonly service: string;
  readonly code: ServiceErrorCode | string;

  constructor(service: string, code: ServiceErrorCode | string, message: string) {
    super(message);
    this.service = service;
    this.code = code;
  }
}

const DEFAULT_MAX_LINE = 1024 * 1024;
const DEFAULT_CALL_TIMEOUT_MS = 30_000;

interface Pending {
  service: string;
  resolve(value: unknown): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

/** zod's issues as the library's, each naming its field (an unknown key is named itself). */
function optionIssues(error: z.ZodError, prefix: string[] = []): SandboxOptionsError {
  return new SandboxOptionsError(
    error.issues.flatMap((i) => {
      const at = [...prefix, ...i.path.map(String)];
      if (i.code === 'unrecognized_keys') return i.keys.map((key) => ({ path: [...at, key].join('.'), message: 'is not an option of a service' }));
      return [{ path: at.join('.'), message: i.message }];
    }),
  );
}

export class ServicesClient {
  private readonly keys: ServiceKeys;
  private readonly redis: Redis;
  private readonly scripts: Scripts;
  /** Holds the BRPOP for replies, so calls are never queued behind it. */
  private readonly replies: Redis;
  private readonly client = randomBytes(9).toString('base64url');
  private readonly pending = new Map<string, Pending>();
  private listening: Promise<void> | null = null;
  private closed = false;
  private readonly reconnects = new ReconnectGate();

  constructor(opts: { connection: RedisOptions | string; prefix: string }) {
    if (typeof opts.prefix !== 'string' || opts.prefix === '') throw new TypeError('prefix must be a non-empty string');
    this.keys = serviceKeys(opts.prefix);
    this.redis = redisClient(opts.connection, this.reconnects);
    this.replies = this.redis.duplicate();
    this.replies.on('error', () => {});
    this.scripts = new Scripts(this.redis, this.keys);
  }

  /** Declares a service; its replicas start on the workers' next reconcile. */
  async create(options: CreateServiceOptions): Promise<void> {
    const { name, replicas, profile, constraints, maxLine, ...rest } = options ?? ({} as CreateServiceOptions);
    const issues = [];
    const n = serviceName.safeParse(name);
    if (!n.success) issues.push(...optionIssues(n.error, ['name']).issues);
    const r = replicasSchema.safeParse(replicas);
    if (!r.success) issues.push({ path: 'replicas', message: `must be a whole number from 0 to ${MAX_REPLICAS}` });
    const spec = specSchema.safeParse({
      v: 1,
      name: n.success ? n.data : 'x',
      options: rest,
      maxLine: maxLine ?? DEFAULT_MAX_LINE,
      ...(profile !== undefined ? { profile } : {}),
      ...(constraints !== undefined ? { constraints } : {}),
    });
    if (!spec.success) issues.push(...optionIssues(spec.error).issues.map((i) => ({ ...i, path: i.path.replace(/^options\./, '') })));
    if (issues.length > 0) throw new SandboxOptionsError(issues);
    const data = spec.data as ServiceSpec;
    const k = this.keys;
    const created = await this.scripts.run('svcCreate', [k.service(data.name), k.names], [data.name, JSON.stringify(data), r.data as number]);
    if (Number(created) === 0) throw new ServiceError(data.name, 'exists', `service ${data.name} exists already`);
  }

  /** Sets the desired replica count. */
  async scale(name: string, replicas: number): Promise<void> {
    this.checkName(name);
    const r = replicasSchema.safeParse(replicas);
    if (!r.success) throw new SandboxOptionsError([{ path: 'replicas', message: `must be a whole number from 0 to ${MAX_REPLICAS}` }]);
    const done = await this.scripts.run('svcScale', [this.keys.service(name)], [r.data]);
    if (Number(done) === 0) throw new ServiceError(name, 'no-service', `no service named ${name}`);
  }

  /** Removes a service: its workers stop its replicas, calls still queued fail with `removed`. */
  async rm(name: string): Promise<void> {
    this.checkName(name);
    const k = this.keys;
    const done = await this.scripts.run('svcRemove', [k.service(name), k.names, k.queue(name), k.events(name)], [name]);
    if (Number(done) === 0) throw new ServiceError(name, 'no-service', `no service named ${name}`);
  }

  /** Every service: desired and running counts, and each replica's worker and state. */
  async ls(): Promise<ServiceStatus[]> {
    const k = this.keys;
    const [names, workers, time] = await Promise.all([this.redis.smembers(k.names), this.redis.call('ZRANGE', k.workers, 0, -1, 'WITHSCORES'), this.redis.time()]);
    const now = Number(time[0]) * 1000 + Math.floor(Number(time[1]) / 1000);
    // RESP3 gives [member, score] pairs, RESP2 one flat list.
    const flat = (workers as unknown[]).flat() as unknown[];
    const expiry = new Map<string, number>();
    for (let i = 0; i + 1 < flat.length; i += 2) expiry.set(String(flat[i]), Number(flat[i + 1]));
    const out: ServiceStatus[] = [];
    for (const name of names.sort()) {
      const [service, slots, crash] = await Promise.all([this.redis.hgetall(k.service(name)), this.redis.hgetall(k.slots(name)), this.redis.hget(k.events(name), 'lastCrash')]);
      const problems: string[] = [];
      const desired = replicasSchema.safeParse(Number(service.replicas));
      if (!desired.success) problems.push(`the replica count of service ${name} in Redis is invalid: replicas: ${JSON.stringify(service.replicas ?? null)}`);
      const replicas: ReplicaStatus[] = [];
      for (const [field, raw] of Object.entries(slots)) {
        try {
          const slot = Number(field);
          if (!Number.isSafeInteger(slot) || slot < 0) throw new Error(`a slot of service ${name} in Redis is invalid: slot: ${JSON.stringify(field)}`);
          const s = parseStored(slotSchema, raw, `slot ${slot} of service ${name}`);
          replicas.push({ slot, ...s, workerAlive: (expiry.get(s.worker) ?? 0) >= now });
        } catch (e) {
          problems.push((e as Error).message);
        }
      }
      replicas.sort((a, b) => a.slot - b.slot);
      let lastCrash: Crash | null = null;
      if (crash !== null) {
        try {
          lastCrash = parseStored(crashSchema, crash, `the last crash of service ${name}`);
        } catch (e) {
          problems.push((e as Error).message);
        }
      }
      const want = desired.success ? desired.data : 0;
      const running = replicas.filter((r) => r.slot < want && r.workerAlive && r.state === 'running').length;
      out.push({ name, desired: want, running, replicas, lastCrash, problems });
    }
    return out;
  }

  /**
   * Sends `value` as one JSON line to a replica of `name` and resolves with its one JSON line of
   * reply, parsed. A call whose replica is lost before it answers is retried once on another.
   */
  call(name: string, value: unknown, opts: { timeout?: number } = {}): Promise<unknown> {
    if (this.closed) return Promise.reject(new ServiceError(name, 'closed', 'the services client is closed'));
    this.checkName(name);
    const line = JSON.stringify(value);
    if (line === undefined) return Promise.reject(new TypeError('value must be representable as JSON'));
    const timeout = opts.timeout ?? DEFAULT_CALL_TIMEOUT_MS;
    if (!Number.isFinite(timeout) || timeout <= 0) return Promise.reject(new TypeError('timeout must be a positive number of milliseconds'));
    const id = randomBytes(12).toString('base64url');
    const envelope = { v: 1, id, reply: this.keys.reply(this.client), attempt: 0, deadline: Date.now() + timeout, line };
    const k = this.keys;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new ServiceError(name, 'timeout', `service ${name} did not answer within ${timeout} ms`));
      }, timeout);
      this.pending.set(id, { service: name, resolve, reject, timer });
      this.listen();
      this.scripts.run('svcEnqueue', [k.service(name), k.queue(name)], [JSON.stringify(envelope)]).then(
        (queued) => {
          if (Number(queued) === 0) this.settle(id, new ServiceError(name, 'no-service', `no service named ${name}`));
        },
        (e: Error) => this.settle(id, e),
      );
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.reconnects.close();
    for (const id of [...this.pending.keys()]) {
      const p = this.pending.get(id) as Pending;
      this.settle(id, new ServiceError(p.service, 'closed', 'the services client is closed'));
    }
    await this.listening;
    await Promise.all([this.redis, this.replies].map((r) => r.quit().catch(() => r.disconnect())));
  }

  private checkName(name: string): void {
    const n = serviceName.safeParse(name);
    if (!n.success) throw optionIssues(n.error, ['name']);
  }

  private settle(id: string, outcome: Error | { value: unknown }): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    if (outcome instanceof Error) p.reject(outcome);
    else p.resolve(outcome.value);
  }

  /** Takes replies while calls wait for them. */
  private listen(): void {
    this.listening ??= (async () => {
      const key = this.keys.reply(this.client);
      while (!this.closed && this.pending.size > 0) {
        let got: string[];
        try {
          const first = await this.replies.brpop(key, 1);
          if (first === null) continue;
          got = [first[1], ...((await this.replies.rpop(key, 256)) ?? [])];
        } catch {
          continue;
        }
        for (const raw of got) this.deliver(raw);
      }
    })().finally(() => {
      this.listening = null;
      if (!this.closed && this.pending.size > 0) this.listen();
    });
  }

  private deliver(raw: string): void {
    let reply;
    try {
      reply = parseStored(replySchema, raw, 'a reply');
    } catch {
      // Not one of ours to settle: a reply that does not parse names no call it could fail.
      return;
    }
    const p = this.pending.get(reply.id);
    if (!p) return;
    if (!reply.ok) {
      this.settle(reply.id, new ServiceError(p.service, reply.code, reply.message));
      return;
    }
    try {
      this.settle(reply.id, { value: JSON.parse(reply.line) });
    } catch {
      this.settle(reply.id, new ServiceError(p.service, 'bad-reply', `service ${p.service}: a reply that is not JSON`));
    }
  }
}
