// spawn() over the daemon's WebSocket: stdio streamed both ways with the TS client and with a raw
// `ws` client speaking the frames by hand, kill, a dropped connection that takes its box with it,
// malformed frames answered with an error frame, and the admission slot a spawn holds; and many
// runs over one connection, each answered with its id.
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';

import { connect, SandcellRemoteError } from '../../src/client/index.js';
import { SandboxOptionsError } from '../../src/errors.js';
import { requireRoot } from '../helpers/host.js';
import { cgroupTree, http, isInit, processesOf, startDaemon, until, type TestDaemon } from './daemon.js';

const programs = (pid: number): number[] => processesOf(pid).filter((p) => !isInit(p));

interface Frame {
  type: string;
  [k: string]: unknown;
}

/** A raw client, connected: its frames as they come, and how the connection closed. */
interface RawClient {
  ws: WebSocket;
  frames: Frame[];
  closed: Promise<{ code: number; reason: string }>;
  /** Sends one frame as JSON text. */
  send(frame: Frame): void;
}

async function openRaw(d: TestDaemon): Promise<RawClient> {
  const ws = new WebSocket(`ws+unix://${d.socket}:/v1/ws`);
  const frames: Frame[] = [];
  ws.on('message', (data: Buffer, binary: boolean) => frames.push(binary ? { type: '(binary)' } : (JSON.parse(data.toString('utf8')) as Frame)));
  ws.on('error', () => undefined);
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return { ws, frames, closed, send: (frame) => ws.send(JSON.stringify(frame)) };
}

/** The bytes a stdout or stderr frame carries. */
const bytesOf = (f: Frame): Buffer => Buffer.from((f.data as { base64: string }).base64, 'base64');

const decode = (frames: Frame[], type: string): string => Buffer.concat(frames.filter((f) => f.type === type).map(bytesOf)).toString('utf8');

/** Cgroup directories that hold this pid right now. */
function cgroupsOf(daemon: number, pid: number): string[] {
  return cgroupTree(daemon).filter((dir) => {
    try {
      return readFileSync(`${dir}/cgroup.procs`, 'utf8').split('\n').includes(String(pid));
    } catch {
      return false;
    }
  });
}

