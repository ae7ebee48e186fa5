// Who is on the socket: without a token, a client is the uid the kernel reports for its end of
// the connection (SO_PEERCRED), so two local users own their own boxes and share the daemon
// round-robin. The other user is a real process started as uid/gid 65534.
import { execFile } from 'node:child_process';
import { createServer, connect as netConnect, Socket, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { connect } from '../../src/client/index.js';
import { peerCredentials } from '../../src/index.js';
import { requireRoot } from '../helpers/host.js';
import { CLI, http, startDaemon, until } from './daemon.js';

const CLIENT = join(CLI, '..', '..', 'client', 'index.js');
const NOBODY = 65534;

/** Runs `body` (an async function body with `engine` in scope) in a Node client as uid/gid 65534; its JSON result. */
function asNobody(socket: string, body: string): Promise<unknown> {
  const script = `import { connect } from ${JSON.stringify(CLIENT)};
const engine = connect({ socket: ${JSON.stringify(socket)} });
const out = await (async () => { ${body} })();
engine.close();
process.stdout.write(JSON.stringify(out ?? null));`;
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--input-type=module', '-e', script], { uid: NOBODY, gid: NOBODY, timeout: 120_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`the client as uid ${NOBODY} failed: ${err.message}\n${stderr}`));
      else resolve(JSON.parse(stdout));
    });
  });
}

describe('peerCredentials (SO_PEERCRED)', () => {
  it("names the process at the other end of a Unix socket, and refuses what is not one", async () => {
    requireRoot();
    const path = join('/tmp', `sandcell-peer-${process.pid}.sock`);
    const server = createServer();
    const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
    await new Promise<void>((resolve) => server.listen(path, resolve));
    const client = netConnect(path);
    const conn = await accepted;
    expect(peerCredentials(conn)).toEqual({ pid: process.pid, uid: 0, gid: 0 });
    client.destroy();
    conn.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    // Closed: no descriptor left to ask about.
    expect(() => peerCredentials(conn)).toThrow(TypeError);
    // Never connected.
    expect(() => peerCredentials(new Socket())).toThrow(TypeError);

    // TCP: the kernel has no credentials to give, and would answer pid 0, uid -1.
    const tcp = createServer();
    const tcpAccepted = new Promise<Socket>((resolve) => tcp.once('connection', resolve));
    await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', resolve));
    const tcpClient = netConnect((tcp.address() as AddressInfo).port, '127.0.0.1');
    const tcpConn = await tcpAccepted;
    expect(() => peerCredentials(tcpConn)).toThrow(/TCP socket/);
    tcpClient.destroy();
    tcpConn.destroy();
    await new Promise<void>((resolve) => tcp.close(() => resolve()));
  });
});

describe('two users on one socket', () => {
  it('are two clients: neither sees, runs in or deletes the other one\'s box', { timeout: 180_000 }, async () => {
    requireRoot();
    const d = await startDaemon({ args: ['--socket-mode', '0666'] });
    const engine = connect({ socket: d.socket });
    const mine = await engine.Sandbox.create({});
    const theirs = (await asNobody(
      d.socket,
      `const box = await engine.Sandbox.create({});
       const seen = (await engine.boxes()).map((b) => b.id);
       const tries = [];
       for (const [m, p] of [['DELETE', ''], ['POST', '/run']]) {
         tries.push(await fetchStatus(m, ${JSON.stringify(`/v1/boxes/${mine.id}`)} + p));
       }
       return { id: box.id, seen, tries };
       async function fetchStatus(method, path) {
         const { request } = await import('node:http');
         return new Promise((resolve, reject) => {
           const req = request({ socketPath: ${JSON.stringify(d.socket)}, method, path, headers: { 'content-type': 'application/json' } }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode)); });
           req.on('error', reject);
           req.end(method === 'POST' ? JSON.stringify({ command: ['/bin/true'] }) : undefined);
         });
       }`,
    )) as { id: string; seen: string[]; tries: number[] };
    // Refused as for a box that does not exist.
    expect(theirs.tries).toEqual([404, 404]);
    expect(theirs.seen).toEqual([theirs.id]);
    expect((await engine.boxes()).map((b) => b.id)).toEqual([mine.id]);
    const theirRun = await http(d.socket, 'POST', `/v1/boxes/${theirs.id}/run`, JSON.stringify({ command: ['/bin/true'] }));
    expect(theirRun.status).toBe(404);
    expect((await mine.run({ command: ['/bin/echo', 'still mine'] })).stdout).toBe('still mine\n');
    expect(await until(() => d.log().includes(`"client":"uid:${NOBODY}"`) && d.log().includes('"client":"uid:0"'))).toBe(true);
    await mine.destroy();
    engine.close();
    // The other user's box is still there until the daemon ends: nothing root did removed it.
    expect((await http(d.socket, 'GET', '/metrics')).body).toMatch(/^sandcell_boxes 1$/m);
    expect(await d.stop()).toEqual({ code: 0, leftCgroups: [] });
  });

  it('share the daemon round-robin: one user\'s burst delays the other by one run', { timeout: 180_000 }, async () => {
    requireRoot();
    const d = await startDaemon({ args: ['--socket-mode', '0666', '--parallelism', '1'] });
    const engine = connect({ socket: d.socket });
    const health = async (): Promise<{ running: number; queued: number }> => JSON.parse((await http(d.socket, 'GET', '/v1/health')).body);
    // A spawned cat holds the one slot until its stdin ends: the queue fills meanwhile.
    const blocker = await engine.spawn({ command: ['/bin/cat'] });
    expect(await health()).toMatchObject({ running: 1, queued: 0 });
    const burst = Array.from({ length: 4 }, (_, i) => engine.run({ command: ['/bin/echo', `root ${i}`] }));
    expect(await until(async () => (await health()).queued === 4)).toBe(true);
    const other = asNobody(d.socket, `return (await engine.run({ command: ['/bin/echo', 'nobody'] })).stdout;`);
    expect(await until(async () => (await health()).queued === 5)).toBe(true);
    blocker.stdin.end();
    expect((await blocker.wait()).status).toBe('ok');
    expect(await other).toBe('nobody\n');
    expect((await Promise.all(burst)).map((r) => r.stdout)).toEqual(['root 0\n', 'root 1\n', 'root 2\n', 'root 3\n']);
    engine.close();
    // Read once the daemon has exited: a run's line is written just after its reply.
    expect(await d.stop()).toEqual({ code: 0, leftCgroups: [] });
    // With one run at a time, runs are logged in the order they were let in.
    const order = d
      .log()
      .split('\n')
      .filter((l) => l.includes('"msg":"run"'))
      .map((l) => (JSON.parse(l) as { client: string }).client);
    expect(order).toEqual(['uid:0', `uid:${NOBODY}`, 'uid:0', 'uid:0', 'uid:0']);
  });
});
