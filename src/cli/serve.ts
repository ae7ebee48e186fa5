/**
 * `sandcell serve`: the daemon. A Unix socket by default (mode 0660, group `sandcell` when that
 * group exists: who may connect is who may run boxes); TCP only with a token file.
 */
import { chmodSync, chownSync, lstatSync, mkdirSync, readFileSync, rmdirSync, rmSync, statSync } from 'node:fs';
import { connect, type Server } from 'node:net';
import { availableParallelism } from 'node:os';
import { dirname, resolve } from 'node:path';
import { pino, stdTimeFunctions } from 'pino';

import type { FarmJobError } from '../cluster/farm.js';
import { forbidden, HttpError } from '../daemon/http-error.js';
import { LogSink } from '../daemon/log.js';
import { Daemon } from '../daemon/server.js';
import { loadPolicy } from '../daemon/policy.js';
import { prepare, SandboxOptionsError, SandboxSetupError } from '../index.js';
import { UsageError } from './usage.js';
import { flagsOf, integerOf, positiveDuration, redisUrlOf, sizeOf } from './flags.js';
import { DEFAULT_CONNECT_TIMEOUT_MS, loadFarm, unreachable } from './farm.js';

export const SERVE_HELP = `Usage: sandcell serve [options]

  --socket <path>        Unix socket (default /run/sandcell/sandcell.sock)
  --socket-mode <octal>  its mode (default 0660)
  --group <name>         its group (default: sandcell, when that group exists)
  --listen <host:port>   also listen on TCP; needs --token-file
  --token-file <file>    bearer tokens, one a line: <token> or <name> <token>
  --policy <file.json>   what clients may ask for (default: strict; see README "Daemon")
  --parallelism <n>      runs at once (default: the number of CPUs)
  --max-queue <n>        runs waiting before 429 (default 64)
  --max-body <size>      largest request body (default 16MiB)
  --box-ttl <dur>        a living box idle this long is destroyed (default 10m)
  --store <size>         bytes the file store keeps (default 256MiB)
  --store-files <n>      files the file store keeps (default 1000)
  --request-timeout <dur> time a client has to send a request (default 30s)
  --log-level <level>    info (default), debug (adds the library's events: NODE_DEBUG=sandcell
                         as JSON lines naming their request), warn, error, silent
  --cluster <url>        answer /v1/run with the farm on this Redis (redis://..., unix://...):
                         runs go to its workers (sandcell worker) instead of running here
  --connect-timeout <dur> with --cluster: how long Redis may take to answer at start (default
                         10s); one that does not answer ends the command with exit 125
`;

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

/** The log is written in blocks of about this many bytes (a line is ~160), or after LOG_IDLE_MS. */
const LOG_BLOCK_BYTES = 8192;
/** The longest a log line waits to be written: a reader of the journal sees a quiet daemon's last lines this late at most. */
const LOG_IDLE_MS = 200;

interface ServeArgs {
  socket: string;
  socketMode: number;
  group: string | null;
  listen: { host: string; port: number } | null;
  tokenFile: string | null;
  policy: string | null;
  parallelism: number;
  maxQueue: number;
  maxBody: number;
  boxTtlMs: number;
  storeBytes: number;
  storeFiles: number;
  requestTimeoutMs: number;
  logLevel: string;
  cluster: string | null;
  connectTimeoutMs: number;
}

function parseServeArgs(args: readonly string[]): ServeArgs {
  const a: ServeArgs = {
    socket: '/run/sandcell/sandcell.sock',
    socketMode: 0o660,
    group: null,
    listen: null,
    tokenFile: null,
    policy: null,
    parallelism: availableParallelism(),
    maxQueue: 64,
    maxBody: 16 * 1024 * 1024,
    boxTtlMs: 10 * 60_000,
    storeBytes: 256 * 1024 * 1024,
    storeFiles: 1000,
    requestTimeoutMs: 30_000,
    logLevel: 'info',
    cluster: null,
    connectTimeoutMs: DEFAULT_CONNECT_TIMEOUT_MS,
  };
  for (const { raw, flag, value: v } of flagsOf(args)) {
    if (flag === '--socket') a.socket = v();
    else if (flag === '--socket-mode') {
      const s = v();
      if (!/^0?[0-7]{3}$/.test(s)) throw new UsageError(`--socket-mode needs an octal mode such as 0660, got ${JSON.stringify(s)}`);
      a.socketMode = parseInt(s, 8);
    } else if (flag === '--group') a.group = v();
    else if (flag === '--listen') {
      const s = v();
      const m = /^(.+):(\d+)$/.exec(s);
      if (!m) throw new UsageError(`--listen needs <host>:<port>, got ${JSON.stringify(s)}`);
      a.listen = { host: (m[1] as string).replace(/^\[(.*)\]$/, '$1'), port: integerOf('--listen port', m[2] as string, 0, 65535) };
    } else if (flag === '--token-file') a.tokenFile = v();
    else if (flag === '--policy') a.policy = v();
    else if (flag === '--parallelism') a.parallelism = integerOf(flag, v(), 1);
    else if (flag === '--max-queue') a.maxQueue = integerOf(flag, v(), 0);
    else if (flag === '--max-body') a.maxBody = sizeOf(flag, v());
    else if (flag === '--box-ttl') a.boxTtlMs = positiveDuration(flag, v());
    else if (flag === '--store') a.storeBytes = sizeOf(flag, v());
    else if (flag === '--store-files') a.storeFiles = integerOf(flag, v(), 1);
    else if (flag === '--request-timeout') a.requestTimeoutMs = positiveDuration(flag, v());
    else if (flag === '--log-level') {
      a.logLevel = v();
      if (!LOG_LEVELS.includes(a.logLevel)) throw new UsageError(`--log-level needs one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(a.logLevel)}`);
    } else if (flag === '--cluster') a.cluster = redisUrlOf(flag, v());
    else if (flag === '--connect-timeout') a.connectTimeoutMs = positiveDuration(flag, v());
    else throw new UsageError(`unknown option ${raw} (see sandcell serve --help)`);
  }
  return a;
}

