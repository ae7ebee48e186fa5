// Ends: a client that dies mid-run takes its run with it, SIGTERM drains, SIGKILL of the daemon
// leaves no box alive; living boxes expire; the file store; metrics.
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

import { connect, SandcellRemoteError } from '../../src/client/index.js';
import { requireRoot } from '../helpers/host.js';
import { cgroupTree, http, isInit, processesOf, startDaemon, until } from './daemon.js';

const CLIENT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'client', 'index.js');
const programs = (pid: number): number[] => processesOf(pid).filter((p) => !isInit(p));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('a client that goes away', () => {
  it('killed mid-run: its run ends, nothing of it is left', async () => {
    requireRoot();
    const d = await startDaemon();
    const script = `import { connect } from ${JSON.stringify(CLIENT)}; await connect({ socket: ${JSON.stringify(d.socket)} }).run({ command: ['/bin/sleep', '300'] });`;
    const client = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: 'ignore' });
    expect(await until(() => programs(d.pid).length > 0)).toBe(true);
    client.kill('SIGKILL');
    expect(await until(() => programs(d.pid).length === 0)).toBe(true);
    expect(await until(() => d.log().includes('"status":"aborted"'))).toBe(true);
    expect(d.log()).toContain('"clientGone":true');
    expect(await d.stop()).toEqual({ code: 0, leftCgroups: [] });
  });

  it('aborted while queued: its place is given up; aborted while running: the box dies', async () => {
    requireRoot();
    const d = await startDaemon({ args: ['--parallelism', '1'] });
    const engine = connect({ socket: d.socket });
    const first = new AbortController();
    const second = new AbortController();
    const running = engine.run({ command: ['/bin/sleep', '300'], signal: first.signal }).catch((e: unknown) => e);
    expect(await until(() => programs(d.pid).length > 0)).toBe(true);
    const queued = engine.run({ command: ['/bin/true'], signal: second.signal }).catch((e: unknown) => e);
    expect(await until(async () => JSON.parse((await http(d.socket, 'GET', '/v1/health')).body).queued === 1)).toBe(true);
    second.abort();
    expect(await queued).toMatchObject({ name: 'AbortError' });
    expect(await until(async () => JSON.parse((await http(d.socket, 'GET', '/v1/health')).body).queued === 0)).toBe(true);
    first.abort();
    expect(await running).toMatchObject({ name: 'AbortError' });
    expect(await until(() => programs(d.pid).length === 0)).toBe(true);
    const after = await engine.run({ command: ['/bin/echo', 'next'] });
    expect(after.stdout).toBe('next\n');
    engine.close();
    expect(await d.stop()).toEqual({ code: 0, leftCgroups: [] });
  });
});

describe('connections', () => {
  it('a kept-alive connection the daemon closed while idle is not an error for the next request', async () => {
    requireRoot();
    const d = await startDaemon();
    const engine = connect({ socket: d.socket });
    expect((await engine.run({ command: ['/bin/echo', 'one'] })).stdout).toBe('one\n');
    // Past the server's keep-alive timeout (5 s): it has closed the connection the client keeps.
    await new Promise((r) => setTimeout(r, 5500));
    expect((await engine.run({ command: ['/bin/echo', 'two'] })).stdout).toBe('two\n');
    engine.close();
    expect(await d.stop()).toEqual({ code: 0, leftCgroups: [] });
  });
});

