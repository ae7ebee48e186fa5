// Runs in a box that lives (Sandbox): each run is a tree that ends as a whole, whichever way it
// ends, and nothing it leaves in the working directory can steer where the next run's files go.
// Every case runs as root and again rootless (an unprivileged caller, as test/box/rootless does).
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { Sandbox, SandboxSetupError, type RunResult } from '../../src/index.js';
import { childPids, requireRoot, runCgroupsInUse } from '../helpers/host.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const DIST = join(HERE, '..', '..', 'dist', 'index.js');

let dir = '';
const bind = () => ({ source: dir, target: '/runs' });
const SURVIVOR = '/runs/survivor';

beforeAll(() => {
  requireRoot();
  // World-readable, for the rootless cases too.
  dir = mkdtempSync(join(tmpdir(), 'sandcell-runs-'));
  chmodSync(dir, 0o755);
  execFileSync('gcc', ['-O1', '-static', '-Wall', '-o', join(dir, 'survivor'), join(HERE, 'runs', 'survivor.c')], { stdio: 'inherit' });
  const probe = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'test', '-r', DIST]);
  if (probe.status !== 0) throw new Error(`uid 65534 cannot read ${DIST}: the rootless cases need a world-readable checkout`);
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The run's result, or 'hung' when it has not resolved after `ms` (a liveness bound, far above the limits). */
async function within<T>(p: Promise<T>, ms: number): Promise<T | 'hung'> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<'hung'>((resolve) => (timer = setTimeout(() => resolve('hung'), ms)));
  try {
    return await Promise.race([p, hung]);
  } finally {
    clearTimeout(timer);
  }
}

async function text(box: Sandbox, name: string): Promise<string | null> {
  const c = await box.collect([name]);
  return c.files[name]?.toString() ?? null;
}

describe('a run in a living box ends as a whole (root)', () => {
  it('a child forked before a seccomp kill is gone when the result resolves; the violator never carries on', async () => {
    const box = await Sandbox.create({ binds: [bind()] });
    try {
      const r = await within(box.run({ command: [SURVIVOR, 'deny'], seccomp: 'judge', limits: { wallTime: '3s' } }), 20_000);
      expect(r).not.toBe('hung');
      expect((r as RunResult).status).toBe('syscall-denied');
      expect((r as RunResult).violation?.syscall).toBe('socket');
      const beat = await text(box, 'hb');
      expect(beat).not.toBeNull();
      await sleep(300);
      expect(await text(box, 'hb')).toBe(beat);
      expect((await box.collect(['after'])).errors.after).toBe('does not exist');
    } finally {
      await box.destroy();
    }
    expect(await childPids()).toEqual([]);
    expect(await runCgroupsInUse()).toEqual([]);
  });

  it.each(['exit', 'wall-time-limit', 'kill()', 'AbortSignal'])('a run that ends by %s leaves no process behind', async (how) => {
    const box = await Sandbox.create();
    try {
      // A daemon that ignores the polite signals, in a session of its own; the main process waits
      // for its first heartbeat, then ends (or waits to be ended).
      const daemon = `(setsid sh -c 'trap "" TERM HUP INT; while :; do date +%s%N > hb; sleep 0.01; done' &); while [ ! -e hb ]; do sleep 0.01; done`;
      const abort = new AbortController();
      const proc = await box.spawn({
        command: ['/bin/sh', '-c', `${daemon}; echo up; ${how === 'exit' ? 'exit 0' : 'sleep 1000'}`],
        limits: { wallTime: how === 'wall-time-limit' ? '1s' : '30s' },
        signal: abort.signal,
      });
      await new Promise<void>((resolve) => proc.stdout.once('data', () => resolve()));
      if (how === 'kill()') proc.kill();
      if (how === 'AbortSignal') abort.abort();
      const r = await within(proc.wait().catch((e: unknown) => e), 20_000);
      expect(r).not.toBe('hung');
      const beat = await text(box, 'hb');
      expect(beat).not.toBeNull();
      await sleep(300);
      expect(await text(box, 'hb')).toBe(beat);
    } finally {
      await box.destroy();
    }
  });

  it('a survivor that holds stdout does not hold run() past the wall limit and its grace', async () => {
    const box = await Sandbox.create({ binds: [bind()] });
    try {
      // Wall limit 1 s, grace 1 s: a run that has not resolved by far later was held open.
      const r = await within(box.run({ command: [SURVIVOR, 'deny'], seccomp: 'judge', limits: { wallTime: '1s' } }), 10_000);
      expect(r).not.toBe('hung');
      expect((r as RunResult).stdout).toBe('forked\n');
    } finally {
      await box.destroy();
    }
  });

  it("a survivor cannot read the next run's environment", async () => {
    const box = await Sandbox.create({ binds: [bind()] });
    try {
      const r = await box.run({ command: [SURVIVOR, 'quiet'], seccomp: 'judge', limits: { wallTime: '5s' } });
      expect(r.status).toBe('syscall-denied');
      const next = await box.run({ command: ['/bin/sleep', '0.5'], env: { SECRET: 'run-two-secret' } });
      expect(next.status).toBe('ok');
      expect((await box.collect(['leak'])).errors.leak).toBe('does not exist');
      expect((await box.collect(['after'])).errors.after).toBe('does not exist');
    } finally {
      await box.destroy();
    }
  });

  it("/proc in a run shows only that run's processes; a run's own leftovers die with it", async () => {
    const box = await Sandbox.create();
    try {
      const keeper = await box.spawn({ command: ['/bin/sleep', '1000'] });
      const victim = await box.spawn({ command: ['/bin/sh', '-c', '(setsid sleep 999 &); sleep 1000'] });
      await sleep(100);
      victim.kill();
      expect((await victim.wait()).signal).toBe('SIGKILL');
      const ps = await box.run({
        command: ['/bin/sh', '-c', 'for p in /proc/[0-9]*; do printf "%s: " ${p#/proc/}; tr "\\0" " " < $p/cmdline; echo; done'],
      });
      const lines = ps.stdout.trim().split('\n');
      // The shell (PID 1 is the run's init, hidden by hidepid) and the tr it runs for each entry.
      expect(lines.every((l) => /^\d+: (\/bin\/sh -c .*|tr .*)?$/.test(l)), ps.stdout).toBe(true);
      expect(ps.stdout).not.toContain('sleep');
      expect(keeper.kill()).toBe(true);
      expect((await keeper.wait()).signal).toBe('SIGKILL');
    } finally {
      await box.destroy();
    }
  });

  it('a run cannot signal what supervises it', async () => {
    const box = await Sandbox.create();
    try {
      const r = await box.run({ command: ['/bin/sh', '-c', 'kill -9 $PPID; kill -9 1; kill -9 -1; sleep 0.2; echo alive'] });
      expect(r.status).toBe('ok');
      expect(r.stdout).toBe('alive\n');
      expect((await box.run({ command: ['/bin/echo', 'next'] })).stdout).toBe('next\n');
    } finally {
      await box.destroy();
    }
  });
});

