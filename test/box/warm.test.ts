// Warm boxes: boxes built ahead for the next run of a shape. A run that finds one must behave
// exactly as in a box built for it (its own program, environment, files, stdin, limits and
// filter), each box must serve one run only, the pool must stay bounded, and a box that no
// longer matches the host (killed, a bind source replaced) must not be used.
import { spawn as spawnHost } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { listSandcellCgroups } from '../../src/cgroup/index.js';
import { onDebugEvent, run, SandboxOptionsError, SandboxSetupError, setWarmBoxes, shutdown, spawn, type RunOptions } from '../../src/index.js';
import type { Result } from '../../src/result.js';
import { RUNS_BEFORE_WARM, SUPERSEDED_RUNS } from '../../src/launch/warm.js';
import { warmBoxes } from '../../src/runtime.js';
import { buildFixtures, type Fixtures } from '../helpers/fixtures.js';
import { childPids, requireRoot, runCgroupsInUse } from '../helpers/host.js';

let fx: Fixtures;
beforeAll(() => {
  requireRoot();
  fx = buildFixtures();
});
afterAll(async () => {
  fx.remove();
  expect(await childPids()).toEqual([]);
  expect(await runCgroupsInUse()).toEqual([]);
});

/** Runs /bin/true in boxes of this shape until boxes are built ahead for it; returns their pids. */
async function prime(options: Omit<RunOptions, 'command'> = {}): Promise<number[]> {
  for (let i = 0; i < RUNS_BEFORE_WARM; i++) await run({ ...options, command: ['/bin/true'] });
  return warmPids();
}

/** Waits until a warm box waits, with a deadline. */
async function warmPids(): Promise<number[]> {
  for (let i = 0; i < 200; i++) {
    await warmBoxes.settled();
    const pids = warmBoxes.pids();
    if (pids.length > 0) return pids;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error('no warm box was built within 2 s');
}

/** Runs `options` after a run of the same shape, and checks that it ran in a box built ahead. */
async function runWarm(options: RunOptions): Promise<Result & { pid: number }> {
  const { stdin, command: _command, ...rest } = options;
  const waiting = await prime(rest);
  const p = await spawn({ ...rest, command: options.command });
  expect(waiting).toContain(p.pid);
  expect(warmBoxes.pids()).not.toContain(p.pid);
  p.stdin!.end(stdin ?? '');
  const [out, err, result] = await Promise.all([text(p.stdout), text(p.stderr), p.wait()]);
  return { ...result, stdout: out, stderr: err, pid: p.pid };
}

/** Dead or a zombie (the warm box's init is not reaped until the pool lets it go). */
function dead(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z';
  } catch {
    return true;
  }
}

async function text(stream: NodeJS.ReadableStream): Promise<string> {
  let s = '';
  for await (const c of stream) s += String(c);
  return s;
}

