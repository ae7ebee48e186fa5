/**
 * A farm worker: takes jobs from the queue of its label set and runs them with the library's
 * public run(). A program's verdict (a limit, a crash, a denied system call) is a result; only
 * the infrastructure fails a job: a refused job at once, a setup error or a lost blob with
 * BullMQ's bounded retries.
 *
 * A worker that loses a job's lock (killed, stopped, partitioned) cannot report it: BullMQ
 * completes a job only with the lock token it was taken with, and the stalled check has by then
 * moved it back to the queue for another worker.
 */
import { hostname } from 'node:os';
import { UnrecoverableError, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';

import { AbortError, formatOptionPath, run, SandboxOptionsError, SandboxSetupError, shutdown, type OptionIssue } from '../index.js';
import { BlobCache, BlobStore, DEFAULT_BLOB_LIMITS } from './blobs.js';
import { bullConnection, DEFAULT_PREFIX, ReconnectGate, redisOptions, settled, type RedisConnection } from './connection.js';
import { queueName, type Labels } from './queues.js';
import { judgeBuild, judgeTest, judgeVerdict } from './judge-worker.js';
import { judgeBuildJobSchema, judgeTestJobSchema, judgeVerdictJobSchema } from './judge-wire.js';
import { startServiceAgent } from './services/index.js';
import { decodeOptions, describeIssues, encodeResult, failure, readFailure, runJobSchema, type Placement } from './wire.js';
import type { TestReport } from '../problems/index.js';
import type { z } from 'zod';

export interface WorkerOptions {
  connection: RedisConnection;
  prefix?: string;
  /** Shown in results' placement (default: host name and pid). */
  name?: string;
  labels?: Labels;
  /** Jobs at once (default 1). */
  concurrency?: number;
  /** How long a job's lock lasts without renewal: a worker silent this long loses its jobs (default 30 s). */
  lockTimeMs?: number;
  /** How often the worker looks for jobs whose lock expired (default 30 s). */
  stallIntervalMs?: number;
  /** Bytes of fetched blobs kept (default 256 MiB). */
  blobCacheBytes?: number;
  /** How often the worker heart-beats and reconciles the services' replicas (default 1 s). */
  heartbeatIntervalMs?: number;
  /** Silence after which a worker's service replicas are started elsewhere (default 10 s). */
  heartbeatTimeoutMs?: number;
  /** One event per job, for logs. */
  onEvent?: (e: Record<string, unknown>) => void;
}

export interface FarmWorker {
  readonly name: string;
  readonly queue: string;
  readonly blobs: BlobCache;
  /** Takes no new job, lets those running finish, then ends its boxes and cgroups. */
  close(): Promise<void>;
}

/** A job refused before anything ran: its data or options are not well formed, or reach past the box. */
class Refused extends Error {
  constructor(
    readonly kind: 'options' | 'policy',
    readonly code: string,
    readonly issues: OptionIssue[],
    message: string,
  ) {
    super(`invalid job: ${message}`);
  }
}

/** Job data its schema refuses: the message names fields from the job's root, the issues name run options as run() does. */
function invalidJob(error: z.ZodError): Refused {
  const issues = error.issues.map((i) => ({ path: i.path[0] === 'options' ? formatOptionPath(i.path.slice(1)) : formatOptionPath(i.path), message: i.message }));
  return new Refused('options', 'invalid-job', issues, describeIssues(error));
}

/**
 * Fields that name things on the worker's machine (host paths, its cgroup tree, its network):
 * whoever can write to Redis must not reach past the box on every worker through them.
 */
function hostReach(options: Record<string, unknown>): Refused | null {
  const refuse = (path: string, message: string): Refused => new Refused('policy', 'forbidden', [{ path, message }], `options.${path}: ${message}`);
  if (options.binds !== undefined) return refuse('binds', 'host paths are not accepted from the queue');
  if (Array.isArray(options.mounts) && options.mounts.some((m) => typeof m !== 'object' || m === null || (m as { type?: string }).type !== 'tmpfs')) {
    return refuse('mounts', 'only tmpfs mounts are accepted from the queue');
  }
  if (options.cgroupParent !== undefined) return refuse('cgroupParent', "the worker's cgroup tree is not the job's to choose");
  // An allow list reaches the worker's own network (its 127.0.0.1: Redis itself), a published
  // port listens on it, a named network joins boxes the worker runs for others.
  if (options.network !== undefined && options.network !== 'none' && options.network !== 'loopback') {
    return refuse('network', "only 'none' or 'loopback' is accepted from the queue (host, allow lists, published ports and named networks reach the worker's machine)");
  }
  return null;
}

/**
 * What a job's failure says, as BullMQ will keep it: the kind, and the fields or setup stage.
 * Run options are named as run() names them; the message names them from the job's root.
 */
function failureOf(e: unknown): Error {
  if (e instanceof Refused) return failure({ v: 1, kind: e.kind, code: e.code, message: e.message, issues: e.issues }, false);
  if (e instanceof SandboxOptionsError) {
    const message = `invalid job: ${e.issues.map((i) => `options${i.path ? `.${i.path}` : ''}: ${i.message}`).join('; ')}`;
    return failure({ v: 1, kind: 'options', code: 'invalid-options', message, issues: [...e.issues] }, false);
  }
  if (e instanceof SandboxSetupError) {
    return failure({ v: 1, kind: 'setup', code: 'setup-failed', message: e.message, stage: e.stage, errno: e.errno, errnoCode: e.code }, true);
  }
  const err = e instanceof Error ? e : new Error(String(e));
  return failure({ v: 1, kind: 'infrastructure', code: 'infrastructure', message: err.message }, !(err instanceof UnrecoverableError));
}

export async function startWorker(o: WorkerOptions): Promise<FarmWorker> {
  const name = o.name ?? `${hostname()}-${process.pid}`;
  const prefix = o.prefix ?? DEFAULT_PREFIX;
  const queue = queueName(o.labels);
  const reconnects = new ReconnectGate();
  const redis = new Redis(redisOptions(o.connection, reconnects));
  redis.on('error', () => undefined);
  const emit = o.onEvent ?? ((): void => undefined);
  const store = new BlobStore(redis, prefix, DEFAULT_BLOB_LIMITS);
  const cache = new BlobCache(store, o.blobCacheBytes ?? 256 * 1024 * 1024, (blob, bytes) => emit({ event: 'blob-fetch', blob, bytes }));

  // One run before taking jobs: it proves this machine can build boxes, and opening the cgroups
  // removes those a previous worker here left when it was killed.
  const check = await run({ command: ['/bin/true'], limits: { wallTime: '30s' } });
  if (check.status !== 'ok') throw new Error(`the self-check run ended ${check.status}: ${check.stderr.slice(0, 500)}`);

  const checked = <S extends z.ZodType>(schema: S, job: Job): z.output<S> => {
    const parsed = schema.safeParse(job.data);
    if (!parsed.success) throw invalidJob(parsed.error);
    return parsed.data;
  };

  /** Judging: the submission's build, one test, or the verdict of a flow's tests. */
  const judging = async (job: Job): Promise<unknown> => {
    emit({ event: 'start', job: job.id, kind: job.data.kind });
    await job.updateProgress({ stage: 'started', worker: name, attempt: job.attemptsStarted });
    if (job.data.kind === 'judge-build') return judgeBuild(checked(judgeBuildJobSchema, job), cache, store);
    if (job.data.kind === 'judge-test') {
      const data = checked(judgeTestJobSchema, job);
      const report = await judgeTest(data, cache);
      emit({ event: 'end', job: job.id, verdict: report.verdict });
      return report;
    }
    const data = checked(judgeVerdictJobSchema, job);
    const byName = new Map<string, TestReport>();
    for (const v of Object.values(await job.getChildrenValues())) {
      const t = v as TestReport;
      byName.set(t.name, t);
    }
    const reports = data.tests.map((name) => {
      const t = byName.get(name);
      if (!t) throw new UnrecoverableError(`test ${name} has no report among the flow's children`);
      return t;
    });
    return judgeVerdict(data.problem, data.language, data.compile, reports);
  };

  const runJob = async (job: Job, signal?: AbortSignal): Promise<unknown> => {
    const kind = (job.data as { kind?: unknown } | null)?.kind;
    if (kind === 'judge-build' || kind === 'judge-test' || kind === 'judge-verdict') return judging(job);
    const data = checked(runJobSchema, job);
    const refused = hostReach(data.options);
    if (refused) throw refused;
    const placement: Placement = { worker: name, attempt: job.attemptsStarted, stalled: job.stalledCounter };
    await job.updateProgress({ stage: 'started', worker: name, attempt: placement.attempt });
    emit({ event: 'start', job: job.id, attempt: placement.attempt, stalled: placement.stalled });
    const options = await decodeOptions(data.options, cache);
    let result;
    try {
      result = await run({ ...options, ...(signal ? { signal } : {}) });
    } catch (e) {
      if (e instanceof AbortError) throw new Error(`job ${job.id} was given up on this worker: ${String(signal?.reason)}`);
      throw e;
    }
    emit({ event: 'end', job: job.id, status: result.status });
    return encodeResult(result, placement, store);
  };

  const processor = async (job: Job, _token?: string, signal?: AbortSignal): Promise<unknown> => {
    try {
      return await runJob(job, signal);
    } catch (e) {
      throw failureOf(e);
    }
  };

  const worker = new Worker(queue, processor, {
    connection: bullConnection(o.connection, reconnects),
    prefix,
    name,
    concurrency: o.concurrency ?? 1,
    lockDuration: o.lockTimeMs ?? 30_000,
    stalledInterval: o.stallIntervalMs ?? 30_000,
    // A job lost twice is failed rather than passed on forever (a program that kills its worker).
    maxStalledCount: 2,
    autorun: false,
  });
  worker.on('error', (e) => emit({ event: 'error', message: e.message }));
  // Another worker owns these jobs now (this one was stopped or cut off past the lock time): their
  // boxes are ended rather than left to burn CPU for a result BullMQ would refuse anyway.
  worker.on('lockRenewalFailed', (ids) => {
    for (const id of ids) {
      emit({ event: 'lost', job: id });
      worker.cancelJob(id, 'its lock was lost: another worker runs it');
    }
  });
  worker.on('failed', (job, e) => emit({ event: 'failed', job: job?.id, message: readFailure(e.message).message }));
  void worker.run();
  await worker.waitUntilReady();
  // Replicas of services run here too, kept at their counts with the other workers.
  const services = await startServiceAgent({
    connection: o.connection,
    prefix,
    worker: { name, labels: o.labels ?? {} },
    heartbeat: { interval: o.heartbeatIntervalMs ?? 1000, timeout: o.heartbeatTimeoutMs ?? 10_000 },
    onError: (e) => emit({ event: 'service-error', message: e.message }),
  });

  let closing: Promise<void> | null = null;
  return {
    name,
    queue,
    blobs: cache,
    close(): Promise<void> {
      closing ??= (async () => {
        reconnects.close();
        await services.close();
        await worker.close();
        await settled(redis);
        redis.disconnect();
        await shutdown();
      })();
      return closing;
    },
  };
}
