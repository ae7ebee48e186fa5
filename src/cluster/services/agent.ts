/**
 * The service agent every worker runs: it heart-beats, reconciles each service's slots (claims a
 * free one, gives up those it should no longer hold), runs the replicas it holds as `spawn()`ed
 * boxes and answers calls with them.
 *
 * Calls travel as envelopes on a Redis list per service. A replica free for work moves the next
 * one (BLMOVE) onto its own in-flight list, writes it to the program, and moves the reply to the
 * caller's reply list in one script that first removes the call from its in-flight list. So a
 * call is always in exactly one place: queued, in flight on one replica (where a reconciler finds
 * it when that replica's worker stops heart-beating, and puts it back once), or answered. BullMQ
 * jobs would give the same at-least-once taking, but their stall detection is a lock time per
 * job, a reply would still need its own path, and a call would cost several round trips more;
 * a list per service costs one BLMOVE and one script per call, and an idle replica taking the next
 * call is the load balancing.
 */
import { randomBytes } from 'node:crypto';

import type { Redis, RedisOptions } from 'ioredis';

import { parseDuration, spawn, type Duration, type SandboxProcess, type SpawnOptions } from '../../index.js';
import { loadProfiles, withProfile, type Profiles } from '../../profiles/index.js';
import { serviceKeys, type ServiceKeys } from './keys.js';
import { LineReader, LineTooLongError } from './lines.js';
import {
  envelopeSchema,
  labelsSchema,
  parseStored,
  specSchema,
  type Crash,
  type Envelope,
  type ServiceSpec,
  type Slot,
} from './schema.js';
import { ReconnectGate, settled } from '../connection.js';
import { redisClient } from './redis.js';
import { Scripts } from './scripts.js';

export interface HeartbeatOptions {
  /** How often the worker heart-beats and reconciles (default 1s). */
  interval?: Duration;
  /** Silence after which a worker is presumed dead and its replicas started elsewhere (default 10s). */
  timeout?: Duration;
}

export interface ServiceAgentOptions {
  /** Redis: a URL, a Unix socket path or ioredis options. */
  connection: RedisOptions | string;
  /** What every key of this cluster starts with. */
  prefix: string;
  worker: { name: string; labels: Record<string, string> };
  /** Closes the agent when aborted. */
  signal?: AbortSignal;
  heartbeat?: HeartbeatOptions;
  /** Profiles a service's `profile` is looked up in (default: sandcell.yaml of the current directory, if any). */
  profiles?: Profiles;
  /** Told what went wrong that the agent survives (a bad value in Redis, a replica that would not start). */
  onError?: (error: Error) => void;
}

export interface ServiceAgent {
  /** Stops every replica it runs (their calls go back to the queue) and leaves the cluster. */
  close(): Promise<void>;
}

/** Restart delays after crashes in a row: 0.5s, 1s, 2s... up to 30s. */
const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 30_000;
/** A replica that ran this long is healthy again: its next crash starts the backoff over. */
const HEALTHY_AFTER_MS = 30_000;
/** How long a replica's BLMOVE waits before it looks whether it should stop. */
const TAKE_WAIT_S = 0.5;
const STDERR_TAIL = 2048;

interface Timing {
  intervalMs: number;
  timeoutMs: number;
}

function durationOption(value: Duration | undefined, fallback: number, field: string): number {
  if (value === undefined) return fallback;
  const ms = parseDuration(value);
  if (typeof ms === 'string' || ms <= 0) throw new TypeError(`heartbeat.${field} ${typeof ms === 'string' ? ms : 'must be positive'}`);
  return ms;
}

function newId(): string {
  return randomBytes(9).toString('base64url');
}