describe('a run in a warm box', () => {
  it('gets its own program, environment, files, stdin and exit code', async () => {
    const r = await runWarm({
      command: ['/bin/sh', '-c', 'id -u; pwd; cat data.txt; echo "$GREETING"; cat; exit 3'],
      env: { GREETING: 'hello' },
      files: { 'data.txt': 'from the caller\n' },
      stdin: 'from stdin\n',
      limits: { wallTime: '10s' },
    });
    expect(r.status).toBe('nonzero-exit');
    expect(r.exitCode).toBe(3);
    expect(r.stdout).toBe('65534\n/work\nfrom the caller\nhello\nfrom stdin\n');
  });

  it('serves one run only: the next run is in another box and sees nothing of it', async () => {
    const first = await runWarm({ command: ['/bin/sh', '-c', 'echo left > /tmp/mark; echo left > mark; ls -A /tmp .'], limits: { wallTime: '10s' } });
    expect(first.stdout).toContain('mark');
    const second = await runWarm({ command: ['/bin/sh', '-c', 'ls -A /tmp .'], limits: { wallTime: '10s' } });
    expect(second.pid).not.toBe(first.pid);
    expect(second.stdout).toBe('.:\n\n/tmp:\n');
  });

  it('is held to its memory limit', async () => {
    const r = await runWarm({ command: [fx.inBox('alloc'), '512'], binds: [fx.bind], limits: { memory: '128MiB', wallTime: '20s' } });
    expect(r.status).toBe('memory-limit');
    expect(r.limitsEnforced.memory).toBe('cgroup');
  });

  it('is held to its CPU-time limit, counting the program and not the box built before it', async () => {
    const r = await runWarm({ command: [fx.inBox('burn'), '5000'], binds: [fx.bind], limits: { cpuTime: '300ms', wallTime: '10s' } });
    expect(r.status).toBe('time-limit');
    expect(r.usage.cpuTimeMs).toBeGreaterThanOrEqual(300);
    expect(r.usage.cpuTimeMs).toBeLessThan(400);
  });

  it('is held to its process limit', async () => {
    const r = await runWarm({ command: [fx.inBox('threads'), '100'], binds: [fx.bind], limits: { processes: 10, wallTime: '10s' } });
    expect(r.stdout).toBe('started 8 EAGAIN\n');
  });

  it('gets its seccomp filter: judge ends a second execve', async () => {
    const r = await runWarm({ command: ['/bin/sh', '-c', '/bin/true'], seccomp: 'judge', limits: { wallTime: '10s' } });
    expect(r.status).toBe('syscall-denied');
    expect(r.violation?.syscall).toMatch(/^(execve|clone|clone3|fork|vfork)$/);
  });

  it('that cannot start its program fails as a cold run does', async () => {
    await prime();
    const warm = await run({ command: ['/no/such/program'] }).catch((e: unknown) => e);
    await warmBoxes.drain();
    const cold = await run({ command: ['/no/such/program'] }).catch((e: unknown) => e);
    for (const e of [warm, cold]) {
      expect(e).toBeInstanceOf(SandboxSetupError);
      expect((e as SandboxSetupError).stage).toBe('execve');
      expect((e as SandboxSetupError).code).toBe('ENOENT');
    }
  });
});

