// Host faults: the Node process that started boxes dies (SIGKILL, an uncaught exception in a user
// callback), a callback throws but the process lives on, an AbortSignal fires, the caller kills a
// box mid-run. Every box dies with its owner, and the next start of sandcell sweeps the dead
// process's cgroups; in-process faults leave nothing behind.
import { spawn as spawnHost, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { listSandcellCgroups } from '../../src/cgroup/index.js';
import { AbortError, run, spawn } from '../../src/index.js';
import { childPids, openFds, pidsRunning, requireRoot, runCgroupsInUse } from '../helpers/host.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const DIST = join(ROOT, 'dist', 'index.js');
let scriptDir: string;
let script: string;
let n = 0;
const marker = () => `${3000 + (n++ % 500)}.${process.pid}${Date.now() % 100000}`;

/** The owner process: starts boxes running `sleep <marker>` (mode `start`), or one run (`run`). */
const OWNER = `
import { run, spawn } from ${JSON.stringify(pathToFileURL(DIST).href)};
const [mode, marker, count] = process.argv.slice(2);
if (mode === 'run') {
  const r = await run({ command: ['/bin/true'], limits: { wallTime: '10s' } });
  console.log('status ' + r.status);
} else if (mode === 'start') {
  const boxes = [];
  for (let i = 0; i < Number(count); i++) boxes.push(await spawn({ command: ['/bin/sleep', marker], limits: { wallTime: '120s' } }));
  console.log('started ' + boxes.map((b) => b.pid).join(' '));
  await Promise.all(boxes.map((b) => b.wait()));
} else if (mode === 'throw' || mode === 'throw-handled') {
  if (mode === 'throw-handled') process.on('uncaughtException', (e) => console.log('caught ' + e.message));
  const box = await spawn({ command: ['/bin/sh', '-c', 'echo hello; exec /bin/sleep ' + marker], limits: { wallTime: '120s' } });
  console.log('started ' + box.pid);
  box.stdout.on('data', () => { throw new Error('callback failed'); });
  if (mode === 'throw-handled') {
    setTimeout(() => box.kill(), 300);
    const r = await box.wait();
    console.log('status ' + r.status);
  }
}
`;

function owner(args: string[]): { child: ChildProcess; out: () => string; started: Promise<number[]>; exited: Promise<number | null> } {
  const child = spawnHost(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const started = new Promise<number[]>((resolve, reject) => {
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /started ([\d ]+)\n/.exec(out);
      if (m) resolve(m[1]!.trim().split(' ').map(Number));
    });
    void exited.then(() => reject(new Error(`owner exited before starting: ${out}\n${err}`)));
  });
  // Owners that only run never report a start: not an error of theirs.
  started.catch(() => undefined);
  return { child, out: () => out + err, started, exited };
}

async function until(cond: () => boolean, ms: number): Promise<number> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
  return Date.now() - t0;
}

