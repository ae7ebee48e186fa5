/**
 * `sandcell worker`: one node of the farm. Logs one JSON line per event on stderr; SIGTERM and
 * SIGINT drain it (no new job, those running finish), a second one ends it at once.
 */
import { hostname } from 'node:os';

import type { Labels } from '../cluster/queues.js';
import { UsageError } from './usage.js';
import { DEFAULT_CONNECT_TIMEOUT_MS, loadFarm, unreachable } from './farm.js';
import { flagsOf, labelsOf, positiveDuration, redisUrlOf, sizeOf } from './flags.js';

export const WORKER_HELP = `Usage: sandcell worker --redis <url> [options]

Takes runs from the farm's queue (see sandcell/cluster's connectCluster) and runs them here.
Start one on every machine of the farm.

  --redis <url>           the farm's Redis: redis://[user:pass@]host[:port][/db], rediss://...,
                          unix:///path/redis.sock or a socket path (required)
  --name <name>           this worker in results' placement (default: <host>-<pid>)
  --concurrency <n>       runs at once (default 1)
  --labels <k=v,...>      what this machine offers (images=debian,gpu=none); it takes the runs
                          asking for exactly this label set (default: none, the queue "runs")
  --lock-time <dur>       a job's lock without renewal: a worker silent this long (killed,
                          stopped, cut off) loses its jobs to others (default 30s)
  --stall-interval <dur>  how often lost jobs are looked for (default 30s); a dead worker's
                          job runs again elsewhere within lock time + stall interval
  --blob-cache <size>     bytes of fetched inputs kept for later runs (default 256MiB)
  --heartbeat <dur>       how often this worker heart-beats and reconciles the replicas of
                          services (default 1s)
  --heartbeat-timeout <dur>
                          silence after which a worker's service replicas are started on
                          others (default 10s)
  --prefix <p>            key prefix in Redis (default sandcell)
  --connect-timeout <dur> how long Redis may take to answer at start (default 10s); one that
                          does not is exit 125, naming it

Runs from the queue may not bind host paths, pick a cgroup parent or use the host network.
SIGTERM: takes no new run, finishes those running, exits.
`;

interface WorkerArgs {
  redis: string;
  name: string;
  concurrency: number;
  labels: Labels;
  lockTimeMs: number;
  stallIntervalMs: number;
  blobCacheBytes: number;
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
  prefix: string | undefined;
  connectTimeoutMs: number;
}

function parseWorkerArgs(args: readonly string[]): WorkerArgs {
  const a: Partial<WorkerArgs> & Omit<WorkerArgs, 'redis'> = {
    name: `${hostname()}-${process.pid}`,
    concurrency: 1,
    labels: {},
    lockTimeMs: 30_000,
    stallIntervalMs: 30_000,
    blobCacheBytes: 256 * 1024 * 1024,
    heartbeatIntervalMs: 1000,
    heartbeatTimeoutMs: 10_000,
    prefix: undefined,
    connectTimeoutMs: DEFAULT_CONNECT_TIMEOUT_MS,
  };
  for (const { raw, flag, value: v } of flagsOf(args)) {
    if (flag === '--redis') {
      a.redis = redisUrlOf(flag, v());
    } else if (flag === '--name') {
      a.name = v();
      if (!/^[\x21-\x7e]{1,128}$/.test(a.name)) throw new UsageError('--name: 1 to 128 printable characters without spaces');
    } else if (flag === '--concurrency') {
      const s = v();
      const n = Number(s);
      if (!Number.isInteger(n) || n < 1 || n > 1024) throw new UsageError(`--concurrency needs an integer from 1 to 1024, got ${JSON.stringify(s)}`);
      a.concurrency = n;
    } else if (flag === '--labels') a.labels = labelsOf(flag, v());
    else if (flag === '--lock-time') a.lockTimeMs = positiveDuration(flag, v());
    else if (flag === '--stall-interval') a.stallIntervalMs = positiveDuration(flag, v());
    else if (flag === '--blob-cache') {
      a.blobCacheBytes = sizeOf(flag, v());
    } else if (flag === '--heartbeat') a.heartbeatIntervalMs = positiveDuration(flag, v());
    else if (flag === '--heartbeat-timeout') a.heartbeatTimeoutMs = positiveDuration(flag, v());
    else if (flag === '--prefix') a.prefix = v();
    else if (flag === '--connect-timeout') a.connectTimeoutMs = positiveDuration(flag, v());
    else throw new UsageError(`unknown option ${raw} (see sandcell worker --help)`);
  }
  if (a.redis === undefined) throw new UsageError('--redis is required (see sandcell worker --help)');
  if (a.heartbeatTimeoutMs <= a.heartbeatIntervalMs) throw new UsageError('--heartbeat-timeout must be longer than --heartbeat');
  return a as WorkerArgs;
}

const log = (e: Record<string, unknown>): void => {
  process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), ...e })}\n`);
};

export async function workerCommand(args: readonly string[]): Promise<number> {
  const a = parseWorkerArgs(args);
  const refused = await unreachable('sandcell worker', a.redis, a.connectTimeoutMs);
  if (refused !== null) return refused;
  const { startWorker } = await loadFarm('sandcell worker', () => import('../cluster/worker.js'));
  const worker = await startWorker({
    connection: a.redis,
    ...(a.prefix !== undefined ? { prefix: a.prefix } : {}),
    name: a.name,
    labels: a.labels,
    concurrency: a.concurrency,
    lockTimeMs: a.lockTimeMs,
    stallIntervalMs: a.stallIntervalMs,
    blobCacheBytes: a.blobCacheBytes,
    heartbeatIntervalMs: a.heartbeatIntervalMs,
    heartbeatTimeoutMs: a.heartbeatTimeoutMs,
    onEvent: log,
  });
  log({ event: 'ready', worker: worker.name, queue: worker.queue, pid: process.pid });
  await new Promise<void>((resolve) => {
    const drain = (signal: string): void => {
      log({ event: 'draining', signal });
      process.once('SIGTERM', () => process.exit(143));
      process.once('SIGINT', () => process.exit(130));
      void worker.close().then(resolve);
    };
    process.once('SIGTERM', () => drain('SIGTERM'));
    process.once('SIGINT', () => drain('SIGINT'));
  });
  log({ event: 'stopped', worker: worker.name });
  return 0;
}
