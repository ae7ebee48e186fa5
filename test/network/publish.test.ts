// Published ports: the host listens where it is told and carries each connection into the box's
// namespace; nothing listens once the box has ended. Without root, the egress proxy and published
// ports work the same way.
import { spawn as spawnChild, spawnSync } from 'node:child_process';
import net from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';

import { cleanupOrphans, listSandcellCgroups } from '../../src/cgroup/index.js';
import { run, Sandbox, SandboxOptionsError, SandboxSetupError, spawn } from '../../src/index.js';
import { childPids, openFds, requireRoot, runCgroupsInUse } from '../helpers/host.js';
import { namedPort } from '../helpers/ports.js';
import { socketsAndNamespaces, tcpHandles } from './leaks.js';

/**
 * The leak check's boxes, and how many at once. Each box is spawned, serves one connection from the
 * host and ends: 1,000 of them took 228 s at a load average of 15-20 on 2 cores (the allow list's
 * 1,000 runs in egress.test.ts, 202 s), so this check makes 200.
 */
const LEAK_RUNS = 200;
const LEAK_CONCURRENCY = 4;

beforeAll(async () => {
  requireRoot();
  // One run first, so that what opens lazily (the addon, the cgroup parent) is not counted as left.
  await run({ command: ['true'] });
});

/** A Python echo server on the box's 127.0.0.1:8000 that says "up" once it listens. */
const ECHO = [
  'import socket, sys',
  's = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", 8000)); s.listen()',
  'print("up", flush=True)',
  'while True:',
  '    c, _ = s.accept(); d = c.recv(100); c.sendall(b"box says " + d); c.close()',
].join('\n');

/** Sends `text` to host:port and returns what came back, or the error code. */
function ask(port: number, text: string, host = '127.0.0.1'): Promise<string> {
  return new Promise((resolve) => {
    const c = net.connect(port, host);
    let got = '';
    // Nothing sent (''): a connection the host closes unread is then closed, not reset.
    c.on('connect', () => text !== '' && c.write(text));
    c.on('data', (d) => (got += String(d)));
    c.on('close', () => resolve(got));
    c.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
  });
}

describe('published ports', () => {
  it('a published port answers from the host, and is closed after the box ends', async () => {
    const fds = await openFds();
    const hostPort = await namedPort();
    const p = await spawn({ command: ['python3', '-c', ECHO], network: { publish: [{ box: 8000, host: `127.0.0.1:${hostPort}` }] } });
    expect(p.published).toEqual([{ box: 8000, address: '127.0.0.1', port: hostPort }]);
    await new Promise((resolve) => p.stdout.once('data', resolve));
    expect(await ask(hostPort, 'one')).toBe('box says one');
    expect(await ask(hostPort, 'two')).toBe('box says two');
    p.kill();
    await p.wait();
    expect(await ask(hostPort, 'three')).toBe('ECONNREFUSED');
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    expect(await openFds()).toBe(fds);
    expect(await childPids()).toEqual([]);
  });

  it('what the box sent before it ended reaches the host peer whole', async () => {
    // The program sends 4 MiB and exits: most of it is still in the kernel's buffers, or on its
    // way through the published port, when the box ends.
    const size = 4 << 20;
    const answer = `import socket\ns=socket.socket(); s.bind(("127.0.0.1", 8000)); s.listen()\nprint("up", flush=True)\nc,_=s.accept(); c.sendall(b"x" * ${size}); c.close()`;
    for (let round = 0; round < 3; round++) {
      const p = await spawn({ command: ['python3', '-c', answer], network: { publish: [{ box: 8000, host: 0 }] } });
      await new Promise((resolve) => p.stdout.once('data', resolve));
      const got = await new Promise<number>((resolve) => {
        const c = net.connect(p.published[0]?.port ?? 0, '127.0.0.1');
        let n = 0;
        c.on('data', (d) => (n += d.length));
        c.on('close', () => resolve(n));
        c.on('error', () => undefined);
      });
      expect((await p.wait()).status).toBe('ok');
      expect(got).toBe(size);
    }
  });

  it('binds 127.0.0.1 by default, and a free port with 0; a box port nothing listens on closes the connection', async () => {
    const p = await spawn({ command: ['sleep', '30'], network: { publish: [{ box: 9000, host: 0 }] } });
    const [pub] = p.published;
    expect(pub?.address).toBe('127.0.0.1');
    expect(await ask(pub?.port ?? 0, '')).toBe('');
    p.kill();
    await p.wait();
  });

  it('a living box publishes for its life', async () => {
    const box = await Sandbox.create({ network: { publish: [{ box: 8000, host: 0 }] } });
    const port = box.published[0]?.port ?? 0;
    const server = await box.spawn({ command: ['python3', '-c', ECHO] });
    await new Promise((resolve) => server.stdout.once('data', resolve));
    expect(await ask(port, 'hi')).toBe('box says hi');
    await box.destroy();
    expect(await ask(port, 'hi')).toBe('ECONNREFUSED');
  });

  it('a host port in use fails the start with the reason, and leaves nothing', async () => {
    const fds = await openFds();
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as net.AddressInfo).port;
    const failed = spawn({ command: ['true'], network: { publish: [{ box: 8000, host: port }] } });
    await expect(failed).rejects.toBeInstanceOf(SandboxSetupError);
    await expect(failed).rejects.toMatchObject({ stage: 'network.publish[0]', code: 'EADDRINUSE', errno: 98 });
    await new Promise((r) => taken.close(r));
    expect(await openFds()).toBe(fds);
    expect(await childPids()).toEqual([]);
  });

  it('refuses a host that is not an address, and the proxy\'s own port', async () => {
    await expect(spawn({ command: ['true'], network: { publish: [{ box: 8000, host: 'localhost:80' }] } })).rejects.toBeInstanceOf(SandboxOptionsError);
    await expect(spawn({ command: ['true'], network: { publish: [{ box: 3128 }] } })).rejects.toThrow(/network\.publish\[0\]\.box: 3128 is the egress proxy's port/);
  });
});

