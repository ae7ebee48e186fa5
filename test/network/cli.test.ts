// The CLI's --allow and --publish, and a profile's network: the same egress proxy and published
// ports as the library.
import { spawn as spawnChild } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';

import { parseRunArgs } from '../../src/cli/args.js';
import { requireRoot } from '../helpers/host.js';
import { namedPort } from '../helpers/ports.js';

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'cli', 'main.js');

beforeAll(() => requireRoot());

function sandcell(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawnChild(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (d: Buffer) => (stdout += String(d)));
    c.stderr.on('data', (d: Buffer) => (stderr += String(d)));
    c.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

/**
 * What a connection to 127.0.0.1:`port` reads, tried every 50 ms for about 10 s: until the box
 * listens, the published port closes each connection with nothing read. '' once `cli` ended.
 */
async function answerOn(port: number, cli: Promise<unknown>): Promise<string> {
  let ended = false;
  void cli.then(() => (ended = true));
  for (let i = 0; i < 200 && !ended; i++) {
    const got = await new Promise<string>((resolve) => {
      const c = net.connect(port, '127.0.0.1');
      let d = '';
      c.on('data', (b) => (d += String(b)));
      c.on('close', () => resolve(d));
      c.on('error', () => resolve(''));
    });
    if (got !== '') return got;
    await new Promise((r) => setTimeout(r, 50));
  }
  return '';
}

describe('sandcell run --allow / --publish', () => {
  it('parses the flags into network options, and refuses a bad --publish and --network host with them', () => {
    expect(parseRunArgs(['--allow', 'a.example:443', '--allow', '127.0.0.1:80', '--publish', '127.0.0.1:18000:8000', '--publish', '9000:90', '--', 'x']).options.network).toEqual({
      allow: ['a.example:443', '127.0.0.1:80'],
      publish: [{ box: 8000, host: '127.0.0.1:18000' }, { box: 90, host: 9000 }],
    });
    expect(() => parseRunArgs(['--publish', '8000', '--', 'x'])).toThrow(/--publish 8000: expected \[<host address>:\]<host port>:<box port>/);
    expect(() => parseRunArgs(['--network', 'host', '--allow', 'a:1', '--', 'x'])).toThrow(/--network host and --allow\/--publish/);
  });

  it('--allow reaches the listed server and the result lists the connection', async () => {
    const server = http.createServer((_req, res) => res.end('from the host\n'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    const r = await sandcell(['run', '--json', '--allow', `127.0.0.1:${port}`, '--', 'curl', '-sSf', `http://127.0.0.1:${port}/`]);
    await new Promise((resolve) => server.close(resolve));
    expect(r.stderr).toBe('');
    const result = JSON.parse(r.stdout) as { stdout: string; network: { connections: { to: string; allowed: boolean }[] } };
    expect(result.stdout).toBe('from the host\n');
    expect(result.network.connections).toMatchObject([{ to: `127.0.0.1:${port}`, allowed: true }]);
  });

  it('a profile names the allow list the same way', async () => {
    const server = http.createServer((_req, res) => res.end('profiled\n'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    const dir = mkdtempSync(join(tmpdir(), 'sandcell-net-profile-'));
    const config = join(dir, 'sandcell.yaml');
    writeFileSync(config, `sandcell: 1\nprofiles:\n  egress:\n    network:\n      allow: ['127.0.0.1:${port}']\n      limits: { connections: 4 }\n`);
    const r = await sandcell(['run', '--json', '--profile', 'egress', '--config', config, '--', 'curl', '-sSf', `http://127.0.0.1:${port}/`]);
    await new Promise((resolve) => server.close(resolve));
    rmSync(dir, { recursive: true, force: true });
    expect(r.stderr).toBe('');
    const result = JSON.parse(r.stdout) as { stdout: string; network: { connections: { allowed: boolean }[] } };
    expect(result.stdout).toBe('profiled\n');
    expect(result.network.connections).toMatchObject([{ allowed: true }]);
  });

  it('--publish carries a host connection to the box', async () => {
    const port = await namedPort();
    const code = 'import socket\ns=socket.socket(); s.bind(("127.0.0.1", 8000)); s.listen()\nc,_=s.accept(); c.sendall(b"box here\\n"); c.close()';
    const cli = sandcell(['run', '--publish', `127.0.0.1:${port}:8000`, '--wall', '20s', '--', 'python3', '-c', code]);
    // A CLI that ended first failed, and what it said is the assertion's message below.
    const got = await answerOn(port, cli);
    const r = await cli;
    expect({ got, status: r.status, stderr: r.stderr }).toEqual({ got: 'box here\n', status: 0, stderr: '' });
  });

  it('--publish with host port 0 says on stderr where the kernel chose, and that port reaches the box', async () => {
    const code = 'import socket\ns=socket.socket(); s.bind(("127.0.0.1", 8000)); s.listen()\nc,_=s.accept(); c.sendall(b"chosen\\n"); c.close()';
    const c = spawnChild(process.execPath, [CLI, 'run', '--publish', '0:8000', '--wall', '20s', '--', 'python3', '-c', code], { stdio: ['ignore', 'pipe', 'pipe'] });
    const closed = new Promise<number | null>((resolve) => c.on('close', resolve));
    let stderr = '';
    const said = await new Promise<RegExpExecArray | null>((resolve) => {
      c.stderr.on('data', (d: Buffer) => {
        stderr += String(d);
        const m = /^sandcell: box port 8000 published on 127\.0\.0\.1:(\d+)\n/.exec(stderr);
        if (m) resolve(m);
      });
      void closed.then(() => resolve(null));
    });
    expect(said, stderr).not.toBeNull();
    expect(await answerOn(Number(said?.[1]), closed)).toBe('chosen\n');
    expect(await closed).toBe(0);
  });
});
