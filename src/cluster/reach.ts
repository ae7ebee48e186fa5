/**
 * The farm's Redis asked once, with a deadline, before a command starts. The farm's own
 * connections wait through reconnects for as long as it takes (a worker outlives a Redis restart);
 * a command started against an address where nothing answers would wait the same way, for ever,
 * so it asks first and ends with an error naming the address.
 */
import { Redis } from 'ioredis';

import { parseRedisUrl, type RedisConnection } from './connection.js';

export class RedisUnreachableError extends Error {
  override readonly name = 'RedisUnreachableError';
}

/** Where `connection` points, as a person wrote it, with any password masked. */
export function redisAddress(connection: RedisConnection): string {
  if (typeof connection !== 'string') {
    return connection.path ?? `${connection.host ?? 'localhost'}:${connection.port ?? 6379}`;
  }
  try {
    const u = new URL(connection);
    if (u.password === '') return connection;
    u.password = '***';
    return u.href;
  } catch {
    return connection;
  }
}

/**
 * Connects to the Redis at `connection`, sends PING and disconnects; throws a
 * RedisUnreachableError naming the address and the cause when there is no answer within
 * `timeoutMs` (refused, no route, a TLS or authentication failure, or a peer that never answers).
 */
export async function reachRedis(connection: RedisConnection, timeoutMs: number): Promise<void> {
  const redis = new Redis({
    ...(typeof connection === 'string' ? parseRedisUrl(connection) : connection),
    lazyConnect: true,
    connectTimeout: timeoutMs,
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
  });
  let cause = '';
  redis.on('error', (e: Error) => {
    cause ||= e.message;
  });
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    await Promise.race([redis.connect().then(() => redis.ping()), late]);
  } catch (e) {
    throw new RedisUnreachableError(`cannot reach Redis at ${redisAddress(connection)}: ${cause || (e as Error).message}`);
  } finally {
    clearTimeout(timer);
    redis.disconnect();
  }
}
