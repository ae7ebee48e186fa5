// Egress by allow list: a box reaches exactly the listed destinations through the proxy sandcell
// runs on the host side, and nothing else (no direct connect, no UDP, no name that resolves to a
// forbidden address); every connection is in the result with its bytes; nothing is left behind.
// All traffic stays on this machine: the servers listen on the host's 127.0.0.1.
import { createSocket } from 'node:dgram';
import http from 'node:http';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { run, Sandbox, spawn } from '../../src/index.js';
import { childPids, openFds, requireRoot, runCgroupsInUse } from '../helpers/host.js';
import { socketsAndNamespaces, tcpHandles } from './leaks.js';

/**
 * The leak check's runs, and how many at once. Runs are CPU-bound: on 2 cores at a load average of
 * 15-20, 2, 4 and 8 at once each gave 6-8 runs/s of curl through the proxy (1,000 runs took 202 s;
 * the bench's section 13 had 86 runs/s of /bin/true with an allow list at a load of 4); 4 keeps the
 * boxes at once few.
 */
const LEAK_RUNS = 1000;
const LEAK_CONCURRENCY = 4;

beforeAll(() => requireRoot());

let server: http.Server;
let port: number;
let other: http.Server;
let otherPort: number;
/** Requests the test servers answered: what reached the host. */
const seen: string[] = [];

