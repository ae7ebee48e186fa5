import { Redis, type RedisOptions } from 'ioredis';

/**
 * A connection whose commands wait for a reconnect rather than fail: a Redis restart is a pause
 * for services, not an error. Errors are seen as failed commands where they matter, so the
 * connection's own error events (each reconnect attempt) are not reported twice.
 */
export function redisClient(connection: RedisOptions | string): Redis {
  const extra: RedisOptions = { maxRetriesPerRequest: null };
  const redis = typeof connection === 'string' ? new Redis(connection, extra) : new Redis({ ...connection, ...extra });
  redis.on('error', () => {});
  return redis;
}
