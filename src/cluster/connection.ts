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
 * The options every farm connection uses. BullMQ requires `maxRetriesPerRequest: null` on the
 * connections of its workers (a blocking command must wait through a reconnect rather than fail);
 * the same on clients means a command issued while Redis restarts waits for it instead of failing.
 */
export function redisOptions(connection: RedisConnection): RedisOptions {
  const base = typeof connection === 'string' ? parseRedisUrl(connection) : { ...connection };
  return { ...base, maxRetriesPerRequest: null };
}

/**
 * The same options typed as BullMQ takes them: BullMQ declares its own copy of ioredis's option
 * type, which differs from the installed ioredis's in details (callback return types) only.
 */
export function bullConnection(connection: RedisConnection): ConnectionOptions {
  return redisOptions(connection) as ConnectionOptions;
}