export async function startServiceAgent(opts: ServiceAgentOptions): Promise<ServiceAgent> {
  if (typeof opts.prefix !== 'string' || opts.prefix === '') throw new TypeError('prefix must be a non-empty string');
  if (typeof opts.worker?.name !== 'string' || opts.worker.name === '' || opts.worker.name.length > 128) {
    throw new TypeError('worker.name must be a string of 1-128 characters');
  }
  const labels = labelsSchema.safeParse(opts.worker.labels ?? {});
  if (!labels.success) throw new TypeError(`worker.labels: ${labels.error.issues[0]?.message}`);
  const timing = {
    intervalMs: durationOption(opts.heartbeat?.interval, 1000, 'interval'),
    timeoutMs: durationOption(opts.heartbeat?.timeout, 10_000, 'timeout'),
  };
  if (timing.timeoutMs <= timing.intervalMs) throw new TypeError('heartbeat.timeout must be longer than heartbeat.interval');
  const agent = new Agent(opts, JSON.stringify(labels.data), timing);
  await agent.start();
  return agent;
}

class Agent implements ServiceAgent {
  readonly keys: ServiceKeys;
  readonly worker: string;
  readonly redis: Redis;
  readonly scripts: Scripts;
  private readonly opts: ServiceAgentOptions;
  private readonly labels: string;
  readonly timing: Timing;
  private readonly profiles: Profiles;
  /** Replicas this worker runs, by replica id. */
  private readonly replicas = new Map<string, Replica>();
  private readonly beatRedis: Redis;
  private readonly reconnects = new ReconnectGate();
  private readonly beatScripts: Scripts;
  private timer: NodeJS.Timeout | null = null;
  private beatTimer: NodeJS.Timeout | null = null;
  private beating: Promise<void> | null = null;
  private ticking: Promise<void> | null = null;
  private closing: Promise<void> | null = null;
  /** Redis time minus ours, from the last heartbeat. */
  private clockOffset = 0;
  /** Our clock at the last heartbeat Redis took. */
  private lastBeat = Date.now();
  private readonly onAbort = (): void => void this.close();

  constructor(opts: ServiceAgentOptions, labels: string, timing: Timing) {
    this.opts = opts;
    this.labels = labels;
    this.timing = timing;
    this.keys = serviceKeys(opts.prefix);
    this.worker = opts.worker.name;
    this.profiles = opts.profiles ?? loadProfiles();
    this.redis = redisClient(opts.connection, this.reconnects);
    this.scripts = new Scripts(this.redis, this.keys);
    this.beatRedis = redisClient(opts.connection, this.reconnects);
    this.beatScripts = new Scripts(this.beatRedis, this.keys);
  }

  async start(): Promise<void> {
    await this.beat();
    await this.tick();
    // Heart-beats on a connection and a timer of their own: a slow reconcile (many services, a
    // Redis syncing to disk) must not make this worker look dead.
    this.beatTimer = setInterval(() => {
      this.beating ??= this.beat().finally(() => (this.beating = null));
    }, this.timing.intervalMs);
    this.timer = setInterval(() => {
      this.ticking ??= this.tick().finally(() => (this.ticking = null));
    }, this.timing.intervalMs);
    this.opts.signal?.addEventListener('abort', this.onAbort, { once: true });
    if (this.opts.signal?.aborted) await this.close();
  }

  /** Redis's clock, as last measured. */
  now(): number {
    return Date.now() + this.clockOffset;
  }

  report(e: unknown): void {
    const error = e instanceof Error ? e : new Error(String(e));
    if (this.opts.onError) this.opts.onError(error);
  }

  private async tick(): Promise<void> {
    try {
      const names = new Set(await this.redis.smembers(this.keys.names));
      for (const r of this.replicas.values()) names.add(r.service);
      for (const name of names) await this.reconcile(name);
    } catch (e) {
      this.report(e);
    }
    // Cut off from Redis past the timeout, this worker is presumed dead and its replicas run
    // elsewhere by now: it stops its own rather than keep a second copy of each.
    if (Date.now() - this.lastBeat > this.timing.timeoutMs) {
      for (const r of this.replicas.values()) void r.stop(false);
    }
  }