/** Perl (lighter to start than Python) serving one connection on the box's 127.0.0.1:8000, then ending. */
const SERVE_ONCE = [
  'use IO::Socket::INET; $| = 1;',
  '$s = IO::Socket::INET->new(LocalAddr => "127.0.0.1:8000", Listen => 1, ReuseAddr => 1) or die "listen: $!";',
  'print "up\\n"; $c = $s->accept; $c->recv($d, 100); $c->send("box says $d"); close $c;',
].join(' ');

describe('leaks', () => {
  it(`leaves nothing behind: ${LEAK_RUNS} boxes publishing a port, each answering one connection from the host`, { timeout: 600_000 }, async () => {
    const fds = await openFds();
    const sockets = socketsAndNamespaces();
    // Sockets of the tests before may still be closing: a leak is a handle more, not one less.
    const handles = tcpHandles();
    const closedAfter: number[] = [];
    let next = 0;
    const bad: string[] = [];
    const worker = async (): Promise<void> => {
      while (next < LEAK_RUNS) {
        const i = next++;
        const p = await spawn({ command: ['perl', '-e', SERVE_ONCE], network: { publish: [{ box: 8000, host: 0 }] } });
        const port = p.published[0]?.port ?? 0;
        await new Promise((resolve) => p.stdout.once('data', resolve));
        const got = await ask(port, `${i}`);
        const r = await p.wait();
        if (got !== `box says ${i}` || r.status !== 'ok') bad.push(`${i}: ${got} ${r.status} ${r.stderr}`);
        if (i % 50 === 0) closedAfter.push(port);
      }
    };
    await Promise.all(Array.from({ length: LEAK_CONCURRENCY }, worker));
    expect(bad).toEqual([]);
    // The host side stopped listening when each box ended (ports are free again; a few are asked).
    for (const port of closedAfter) expect(await ask(port, 'late')).toBe('ECONNREFUSED');
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    expect(await openFds()).toBe(fds);
    expect(socketsAndNamespaces()).toEqual(sockets);
    expect(tcpHandles()).toBeLessThanOrEqual(handles);
    expect(await childPids()).toEqual([]);
    expect(await runCgroupsInUse()).toEqual([]);
  });
});

