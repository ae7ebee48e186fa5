/**
 * The farm as a caller sees it: a redis-server on a Unix socket in a temp dir, `sandcell worker`
 * processes on this machine, and `connectCluster()` from this process. Section 15 of
 * `npm run bench` uses this module. Everything it starts is stopped by the pid it recorded.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { connectCluster, type Farm } from '../dist/cluster/index.js';

const CLI = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'cli', 'main.js');

export interface BenchFarm {
  farm: Farm;
  /** Starts workers until there are `n` (each with `--concurrency 2`). */
  workers(n: number): Promise<void>;
  /** Stops the workers (SIGTERM: they drain), Redis, and removes the temp dir. */
  stop(): Promise<void>;
}

function started(child: ChildProcess, ready: RegExp, what: string, stream: 'stdout' | 'stderr'): Promise<void> {
  return new Promise((ok, fail) => {
    let out = '';
    const onData = (c: Buffer): void => {
      out += c.toString();
      if (ready.test(out)) {
        child[stream]?.off('data', onData);
        child[stream]?.resume();
        ok();
      }
    };
    child[stream]?.on('data', onData);
    child.once('exit', (code) => fail(new Error(`${what} exited (${code}) before it was ready: ${out.slice(-500)}`)));
  });
}

const stopChild = async (c: ChildProcess): Promise<void> => {
  if (c.exitCode !== null || c.signalCode !== null) return;
  const exited = new Promise((r) => c.once('exit', r));
  c.kill('SIGTERM');
  const late = setTimeout(() => c.kill('SIGKILL'), 30_000);
  await exited;
  clearTimeout(late);
};

export async function startFarm(): Promise<BenchFarm> {
  const dir = mkdtempSync(join(tmpdir(), 'sandcell-bench-farm-'));
  const socket = join(dir, 'redis.sock');
  const redis = spawn('redis-server', ['--port', '0', '--unixsocket', socket, '--unixsocketperm', '700', '--dir', dir, '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const workers: ChildProcess[] = [];
  let farm: Farm | null = null;
  const stop = async (): Promise<void> => {
    await farm?.close();
    for (const w of workers) await stopChild(w);
    await stopChild(redis);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await started(redis, /ready to accept connections/i, 'redis-server', 'stdout');
    redis.stderr?.resume();
    farm = connectCluster({ redis: `unix://${socket}` });
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    farm,
    async workers(n) {
      while (workers.length < n) {
        const w = spawn(process.execPath, [CLI, 'worker', '--redis', `unix://${socket}`, '--name', `bench-${workers.length + 1}`, '--concurrency', '2'], { stdio: ['ignore', 'ignore', 'pipe'] });
        workers.push(w);
        await started(w, /"event":"ready"/, `worker ${workers.length}`, 'stderr');
      }
    },
    stop,
  };
}
