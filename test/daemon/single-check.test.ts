// The daemon walks a request's options with one schema, once: a spawn's over its WebSocket as a
// run's (checkOptions, whose copy spawn() takes as it is), a box's and a run in it with the
// library's schema (checkSandboxOptions, checkSandboxRunOptions, whose copies Sandbox.create() and
// box.run() take as they are; the wire schema only for a body it refuses, so that errors stay the
// wire schema's). A
// daemon in this process, so that the schemas' walks can be counted, answering a real client on a
// Unix socket and running real boxes.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';

import { connect, type Engine } from '../../src/client/index.js';
import { makePolicy } from '../../src/daemon/policy.js';
import { boxRequest, boxRunRequest, issuesOf, runRequest, spawnRequest } from '../../src/daemon/schemas.js';
import { Daemon } from '../../src/daemon/server.js';
import { optionSchemas, SandboxOptionsError, type SpawnOptions } from '../../src/index.js';
import { childPids, pidsRunning, requireRoot, runCgroupsInUse } from '../helpers/host.js';
import { until } from './daemon.js';

const SCHEMAS = { run: optionSchemas.run, sandbox: optionSchemas.sandbox, sandboxRun: optionSchemas.sandboxRun, runRequest, spawnRequest, boxRequest, boxRunRequest };

/** Walks of each schema from now on. */
function countWalks(): () => Record<string, number> {
  const spies = Object.entries(SCHEMAS).map(([name, schema]) => [name, vi.spyOn(schema, 'safeParse')] as const);
  return () => Object.fromEntries(spies.map(([name, spy]) => [name, spy.mock.calls.length]).filter(([, n]) => n !== 0));
}

/** Options of a content no earlier run had, so that no shape resolved before serves them. */
let unique = 0;
const fresh = (): Record<string, string> => ({ SINGLE_CHECK: `${process.pid}-${unique++}` });

let dir = '';
let daemon: Daemon;
let engine: Engine;

beforeAll(async () => {
  requireRoot();
  dir = mkdtempSync(join(tmpdir(), 'sandcell-single-check-'));
  daemon = new Daemon({
    policy: makePolicy({}),
    tokens: null,
    parallelism: 2,
    maxQueue: 8,
    maxBodyBytes: 1 << 20,
    boxIdleTtlMs: 60_000,
    storeMaxBytes: 1 << 20,
    storeMaxFiles: 16,
    requestTimeoutMs: 30_000,
    logger: pino({ level: 'silent' }),
  });
  const server = daemon.server('unix');
  await new Promise<void>((r) => server.listen(join(dir, 'd.sock'), r));
  engine = connect({ socket: join(dir, 'd.sock') });
});

afterAll(async () => {
  engine?.close();
  await daemon?.drain();
  rmSync(dir, { recursive: true, force: true });
  expect(await childPids()).toEqual([]);
  expect(await runCgroupsInUse()).toEqual([]);
});

afterEach(() => {
  vi.restoreAllMocks();
});

/** What a spawn's options get over the WebSocket: its result, or the error it was refused with. */
async function spawned(options: SpawnOptions): Promise<{ stdout: string; status: string } | unknown> {
  try {
    const p = await engine.spawn(options);
    const out: Buffer[] = [];
    p.stdout.on('data', (c: Buffer) => out.push(c));
    p.stdin.end();
    const r = await p.wait();
    return { stdout: Buffer.concat(out).toString(), status: r.status };
  } catch (e) {
    return e;
  }
}