describe("a run's files are placed safely whatever the box holds (root)", () => {
  it('a FIFO planted where a file goes is replaced, promptly', async () => {
    const box = await Sandbox.create();
    try {
      await box.run({ command: ['/bin/mkfifo', 'input.txt'] });
      const r = await within(box.run({ command: ['/bin/sh', '-c', 'test -f input.txt && cat input.txt'], files: { 'input.txt': 'data\n' } }), 10_000);
      expect(r).not.toBe('hung');
      expect((r as RunResult).stdout).toBe('data\n');
    } finally {
      await box.destroy();
    }
  });

  it('a symlink planted in a parent directory fails the run naming the file; one in its place is replaced; nothing is written outside the working directory', async () => {
    const box = await Sandbox.create();
    try {
      await box.run({ command: ['/bin/sh', '-c', 'mkdir d && ln -s /tmp d/sub && ln -s /tmp/target link'] });
      const e = await within(box.run({ command: ['/bin/true'], files: { 'd/sub/planted': 'x' } }).catch((x: unknown) => x), 10_000);
      expect(e).toBeInstanceOf(SandboxSetupError);
      expect((e as SandboxSetupError).stage).toContain('d/sub/planted');
      const r = await box.run({ command: ['/bin/sh', '-c', 'test -L link || cat link; ls -A /tmp'], files: { link: 'replaced\n' } });
      expect(r.stdout).toBe('replaced\n');
    } finally {
      await box.destroy();
    }
  });

  it('a directory where a file goes fails the run naming the file', async () => {
    const box = await Sandbox.create();
    try {
      await box.run({ command: ['/bin/mkdir', '-p', 'in/x'] });
      const e = await box.run({ command: ['/bin/true'], files: { in: 'x' } }).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(SandboxSetupError);
      expect((e as SandboxSetupError).stage).toContain('in');
    } finally {
      await box.destroy();
    }
  });
});

/** Runs `script` (ESM; Sandbox and SandboxSetupError imported, SURVIVOR and BIND defined) in a Node process as uid/gid 65534. */
function asNobody(script: string): { status: number | null; stdout: string; stderr: string } {
  const code = [
    `import { Sandbox, SandboxSetupError } from ${JSON.stringify(DIST)};`,
    `const SURVIVOR = ${JSON.stringify(SURVIVOR)}; const BIND = ${JSON.stringify(bind())};`,
    'const within = (p, ms) => Promise.race([p, new Promise((r) => setTimeout(() => r("hung"), ms).unref())]);',
    'const sleep = (ms) => new Promise((r) => setTimeout(r, ms));',
    'const text = async (box, name) => (await box.collect([name])).files[name]?.toString() ?? null;',
    script,
    'process.exit(0);',
  ].join('\n');
  const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '--input-type=module', '-e', code], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function lastJson(r: { stdout: string; stderr: string }): Record<string, unknown> {
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    throw new Error(`no result from the rootless script:\n${r.stdout}\n${r.stderr}`);
  }
}