/** `<token>` or `<name> <token>` per line; blank lines and `#` comments are skipped. */
function readTokens(path: string): Map<string, string> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new UsageError(`--token-file ${path}: ${(e as Error).message}`);
  }
  const tokens = new Map<string, string>();
  text.split('\n').forEach((line, n) => {
    const words = line.trim().split(/\s+/).filter((w) => w !== '');
    if (words.length === 0 || words[0]?.startsWith('#')) return;
    if (words.length > 2) throw new UsageError(`--token-file ${path}:${n + 1}: expected <token> or <name> <token>`);
    const token = words[words.length - 1] as string;
    if (token.length < 16) throw new UsageError(`--token-file ${path}:${n + 1}: a token must have at least 16 characters`);
    tokens.set(words.length === 2 ? (words[0] as string) : `#${n + 1}`, token);
  });
  if (tokens.size === 0) throw new UsageError(`--token-file ${path}: no token in it`);
  return tokens;
}

function groupId(name: string): number | null {
  let text = '';
  try {
    text = readFileSync('/etc/group', 'utf8');
  } catch {
    return null;
  }
  for (const line of text.split('\n')) {
    const [n, , gid] = line.split(':');
    if (n === name && gid !== undefined) return Number(gid);
  }
  return null;
}

/** A socket file left by a daemon that died is removed; one a living daemon answers on is not. */
async function clearStaleSocket(path: string): Promise<void> {
  let isSocket = false;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    return;
  }
  if (!isSocket) throw new UsageError(`--socket ${path}: exists and is not a socket`);
  const alive = await new Promise<boolean>((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
  if (alive) throw new UsageError(`--socket ${path}: another daemon is listening there`);
  rmSync(path, { force: true });
}

function listen(server: Server, ...args: [string] | [number, string]): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(...(args as [string]), () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/**
 * A farm job's failure as the daemon answers the same failure of a run it makes itself: refused
 * options are run()'s SandboxOptionsError (400 naming the field), a setup error its
 * SandboxSetupError (500 naming the stage), a worker's refusal of what would reach its machine a
 * policy refusal (403 naming the field); the farm's own failures (a worker lost, Redis gone) are
 * 500 `infrastructure`.
 */
function asDaemonError(e: FarmJobError): Error {
  if (e.kind === 'options') return new SandboxOptionsError(e.issues.length > 0 ? e.issues : [{ path: '', message: e.message }]);
  if (e.kind === 'policy') return forbidden(e.field ?? '(job)', e.issues[0]?.message ?? e.message);
  if (e.kind === 'setup') {
    const setup = new SandboxSetupError(e.stage ?? '', e.errno ?? 0, e.errnoCode ?? '');
    setup.message = e.message;
    return setup;
  }
  return new HttpError(500, 'infrastructure', `farm job ${e.jobId}: ${e.message}`);
}

export async function serve(argv: readonly string[]): Promise<number> {
  const a = parseServeArgs(argv);
  // No unauthenticated TCP, ever: checked before anything is opened.
  if (a.listen !== null && a.tokenFile === null) throw new UsageError('--listen needs --token-file: the daemon never serves TCP without tokens');
  const tokens = a.tokenFile !== null ? readTokens(a.tokenFile) : null;
  const gid = groupId(a.group ?? 'sandcell');
  if (a.group !== null && gid === null) throw new UsageError(`--group ${a.group}: no such group`);
  let policy;
  try {
    policy = loadPolicy(a.policy);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  // A stop asked for while the daemon starts waits until the start is done (or given up), then
  // goes as any stop: without a handler the signal would kill the daemon with its socket and the
  // directories it made left on the host.
  const stopping: { asked: string | null; stop: ((signal: string) => void) | null } = { asked: null, stop: null };
  const ask = (signal: string): void => {
    if (stopping.stop !== null) stopping.stop(signal);
    else stopping.asked ??= signal;
  };
  process.once('SIGTERM', () => ask('SIGTERM'));
  process.once('SIGINT', () => ask('SIGINT'));
  const sink = new LogSink({ fd: 1, blockBytes: LOG_BLOCK_BYTES, idleMs: LOG_IDLE_MS });
  const logger = pino({ level: a.logLevel, base: { pid: process.pid }, timestamp: stdTimeFunctions.isoTime }, sink);
  const cluster = a.cluster;
  if (cluster !== null) {
    const refused = await unreachable('sandcell serve --cluster', cluster, a.connectTimeoutMs);
    if (refused !== null) return refused;
  }
  const farming = cluster !== null ? await loadFarm('sandcell serve --cluster', () => import('../cluster/farm.js')) : null;
  const farm = farming !== null && cluster !== null ? farming.connectCluster({ redis: cluster }) : null;
  const daemon = new Daemon({
    ...(farm && farming
      ? {
          runner: (options) =>
            farm.run(options).catch((e: unknown) => {
              throw e instanceof farming.FarmJobError ? asDaemonError(e) : e;
            }),
        }
      : {}),
    policy,
    tokens,
    parallelism: a.parallelism,
    maxQueue: a.maxQueue,
    maxBodyBytes: a.maxBody,
    boxIdleTtlMs: a.boxTtlMs,
    storeMaxBytes: a.storeBytes,
    storeMaxFiles: a.storeFiles,
    requestTimeoutMs: a.requestTimeoutMs,
    logger,
  });

  // Before the socket opens: what a daemon killed before this one left is removed first.
  await prepare();
  const made = mkdirSync(dirname(a.socket), { recursive: true, mode: 0o755 });
  // What the daemon made on the host goes when it stops or fails to start: its socket, and the
  // directories it made for it (while empty: never what someone else put there).
  const unmake = (): void => {
    rmSync(a.socket, { force: true });
    if (made === undefined) return;
    for (let d = resolve(dirname(a.socket)); d.length >= made.length; d = dirname(d)) {
      try {
        rmdirSync(d);
      } catch {
        return;
      }
    }
  };
  // Stopping, or a start given up halfway: whatever the drain does, nothing is left on the host.
  const close = async (): Promise<void> => {
    try {
      await daemon.drain();
      await farm?.close();
    } finally {
      unmake();
      sink.flushSync();
    }
  };
  await clearStaleSocket(a.socket);
  // The socket is made with no access for anyone but its owner, then opened to the group: no
  // moment exists when anyone else could connect.
  const umask = process.umask(0o177);
  try {
    await listen(daemon.server('unix'), a.socket);
  } finally {
    process.umask(umask);
  }
  const tcp = a.listen !== null ? daemon.server('tcp') : null;
  try {
    if (gid !== null) chownSync(a.socket, statSync(a.socket).uid, gid);
    chmodSync(a.socket, a.socketMode);
    if (tcp !== null && a.listen !== null) {
      const { host, port } = a.listen;
      await listen(tcp, port, host).catch((e: NodeJS.ErrnoException) => {
        throw new UsageError(`--listen ${host}:${port}: ${e.code === 'EADDRINUSE' ? 'the address is in use' : e.message}`);
      });
    }
  } catch (e) {
    // Started halfway: the Unix socket is closed and removed, or the process would serve on it
    // (or hang) after saying it failed.
    await close().catch((err: unknown) => logger.error({ err }, 'drain failed'));
    sink.flushSync();
    throw e;
  }
  const stopped = new Promise<number>((resolve) => {
    stopping.stop = (signal: string): void => {
      logger.info({ signal }, 'stopping');
      close().then(
        () => resolve(0),
        (e: unknown) => {
          logger.error({ err: e }, 'drain failed');
          sink.flushSync();
          resolve(1);
        },
      );
    };
  });
  if (stopping.asked !== null) {
    stopping.stop?.(stopping.asked);
    return stopped;
  }
  logger.info({ socket: a.socket, tcp: tcp?.address() ?? null, parallelism: a.parallelism, maxQueue: a.maxQueue, tokens: tokens?.size ?? 0 }, 'listening');
  // Whoever starts the daemon waits for this line before it connects.
  sink.flushSync();
  return stopped;
}