  private async beat(): Promise<void> {
    try {
      const sent = Date.now();
      const [now, lapsed] = (await this.beatScripts.run('svcHeartbeat', [this.keys.workers, this.keys.labels], [this.worker, this.timing.timeoutMs, this.labels])) as [number, number];
      const back = Date.now();
      this.clockOffset = Number(now) - (sent + back) / 2;
      if (Number(lapsed) === 1) this.report(new Error(`worker ${this.worker} heart-beat after its timeout: its replicas may have been started elsewhere`));
      this.lastBeat = back;
    } catch (e) {
      this.report(e);
    }
  }

  private async reconcile(name: string): Promise<void> {
    const k = this.keys;
    for (;;) {
      const fresh = newId();
      const [desiredRaw, claimed, mineFlat] = (await this.scripts.run(
        'svcReconcile',
        [k.service(name), k.slots(name), k.workers, k.labels, k.queue(name), k.events(name)],
        [this.worker, fresh, name],
      )) as [number, number, string[]];
      const desired = Number(desiredRaw);
      const mine = new Map<string, number>();
      for (let i = 0; i + 1 < mineFlat.length; i += 2) mine.set(mineFlat[i + 1] as string, Number(mineFlat[i]));
      for (const r of this.replicas.values()) {
        if (r.service !== name) continue;
        if (!mine.has(r.id)) void r.stop(false);
        else if (r.slot >= desired) void r.stop(true);
      }
      if (Number(claimed) >= 0) {
        const spec = await this.spec(name);
        const replica = new Replica(this, name, Number(claimed), fresh, spec);
        this.replicas.set(fresh, replica);
        replica.run().finally(() => this.replicas.delete(fresh));
        if (spec !== null) continue;
      }
      // Slots Redis says are this worker's but that no replica here fills (this worker restarted
      // under the same name, or stopped them when it lost Redis): given up, so someone fills them.
      for (const [id, slot] of mine) {
        if (this.replicas.has(id)) continue;
        await this.scripts.run('svcRelease', [k.slots(name), k.queue(name)], [String(slot), id, '1', `service ${name}: the call was lost twice (replica ${id} on worker ${this.worker} is gone)`]);
      }
      return;
    }
  }

  /** The service's spec, or null (with the reason reported) when Redis holds none that is valid. */
  async spec(name: string): Promise<ServiceSpec | null> {
    const raw = await this.redis.hget(this.keys.service(name), 'spec');
    if (raw === null) return null;
    try {
      return parseStored(specSchema, raw, `the spec of service ${name}`);
    } catch (e) {
      this.report(e);
      return null;
    }
  }

  /** The options a replica of `spec` is spawned with. */
  spawnOptions(spec: ServiceSpec): SpawnOptions {
    const options = spec.options as SpawnOptions;
    return spec.profile === undefined ? options : withProfile(this.profiles, spec.profile, options);
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.reconnects.close();
      this.opts.signal?.removeEventListener('abort', this.onAbort);
      if (this.timer) clearInterval(this.timer);
      if (this.beatTimer) clearInterval(this.beatTimer);
      await this.ticking;
      await this.beating;
      await Promise.all([...this.replicas.values()].map((r) => r.stop(true)));
      try {
        await this.redis.zrem(this.keys.workers, this.worker);
      } catch (e) {
        this.report(e);
      }
      await Promise.all([settled(this.redis), settled(this.beatRedis)]);
      this.redis.disconnect();
      this.beatRedis.disconnect();
    })();
    return this.closing;
  }
}

/** One replica this worker holds: a slot of a service, filled by one program after another. */
class Replica {
  readonly service: string;
  readonly slot: number;
  readonly id: string;
  private readonly agent: Agent;
  private readonly spec: ServiceSpec | null;
  private proc: SandboxProcess | null = null;
  private stopping = false;
  private release: { retry: false } | null = null;
  private wake: (() => void) | null = null;
  private done: Promise<void> | null = null;
  private restarts = 0;
  private lastCrash: Crash | undefined;

  constructor(agent: Agent, service: string, slot: number, id: string, spec: ServiceSpec | null) {
    this.agent = agent;
    this.service = service;
    this.slot = slot;
    this.id = id;
    this.spec = spec;
  }