describe('spawn over the WebSocket', () => {
  it('the TS client: stdin in, stdout and stderr out, as a SandboxProcess; binary bytes intact', { timeout: 120_000 }, async () => {
    requireRoot();
    const d = await startDaemon();
    const engine = connect({ socket: d.socket });
    const p = await engine.spawn({ command: ['/bin/sh', '-c', 'while read l; do echo "got $l"; done; echo done >&2'] });
    expect(p.pid).toBeGreaterThan(0);
    let out = '';
    let err = '';
    p.stdout.on('data', (c: Buffer) => (out += c.toString()));
    p.stderr.on('data', (c: Buffer) => (err += c.toString()));
    p.stdin.write('one\n');
    p.stdin.write('two\n');
    p.stdin.end();
    const r = await p.wait();
    expect(r).toMatchObject({ status: 'ok', exitCode: 0 });
    expect(out).toBe('got one\ngot two\n');
    expect(err).toBe('done\n');

    // 4 MiB of every byte value through cat: more than a frame, more than the high-water mark.
    const input = Buffer.alloc(4 * 1024 * 1024);
    for (let i = 0; i < input.length; i++) input[i] = (i * 7) & 0xff;
    const cat = await engine.spawn({ command: ['/bin/cat'] });
    const chunks: Buffer[] = [];
    cat.stdout.on('data', (c: Buffer) => chunks.push(c));
    cat.stdin.end(input);
    expect((await cat.wait()).status).toBe('ok');
    expect(Buffer.concat(chunks).equals(input)).toBe(true);
    engine.close();
    expect(await d.stop()).toEqual({ code: 0, leftCgroups: [] });
  });

  it('a raw ws client: the frames by hand, output in frames of at most 64 KiB, exit, then a normal close', { timeout: 120_000 }, async () => {
    requireRoot();
    const d = await startDaemon();
    const c = await openRaw(d);
    c.send({ type: 'spawn', options: { command: ['/bin/sh', '-c', 'read l; echo "hi $l"; head -c 200000 /dev/zero | tr "\\0" x; echo e >&2; exit 3'] } });
    c.send({ type: 'stdin', data: 'there\n' });
    c.send({ type: 'stdin-end' });
    expect(await c.closed).toEqual({ code: 1000, reason: 'exit' });
    expect(c.frames[0]).toMatchObject({ type: 'started', pid: expect.any(Number) });
    const exit = c.frames[c.frames.length - 1] as Frame;
    expect(exit).toMatchObject({ type: 'exit', result: { status: 'nonzero-exit', exitCode: 3, stdout: '', stderr: '' } });
    expect(decode(c.frames, 'stdout')).toBe(`hi there\n${'x'.repeat(200000)}`);
    expect(decode(c.frames, 'stderr')).toBe('e\n');
    for (const f of c.frames.filter((x) => x.type === 'stdout')) expect(bytesOf(f).length).toBeLessThanOrEqual(64 * 1024);

    // stdin as { base64 }.
    const b = await openRaw(d);
    b.send({ type: 'spawn', options: { command: ['/bin/cat'] } });
    b.send({ type: 'stdin', data: { base64: Buffer.from([0, 1, 2, 255]).toString('base64') } });
    b.send({ type: 'stdin-end' });
    expect((await b.closed).code).toBe(1000);
    const bytes = Buffer.concat(b.frames.filter((f) => f.type === 'stdout').map(bytesOf));
    expect([...bytes]).toEqual([0, 1, 2, 255]);
    expect(await d.stop()).toEqual({ code: 0, leftCgroups: [] });
  });

  it('backpressure: a client that stops reading stops the program, not the daemon\'s memory', { timeout: 120_000 }, async () => {
    requireRoot();
    const d = await startDaemon();
    const c = await openRaw(d);
    const size = 16 * 1024 * 1024;
    c.send({ type: 'spawn', options: { command: ['/bin/head', '-c', String(size), '/dev/zero'], limits: { output: '32MiB' } } });
    c.ws.pause();
    // The writer ends up blocked in write(2) on a full pipe: the daemon stopped reading it.
    const blocked = (): boolean => programs(d.pid).some((p) => {
      try {
        return readFileSync(`/proc/${p}/syscall`, 'utf8').startsWith('1 ');
      } catch {
        return false;
      }
    });
    expect(await until(blocked)).toBe(true);
    await new Promise((r) => setTimeout(r, 500));
    expect(programs(d.pid).length).toBe(1);
    expect(blocked()).toBe(true);
    c.ws.resume();
    expect((await c.closed).code).toBe(1000);
    const received = c.frames.filter((f) => f.type === 'stdout').reduce((n, f) => n + bytesOf(f).length, 0);
    expect(received).toBe(size);
    expect(c.frames[c.frames.length - 1]).toMatchObject({ type: 'exit', result: { status: 'ok' } });
    expect(await d.stop()).toEqual({ code: 0, leftCgroups: [] });
  });

  it('kill: SIGKILL ends the box, another signal goes to the program', { timeout: 120_000 }, async () => {
    requireRoot();
    const d = await startDaemon();
    const engine = connect({ socket: d.socket });
    const p = await engine.spawn({ command: ['/bin/sleep', '300'] });
    expect(await until(() => programs(d.pid).length === 1)).toBe(true);
    expect(p.kill()).toBe(true);
    expect(await p.wait()).toMatchObject({ status: 'signaled', signal: 'SIGKILL' });
    expect(p.kill()).toBe(false);
    const q = await engine.spawn({ command: ['/bin/sleep', '300'] });
    expect(await until(() => programs(d.pid).length === 1)).toBe(true);
    q.kill('SIGTERM');
    expect(await q.wait()).toMatchObject({ status: 'signaled', signal: 'SIGTERM' });
    expect(await until(() => programs(d.pid).length === 0)).toBe(true);
    engine.close();
    expect(await d.stop()).toEqual({ code: 0, leftCgroups: [] });
  });

  it('a WebSocket dropped mid-spawn leaves no process and no cgroup of its box', { timeout: 120_000 }, async () => {
    requireRoot();
    const d = await startDaemon();
    const c = await openRaw(d);
    c.send({ type: 'spawn', options: { command: ['/bin/sh', '-c', 'sleep 300 & sleep 300'] } });
    expect(await until(() => programs(d.pid).length >= 2)).toBe(true);
    const [pid] = programs(d.pid) as [number];
    const cgroups = cgroupsOf(d.pid, pid);
    expect(cgroups.length).toBeGreaterThan(0);
    c.ws.terminate();
    expect(await until(() => programs(d.pid).length === 0)).toBe(true);
    // Each of its cgroups is removed, or kept empty for the next run (a run cgroup may go back to
    // its pool): none holds a process. None is left once the daemon has stopped (below).
    const emptyOrGone = (dir: string): boolean => {
      try {
        return readFileSync(`${dir}/cgroup.procs`, 'utf8').trim() === '';
      } catch {
        return !existsSync(dir);
      }
    };
    expect(await until(() => cgroups.every(emptyOrGone))).toBe(true);
    expect(await until(() => d.log().includes('"what":"spawn","status":"aborted"'))).toBe(true);
    // The same through the TS client's AbortSignal.
    const engine = connect({ socket: d.socket });
    const ac = new AbortController();
    const p = await engine.spawn({ command: ['/bin/sleep', '300'], signal: ac.signal });
    expect(await until(() => programs(d.pid).length === 1)).toBe(true);
    ac.abort();
    await expect(p.wait()).rejects.toMatchObject({ name: 'AbortError' });
    expect(await until(() => programs(d.pid).length === 0)).toBe(true);
    engine.close();
    expect(await d.stop()).toEqual({ code: 0, leftCgroups: [] });
  });

  it('malformed frames get an error frame and a close, never a crash; bad options are the library\'s errors', { timeout: 120_000 }, async () => {
    requireRoot();
    const d = await startDaemon({ args: ['--request-timeout', '2s'] });
    const cases: [string, (c: RawClient) => void, string][] = [
      ['not JSON', (c) => c.ws.send('{"type": "spawn", '), 'invalid-frame'],
      ['a binary frame', (c) => c.ws.send(Buffer.from([1, 2, 3]), { binary: true }), 'invalid-frame'],
      ['an unknown type', (c) => c.send({ type: 'exec', command: ['/bin/true'] }), 'invalid-frame'],
      ['stdin before spawn', (c) => c.send({ type: 'stdin', data: 'x' }), 'invalid-frame'],
      ['a spawn without options', (c) => c.send({ type: 'spawn' }), 'invalid-frame'],
      ['no spawn frame in time', () => undefined, 'timeout'],
      ['a policy refusal', (c) => c.send({ type: 'spawn', options: { command: ['/bin/true'], network: 'host' } }), 'forbidden'],
      ['stdin in the options', (c) => c.send({ type: 'spawn', options: { command: ['/bin/cat'], stdin: 'x' } }), 'invalid-options'],
    ];
    for (const [what, send, code] of cases) {
      const c = await openRaw(d);
      send(c);
      const closed = await c.closed;
      expect({ what, frames: c.frames }).toEqual({ what, frames: [expect.objectContaining({ type: 'error', error: expect.objectContaining({ code }) })] });
      expect(closed.code).toBe(1008);
    }
    // A kill with a signal that does not exist, once the box runs: an error, and the box is gone.
    const k = await openRaw(d);
    k.send({ type: 'spawn', options: { command: ['/bin/sleep', '300'] } });
    k.send({ type: 'kill', signal: 'SIGNOPE' });
    expect((await k.closed).code).toBe(1008);
    expect(k.frames.map((f) => f.type)).toEqual(['started', 'error']);
    expect(await until(() => programs(d.pid).length === 0)).toBe(true);
    // A frame over 1 MiB: the connection is closed as too big.
    const big = await openRaw(d);
    big.send({ type: 'stdin', data: 'x'.repeat(2 * 1024 * 1024) });
    expect((await big.closed).code).toBe(1009);

    const engine = connect({ socket: d.socket });
    const bad = await engine.spawn({ command: ['/bin/true'], limits: { memory: 'lots' } }).catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(SandboxOptionsError);
    expect((bad as SandboxOptionsError).path).toBe('limits.memory');
    const refused = await engine.spawn({ command: ['/bin/true'], seccomp: 'none' }).catch((e: unknown) => e);
    expect(refused).toMatchObject({ status: 403, code: 'forbidden', field: 'seccomp' });
    expect(refused).toBeInstanceOf(SandcellRemoteError);
    // Not an upgrade: 426.
    expect((await http(d.socket, 'GET', '/v1/ws')).status).toBe(426);

    const after = await engine.spawn({ command: ['/bin/echo', 'still here'] });
    let out = '';
    after.stdout.on('data', (b: Buffer) => (out += b.toString()));
    expect((await after.wait()).status).toBe('ok');
    expect(out).toBe('still here\n');
    engine.close();
    expect(await d.stop()).toEqual({ code: 0, leftCgroups: [] });
  });

  it('a spawn holds an admission slot while it runs', { timeout: 120_000 }, async () => {
    requireRoot();
    const d = await startDaemon({ args: ['--parallelism', '1'] });
    const engine = connect({ socket: d.socket });
    const health = async (): Promise<{ running: number; queued: number }> => JSON.parse((await http(d.socket, 'GET', '/v1/health')).body);
    const p = await engine.spawn({ command: ['/bin/cat'] });
    expect(await health()).toMatchObject({ running: 1, queued: 0 });
    const queued = engine.run({ command: ['/bin/echo', 'after'] });
    expect(await until(async () => (await health()).queued === 1)).toBe(true);
    // A second spawn waits in the same queue.
    const second = engine.spawn({ command: ['/bin/true'] });
    expect(await until(async () => (await health()).queued === 2)).toBe(true);
    p.stdin.end();
    expect((await p.wait()).status).toBe('ok');
    expect((await queued).stdout).toBe('after\n');
    expect((await (await second).wait()).status).toBe('ok');
    expect(await health()).toMatchObject({ running: 0, queued: 0 });
    engine.close();
    expect(await d.stop()).toEqual({ code: 0, leftCgroups: [] });
  });
});

