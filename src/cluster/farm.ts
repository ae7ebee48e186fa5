/**
 * The caller's side of the farm: a run becomes a job on the queue of its label set, its result
 * comes back as the job's return value. Loads no native code: a machine that only submits runs
 * needs no sandbox of its own.
 */
import { randomUUID } from 'node:crypto';
import { FlowProducer, Job, Queue, QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';

import { AbortError, type OptionIssue } from '../errors.js';
import type { EncodedOutput, OutputEncoding, RunOptions } from '../index.js';
import { BlobStore, DEFAULT_BLOB_LIMITS, type BlobLimits } from './blobs.js';
import { bullConnection, DEFAULT_PREFIX, ReconnectGate, redisOptions, settled, type RedisConnection } from './connection.js';
import { queueName, type Labels } from './queues.js';
import type { JudgeReport, Problem, Progress, Submission, TestReport } from '../problems/index.js';
import { packProblem, packSubmission, type BuildOutcome } from './judge-wire.js';
import { ServicesClient } from './services/index.js';
import { decodeResult, encodeOptions, readFailure, type FarmErrorKind, type FarmResult } from './wire.js';

export interface ClusterOptions {
  /** The farm's Redis: `redis://host:port`, `unix:///path/redis.sock`, a socket path, or ioredis options. */
  redis: RedisConnection;
  /** The queue runs go to (default: the queue of `labels`, `runs` without them). */
  queue?: string;
  /** The label set a run needs; workers started with exactly these labels take it. */
  labels?: Labels;
  /** Prefix of every key (default `sandcell`); workers must use the same. */
  prefix?: string;
  /** Blob size limit, TTL and inline threshold. */
  blobs?: Partial<BlobLimits>;
  /** Tries of a run whose infrastructure failed (a setup error, a lost blob), default 3, with exponential backoff from 1 s. */
  attempts?: number;
}

/** Where a run is: `queued` once it is on the queue, `started` on each worker that takes it, `done` once it has its result. */
export type FarmProgress =
  | { event: 'queued'; jobId: string; queue: string }
  | { event: 'started'; jobId: string; worker: string; attempt: number }
  | { event: 'done'; jobId: string; status: string; worker: string };

export interface FarmRunOptions {
  onProgress?: (p: FarmProgress) => void;
}

export interface FarmJudgeOptions {
  /** `compile` when the build is queued, `test` when a worker takes a test, `tested` with its verdict (in the order tests end, not test order). */
  onProgress?: (p: Progress) => void;
}

/** What a FarmJobError says beside its message; without it, the failure is the infrastructure's. */
export interface FarmJobErrorDetail {
  kind?: FarmErrorKind;
  code?: string;
  issues?: readonly OptionIssue[];
  stage?: string;
  errno?: number;
  errnoCode?: string;
}

/**
 * A job that ended without a result: its options or the worker's policy refused it (at once), or
 * a setup error or its infrastructure failed it on every try. `kind` says which, `field` names
 * the offending option (dotted as run() names it: `limits.memory`, `binds`), `issues` every one.
 */
export class FarmJobError extends Error {
  override readonly name = 'FarmJobError';
  readonly kind: FarmErrorKind;
  /** `invalid-options` or `invalid-job` (options), `forbidden` (policy), `setup-failed`, `infrastructure`. */
  readonly code: string;
  readonly field: string | undefined;
  readonly issues: readonly OptionIssue[];
  /** For `setup`: the stage that failed, the kernel's errno and its name, as SandboxSetupError has them. */
  readonly stage: string | undefined;
  readonly errno: number | undefined;
  readonly errnoCode: string | undefined;

  constructor(
    readonly jobId: string,
    message: string,
    detail: FarmJobErrorDetail = {},
  ) {
    super(message);
    this.kind = detail.kind ?? 'infrastructure';
    this.code = detail.code ?? 'infrastructure';
    this.issues = detail.issues ?? [];
    this.field = this.issues[0]?.path;
    this.stage = detail.stage;
    this.errno = detail.errno;
    this.errnoCode = detail.errnoCode;
  }

  /** From a failed job's reason as Redis holds it (checked: anything a worker did not write is the infrastructure's). */
  static fromReason(jobId: string, reason: unknown): FarmJobError {
    const { v: _v, message, ...detail } = readFailure(reason);
    return new FarmJobError(jobId, message, detail);
  }
}

/** A queue this farm sends to, and the reader of its events (once its start is known). */
interface OpenQueue {
  queue: Queue;
  events: QueueEvents | null;
  ready: Promise<void>;
}

interface Pending {
  resolve: (value: unknown) => void;
  reject: (e: Error) => void;
  progress?: (p: unknown) => void;
}

/** How often jobs still waiting for an answer are looked up directly: an event lost in a Redis restart or a stream trim is not a lost run. */
const POLL_MS = 2000;

export class Farm {
  readonly redis: Redis;
  readonly blobs: BlobStore;
  readonly prefix: string;
  private readonly queues = new Map<string, OpenQueue>();
  private readonly pending = new Map<string, Pending & { queue: Queue }>();
  private readonly defaultQueue: string;
  private readonly attempts: number;
  private readonly poller: NodeJS.Timeout;
  private closed = false;
  private readonly reconnects = new ReconnectGate();
  private flows: FlowProducer | undefined;
  private servicesClient: ServicesClient | null = null;

  constructor(readonly options: ClusterOptions) {
    this.prefix = options.prefix ?? DEFAULT_PREFIX;
    this.redis = new Redis(redisOptions(options.redis, this.reconnects));
    this.redis.on('error', () => undefined);
    this.blobs = new BlobStore(this.redis, this.prefix, { ...DEFAULT_BLOB_LIMITS, ...options.blobs });
    this.defaultQueue = options.queue ?? queueName(options.labels);
    this.attempts = options.attempts ?? 3;
    this.poller = setInterval(() => void this.poll(), POLL_MS);
    this.poller.unref();
  }

  /** The queue and its event listener, opened on first use. */
  queue(name = this.defaultQueue): Queue {
    let q = this.queues.get(name);
    if (!q) {
      if (this.closed) throw new Error('the farm connection is closed');
      const queue = new Queue(name, { connection: bullConnection(this.options.redis, this.reconnects), prefix: this.prefix });
      queue.on('error', () => undefined);
      const opened: OpenQueue = { queue, events: null, ready: Promise.resolve() };
      opened.ready = this.listen(opened);
      // A caller that never submits never awaits it; one that does sees its failure there.
      opened.ready.catch(() => undefined);
      q = opened;
      this.queues.set(name, q);
    }
    return q.queue;
  }

  /**
   * Starts reading the queue's events after the last one its stream holds now, before any job of
   * this farm is added. BullMQ's default start ('$') is wherever the stream ends when the first
   * read reaches Redis: on a loaded machine a worker can take a job, report it started and even
   * finish it before that, and those events were never seen (`started` never reached onProgress,
   * and the result came back only through the poller).
   */
  private async listen(q: OpenQueue): Promise<void> {
    const [last] = (await this.redis.xrevrange(q.queue.toKey('events'), '+', '-', 'COUNT', 1)) as [string, string[]][];
    if (this.closed) return;
    const events = new QueueEvents(q.queue.name, { connection: bullConnection(this.options.redis, this.reconnects), prefix: this.prefix, lastEventId: last?.[0] ?? '0-0' });
    events.on('error', () => undefined);
    events.on('completed', ({ jobId, returnvalue }) => this.settle(jobId, (p) => p.resolve(returnvalue)));
    events.on('failed', ({ jobId, failedReason, prev }) => {
      // A failed attempt that will be retried comes as `failed` too; only a job that is done
      // (moved to the failed set) ends the wait: the poller confirms it.
      if (prev === 'active') void this.checkFailed(jobId);
      else this.settle(jobId, (p) => p.reject(FarmJobError.fromReason(jobId, failedReason)));
    });
    events.on('progress', ({ jobId, data }) => this.pending.get(jobId)?.progress?.(data));
    q.events = events;
  }

  private settle(jobId: string, how: (p: Pending) => void): void {
    const p = this.pending.get(jobId);
    if (!p) return;
    this.pending.delete(jobId);
    how(p);
  }

  private async checkFailed(jobId: string): Promise<void> {
    const p = this.pending.get(jobId);
    if (!p) return;
    const job = await Job.fromId(p.queue, jobId).catch(() => undefined);
    if (job?.finishedOn !== undefined && job.finishedOn !== null) await this.poll([jobId]);
  }

  /** Looks up jobs whose end may have been missed; a finished job settles from its stored state. */
  private async poll(ids = [...this.pending.keys()]): Promise<void> {
    for (const id of ids) {
      const p = this.pending.get(id);
      if (!p) continue;
      const job = await Job.fromId(p.queue, id).catch(() => undefined);
      if (!job || !job.finishedOn) continue;
      const state = await job.getState().catch(() => 'unknown');
      if (state === 'completed') this.settle(id, (x) => x.resolve(job.returnvalue));
      else if (state === 'failed') this.settle(id, (x) => x.reject(FarmJobError.fromReason(id, job.failedReason)));
    }
  }

  /**
   * Adds a job and waits for its end. The id is chosen here and the wait registered before the
   * job exists, so its end cannot be missed.
   */
  async submit(name: string, data: unknown, how: { queue?: string; onProgress?: (p: unknown) => void; signal?: AbortSignal; jobId?: string } = {}): Promise<{ jobId: string; value: unknown }> {
    if (this.closed) throw new Error('the farm connection is closed');
    const queue = this.queue(how.queue);
    await this.queues.get(how.queue ?? this.defaultQueue)?.ready;
    const jobId = how.jobId ?? randomUUID();
    const done = new Promise<unknown>((resolve, reject) => {
      this.pending.set(jobId, { resolve, reject, queue, ...(how.onProgress ? { progress: how.onProgress } : {}) });
    });
    const onAbort = (): void => {
      // A job not yet taken is withdrawn; one running finishes on its worker, unreported.
      void Job.fromId(queue, jobId)
        .then((j) => j?.remove())
        .catch(() => undefined);
      this.settle(jobId, (p) => p.reject(new AbortError(how.signal?.reason)));
    };
    if (how.signal?.aborted) throw new AbortError(how.signal.reason);
    how.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await queue.add(name, data, { jobId, ...this.jobOptions() });
      return { jobId, value: await done };
    } catch (e) {
      this.pending.delete(jobId);
      throw e;
    } finally {
      how.signal?.removeEventListener('abort', onAbort);
    }
  }

  private jobOptions() {
    return {
      attempts: this.attempts,
      backoff: { type: 'exponential', delay: 1000 },
      // Kept a while after the end, so a caller that lost the event can still read the result.
      removeOnComplete: { age: 3600, count: 10_000 },
      removeOnFail: { age: 24 * 3600 },
    };
  }

  /** Waits for a job that is about to be added (by a flow) under `jobId`. */
  private expect(queue: Queue, jobId: string, progress?: (p: unknown) => void): Promise<unknown> {
    return new Promise<unknown>((resolve, reject) => {
      this.pending.set(jobId, { resolve, reject, queue, ...(progress ? { progress } : {}) });
    });
  }

  /**
   * Judges a submission on the farm, with the local judge's verdicts: the build is one job (what
   * it leaves, the binary, becomes a blob), then a BullMQ flow fans the tests out over the
   * workers and a parent job puts their verdicts together. An interactive test's solution and
   * interactor run on the same worker, joined by pipes through it.
   */
  async judge(problem: Problem | string, submission: Submission | string, how: FarmJudgeOptions = {}): Promise<JudgeReport> {
    // The problem loader is only needed here: connecting to a farm loads no sandbox code.
    const problems = await import('../problems/index.js');
    const p = typeof problem === 'string' ? problems.loadProblem(problem) : problem;
    const s = typeof submission === 'string' ? problems.submissionFromFile(p, submission) : submission;
    const packed = await packProblem(p, this.blobs);
    const name = this.options.queue ?? this.defaultQueue;
    how.onProgress?.({ stage: 'compile' });
    const { value } = await this.submit('judge-build', { v: 1, kind: 'judge-build', problem: packed, submission: await packSubmission(s, this.blobs) });
    const b = value as BuildOutcome;
    if (b.verdict !== null) {
      return { problem: p.name, language: s.language, verdict: b.verdict, compile: b.compile as JudgeReport['compile'], tests: [], ...(b.error !== undefined ? { error: b.error } : {}) };
    }
    const queue = this.queue(name);
    await this.queues.get(name)?.ready;
    const parentId = randomUUID();
    const total = p.tests.length;
    const children = p.tests.map((t, index) => {
      const jobId = `${parentId}-t${index}`;
      const progress = how.onProgress;
      const waited = this.expect(queue, jobId, progress ? (d) => (d as { stage?: string }).stage === 'started' && progress({ stage: 'test', index, total, name: t.name }) : undefined);
      waited.then(
        (r) => progress?.({ stage: 'tested', index, total, name: t.name, verdict: (r as TestReport).verdict }),
        () => undefined,
      );
      return {
        name: 'judge-test',
        queueName: name,
        data: { v: 1, kind: 'judge-test', problem: packed, language: s.language, built: b.built, test: index },
        opts: { jobId, ...this.jobOptions(), failParentOnFailure: true },
      };
    });
    const verdict = this.expect(queue, parentId);
    this.flows ??= new FlowProducer({ connection: bullConnection(this.options.redis, this.reconnects), prefix: this.prefix });
    try {
      await this.flows.add({
        name: 'judge-verdict',
        queueName: name,
        data: { v: 1, kind: 'judge-verdict', problem: p.name, language: s.language, compile: b.compile, tests: p.tests.map((t) => t.name) },
        opts: { jobId: parentId, ...this.jobOptions() },
        children,
      });
    } catch (e) {
      for (const c of children) this.pending.delete(c.opts.jobId);
      this.pending.delete(parentId);
      throw e;
    }
    return (await verdict) as JudgeReport;
  }

  /**
   * Runs on some worker of the queue: the options and result of run(), plus `placement`. With
   * `encoding: 'buffer'` the output comes back as Buffers, byte for byte.
   */
  run<Encoding extends OutputEncoding>(options: RunOptions<Encoding> & { encoding: Encoding }, how?: FarmRunOptions): Promise<FarmResult<EncodedOutput<Encoding>>>;
  run(options: RunOptions, how?: FarmRunOptions): Promise<FarmResult>;
  async run(options: RunOptions<OutputEncoding>, how: FarmRunOptions = {}): Promise<FarmResult<string | Buffer>> {
    const queue = this.options.queue ?? this.defaultQueue;
    const jobId = randomUUID();
    const data = { v: 1, kind: 'run', options: await encodeOptions(options, this.blobs) };
    const progress = how.onProgress;
    progress?.({ event: 'queued', jobId, queue });
    const { value } = await this.submit('run', data, {
      jobId,
      ...(options.signal ? { signal: options.signal } : {}),
      ...(progress
        ? {
            onProgress: (d: unknown) => {
              const s = d as { stage?: string; worker?: string; attempt?: number };
              if (s.stage === 'started') progress({ event: 'started', jobId, worker: String(s.worker), attempt: Number(s.attempt) });
            },
          }
        : {}),
    });
    const result = await decodeResult(value, this.blobs, options.encoding === 'buffer' ? 'buffer' : 'utf8');
    progress?.({ event: 'done', jobId, status: result.status, worker: result.placement.worker });
    return result;
  }

  /** The farm's services: replicas of long-lived programs kept at a count across the workers. */
  get services(): ServicesClient {
    this.servicesClient ??= new ServicesClient({ connection: this.options.redis, prefix: this.prefix });
    return this.servicesClient;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.reconnects.close();
    await this.servicesClient?.close();
    clearInterval(this.poller);
    for (const [id, p] of this.pending) p.reject(new FarmJobError(id, 'the farm connection was closed before the job ended'));
    this.pending.clear();
    for (const { queue, events } of this.queues.values()) {
      if (events) await closeEvents(events);
      await queue.close().catch(() => undefined);
    }
    this.queues.clear();
    await this.flows?.close().catch(() => undefined);
    await settled(this.redis);
    this.redis.disconnect();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/**
 * Closes an event reader. Its close() begins with ioredis's disconnect(), which while Redis is
 * away would cancel the reader's next attempt to reach it and then wait for an end that never
 * comes; so that attempt is let happen first (it ends the connection, the farm being closed).
 */
async function closeEvents(events: QueueEvents): Promise<void> {
  try {
    await settled(await events.getBackend().client);
    await events.close();
  } catch {
    // A reader that never reached Redis, or lost it while closing, has nothing left to close.
  }
}

/** Connects to a farm: `farm.run(options)` runs on one of its workers. Close it (or `await using` it) when done. */
export function connectCluster(options: ClusterOptions): Farm {
  return new Farm(options);
}
