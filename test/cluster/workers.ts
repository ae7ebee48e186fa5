/**
 * Farm workers for the tests: `sandcell worker` from the built package, each a process of its own
 * standing in for a machine. Every one is killed (by the pid started here) when the test ends.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { connectCluster, type Farm } from '../../src/cluster/index.js';
import { requireRoot } from '../helpers/host.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';

export const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'cli', 'main.js');

export interface TestWorker {
  name: string;
  pid: number;
  proc: ChildProcess;
  /** Its JSON log lines so far. */
  events(): Record<string, unknown>[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Every live process below it (its boxes), as pid and start time, to tell a pid reused later from a survivor. */
  descendants(): { pid: number; start: string }[];
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export interface WorkerStart {
  name: string;
  concurrency?: number;
  labels?: string;
  lockTime?: string;
  stallInterval?: string;
  args?: string[];
}

function stat(pid: number): { ppid: number; start: string; state: string } | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(f[1]), start: f[19] as string, state: f[0] as string };
  } catch {
    return null;
  }
}

/** Processes below `root`, found through /proc's parent links. */
export function descendantsOf(root: number): { pid: number; start: string }[] {
  const children = new Map<number, { pid: number; start: string }[]>();
  for (const e of readdirSync('/proc')) {
    const pid = Number(e);
    if (!Number.isInteger(pid)) continue;
    const s = stat(pid);
    if (!s) continue;
    const list = children.get(s.ppid) ?? [];
    list.push({ pid, start: s.start });
    children.set(s.ppid, list);
  }
  const out: { pid: number; start: string }[] = [];
  const walk = (p: number): void => {
    for (const c of children.get(p) ?? []) {
      out.push(c);
      walk(c.pid);
    }
  };
  walk(root);
  return out;
}

/** Whether a process recorded earlier is still the same live process (a zombie is dead: it only waits to be reaped). */
export function stillAlive(p: { pid: number; start: string }): boolean {
  const s = stat(p.pid);
  return s !== null && s.start === p.start && s.state !== 'Z';
}

/** How long a worker may take to come up (a process, Redis, its first box) on a loaded 2-CPU machine. */
const READY_MS = 90_000;

export async function startWorker(redisUrl: string, o: WorkerStart, cleanups: (() => Promise<void>)[]): Promise<TestWorker> {
  requireRoot('a farm suite (its workers run real sandboxes)');
  const args = [CLI, 'worker', '--redis', redisUrl, '--name', o.name, '--concurrency', String(o.concurrency ?? 1)];
  if (o.labels) args.push('--labels', o.labels);
  if (o.lockTime) args.push('--lock-time', o.lockTime);
  if (o.stallInterval) args.push('--stall-interval', o.stallInterval);
  args.push(...(o.args ?? []));
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr?.on('data', (c: Buffer) => (err += c.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  const pid = proc.pid as number;
  const kill = async (signal: NodeJS.Signals = 'SIGKILL'): Promise<void> => {
    if (proc.exitCode === null && proc.signalCode === null) {
      // A stopped process takes SIGKILL, but not SIGTERM, until it is continued.
      proc.kill('SIGCONT');
      proc.kill(signal);
    }
    await exited;
  };
  // Drained when the test ends, so it removes its own cgroups; killed if it does not end within a
  // minute (a loaded machine slows the drain, and a killed worker leaves its cgroups behind).
  cleanups.push(async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const late = setTimeout(() => proc.kill('SIGKILL'), 60_000);
    await kill('SIGTERM');
    clearTimeout(late);
  });
  const events = (): Record<string, unknown>[] =>
    err
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  const started = Date.now();
  await new Promise<void>((resolve, reject) => {
    const end = (e?: Error): void => {
      clearInterval(check);
      if (e) reject(e);
      else resolve();
    };
    const check = setInterval(() => {
      if (events().some((e) => e.event === 'ready')) end();
      else if (Date.now() - started > READY_MS) end(new Error(`worker ${o.name} (pid ${pid}) was not ready within ${READY_MS / 1000} s; its stderr:\n${err}`));
    }, 20);
    void exited.then((x) => end(new Error(`worker ${o.name} exited (${x.code ?? x.signal}) before it was ready:\n${err}`)));
  });
  return { name: o.name, pid, proc, events, exited, descendants: () => descendantsOf(pid), kill };
}

export interface TestFarm {
  redis: TestRedis;
  farm: Farm;
  workers: TestWorker[];
  /** Closes the client, drains every worker (killing the ones that do not end) and stops Redis. */
  stop(): Promise<void>;
}

/**
 * A real redis-server with one worker per name and a client connected to it: the setup of the
 * suites that send work through a farm. Whatever was started before a failure is stopped by stop().
 */
export async function startFarm(names: string[], o: Omit<WorkerStart, 'name'> = {}): Promise<TestFarm> {
  const cleanups: (() => Promise<void>)[] = [];
  const workers: TestWorker[] = [];
  const t: Partial<TestFarm> = { workers };
  const stop = async (): Promise<void> => {
    await t.farm?.close();
    for (const c of cleanups) await c();
    await t.redis?.stop();
  };
  try {
    t.redis = await startRedis();
    for (const name of names) workers.push(await startWorker(t.redis.url, { ...o, name }, cleanups));
    t.farm = connectCluster({ redis: t.redis.url });
  } catch (e) {
    await stop();
    throw e;
  }
  return { redis: t.redis, farm: t.farm, workers, stop };
}