/** A process is alive until it is a zombie (a dead init reparented to pid 1 waits there to be reaped). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

beforeAll(() => {
  requireRoot();
  if (!existsSync(DIST)) throw new Error('dist/index.js is missing: run `npm run build` (npm test does it first)');
  scriptDir = mkdtempSync(join(tmpdir(), 'sandcell-faults-'));
  script = join(scriptDir, 'owner.mjs');
  writeFileSync(script, OWNER);
});

afterAll(() => {
  if (scriptDir) rmSync(scriptDir, { recursive: true, force: true });
});

describe('the owner process dies', () => {
  it('SIGKILL mid-run: every box dies within a second; the next start removes the dead owner\'s cgroups', async () => {
    const m = marker();
    const o = owner(['start', m, '3']);
    const inits = await o.started;
    expect(pidsRunning(['/bin/sleep', m])).toHaveLength(3);
    const ownerPid = o.child.pid!;
    expect(listSandcellCgroups({ pid: ownerPid }).length).toBeGreaterThan(0);
    o.child.kill('SIGKILL');
    await o.exited;
    const took = await until(() => pidsRunning(['/bin/sleep', m]).length === 0 && !inits.some(alive), 1000);
    expect(took).toBeLessThan(1000);

    // The dead owner's cgroups remain until some sandcell starts: the next one sweeps them.
    const next = owner(['run']);
    expect(await next.exited).toBe(0);
    expect(next.out()).toContain('status ok');
    expect(listSandcellCgroups({ pid: ownerPid })).toEqual([]);
    expect(listSandcellCgroups({ pid: next.child.pid! })).toEqual([]);
  });

  it('an uncaught exception in a stdout callback kills the owner: its box dies too', async () => {
    const m = marker();
    const o = owner(['throw', m]);
    const [init] = await o.started;
    expect(await o.exited).not.toBe(0);
    expect(o.out()).toContain('callback failed');
    await until(() => pidsRunning(['/bin/sleep', m]).length === 0 && !alive(init!), 1000);
    const next = owner(['run']);
    expect(await next.exited).toBe(0);
    expect(listSandcellCgroups({ pid: o.child.pid! })).toEqual([]);
  });

  it('an exception in a callback that the owner survives: the box still ends and is cleaned up', async () => {
    const m = marker();
    const o = owner(['throw-handled', m]);
    await o.started;
    expect(await o.exited).toBe(0);
    expect(o.out()).toContain('caught callback failed');
    expect(o.out()).toContain('status signaled');
    expect(pidsRunning(['/bin/sleep', m])).toEqual([]);
    expect(listSandcellCgroups({ pid: o.child.pid! })).toEqual([]);
  });
});

describe('in-process faults leave nothing behind', () => {
  let fdsBefore = 0;
  beforeAll(async () => {
    await run({ command: ['/bin/true'], limits: { wallTime: '5s' } });
    fdsBefore = await openFds();
  });
  const runCgroups = runCgroupsInUse;
  afterEach(async () => {
    expect(await childPids()).toEqual([]);
    expect(await runCgroups()).toEqual([]);
    expect(await openFds()).toBe(fdsBefore);
  });

  it('an AbortSignal fired mid-run rejects with AbortError and ends the box', async () => {
    const m = marker();
    const ac = new AbortController();
    const p = run({ command: ['/bin/sleep', m], limits: { wallTime: '60s' }, signal: ac.signal });
    await until(() => pidsRunning(['/bin/sleep', m]).length === 1, 5000);
    ac.abort(new Error('stop'));
    await expect(p).rejects.toBeInstanceOf(AbortError);
    expect(pidsRunning(['/bin/sleep', m])).toEqual([]);
  });

  it('an AbortSignal already aborted never starts a box', async () => {
    const ac = new AbortController();
    ac.abort();
    await expect(run({ command: ['/bin/true'], signal: ac.signal })).rejects.toBeInstanceOf(AbortError);
  });

  it('kill() mid-run ends every process of the box', async () => {
    const m = marker();
    const box = await spawn({ command: ['/bin/sh', '-c', `/bin/sleep ${m} & /bin/sleep ${m} & wait`], limits: { wallTime: '60s' } });
    await until(() => pidsRunning(['/bin/sleep', m]).length === 2, 5000);
    expect(box.kill()).toBe(true);
    const r = await box.wait();
    expect(r.status).toBe('signaled');
    expect(pidsRunning(['/bin/sleep', m])).toEqual([]);
    expect(alive(box.pid)).toBe(false);
  });

  it('a throwing data handler on a spawned box (caught by the caller\'s emitter wrapper) leaves nothing', async () => {
    const m = marker();
    const box = await spawn({ command: ['/bin/sh', '-c', `echo hi; exec /bin/sleep ${m}`], limits: { wallTime: '60s' } });
    let thrown = 0;
    // Node delivers 'data' synchronously from the stream machinery; a throw there would be an
    // uncaught exception of the test process, so it is wrapped the way an application's domain
    // or error boundary would: the box must still be killable and cleaned up afterwards.
    box.stdout.on('data', () => {
      try {
        thrown++;
        throw new Error('handler failed');
      } catch {
        box.kill();
      }
    });
    const r = await box.wait();
    expect(thrown).toBeGreaterThan(0);
    expect(r.status).toBe('signaled');
    expect(pidsRunning(['/bin/sleep', m])).toEqual([]);
  });
});
