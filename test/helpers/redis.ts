/**
 * A real redis-server for the tests, on a Unix socket in a temp dir of its own, with an
 * append-only file synced on every write: a restart keeps what was acknowledged, as a production
 * Redis with persistence does. Killed by the pid started here, never by name.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestRedis {
  dir: string;
  socket: string;
  /** `unix://<socket>`, what workers and clients are given. */
  url: string;
  pid(): number;
  /** Stops it (SIGKILL when `hard`: no final save, as a crash) and starts it again on the same socket and data. */
  restart(opts?: { hard?: boolean; downMs?: number }): Promise<void>;
  /** Stops it and removes its directory. */
  stop(): Promise<void>;
}

async function launch(dir: string, socket: string): Promise<{ proc: ChildProcess; exited: Promise<void> }> {
  const proc = spawn(
    'redis-server',
    ['--port', '0', '--unixsocket', socket, '--unixsocketperm', '700', '--dir', dir, '--appendonly', 'yes', '--appendfsync', 'always', '--save', '', '--daemonize', 'no', '--loglevel', 'notice'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    // One that never says it is ready is killed, not left running past the test.
    const late = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`redis-server did not say it was ready within 30 s:\n${out}`));
    }, 30_000);
    const onData = (c: Buffer): void => {
      out += c.toString();
      if (/ready to accept connections/i.test(out)) {
        clearTimeout(late);
        proc.stdout?.off('data', onData);
        resolve();
      }
    };
    proc.stdout?.on('data', onData);
    proc.once('error', (e) => {
      clearTimeout(late);
      reject(new Error(`redis-server could not start (is the Debian package redis-server installed?): ${e.message}`));
    });
    void exited.then(() => {
      clearTimeout(late);
      reject(new Error(`redis-server exited before it was ready:\n${out}`));
    });
  });
  // Its later output is not read: drained so a full pipe never stalls it.
  proc.stdout?.resume();
  proc.stderr?.resume();
  return { proc, exited };
}

export async function startRedis(): Promise<TestRedis> {
  const dir = mkdtempSync(join(tmpdir(), 'sandcell-redis-'));
  const socket = join(dir, 'redis.sock');
  let current = await launch(dir, socket).catch((e: unknown) => {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  });
  const kill = async (signal: NodeJS.Signals): Promise<void> => {
    const { proc, exited } = current;
    if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
    await exited;
  };
  return {
    dir,
    socket,
    url: `unix://${socket}`,
    pid: () => current.proc.pid as number,
    async restart(opts = {}) {
      await kill(opts.hard ? 'SIGKILL' : 'SIGTERM');
      if (opts.downMs) await new Promise((r) => setTimeout(r, opts.downMs));
      current = await launch(dir, socket);
    },
    async stop() {
      await kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
