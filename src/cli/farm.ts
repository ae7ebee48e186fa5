/**
 * The farm as the commands reach it: its modules loaded only by the commands that use them, and
 * its Redis asked once before a command starts, a silent one ending the command with an exit code.
 */
import { UsageError } from './usage.js';

/**
 * The farm's modules, loaded only by the commands that use them: bullmq and ioredis are optional
 * peers of sandcell (a machine that only runs boxes installs neither), so their absence is named.
 */
export async function loadFarm<T>(what: string, load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ERR_MODULE_NOT_FOUND' && /'(bullmq|ioredis)'/.test(err.message)) {
      throw new UsageError(`${what} needs the packages bullmq and ioredis beside sandcell: npm install bullmq ioredis`);
    }
    throw e;
  }
}

/** How long the farm's Redis may take to answer when a command starts. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

/** The exit code when the farm's Redis cannot be reached: docker's for an error of its daemon. */
const EXIT_UNREACHABLE = 125;

/**
 * Asks the farm's Redis before `what` starts: the farm's connections would wait through
 * reconnects for ever. Returns the exit code to end with when it does not answer (after saying
 * why on stderr), or null to go on.
 */
export async function unreachable(what: string, redis: string, timeoutMs: number): Promise<number | null> {
  const { reachRedis, RedisUnreachableError } = await loadFarm(what, () => import('../cluster/reach.js'));
  try {
    await reachRedis(redis, timeoutMs);
    return null;
  } catch (e) {
    if (!(e instanceof RedisUnreachableError)) throw e;
    process.stderr.write(`${what}: ${e.message}\n`);
    return EXIT_UNREACHABLE;
  }
}