describe('many runs over one WebSocket', () => {
  it('each run frame is answered by its result or its error, with its id, and the connection stays open', { timeout: 120_000 }, async () => {
    requireRoot();
    const d = await startDaemon();
    const c = await openRaw(d);
    const answers = (n: number): Promise<boolean> => until(() => c.frames.length >= n);
    c.send({ type: 'run', id: 'a', options: { command: ['/bin/sh', '-c', 'cat; exit 2'], stdin: 'in a\n' } });
    c.send({ type: 'run', id: 7, options: { command: ['/bin/echo', 'b'], limits: { memory: 'lots' } } });
    c.send({ type: 'run', id: 'c', options: { command: ['/bin/true'], network: 'host' } });
    c.send({ type: 'run', id: 'd', options: { command: ['/bin/sh', '-c', 'echo hi > out.txt'], collect: ['out.txt'] } });
    expect(await answers(4)).toBe(true);
    const byId = new Map(c.frames.map((f) => [f.id, f]));
    expect(byId.get('a')).toMatchObject({ type: 'result', result: { status: 'nonzero-exit', exitCode: 2, stdout: 'in a\n' } });
    expect(byId.get(7)).toMatchObject({ type: 'error', status: 400, error: { code: 'invalid-options', field: 'limits.memory' } });
    expect(byId.get('c')).toMatchObject({ type: 'error', status: 403, error: { code: 'forbidden', field: 'network' } });
    expect(byId.get('d')).toMatchObject({ type: 'result', result: { status: 'ok', files: { 'out.txt': Buffer.from('hi\n').toString('base64') } } });
    expect(c.ws.readyState).toBe(WebSocket.OPEN);
    // A spawn frame has no place on a connection of runs: an error frame and a close.
    c.send({ type: 'spawn', options: { command: ['/bin/true'] } });
    expect((await c.closed).code).toBe(1008);
    expect(c.frames[c.frames.length - 1]).toMatchObject({ type: 'error', error: { code: 'invalid-frame' } });
    expect(await d.stop()).toEqual({ code: 0, leftCgroups: [] });
  });

  it('cancel: the run of that id ends (error aborted), an id in flight cannot be reused, an unknown id is no error', { timeout: 120_000 }, async () => {
    requireRoot();
    const d = await startDaemon();
    const c = await openRaw(d);
    c.send({ type: 'run', id: 'long', options: { command: ['/bin/sleep', '300'] } });
    expect(await until(() => programs(d.pid).length === 1)).toBe(true);
    c.send({ type: 'run', id: 'long', options: { command: ['/bin/true'] } });
    expect(await until(() => c.frames.length === 1)).toBe(true);
    expect(c.frames[0]).toMatchObject({ type: 'error', id: 'long', status: 400, error: { code: 'invalid-frame' } });
    c.send({ type: 'cancel', id: 'never-sent' });
    c.send({ type: 'cancel', id: 'long' });
    expect(await until(() => c.frames.length === 2)).toBe(true);
    expect(c.frames[1]).toEqual({ type: 'error', id: 'long', status: 499, error: { code: 'aborted', message: 'the run was cancelled by the client' } });
    expect(await until(() => programs(d.pid).length === 0)).toBe(true);
    // The id is free again, and the connection open.
    c.send({ type: 'run', id: 'long', options: { command: ['/bin/echo', 'ok'] } });
    expect(await until(() => c.frames.length === 3)).toBe(true);
    expect(c.frames[2]).toMatchObject({ type: 'result', id: 'long', result: { status: 'ok', stdout: 'ok\n' } });
    c.ws.close();
    expect(await d.stop()).toEqual({ code: 0, leftCgroups: [] });
  });

  it('a dropped connection aborts its runs; SIGTERM lets the runs in flight finish, then closes the connection', { timeout: 120_000 }, async () => {
    requireRoot();
    const d = await startDaemon();
    const c = await openRaw(d);
    c.send({ type: 'run', id: 1, options: { command: ['/bin/sleep', '300'] } });
    c.send({ type: 'run', id: 2, options: { command: ['/bin/sleep', '300'] } });
    expect(await until(() => programs(d.pid).length === 2)).toBe(true);
    c.ws.terminate();
    expect(await until(() => programs(d.pid).length === 0)).toBe(true);
    expect(await until(() => (d.log().match(/"status":"aborted"/g) ?? []).length === 2)).toBe(true);

    const e = await openRaw(d);
    e.send({ type: 'run', id: 'slow', options: { command: ['/bin/sh', '-c', 'sleep 2; echo done'] } });
    // sh, and the sleep it forks.
    expect(await until(() => programs(d.pid).length > 0)).toBe(true);
    d.proc.kill('SIGTERM');
    expect(await e.closed).toEqual({ code: 1001, reason: 'draining' });
    expect(e.frames).toEqual([expect.objectContaining({ type: 'result', id: 'slow', result: expect.objectContaining({ status: 'ok', stdout: 'done\n' }) })]);
    expect(await d.exited).toBe(0);
    expect(await d.stop()).toEqual({ code: 0, leftCgroups: [] });
  });
});