describe('a run in a living box ends as a whole (rootless)', () => {
  it('the program cannot kill its init or the box: kill -9 $PPID, kill -9 1, kill -9 -1 do nothing', () => {
    const r = asNobody(`
      const box = await Sandbox.create();
      const a = await within(box.run({ command: ['/bin/sh', '-c', 'kill -9 $PPID; kill -9 1; kill -9 -1; sleep 0.2; echo alive'] }), 10000);
      const b = await within(box.run({ command: ['/bin/echo', 'next'] }).catch((e) => ({ status: String(e), stdout: '' })), 10000);
      await box.destroy();
      console.log(JSON.stringify({ a: a === 'hung' ? 'hung' : [a.status, a.stdout], b: b === 'hung' ? 'hung' : [b.status, b.stdout] }));`);
    expect(r.stderr).toBe('');
    expect(lastJson(r)).toEqual({ a: ['ok', 'alive\n'], b: ['ok', 'next\n'] });
  });

  it('the program cannot ptrace its init, even with no seccomp filter', () => {
    const r = asNobody(`
      const box = await Sandbox.create();
      const py = 'import ctypes, os\\nlibc = ctypes.CDLL(None, use_errno=True)\\nr = libc.ptrace(16, 1, 0, 0)\\nprint(r, os.strerror(ctypes.get_errno()))';
      const a = await within(box.run({ command: ['/usr/bin/python3', '-c', py], seccomp: 'none' }), 10000);
      await box.destroy();
      console.log(JSON.stringify(a === 'hung' ? 'hung' : [a.status, a.stdout]));`);
    expect(r.stderr).toBe('');
    expect(lastJson(r)).toEqual(['ok', '-1 Operation not permitted\n']);
  });

  it('a child forked before a seccomp kill is gone, holds no stdout, and reads no later environment', () => {
    const r = asNobody(`
      const box = await Sandbox.create({ binds: [BIND] });
      const a = await within(box.run({ command: [SURVIVOR, 'deny'], seccomp: 'judge', limits: { wallTime: '1s' } }), 10000);
      const q = await within(box.run({ command: [SURVIVOR, 'quiet'], seccomp: 'judge', limits: { wallTime: '1s' } }), 10000);
      const beat = await text(box, 'hb');
      const next = await within(box.run({ command: ['/bin/sleep', '0.5'], env: { SECRET: 'run-two-secret' } }), 10000);
      const later = await text(box, 'hb');
      const out = { a: a === 'hung' ? 'hung' : a.status, q: q === 'hung' ? 'hung' : q.status, next: next === 'hung' ? 'hung' : next.status,
        still: later === beat, leak: await text(box, 'leak'), after: await text(box, 'after') };
      await within(box.destroy(), 5000);
      console.log(JSON.stringify(out));`);
    expect(lastJson(r)).toEqual({ a: 'syscall-denied', q: 'syscall-denied', next: 'ok', still: true, leak: null, after: null });
  });

  it("/proc in a run shows only that run's processes", () => {
    const r = asNobody(`
      const box = await Sandbox.create();
      const keeper = await box.spawn({ command: ['/bin/sleep', '1000'] });
      const ps = await box.run({ command: ['/bin/sh', '-c', 'for p in /proc/[0-9]*; do tr "\\\\0" " " < $p/cmdline; echo; done'] });
      keeper.kill();
      await keeper.wait();
      await box.destroy();
      console.log(JSON.stringify({ sleep: ps.stdout.includes('sleep'), lines: ps.stdout.trim().split('\\n').length }));`);
    expect(r.stderr).toBe('');
    // Rootless, the program has the init's uid: it sees the run's init (PID 1), itself and its tr.
    expect(lastJson(r)).toMatchObject({ sleep: false });
  });

  it('planted FIFOs and symlinks neither hang the next run nor send its files outside the working directory', () => {
    const r = asNobody(`
      const box = await Sandbox.create();
      await box.run({ command: ['/bin/sh', '-c', 'mkfifo input.txt; mkdir d && ln -s /tmp d/sub'] });
      const a = await within(box.run({ command: ['/bin/cat', 'input.txt'], files: { 'input.txt': 'data' } }).catch((e) => e), 10000);
      const b = await within(box.run({ command: ['/bin/true'], files: { 'd/sub/planted': 'x' } }).catch((e) => e), 10000);
      const ls = await box.run({ command: ['/bin/ls', '-A', '/tmp'] });
      await box.destroy();
      console.log(JSON.stringify({ a: a === 'hung' ? 'hung' : a.stdout ?? a.message, b: b instanceof SandboxSetupError ? b.stage : String(b), tmp: ls.stdout }));`);
    expect(lastJson(r)).toEqual({ a: 'data', b: expect.stringContaining('d/sub/planted') as unknown, tmp: '' });
  });
});