describe('two boxes', () => {
  it('talk through the host: one publishes, the other has that address on its allow list; a box with none cannot', async () => {
    const server = await spawn({
      command: ['python3', '-c', 'import http.server, socketserver\nh = http.server.SimpleHTTPRequestHandler\ns = socketserver.TCPServer(("127.0.0.1", 8000), h)\nprint("up", flush=True)\ns.serve_forever()'],
      files: { 'page.txt': 'served by a box\n' },
      network: { publish: [{ box: 8000, host: 0 }] },
    });
    await new Promise((resolve) => server.stdout.once('data', resolve));
    const port = server.published[0]?.port ?? 0;
    const url = `http://127.0.0.1:${port}/page.txt`;
    const client = await run({ command: ['curl', '-sSf', url], network: { allow: [`127.0.0.1:${port}`] } });
    const none = await run({ command: ['curl', '-sS', '--noproxy', '*', url] });
    server.kill();
    await server.wait();
    expect(client.stdout).toBe('served by a box\n');
    expect(none.status).toBe('nonzero-exit');
    expect(none.stderr).toMatch(/Failed to connect|Couldn't connect/);
  });
});

describe('a killed owner', () => {
  it('takes its boxes, its proxy and its published ports with it; its cgroups are swept at the next start', async () => {
    const DIST = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'index.js');
    const code = `
      import { spawn } from ${JSON.stringify(DIST)};
      const p = await spawn({ command: ['sleep', '60'], network: { allow: ['127.0.0.1:1'], publish: [{ box: 8000, host: 0 }] } });
      console.log(JSON.stringify({ pid: p.pid, port: p.published[0].port }));
      setInterval(() => undefined, 1000);`;
    const owner = spawnChild(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
    const line = await new Promise<string>((resolve) => owner.stdout.once('data', (d: Buffer) => resolve(String(d))));
    const { pid, port } = JSON.parse(line) as { pid: number; port: number };
    expect(await ask(port, '')).toBe('');
    // Recorded while the owner lives: once it is dead, any sandcell process starting on the
    // machine (another test worker) may sweep its cgroups before this test looks.
    const ownerDirs = (): string[] => listSandcellCgroups().filter((d) => d.endsWith(`/sandcell-${owner.pid}`));
    expect(ownerDirs().length).toBeGreaterThan(0);
    owner.kill('SIGKILL');
    await new Promise((resolve) => owner.once('exit', resolve));
    // The box's init sees its control socket close (and has PR_SET_PDEATHSIG): it ends the box.
    let alive = true;
    for (let i = 0; i < 100 && alive; i++) {
      try {
        process.kill(pid, 0);
        await new Promise((r) => setTimeout(r, 50));
      } catch {
        alive = false;
      }
    }
    expect(alive).toBe(false);
    expect(await ask(port, 'x')).toBe('ECONNREFUSED');
    // A network of an allow list or a published port has nothing outside the box and the owner
    // process; what the owner made in the cgroup tree goes as any dead owner's does.
    // The kernel empties the box's cgroups a moment after its init is gone: sweep until it has.
    for (let i = 0; i < 50 && ownerDirs().length > 0; i++) {
      await cleanupOrphans();
      if (ownerDirs().length > 0) await new Promise((r) => setTimeout(r, 100));
    }
    expect(ownerDirs()).toEqual([]);
  });
});

describe('without root', () => {
  const DIST = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'index.js');
  it('the egress proxy and a published port work for an unprivileged caller', () => {
    const code = `
      import http from 'node:http';
      import net from 'node:net';
      import { run, spawn } from ${JSON.stringify(DIST)};
      const srv = http.createServer((q, s) => s.end('hello ' + q.url));
      await new Promise((r) => srv.listen(0, '127.0.0.1', r));
      const port = srv.address().port;
      const r = await run({ command: ['curl', '-sSf', 'http://127.0.0.1:' + port + '/rootless'], network: { allow: ['127.0.0.1:' + port] } });
      const p = await spawn({ command: ['python3', '-c', ${JSON.stringify(ECHO)}], network: { publish: [{ box: 8000, host: 0 }] } });
      await new Promise((r) => p.stdout.once('data', r));
      const got = await new Promise((resolve) => { const c = net.connect(p.published[0].port, '127.0.0.1', () => c.write('x')); let d = ''; c.on('data', (b) => d += b); c.on('close', () => resolve(d)); });
      p.kill(); await p.wait(); srv.close();
      console.log(JSON.stringify({ status: r.status, stdout: r.stdout, allowed: r.network.connections[0].allowed, got }));`;
    const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '--input-type=module', '-e', code], { encoding: 'utf8', timeout: 60_000 });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({ status: 'ok', stdout: 'hello /rootless', allowed: true, got: 'box says x' });
  });
});
