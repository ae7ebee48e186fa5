// What a daemon leaves on the host when it ends: its socket and the directories it made for it go
// on a stop (SIGTERM's drain, runs in flight included) and on a start refused halfway; its temp
// directory stays empty.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { connect } from '../../src/client/index.js';
import { requireRoot } from '../helpers/host.js';
import { CLI, cgroupTree, isInit, processesOf, until } from './daemon.js';

let base = '';
let tmp = '';
const started: ChildProcess[] = [];

beforeEach(() => {
  base = mkdtempSync(join(tmpdir(), 'sandcell-leftovers-'));
  tmp = join(base, 'tmp');
  mkdirSync(tmp);
});

afterEach(async () => {
  for (const p of started.splice(0)) {
    if (p.exitCode !== null || p.signalCode !== null) continue;
    p.kill('SIGKILL');
    await new Promise((r) => p.once('exit', r));
  }
  rmSync(base, { recursive: true, force: true });
});

/** `sandcell serve` with its own temp directory; resolves once it is listening. */
async function serve(args: string[]): Promise<{ proc: ChildProcess; exited: Promise<number | null> }> {
  const proc = spawn(process.execPath, [CLI, 'serve', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TMPDIR: tmp } });
  started.push(proc);
  let out = '';
  proc.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  proc.stderr?.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  let ended = false;
  void exited.then(() => (ended = true));
  expect(await until(() => ended || out.includes('"msg":"listening"'), 60_000)).toBe(true);
  if (ended) throw new Error(`the daemon exited before listening:\n${out}`);
  return { proc, exited };
}

/** `sandcell serve` that is expected to refuse to start: its status (null if it had to be killed) and stderr. */
function refusedServe(args: string[]): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, 'serve', ...args], { encoding: 'utf8', timeout: 60_000, killSignal: 'SIGKILL', env: { ...process.env, TMPDIR: tmp } });
  return { status: r.status, stderr: r.stderr };
}

describe('a daemon that stops', () => {
  it('after a SIGTERM drain with a run in flight: its socket and the directories it made are gone, nothing in its temp directory', { timeout: 120_000 }, async () => {
    requireRoot();
    const socket = join(base, 'run', 'sandcell', 'sandcell.sock');
    const d = await serve(['--socket', socket]);
    const pid = d.proc.pid as number;
    expect(readdirSync(join(base, 'run', 'sandcell'))).toEqual(['sandcell.sock']);
    const engine = connect({ socket });
    try {
      const slow = engine.run({ command: ['/bin/sh', '-c', 'sleep 1; echo done'] });
      // sh, and the sleep it forks: the run is in flight.
      expect(await until(() => processesOf(pid).some((p) => !isInit(p)))).toBe(true);
      d.proc.kill('SIGTERM');
      expect(await slow).toMatchObject({ status: 'ok', stdout: 'done\n' });
    } finally {
      engine.close();
    }
    expect(await d.exited).toBe(0);
    expect(cgroupTree(pid)).toEqual([]);
    expect(readdirSync(base)).toEqual(['tmp']);
    expect(readdirSync(tmp)).toEqual([]);
  });

  it('keeps a socket directory it did not make, with what else is in it', { timeout: 120_000 }, async () => {
    requireRoot();
    const dir = join(base, 'run');
    mkdirSync(dir);
    writeFileSync(join(dir, 'other'), 'not the daemon\'s');
    const d = await serve(['--socket', join(dir, 'sandcell.sock')]);
    d.proc.kill('SIGTERM');
    expect(await d.exited).toBe(0);
    expect(readdirSync(dir)).toEqual(['other']);
    expect(readdirSync(tmp)).toEqual([]);
  });
  it('a SIGTERM while it starts: it stops once started, never says it listens, and leaves nothing', { timeout: 120_000 }, () => {
    requireRoot();
    const preloads = mkdtempSync(join(tmpdir(), 'sandcell-early-term-'));
    try {
      // Loaded into the daemon's process: the signal comes as the socket is about to be opened,
      // after the socket's directories were made, and is taken before the socket opens.
      const preload = join(preloads, 'term-at-listen.mjs');
      writeFileSync(
        preload,
        "import { Server } from 'node:net';\nconst listen = Server.prototype.listen;\nServer.prototype.listen = function (...args) {\n  Server.prototype.listen = listen;\n  process.kill(process.pid, 'SIGTERM');\n  setTimeout(() => listen.apply(this, args), 200);\n  return this;\n};\n",
      );
      const r = spawnSync(process.execPath, ['--import', pathToFileURL(preload).href, CLI, 'serve', '--socket', join(base, 'run', 'sandcell', 's.sock')], { encoding: 'utf8', timeout: 60_000, killSignal: 'SIGKILL', env: { ...process.env, TMPDIR: tmp } });
      expect({ status: r.status, signal: r.signal }).toEqual({ status: 0, signal: null });
      expect(r.stdout).toContain('"msg":"drained"');
      expect(r.stdout).not.toContain('"msg":"listening"');
    } finally {
      rmSync(preloads, { recursive: true, force: true });
    }
    expect(readdirSync(base)).toEqual(['tmp']);
    expect(readdirSync(tmp)).toEqual([]);
  });
});

describe('a daemon refused at its start', () => {
  it('TCP without --token-file: exit 125 before anything is made', () => {
    requireRoot();
    const r = refusedServe(['--socket', join(base, 'run', 's.sock'), '--listen', '127.0.0.1:0']);
    expect(r).toMatchObject({ status: 125, stderr: expect.stringContaining('--listen needs --token-file') as unknown });
    expect(readdirSync(base)).toEqual(['tmp']);
    expect(readdirSync(tmp)).toEqual([]);
  });

  it('a --group that does not exist: exit 125 naming it, before anything is made', () => {
    requireRoot();
    const r = refusedServe(['--socket', join(base, 'run', 's.sock'), '--group', 'sandcell-no-such-group']);
    expect(r).toMatchObject({ status: 125, stderr: expect.stringContaining('--group sandcell-no-such-group: no such group') as unknown });
    expect(readdirSync(base)).toEqual(['tmp']);
    expect(readdirSync(tmp)).toEqual([]);
  });

  it('a TCP address in use, found after the socket opened: exit 125 naming it; the socket and its directories are removed, the process ends', async () => {
    requireRoot();
    const tokens = join(base, 'tokens');
    writeFileSync(tokens, 'leftovers-token-0123456789\n', { mode: 0o600 });
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = taken.address() as AddressInfo;
      const r = refusedServe(['--socket', join(base, 'run', 'sandcell', 's.sock'), '--listen', `127.0.0.1:${port}`, '--token-file', tokens]);
      expect(r).toMatchObject({ status: 125, stderr: expect.stringContaining(`--listen 127.0.0.1:${port}: the address is in use`) as unknown });
    } finally {
      taken.close();
    }
    expect(readdirSync(base).sort()).toEqual(['tmp', 'tokens']);
    expect(readdirSync(tmp)).toEqual([]);
  }, 120_000);
});