describe('a connection of runs whose client does not read', () => {
  it('is not read either once its unread answers pass 1 MiB; reading again, it gets every answer', { timeout: 180_000 }, async () => {
    requireRoot();
    const d = await startDaemon();
    const c = await openRaw(d);
    // The client reads nothing: what the daemon sends waits in the socket buffers, then in the daemon.
    (c.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    const big = { command: ['/bin/sh', '-c', 'head -c 400000 /dev/zero | tr "\\0" x'] };
    for (let i = 0; i < 8; i++) c.send({ type: 'run', id: `big${i}`, options: big });
    const runsLogged = (): number => (d.log().match(/"msg":"run"/g) ?? []).length;
    expect(await until(() => runsLogged() === 8)).toBe(true);
    for (let i = 0; i < 50; i++) c.send({ type: 'run', id: i, options: { command: ['/bin/true'] } });
    // A bound on a wait, not a timing assertion: the daemon had time to run them, and did not.
    await new Promise((r) => setTimeout(r, 3000));
    expect(runsLogged()).toBeLessThan(58);
    (c.ws as unknown as { _socket: { resume(): void } })._socket.resume();
    expect(await until(() => c.frames.length === 58, 60_000)).toBe(true);
    expect(c.frames.every((f) => f.type === 'result')).toBe(true);
    c.ws.close();
    expect(await d.stop()).toEqual({ code: 0, leftCgroups: [] });
  });
});