describe('the daemon ends', () => {
  it('SIGTERM drains: running work finishes, new work gets 503, boxes are destroyed, then it exits', async () => {
    requireRoot();
    const d = await startDaemon();
    const engine = connect({ socket: d.socket });
    const box = await engine.Sandbox.create({});
    const inBox = box.run({ command: ['/bin/sh', '-c', 'sleep 1; echo box'] });
    const running = engine.run({ command: ['/bin/sh', '-c', 'sleep 1; echo done'] });
    expect(await until(() => programs(d.pid).length >= 2)).toBe(true);
    d.proc.kill('SIGTERM');
    expect(await until(() => d.log().includes('"msg":"draining"'))).toBe(true);
    const refused = await engine.run({ command: ['/bin/true'] }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(SandcellRemoteError);
    expect(refused).toMatchObject({ status: 503, code: 'draining' });
    expect((await running).stdout).toBe('done\n');
    expect((await inBox).stdout).toBe('box\n');
    engine.close();
    expect(await d.exited).toBe(0);
    expect(d.log()).toContain('"why":"draining"');
    expect(await d.stop()).toEqual({ code: 0, leftCgroups: [] });
  });

  it('SIGKILL leaves no box alive: runs and living boxes die with it', async () => {
    requireRoot();
    const d = await startDaemon();
    const engine = connect({ socket: d.socket });
    const box = await engine.Sandbox.create({});
    void box.run({ command: ['/bin/sleep', '300'] }).catch(() => undefined);
    void engine.run({ command: ['/bin/sleep', '300'] }).catch(() => undefined);
    expect(await until(() => programs(d.pid).length >= 2)).toBe(true);
    const pids = processesOf(d.pid);
    d.proc.kill('SIGKILL');
    await d.exited;
    engine.close();
    expect(await until(() => pids.every((p) => !alive(p)))).toBe(true);
    expect(processesOf(d.pid)).toEqual([]);
    // What remains are empty cgroups: the next daemon removes them as it starts, before it
    // has served anything. (Not asserted here that they remain: any sandcell process starting
    // on this machine meanwhile sweeps them too.)
    const next = await startDaemon();
    expect(cgroupTree(d.pid)).toEqual([]);
    expect(await next.stop()).toEqual({ code: 0, leftCgroups: [] });
    await d.stop();
  });
});

describe('living boxes and files', () => {
  it('a box left idle past its TTL is destroyed', async () => {
    requireRoot();
    const d = await startDaemon({ args: ['--box-ttl', '300ms'] });
    const engine = connect({ socket: d.socket });
    const box = await engine.Sandbox.create({});
    expect((await box.run({ command: ['/bin/true'] })).status).toBe('ok');
    expect(await until(async () => (await engine.boxes()).length === 0)).toBe(true);
    expect(await until(() => d.log().includes('"why":"idle"'))).toBe(true);
    const gone = await box.run({ command: ['/bin/true'] }).catch((e: unknown) => e);
    expect(gone).toMatchObject({ status: 404 });
    engine.close();
    expect(await d.stop()).toEqual({ code: 0, leftCgroups: [] });
  });

  it('stores files by content, uses them as stdin and files, evicts the oldest past its bounds', async () => {
    requireRoot();
    const d = await startDaemon({ args: ['--store-files', '2'] });
    const engine = connect({ socket: d.socket });
    const input = Buffer.from('stored input\n');
    const a = await engine.files.put(input);
    expect(a).toEqual({ id: `sha256:${(await import('node:crypto')).createHash('sha256').update(input).digest('hex')}`, size: input.length });
    expect(await engine.files.get(a.id)).toEqual(input);
    const r = await http(d.socket, 'POST', '/v1/run', JSON.stringify({ command: ['/bin/sh', '-c', 'cat; cat f.txt'], stdin: { fileId: a.id }, files: { 'f.txt': { data: { fileId: a.id }, mode: 0o600 } } }));
    expect(JSON.parse(r.body)).toMatchObject({ status: 'ok', stdout: 'stored input\nstored input\n' });
    const b = await engine.files.put('second');
    await engine.files.put('third');
    const evicted = await engine.files.get(a.id).catch((e: unknown) => e);
    expect(evicted).toMatchObject({ status: 404 });
    expect((await engine.files.get(b.id)).toString()).toBe('second');
    await engine.files.delete(b.id);
    expect(await engine.files.get(b.id).catch((e: unknown) => e)).toMatchObject({ status: 404 });
    engine.close();
    expect(await d.stop()).toEqual({ code: 0, leftCgroups: [] });
  });

  it('the file store is bounded in bytes too: the oldest go first, a file larger than the store is refused with 413', async () => {
    requireRoot();
    const d = await startDaemon({ args: ['--store', '1KiB'] });
    const engine = connect({ socket: d.socket });
    const a = await engine.files.put(Buffer.alloc(600, 'a'));
    const b = await engine.files.put(Buffer.alloc(600, 'b'));
    expect(await engine.files.get(a.id).catch((e: unknown) => e)).toMatchObject({ status: 404 });
    expect((await engine.files.get(b.id)).length).toBe(600);
    expect(await engine.files.put(Buffer.alloc(1025, 'c')).catch((e: unknown) => e)).toMatchObject({ status: 413, code: 'too-large' });
    expect((await engine.files.get(b.id)).length).toBe(600);
    const m = (await http(d.socket, 'GET', '/metrics')).body;
    expect(m).toContain('sandcell_file_store_bytes 600');
    expect(m).toContain('sandcell_file_store_files 1');
    engine.close();
    expect(await d.stop()).toEqual({ code: 0, leftCgroups: [] });
  });

  it('GET /metrics: runs by status, queue, running, boxes, file store', async () => {
    requireRoot();
    const d = await startDaemon();
    const engine = connect({ socket: d.socket });
    await engine.run({ command: ['/bin/true'] });
    await engine.run({ command: ['/bin/false'] });
    await engine.run({ command: ['/no/such'] }).catch(() => undefined);
    await engine.files.put('x');
    const box = await engine.Sandbox.create({});
    const m = (await http(d.socket, 'GET', '/metrics')).body;
    expect(m).toContain('sandcell_runs_total{status="ok"} 1');
    expect(m).toContain('sandcell_runs_total{status="nonzero-exit"} 1');
    expect(m).toContain('sandcell_runs_total{status="setup-error"} 1');
    expect(m).toContain('sandcell_queue_length 0');
    expect(m).toContain('sandcell_running 0');
    expect(m).toContain('sandcell_boxes 1');
    expect(m).toContain('sandcell_file_store_files 1');
    expect(m).toContain('sandcell_file_store_bytes 1');
    await box.destroy();
    engine.close();
    expect(await d.stop()).toEqual({ code: 0, leftCgroups: [] });
  });
});
