import { Redis } from 'ioredis';

import { redisOptions, type ReconnectGate, type RedisConnection } from '../connection.js';

/**
 * A connection as every farm part makes it (its commands wait through a reconnect until `gate`
 * closes). Errors are seen as failed commands where they matter, so the connection's own error
 * events (one per reconnect attempt) are not reported twice.
 */
export function redisClient(connection: RedisConnection, gate: ReconnectGate): Redis {
  const redis = new Redis(redisOptions(connection, gate));
  redis.on('error', () => {});
  return redis;
}
