// The daemon's log: the library's debug events (what NODE_DEBUG=sandcell prints) as debug lines
// naming the request and box they were for, through the library's public onDebugEvent.
import { AsyncLocalStorage } from 'node:async_hooks';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';

import { connect } from '../../src/client/index.js';
import { onDebugEvent, run, type DebugEvent } from '../../src/index.js';
import { requireRoot } from '../helpers/host.js';
import { CLI, cgroupTree, startDaemon, until } from './daemon.js';

interface Line {
  level: number;
  msg: string;
  req?: number;
  box?: string;
  what?: string;
  url?: string;
  library?: Record<string, unknown>;
}

describe('onDebugEvent', () => {
  it("hands a listener the events of a run, in the run's async context; removed, it hears nothing", async () => {
    requireRoot();
    const seen: { e: DebugEvent; tag: string | undefined }[] = [];
    const als = new AsyncLocalStorage<string>();
    const stop = onDebugEvent((e) => seen.push({ e, tag: als.getStore() }));
    const r = await als.run('mine', () => run({ command: ['/bin/true'] }));
    expect(r.status).toBe('ok');
    const start = seen.find((s) => s.e.event === 'start');
    const end = seen.find((s) => s.e.event === 'end');
    expect(start?.tag).toBe('mine');
    expect(end?.e).toMatchObject({ event: 'end', status: 'ok', pid: (start?.e as { pid: number }).pid });
    expect(Object.keys((end?.e as { ms: object }).ms)).toContain('run');
    stop();
    const before = seen.length;
    await run({ command: ['/bin/true'] });
    expect(seen.length).toBe(before);
  });

  it('a listener that throws does not break the run it is told about: a process warning says so', async () => {
    requireRoot();
    const warnings: Error[] = [];
    const onWarning = (w: Error): void => void warnings.push(w);
    process.on('warning', onWarning);
    const stop = onDebugEvent(() => {
      throw new Error('listener bug');
    });
    try {
      expect((await run({ command: ['/bin/echo', 'hi'] })).stdout).toBe('hi\n');
      await new Promise((r) => setImmediate(r));
      expect(warnings.some((w) => w.name === 'SandcellDebugListenerWarning' && w.message.includes('listener bug'))).toBe(true);
    } finally {
      stop();
      process.off('warning', onWarning);
    }
  });
});

describe('the daemon at --log-level debug', () => {
  it("logs the library's events with the request id, and the box id for a living box's runs", { timeout: 120_000 }, async () => {
    requireRoot();
    const d = await startDaemon({ args: ['--log-level', 'debug'] });
    const engine = connect({ socket: d.socket });
    expect((await engine.run({ command: ['/bin/true'] })).status).toBe('ok');
    const box = await engine.Sandbox.create({});
    expect((await box.run({ command: ['/bin/true'] })).status).toBe('ok');
    await box.destroy();
    engine.close();
    // Read once the daemon has exited: its lines are written in blocks.
    expect(await d.stop()).toEqual({ code: 0, leftCgroups: [] });
    const lines = d.log().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Line);
    const runReq = lines.find((l) => l.msg === 'request' && l.url === '/v1/run')?.req;
    expect(runReq).toBeTypeOf('number');
    const ofRun = lines.filter((l) => l.req === runReq && l.msg.startsWith('library '));
    expect(ofRun.map((l) => l.msg)).toEqual(['library start', 'library end']);
    expect(ofRun.every((l) => l.level === 20)).toBe(true);
    expect(ofRun[1]?.library).toMatchObject({ status: 'ok', pid: ofRun[0]?.library?.pid });
    const boxRun = lines.find((l) => l.msg === 'box run');
    expect(boxRun?.box).toMatch(/^box-/);
    const ofBoxRun = lines.filter((l) => l.req === boxRun?.req && l.msg.startsWith('library '));
    expect(ofBoxRun.map((l) => [l.msg, l.box])).toEqual([
      ['library start', boxRun?.box],
      ['library end', boxRun?.box],
    ]);
    expect(ofBoxRun[0]?.library).toMatchObject({ box: 'living' });
    expect(lines.some((l) => l.msg === 'library box' && l.req === lines.find((x) => x.url === '/v1/boxes')?.req)).toBe(true);
  });

  it('logs none of them at the default level', async () => {
    requireRoot();
    const d = await startDaemon();
    const engine = connect({ socket: d.socket });
    expect((await engine.run({ command: ['/bin/true'] })).status).toBe('ok');
    engine.close();
    // Read once the daemon has exited: a run's line is written just after its reply.
    expect(await d.stop()).toEqual({ code: 0, leftCgroups: [] });
    const log = d.log();
    expect(log).toContain('"msg":"run"');
    expect(log).not.toContain('library ');
  });

  it('an unknown level is a usage error naming the levels, not an internal one', () => {
    const r = spawnSync(process.execPath, [CLI, 'serve', '--socket', '/nonexistent/never.sock', '--log-level', 'loud'], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status).toBe(125);
    expect(r.stderr).toContain('--log-level needs one of trace, debug, info, warn, error, fatal, silent, got "loud"');
    expect(r.stderr).not.toContain('internal error');
  });
});

