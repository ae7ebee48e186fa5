/**
 * A real daemon for the tests: `sandcell serve` from the built package, as a separate process on
 * a socket in a temp dir, and what it left behind, read from its own `sandcell-<pid>` cgroups.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { onTestFinished } from 'vitest';

import { cleanupOrphans, listSandcellCgroups } from '../../src/cgroup/index.js';
import type { PolicyFile } from '../../src/daemon/policy.js';

export const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'cli', 'main.js');

export interface TestDaemon {
  dir: string;
  socket: string;
  pid: number;
  proc: ChildProcess;
  /** What it printed (pino's JSON lines). */
  log(): string;
  exited: Promise<number | null>;
  /** SIGTERM; its exit code and the cgroups it left (before anything sweeps them). */
  stop(): Promise<{ code: number | null; leftCgroups: string[] }>;
}

export interface DaemonStart {
  policy?: PolicyFile;
  args?: string[];
  /** Node's own options, before the CLI (`--import` of a test's module). */
  nodeOptions?: string[];
}

export async function startDaemon(opts: DaemonStart = {}): Promise<TestDaemon> {
  const dir = mkdtempSync(join(tmpdir(), 'sandcell-daemon-'));
  chmodSync(dir, 0o755);
  const socket = join(dir, 'sandcell.sock');
  const args = [CLI, 'serve', '--socket', socket, ...(opts.args ?? [])];
  if (opts.policy) {
    writeFileSync(join(dir, 'policy.json'), JSON.stringify(opts.policy));
    args.push('--policy', join(dir, 'policy.json'));
  }
  const proc = spawn(process.execPath, [...(opts.nodeOptions ?? []), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  proc.stderr?.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  try {
    await new Promise<void>((resolve, reject) => {
      const check = setInterval(() => {
        if (out.includes('"msg":"listening"')) {
          clearInterval(check);
          resolve();
        }
      }, 20);
      void exited.then((code) => {
        clearInterval(check);
        reject(new Error(`the daemon exited with ${code} before listening:\n${out}`));
      });
    });
  } catch (e) {
    // A refused start (a test may expect one) leaves no directory behind either.
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  const pid = proc.pid as number;
  // A test that fails before its stop() must not leave the daemon running: it outlives the
  // worker. Its directory goes too, whether the test killed the daemon or it ended by itself.
  // vitest refuses the hook outside a test: a daemon started in a suite's hook is stopped by that
  // suite's after-hook instead.
  try {
    onTestFinished(async () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    });
  } catch {
    // started in a hook
  }
  return {
    dir,
    socket,
    pid,
    proc,
    log: () => out,
    exited,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      const code = await exited;
      const leftCgroups = cgroupTree(pid);
      await cleanupOrphans();
      rmSync(dir, { recursive: true, force: true });
      return { code, leftCgroups };
    },
  };
}

/** Every cgroup directory below the daemon's `sandcell-<pid>` parents, the parents included. */
export function cgroupTree(pid: number): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    let entries;
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch {
      return; // a run's cgroup removed as its run ended, between listing and reading it
    }
    out.push(d);
    for (const e of entries) if (e.isDirectory()) walk(join(d, e.name));
  };
  for (const top of listSandcellCgroups({ pid })) if (existsSync(top)) walk(top);
  return out;
}

/** Pids in the daemon's cgroups. */
export function processesOf(pid: number): number[] {
  const pids = new Set<number>();
  for (const d of cgroupTree(pid)) {
    try {
      for (const p of readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n')) if (p !== '') pids.add(Number(p));
    } catch {
      // removed meanwhile
    }
  }
  return [...pids];
}

/** A box's init (a warm box waiting, or a box ending): not a program a client ran. Gone counts as one. */
export function isInit(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'sandcell-init';
  } catch {
    return true;
  }
}

/** Polls `f` until true: up to `ms` (a bound on a wait, not a timing assertion). */
export async function until(f: () => boolean | Promise<boolean>, ms = 20_000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await f()) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return f();
}

export interface Raw {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One HTTP request on the socket, no client library. */
export function http(socket: string, method: string, path: string, body?: string | Buffer, headers: Record<string, string> = {}): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const h: Record<string, string | number> = { ...headers };
    if (body !== undefined) {
      h['content-type'] ??= 'application/json';
      h['content-length'] = Buffer.byteLength(body);
    }
    const req = request({ socketPath: socket, method, path, headers: h, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** A result without what differs from run to run (timings and measured sizes). */
export function comparable(r: unknown): unknown {
  const { usage: _usage, ...rest } = r as { usage: unknown };
  return rest;
}