describe('warm boxes that no longer fit are not used', () => {
  it('one killed while it waits: the run builds its own box', async () => {
    const killed = await prime();
    for (const pid of killed) process.kill(pid, 'SIGKILL');
    for (let i = 0; i < 100 && !killed.every(dead); i++) await new Promise((r) => setTimeout(r, 10));
    const p = await spawn({ command: ['/bin/echo', 'fine'] });
    expect(killed).not.toContain(p.pid);
    p.stdin!.end();
    expect((await p.wait()).status).toBe('ok');
  });

  it('one whose bind source was replaced since: the run sees the new directory', async () => {
    const base = mkdtempSync(join(tmpdir(), 'sandcell-warm-'));
    chmodSync(base, 0o755); // the box's user walks through it
    const work = join(base, 'work');
    try {
      const options = { command: ['/bin/cat', '/data/file'], binds: [{ source: work, target: '/data' }] };
      mkdirSync(work, { mode: 0o755 });
      writeFileSync(join(work, 'file'), 'old\n', { mode: 0o644 });
      expect((await run(options)).stdout).toBe('old\n');
      expect((await run(options)).stdout).toBe('old\n');
      await warmPids();
      rmSync(work, { recursive: true });
      mkdirSync(work, { mode: 0o755 });
      writeFileSync(join(work, 'file'), 'new\n', { mode: 0o644 });
      expect((await run(options)).stdout).toBe('new\n');
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });
});

describe('the pool', () => {
  it('builds nothing for a shape seen once (a run binding a directory of its own)', async () => {
    await warmBoxes.drain();
    await run({ command: ['/bin/true'], cwd: '/once' });
    await warmBoxes.settled();
    expect(warmBoxes.pids()).toEqual([]);
  });

  it('stays bounded: many shapes leave at most 4 boxes, 2 of a shape', async () => {
    for (let i = 0; i < 6; i++) for (let k = 0; k < 3; k++) await run({ command: ['/bin/true'], cwd: `/shape${i}` });
    await warmBoxes.settled();
    expect(warmBoxes.pids().length).toBeGreaterThan(0);
    expect(warmBoxes.pids().length).toBeLessThanOrEqual(4);
  });

  /** Spawns `/bin/true` in `cwd`'s shape and returns its box's pid once it has ended ok. */
  const boxOf = async (cwd: string): Promise<number> => {
    const p = await spawn({ command: ['/bin/true'], cwd });
    p.stdin!.end();
    p.stdout.resume();
    p.stderr.resume();
    expect((await p.wait()).status).toBe('ok');
    return p.pid;
  };
  const fillWith = async (...cwds: string[]): Promise<number[]> => {
    await warmBoxes.drain();
    for (const cwd of cwds) for (let i = 0; i < 3; i++) await run({ command: ['/bin/true'], cwd });
    await warmBoxes.settled();
    const full = warmBoxes.pids();
    expect(full).toHaveLength(4);
    return full;
  };

  it('gives a shape in use the slots of shapes a caller has moved on from: a full pool does not leave it building its own boxes', async () => {
    const full = await fillWith('/before1', '/before2');
    for (let i = 0; i <= SUPERSEDED_RUNS; i++) {
      await run({ command: ['/bin/true'], cwd: '/now' });
      await warmBoxes.settled();
    }
    const waiting = warmBoxes.pids();
    expect(waiting.length).toBeLessThanOrEqual(4);
    const pid = await boxOf('/now');
    expect(waiting).toContain(pid);
    expect(full).not.toContain(pid);
    // The shape used longest ago gave its boxes first.
    for (const old of full.slice(0, 2)) expect(waiting).not.toContain(old);
  });

  it('throws away no box built for shapes that take turns: a judge rotating three shapes evicts none of them', async () => {
    const full = await fillWith('/compile', '/check');
    let built = 0;
    let hits = 0;
    const stop = onDebugEvent((e) => {
      if (e.event === 'warm-build' && e.pid !== null) built++;
      if (e.event === 'start' && e.warm === 'hit') hits++;
    });
    try {
      // Every shape comes back within a few runs: none is superseded, so none gives up a box it
      // will want again (least-recently-used eviction discarded the next shape's box each turn).
      for (let round = 0; round < 4; round++) {
        for (const cwd of ['/compile', '/check', '/test']) {
          await run({ command: ['/bin/true'], cwd });
          await warmBoxes.settled();
        }
      }
    } finally {
      stop();
    }
    // Each box built was taken by a run or still waits.
    expect(built).toBeGreaterThan(0);
    expect(built - hits).toBe(warmBoxes.pids().length - full.length);
  });

  it("keeps nothing of a finished run's options for its shape's next box: the last run's signal is collected", async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    await prime();
    const one = async (): Promise<WeakRef<AbortSignal>> => {
      const signal = new AbortController().signal;
      expect((await run({ command: ['/bin/true'], signal })).status).toBe('ok');
      return new WeakRef(signal);
    };
    const last = await one();
    await warmBoxes.settled();
    await new Promise((resolve) => setTimeout(resolve, 200));
    gc();
    expect(last.deref()).toBeUndefined();
  });

  it('setWarmBoxes(0) ends them and builds no more; bad counts are typed errors', async () => {
    await prime();
    await setWarmBoxes(0);
    expect(warmBoxes.pids()).toEqual([]);
    expect((await run({ command: ['/bin/true'] })).status).toBe('ok');
    await warmBoxes.settled();
    expect(warmBoxes.pids()).toEqual([]);
    for (const bad of [-1, 1.5, 65, Number.NaN]) {
      const e = await setWarmBoxes(bad).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(SandboxOptionsError);
      expect((e as SandboxOptionsError).path).toBe('warmBoxes');
    }
    await setWarmBoxes(4);
    expect((await prime()).length).toBeGreaterThan(0);
  });

  it('shutdown() ends them and removes every cgroup sandcell made for this process', async () => {
    await prime();
    await shutdown();
    expect(warmBoxes.pids()).toEqual([]);
    expect(listSandcellCgroups({ pid: process.pid })).toEqual([]);
    await setWarmBoxes(4);
  });

  it('a process that exits normally takes its warm boxes and their cgroups with it', async () => {
    const dist = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist');
    const dir = mkdtempSync(join(tmpdir(), 'sandcell-warm-owner-'));
    try {
      const script = join(dir, 'owner.mjs');
      writeFileSync(
        script,
        `import { run } from ${JSON.stringify(pathToFileURL(join(dist, 'index.js')).href)};
import { warmBoxes } from ${JSON.stringify(pathToFileURL(join(dist, 'runtime.js')).href)};
for (let i = 0; i < 3; i++) await run({ command: ['/bin/true'] });
await warmBoxes.settled();
console.log(warmBoxes.pids().join(' '));
`,
      );
      const child = spawnHost(process.execPath, [script], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString()));
      const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
      expect(code).toBe(0);
      const pids = out.trim().split(' ').map(Number);
      expect(pids.length).toBeGreaterThan(0);
      for (const pid of pids) expect(() => process.kill(pid, 0)).toThrow();
      expect(listSandcellCgroups({ pid: child.pid! })).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