describe("the daemon's log, written in blocks", () => {
  const parse = (log: string): Line[] => log.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Line);
  const count = (lines: Line[], f: (l: Line) => boolean): number => lines.filter(f).length;
  const isRunRequest = (l: Line): boolean => l.msg === 'request' && l.url === '/v1/run';

  it("has every request's and every run's line: a quiet daemon's without a stop, a burst's after SIGTERM", { timeout: 120_000 }, async () => {
    requireRoot();
    const d = await startDaemon();
    const engine = connect({ socket: d.socket });
    const burst = async (n: number): Promise<void> => {
      const results = await Promise.all(Array.from({ length: n }, () => engine.run({ command: ['/bin/true'] })));
      expect(results.map((r) => r.status)).toEqual(Array.from({ length: n }, () => 'ok'));
    };
    await burst(12);
    for (let i = 0; i < 5; i++) await engine.health();
    // Nothing more happens: the buffered lines must reach stdout anyway.
    const quiet = await until(() => {
      const lines = parse(d.log());
      return count(lines, (l) => l.msg === 'run') === 12 && count(lines, isRunRequest) === 12 && count(lines, (l) => l.url === '/v1/health') === 5;
    });
    expect(quiet).toBe(true);
    await burst(20);
    engine.close();
    expect(await d.stop()).toEqual({ code: 0, leftCgroups: [] });
    const lines = parse(d.log());
    expect(count(lines, (l) => l.msg === 'run')).toBe(32);
    expect(count(lines, isRunRequest)).toBe(32);
    expect(new Set(lines.filter((l) => l.msg === 'run').map((l) => l.req)).size).toBe(32);
    expect(lines.at(-1)?.msg).toBe('drained');
  });

  it('has every line when the daemon dies of an uncaught error', { timeout: 120_000 }, async () => {
    requireRoot();
    const dir = mkdtempSync(join(tmpdir(), 'sandcell-uncaught-'));
    try {
      // Loaded into the daemon's process: SIGUSR2 throws from the event loop, where nothing catches it.
      const preload = join(dir, 'throw-on-sigusr2.mjs');
      writeFileSync(preload, "process.on('SIGUSR2', () => setImmediate(() => { throw new Error('an uncaught error, on purpose'); }));\n");
      const d = await startDaemon({ nodeOptions: ['--import', pathToFileURL(preload).href] });
      const engine = connect({ socket: d.socket });
      const results = await Promise.all(Array.from({ length: 10 }, () => engine.run({ command: ['/bin/true'] })));
      expect(results.map((r) => r.status)).toEqual(Array.from({ length: 10 }, () => 'ok'));
      engine.close();
      d.proc.kill('SIGUSR2');
      expect(await d.exited).toBe(1);
      expect(d.log()).toContain('an uncaught error, on purpose');
      const lines = parse(d.log());
      expect(count(lines, (l) => l.msg === 'run')).toBe(10);
      expect(count(lines, isRunRequest)).toBe(10);
      // What a daemon that died leaves (its warm box's cgroups), the next one sweeps as it starts.
      const next = await startDaemon();
      expect(cgroupTree(d.pid)).toEqual([]);
      expect(await next.stop()).toEqual({ code: 0, leftCgroups: [] });
      await d.stop();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
