/**
 * Where the farm's Redis is: `redis://[user:password@]host[:port][/db]`, `rediss://` (TLS),
 * `unix:///path/to/redis.sock[?db=N]` or a bare absolute socket path, turned into ioredis options.
 * Workers, clients and service agents all go through this one parser so that a URL means the same
 * thing to each of them.
 */
import type { ConnectionOptions } from 'bullmq';
import type { RedisOptions } from 'ioredis';

/** Prefix of every key the farm writes (BullMQ queues, blobs, services), so one Redis can hold several farms. */
export const DEFAULT_PREFIX = 'sandcell';

/** A Redis given by URL or socket path, or ioredis options as they are. */
export type RedisConnection = RedisOptions | string;

export class RedisUrlError extends Error {
  override readonly name = 'RedisUrlError';
}

function database(value: string | null, url: string): number | undefined {
  if (value === null || value === '') return undefined;
  if (!/^\d{1,2}$/.test(value)) throw new RedisUrlError(`redis URL ${JSON.stringify(url)}: database must be a number 0-99 (got ${JSON.stringify(value)})`);
  return Number(value);
}

/** Parses a Redis URL or socket path into ioredis options; a malformed one throws a RedisUrlError naming what is wrong. */
export function parseRedisUrl(url: string): RedisOptions {
  if (typeof url !== 'string' || url === '') throw new RedisUrlError('redis URL must be a non-empty string');
  if (url.startsWith('/')) return { path: url };
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new RedisUrlError(`redis URL ${JSON.stringify(url)}: not a URL nor an absolute socket path`);
  }
  const auth: RedisOptions = {};
  if (u.username !== '') auth.username = decodeURIComponent(u.username);
  if (u.password !== '') auth.password = decodeURIComponent(u.password);
  if (u.protocol === 'unix:') {
    const path = decodeURIComponent(u.pathname);
    if (!path.startsWith('/')) throw new RedisUrlError(`redis URL ${JSON.stringify(url)}: unix: needs an absolute socket path`);
    const db = database(u.searchParams.get('db'), url);
    return { ...auth, path, ...(db !== undefined ? { db } : {}) };
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') {
    throw new RedisUrlError(`redis URL ${JSON.stringify(url)}: scheme must be redis:, rediss: or unix: (got ${u.protocol})`);
  }
  if (u.hostname === '') throw new RedisUrlError(`redis URL ${JSON.stringify(url)}: missing host`);
  const port = u.port === '' ? 6379 : Number(u.port);
  const db = database(u.pathname.replace(/^\//, '') || u.searchParams.get('db'), url);
  // IPv6 hosts come bracketed from URL; ioredis wants them bare.
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  return {
    ...auth,
    host,
    port,
    ...(db !== undefined ? { db } : {}),
    ...(u.protocol === 'rediss:' ? { tls: { servername: host } } : {}),
  };
}

/**
 * The wait before a farm connection's next attempt to reach Redis: short enough that a restarted
 * Redis is found again within two seconds, and that a part closing while Redis is away is not
 * held long by a pending attempt (BullMQ's own default waits up to 20 s between attempts).
 */
function reconnectDelay(attempt: number): number {
  return Math.min(100 * 2 ** Math.min(attempt - 1, 5), 2000);
}

/**
 * Ends the reconnecting of every connection made with it, once its part (a farm, a worker, a
 * service agent or client) closes. A command sent while Redis is away waits for the reconnect,
 * QUIT included, and ioredis's disconnect() during the wait between two attempts neither fails
 * those commands nor ends the connection: closing a part while Redis was down used to wait for a
 * Redis that might never come back. Once closed, the next failed attempt ends the connection
 * instead: what waited on it fails, and BullMQ's close completes. A Redis that answers meanwhile is
 * closed from gracefully, as before.
 */
export class ReconnectGate {
  private closed = false;

  close(): void {
    this.closed = true;
  }

  /** ioredis's retry strategy: the given one's delay (ours by default) while open, none once closed. */
  strategy(given: RedisOptions['retryStrategy']): (attempt: number) => number | void | null {
    return (attempt) => (this.closed ? null : given ? given(attempt) : reconnectDelay(attempt));
  }
}

/** The part of an ioredis client `settled` watches (BullMQ's clients are typed as its own copy of ioredis). */
interface ClientState {
  readonly status: string;
  once(event: 'ready' | 'end', listener: () => void): unknown;
  off(event: 'ready' | 'end', listener: () => void): unknown;
}

/**
 * Resolves once `client` is connected or has ended: at once if it is, otherwise at its next
 * attempt to reach Redis (which ends it once its gate is closed). A close that starts with
 * ioredis's disconnect() (BullMQ's QueueEvents) must wait for this: called between two attempts,
 * that disconnect() cancels the next one and the connection never ends.
 */
export function settled(client: ClientState): Promise<void> {
  if (client.status === 'ready' || client.status === 'end' || client.status === 'wait') return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      client.off('ready', done);
      client.off('end', done);
      resolve();
    };
    client.once('ready', done);
    client.once('end', done);
  });
}

/**
 * The options every farm connection uses. BullMQ requires `maxRetriesPerRequest: null` on the
 * connections of its workers (a blocking command must wait through a reconnect rather than fail);
 * the same on clients means a command issued while Redis restarts waits for it instead of failing,
 * until the part that made the connection closes (`gate`).
 */
export function redisOptions(connection: RedisConnection, gate: ReconnectGate): RedisOptions {
  const base = typeof connection === 'string' ? parseRedisUrl(connection) : { ...connection };
  return { ...base, maxRetriesPerRequest: null, retryStrategy: gate.strategy(base.retryStrategy) };
}

/**
 * The same options typed as BullMQ takes them: BullMQ declares its own copy of ioredis's option
 * type, which differs from the installed ioredis's in details (callback return types) only.
 */
export function bullConnection(connection: RedisConnection, gate: ReconnectGate): ConnectionOptions {
  return redisOptions(connection, gate) as ConnectionOptions;
}