  run(): Promise<void> {
    this.done ??= this.loop().catch((e) => this.agent.report(e));
    return this.done;
  }

  /**
   * Ends the program and, with `giveUp`, gives the slot back (the worker leaves, or the service
   * shrank). Without it the slot is no longer this worker's: someone else already holds it.
   */
  async stop(giveUp: boolean): Promise<void> {
    if (!this.stopping) {
      this.stopping = true;
      this.release = giveUp ? { retry: false } : null;
      this.proc?.kill();
      this.wake?.();
    }
    await this.run();
  }

  private async loop(): Promise<void> {
    const a = this.agent;
    const blocking = a.redis.duplicate();
    blocking.on('error', () => {});
    try {
      while (!this.stopping) {
        if (this.spec === null) {
          await this.crashed({ reason: 'start-failed', detail: `service ${this.service} has no valid spec in Redis` });
          continue;
        }
        let proc: SandboxProcess;
        try {
          proc = await spawn(a.spawnOptions(this.spec));
        } catch (e) {
          await this.crashed({ reason: 'start-failed', detail: (e as Error).message.slice(0, 4096) });
          continue;
        }
        this.proc = proc;
        if (this.stopping) proc.kill();
        const startedAt = Date.now();
        await this.setSlot('running', proc.pid);
        const ended = await this.serve(proc, blocking);
        this.proc = null;
        if (this.stopping) break;
        if (Date.now() - startedAt > HEALTHY_AFTER_MS) this.restarts = 0;
        await this.crashed(ended);
      }
    } finally {
      this.proc?.kill();
      await blocking.quit().catch(() => blocking.disconnect());
      // The slot: given back when asked, else already someone else's (or this worker's, for a
      // replica that only stopped because the worker lost Redis). Calls in flight go back as they were.
      await a.scripts
        .run('svcRelease', [a.keys.slots(this.service), a.keys.queue(this.service)], [this.release ? String(this.slot) : '', this.id, '0', ''])
        .catch((e) => a.report(e));
    }
  }

  /** Takes calls until the program ends; says how it ended. */
  private async serve(proc: SandboxProcess, blocking: Redis): Promise<Omit<Crash, 'at' | 'worker' | 'replica'>> {
    const a = this.agent;
    const spec = this.spec as ServiceSpec;
    const k = a.keys;
    const inflight = k.inflight(this.id);
    let stderr = '';
    proc.stderr.on('data', (c: Buffer) => {
      stderr = (stderr + c.toString('utf8')).slice(-STDERR_TAIL);
    });
    const reader = new LineReader(proc.stdout, spec.maxLine);
    let endedAt = false;
    const ended = proc.wait().then((r) => {
      endedAt = true;
      this.wake?.();
      return r;
    });
    const crash = async (reason?: string): Promise<Omit<Crash, 'at' | 'worker' | 'replica'>> => {
      proc.kill();
      const r = await ended;
      const detail = stderr.trim();
      return { reason: reason ?? r.status, exitCode: r.exitCode, signal: r.signal, ...(detail ? { detail } : {}) };
    };
    while (!this.stopping && !endedAt) {
      const raw = await blocking.blmove(k.queue(this.service), inflight, 'RIGHT', 'LEFT', TAKE_WAIT_S);
      if (raw === null) continue;
      const env = this.envelope(raw);
      if (env === null || Date.now() > env.deadline || this.stopping || endedAt) {
        if (env === null || Date.now() > env.deadline) await a.redis.lrem(inflight, 1, raw);
        if (this.stopping || endedAt) break;
        continue;
      }
      if (Buffer.byteLength(env.line) >= spec.maxLine) {
        await this.answer(raw, env, { ok: false, code: 'too-long', message: `service ${this.service}: the call is longer than ${spec.maxLine} bytes` });
        continue;
      }
      const reply = reader.next();
      proc.stdin?.write(`${env.line}\n`);
      const outcome = await this.within(reply, ended, env.deadline - Date.now());
      if (outcome.kind === 'line') {
        let valid = true;
        try {
          JSON.parse(outcome.line);
        } catch {
          valid = false;
        }
        await this.answer(
          raw,
          env,
          valid
            ? { ok: true, line: outcome.line, replica: this.id, worker: a.worker }
            : { ok: false, code: 'bad-reply', message: `service ${this.service}: replica ${this.id} replied with a line that is not JSON: ${JSON.stringify(outcome.line.slice(0, 200))}` },
        );
        continue;
      }
      if (outcome.kind === 'too-long') {
        await this.answer(raw, env, { ok: false, code: 'too-long', message: `service ${this.service}: replica ${this.id}'s reply is longer than ${spec.maxLine} bytes` });
        return crash('reply-too-long');
      }
      if (outcome.kind === 'late') {
        // Its reply, if it ever comes, would be taken as the next call's: the program starts over.
        await a.redis.lrem(inflight, 1, raw);
        return crash('call-timeout');
      }
      // It ended with the call in flight: the call goes to another replica, once.
      const c = await crash();
      await a.scripts
        .run('svcRelease', [k.slots(this.service), k.queue(this.service)], ['', this.id, '1', `service ${this.service}: the call was lost twice (replica ${this.id} ended: ${c.reason})`])
        .catch((e) => a.report(e));
      return c;
    }
    return crash();
  }