describe('the daemon checks options once', () => {
  it("a spawn over the WebSocket: one walk of run()'s schema, none of spawn()'s own", async () => {
    const walks = countWalks();
    expect(await spawned({ command: ['/bin/sh', '-c', 'echo "$SINGLE_CHECK"'], env: fresh(), limits: { wallTime: '10s' } })).toEqual({ stdout: `${process.pid}-${unique - 1}\n`, status: 'ok' });
    expect(walks()).toEqual({ run: 1 });
  });

  it("a spawn's refused options: the wire schema's error, as before (stdin and collect are not a spawn's)", async () => {
    const bodies: Record<string, unknown>[] = [
      { command: ['/bin/true'], stdin: 'x' },
      { command: ['/bin/true'], collect: ['/tmp/out'] },
      { command: ['/bin/true'], limits: { memory: 'lots' } },
      { command: 5 },
      { command: ['/bin/true'], nonsense: true },
      { command: ['/bin/true'], files: { 'a.txt': { fileId: 'sha256:nope' } } },
    ];
    for (const body of bodies) {
      const wire = spawnRequest.safeParse(body);
      expect(wire.success).toBe(false);
      const e = await spawned(body as SpawnOptions);
      expect(e).toBeInstanceOf(SandboxOptionsError);
      expect((e as SandboxOptionsError).issues).toEqual(issuesOf(wire.error!));
    }
    // Refused by the policy, after the check: a 403 naming the field, as before.
    expect(await spawned({ command: ['/bin/true'], limits: { wallTime: null } })).toMatchObject({ name: 'SandcellRemoteError', status: 403, field: 'limits.wallTime' });
  });

  it("a box's creation and each run in it: one walk of the library's schema each, none by Sandbox.create() or box.run()", async () => {
    const walks = countWalks();
    await using box = await engine.Sandbox.create({ env: fresh(), limits: { memory: '128MiB' } });
    expect(walks()).toEqual({ sandbox: 1 });
    const r = await box.run({ command: ['/bin/sh', '-c', 'echo "$SINGLE_CHECK"; cat; cat in.txt'], env: fresh(), stdin: Buffer.from([0xff, 0x0a]), files: { 'in.txt': 'from a file\n' } });
    expect(r.stdout).toBe(`${process.pid}-${unique - 1}\n\ufffd\nfrom a file\n`);
    expect(walks()).toEqual({ sandbox: 1, sandboxRun: 1 });
    // The same options again: walked again (each request is its own), still once.
    expect((await box.run({ command: ['/bin/echo', 'again'] })).stdout).toBe('again\n');
    expect(walks()).toEqual({ sandbox: 1, sandboxRun: 2 });
  });

  it("a run in a box checked once still has its own limits and the request's signal: cut by its wall time, ended by its client going away", async () => {
    await using box = await engine.Sandbox.create({ limits: { wallTime: '20s' } });
    const walks = countWalks();
    const r = await box.run({ command: ['/bin/sleep', '5'], limits: { wallTime: '200ms' } });
    expect(r.status).toBe('wall-time-limit');
    expect(walks()).toEqual({ sandboxRun: 1 });
    const ac = new AbortController();
    const sleeper = ['/bin/sleep', `${300 + (process.pid % 100)}.5`];
    const aborted = box.run({ command: sleeper, signal: ac.signal }).catch((err: unknown) => err);
    expect(await until(() => pidsRunning(sleeper).length > 0)).toBe(true);
    ac.abort();
    expect(await aborted).toMatchObject({ name: 'AbortError' });
    // The daemon ended the run when its client went away; the box goes on.
    expect(await until(() => pidsRunning(sleeper).length === 0)).toBe(true);
    expect((await box.run({ command: ['/bin/echo', 'next'] })).stdout).toBe('next\n');
  });

  it("a box run's refused options: the wire schema's error, and the policy's 403 after the one check", async () => {
    await using box = await engine.Sandbox.create({});
    for (const body of [{ command: 5 }, { command: ['/bin/true'], limits: { memory: 'lots' } }, { command: ['/bin/true'], cwd: 'relative' }, { command: ['/bin/true'], nonsense: 1 }, { command: ['/bin/true'], limits: { tmpfs: '1MiB' } }] as Record<string, unknown>[]) {
      const wire = boxRunRequest.safeParse(body);
      const e = await box.run(body as never).catch((err: unknown) => err);
      expect(e).toBeInstanceOf(SandboxOptionsError);
      if (!wire.success) expect((e as SandboxOptionsError).issues).toEqual(issuesOf(wire.error));
      // What the library refuses beyond the wire schema (tmpfs is the box's): its own words.
      else expect((e as SandboxOptionsError).path).toBe('limits.tmpfs');
    }
    const walks = countWalks();
    expect(await box.run({ command: ['/bin/true'], limits: { wallTime: null } }).catch((err: unknown) => err)).toMatchObject({ name: 'SandcellRemoteError', status: 403, field: 'limits.wallTime' });
    expect(await box.run({ command: ['/bin/true'], seccomp: 'none' }).catch((err: unknown) => err)).toMatchObject({ name: 'SandcellRemoteError', status: 403, field: 'seccomp' });
    expect(walks()).toEqual({ sandboxRun: 2 });
  });

  it("a box's refused options: the wire schema's error, as before", async () => {
    for (const body of [{ stdin: 'x' }, { limits: { memory: 'lots' } }, { files: { 'a.txt': 7 } }, { nonsense: 1 }] as Record<string, unknown>[]) {
      const wire = boxRequest.safeParse(body);
      expect(wire.success).toBe(false);
      const e = await engine.Sandbox.create(body).catch((err: unknown) => err);
      expect(e).toBeInstanceOf(SandboxOptionsError);
      expect((e as SandboxOptionsError).issues).toEqual(issuesOf(wire.error!));
    }
  });
});