beforeAll(async () => {
  server = http.createServer((req, res) => {
    seen.push(req.url ?? '');
    if (req.url === '/big') {
      res.end(Buffer.alloc(256 * 1024, 'x'));
      return;
    }
    res.end(`hello ${req.url}\n`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as net.AddressInfo).port;
  other = http.createServer((req, res) => {
    seen.push(`other${req.url ?? ''}`);
    res.end('other\n');
  });
  await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
  otherPort = (other.address() as net.AddressInfo).port;
});

afterAll(async () => {
  server.closeAllConnections();
  other.closeAllConnections();
  await Promise.all([new Promise((r) => server.close(r)), new Promise((r) => other.close(r))]);
});

const allow = (): string[] => [`127.0.0.1:${port}`];

/** Opens 4 connections to the proxy and prints how many the proxy closed at once. */
const CUT_OFF = [
  'import socket',
  'ss = [socket.create_connection(("127.0.0.1", 3128)) for _ in range(4)]',
  'closed = 0',
  'for s in ss:',
  '    s.settimeout(1)',
  '    try: closed += s.recv(1) == b""',
  '    except socket.timeout: pass',
  'print(closed)',
].join('\n');

describe('egress through the allow list', () => {
  it('curl reaches an allowed destination: plain HTTP, CONNECT tunnel and SOCKS5', async () => {
    const url = `http://127.0.0.1:${port}`;
    const script = `curl -sSf ${url}/plain && curl -sSf -p ${url}/tunnel && curl -sSf --socks5-hostname 127.0.0.1:3128 ${url}/socks`;
    const r = await run({ command: ['/bin/sh', '-c', script], network: { allow: allow() } });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('hello /plain\nhello /tunnel\nhello /socks\n');
    expect(r.status).toBe('ok');
    expect(r.network?.connections).toHaveLength(3);
    for (const c of r.network?.connections ?? []) {
      expect(c).toMatchObject({ to: `127.0.0.1:${port}`, allowed: true, address: '127.0.0.1' });
      expect(c.bytesIn).toBeGreaterThan(90);
      expect(c.bytesOut).toBeGreaterThan(60);
    }
  });

  it("Python's urllib reaches it through the proxy named in the environment", async () => {
    const code = `import urllib.request, os; print(os.environ['http_proxy']); print(urllib.request.urlopen('http://127.0.0.1:${port}/py').read().decode(), end='')`;
    const r = await run({ command: ['python3', '-c', code], network: { allow: allow() } });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('http://127.0.0.1:3128\nhello /py\n');
    expect(r.network?.connections).toEqual([{ to: `127.0.0.1:${port}`, allowed: true, address: '127.0.0.1', bytesIn: expect.any(Number), bytesOut: expect.any(Number) }]);
  });

  it('refuses a port not on the list, and reports it', async () => {
    const before = seen.length;
    const r = await run({
      command: ['/bin/sh', '-c', `curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:${otherPort}/x; curl -s -p http://127.0.0.1:${otherPort}/y; echo " $?"`],
      network: { allow: allow() },
    });
    expect(r.stdout).toBe('403 56\n');
    expect(seen.slice(before)).toEqual([]);
    expect(r.network?.connections).toEqual([
      { to: `127.0.0.1:${otherPort}`, allowed: false, reason: `127.0.0.1:${otherPort} is not on the allow list`, bytesIn: 0, bytesOut: 0 },
      { to: `127.0.0.1:${otherPort}`, allowed: false, reason: `127.0.0.1:${otherPort} is not on the allow list`, bytesIn: 0, bytesOut: 0 },
    ]);
  });

  it('refuses an allowed name that resolves to a forbidden address (the host\'s loopback)', async () => {
    const before = seen.length;
    const r = await run({
      command: ['/bin/sh', '-c', `curl -s -o /dev/null -w '%{http_code}' http://localhost:${port}/a; curl -s --socks5-hostname 127.0.0.1:3128 http://localhost:${port}/b; echo " $?"`],
      network: { allow: [`localhost:${port}`] },
    });
    expect(r.stdout).toBe('403 97\n');
    expect(seen.slice(before)).toEqual([]);
    expect(r.network?.connections.map((c) => [c.to, c.allowed, c.reason])).toEqual([
      [`localhost:${port}`, false, expect.stringContaining('resolves to 127.0.0.1, which the allow list does not reach')],
      [`localhost:${port}`, false, expect.stringContaining('resolves to 127.0.0.1, which the allow list does not reach')],
    ]);
  });

  it('a direct connect, UDP and a raw socket fail: the box has no route out', async () => {
    const udp = createSocket('udp4');
    const got: string[] = [];
    udp.on('message', (m) => got.push(String(m)));
    await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', resolve));
    const udpPort = udp.address().port;
    const code = [
      'import socket',
      'def tcp():',
      '    s = socket.socket(); s.settimeout(2)',
      `    try: s.connect(("127.0.0.1", ${port})); return "connected"`,
      '    except OSError as e: return type(e).__name__',
      'def udp():',
      '    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
      `    try: s.sendto(b"leak", ("10.255.255.1", ${udpPort})); return "sent"`,
      '    except OSError as e: return type(e).__name__',
      'def raw():',
      '    try: s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP); return "raw"',
      '    except OSError as e: return type(e).__name__',
      'print(tcp(), udp(), raw())',
    ].join('\n');
    const r = await run({ command: ['python3', '-c', code], network: { allow: allow() } });
    udp.close();
    expect(r.stderr).toBe('');
    // 127.0.0.1 in the box is the box's own loopback: nothing listens on the host's port there.
    expect(r.stdout).toBe('ConnectionRefusedError OSError PermissionError\n');
    expect(got).toEqual([]);
    expect(r.network?.connections).toEqual([]);
  });

  it('forwards a request body, and answers garbage and an endless head without holding anything', async () => {
    const post = `import urllib.request; print(urllib.request.urlopen(urllib.request.Request('http://127.0.0.1:${port}/post', data=b'x' * 100000)).read().decode(), end='')`;
    const code = [
      'import socket',
      'def ask(data):',
      '    s = socket.create_connection(("127.0.0.1", 3128)); s.settimeout(5)',
      '    try:',
      '        s.sendall(data); got = b""',
      '        while True:',
      '            b = s.recv(4096)',
      '            if not b: return got.split(b"\\r\\n")[0].decode() or "closed"',
      '            got += b',
      '    except OSError as e: return type(e).__name__',
      'print(ask(b"garbage\\r\\n\\r\\n"))',
      'print(ask(b"GET / HTTP/1.1\\r\\nX: " + b"a" * 40000))',
    ].join('\n');
    const r = await run({ command: ['/bin/sh', '-c', `python3 -c "${post}"; python3 -c '${code}'`], network: { allow: allow() } });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('hello /post\nHTTP/1.1 400 Bad Request\nclosed\n');
    expect(r.network?.connections).toEqual([expect.objectContaining({ to: `127.0.0.1:${port}`, allowed: true })]);
    expect(r.network?.connections[0]?.bytesOut).toBeGreaterThan(100000);
  });

  it('what the box sent before it ended reaches the destination whole', async () => {
    // The program sends 4 MiB through a CONNECT tunnel and exits: most of it is still in the
    // kernel's buffers, or on its way through the proxy, when the box ends.
    const size = 4 << 20;
    const received: number[] = [];
    const sink = net.createServer((c) => {
      let n = 0;
      c.on('data', (d) => (n += d.length));
      c.on('close', () => received.push(n));
      c.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
    const sinkPort = (sink.address() as net.AddressInfo).port;
    const code = [
      'import socket',
      's = socket.create_connection(("127.0.0.1", 3128))',
      `s.sendall(b"CONNECT 127.0.0.1:${sinkPort} HTTP/1.1\\r\\n\\r\\n"); head = b""`,
      'while b"\\r\\n\\r\\n" not in head: head += s.recv(1)',
      `s.sendall(b"x" * ${size}); s.close()`,
    ].join('\n');
    try {
      for (let round = 0; round < 3; round++) {
        const r = await run({ command: ['python3', '-c', code], network: { allow: [`127.0.0.1:${sinkPort}`] } });
        expect(r.stderr).toBe('');
        expect(r.status).toBe('ok');
        for (let i = 0; i < 100 && received.length <= round; i++) await new Promise((resolve) => setTimeout(resolve, 20));
        expect(received[round]).toBe(size);
      }
    } finally {
      await new Promise((resolve) => sink.close(resolve));
    }
  });

  it('bounds connections at once and bytes each way', async () => {
    const many = await run({
      command: ['python3', '-c', CUT_OFF],
      network: { allow: allow(), limits: { connections: 2 } },
    });
    expect(many.stdout).toBe('2\n');
    expect(many.network?.connections.filter((c) => c.reason === 'more than 2 connections at once')).toHaveLength(2);

    const big = await run({
      command: ['/bin/sh', '-c', `curl -s -o /dev/null -w '%{size_download}' http://127.0.0.1:${port}/big; echo " $?"`],
      network: { allow: allow(), limits: { bytesIn: '64KiB' } },
    });
    const [size, code] = big.stdout.trim().split(' ').map(Number);
    expect(code).not.toBe(0);
    expect(size).toBeLessThanOrEqual(64 * 1024);
    expect(big.network?.connections[0]).toMatchObject({ allowed: true, reason: "the box's limit of bytes in was reached" });
  });

  it('a spawned box and a living box have the proxy too; the living box keeps it for every run', async () => {
    const p = await spawn({ command: ['curl', '-sSf', `http://127.0.0.1:${port}/spawned`], network: { allow: allow() } });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += String(d)));
    const r = await p.wait();
    expect(out).toBe('hello /spawned\n');
    expect(r.network?.connections).toHaveLength(1);

    await using box = await Sandbox.create({ network: { allow: allow() } });
    for (const path of ['/one', '/two']) {
      const run1 = await box.run({ command: ['curl', '-sSf', `http://127.0.0.1:${port}${path}`] });
      expect(run1.stdout).toBe(`hello ${path}\n`);
    }
    const refused = await box.run({ command: ['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', `http://127.0.0.1:${otherPort}/`] });
    expect(refused.stdout).toBe('403');
  });

  it(`leaves nothing behind: ${LEAK_RUNS} runs with an allow list, ${LEAK_CONCURRENCY} at a time`, { timeout: 600_000 }, async () => {
    await run({ command: ['curl', '-sSf', `http://127.0.0.1:${port}/warmup`], network: { allow: allow() } });
    const fds = await openFds();
    const sockets = socketsAndNamespaces();
    const handles = tcpHandles();
    let next = 0;
    const bad: string[] = [];
    const worker = async (): Promise<void> => {
      while (next < LEAK_RUNS) {
        const i = next++;
        const r = await run({ command: ['curl', '-sSf', `http://127.0.0.1:${port}/${i}`], network: { allow: allow() } });
        if (r.stdout !== `hello /${i}\n` || r.network?.connections.length !== 1 || r.network.connections[0]?.allowed !== true) {
          bad.push(`${i}: ${r.status} ${r.stdout} ${r.stderr}`);
        }
      }
    };
    await Promise.all(Array.from({ length: LEAK_CONCURRENCY }, worker));
    expect(bad).toEqual([]);
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    expect(await openFds()).toBe(fds);
    expect(socketsAndNamespaces()).toEqual(sockets);
    expect(tcpHandles()).toBe(handles);
    expect(await childPids()).toEqual([]);
    expect(await runCgroupsInUse()).toEqual([]);
  });
});