  private within(reply: Promise<string>, ended: Promise<unknown>, ms: number): Promise<{ kind: 'line'; line: string } | { kind: 'too-long' | 'late' | 'ended' }> {
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([
      reply.then(
        (line) => ({ kind: 'line' as const, line }),
        (e) => ({ kind: e instanceof LineTooLongError ? ('too-long' as const) : ('ended' as const) }),
      ),
      ended.then(() => ({ kind: 'ended' as const })),
      new Promise<{ kind: 'late' }>((resolve) => {
        timer = setTimeout(() => resolve({ kind: 'late' }), Math.max(0, ms));
      }),
    ]).finally(() => clearTimeout(timer));
  }

  private envelope(raw: string): Envelope | null {
    try {
      const env = parseStored(envelopeSchema, raw, `a call of service ${this.service}`);
      if (!env.reply.startsWith(this.agent.keys.replyPrefix)) throw new Error(`a call of service ${this.service} in Redis is invalid: reply: not a reply key of this cluster`);
      return env;
    } catch (e) {
      this.agent.report(e);
      return null;
    }
  }

  private async answer(raw: string, env: Envelope, reply: Record<string, unknown>): Promise<void> {
    const a = this.agent;
    await a.scripts.run('svcAnswer', [a.keys.inflight(this.id), env.reply], [raw, JSON.stringify({ id: env.id, ...reply })]);
  }

  /** Records the crash and waits out the backoff before the next start. */
  private async crashed(how: Omit<Crash, 'at' | 'worker' | 'replica'>): Promise<void> {
    const a = this.agent;
    this.lastCrash = { at: a.now(), worker: a.worker, replica: this.id, ...how };
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** Math.min(this.restarts, 16));
    this.restarts++;
    await this.setSlot('backoff', undefined, this.lastCrash);
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, delay);
      this.wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
    this.wake = null;
  }

  private async setSlot(state: Slot['state'], pid?: number, crash?: Crash): Promise<void> {
    const a = this.agent;
    const slot: Slot = {
      worker: a.worker,
      id: this.id,
      state,
      since: a.now(),
      restarts: this.restarts,
      ...(pid !== undefined ? { pid } : {}),
      ...(this.lastCrash ? { lastCrash: this.lastCrash } : {}),
    };
    const held = await a.scripts
      .run('svcUpdateSlot', [a.keys.slots(this.service), a.keys.events(this.service)], [String(this.slot), this.id, JSON.stringify(slot), crash ? JSON.stringify(crash) : ''])
      .catch((e) => (a.report(e), 1));
    if (Number(held) === 0) void this.stop(false);
  }
}
