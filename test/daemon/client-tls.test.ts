// The client over https: a real daemon on TCP (127.0.0.1, with tokens) behind a real TLS
// terminator (Debian's stunnel4) holding a certificate signed by a CA made here. With that CA in
// connect()'s tls.ca, runs, sessions and spawns go through; without it, or under another name,
// the client refuses the certificate with an error saying what to give.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { connect, SandcellRemoteError } from '../../src/client/index.js';
import { namedPort } from '../helpers/ports.js';
import { CLI, startDaemon, until, type TestDaemon } from './daemon.js';

const TOKEN = 'tls-test-token-0123456789';

function openssl(dir: string, args: string[]): void {
  const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
}

/** A CA, and a certificate it signed for `localhost` and 127.0.0.1. */
function makeCertificates(dir: string): void {
  openssl(dir, ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=sandcell test CA']);
  openssl(dir, ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost']);
  writeFileSync(join(dir, 'san.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  openssl(dir, ['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'san.ext']);
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = tcpConnect({ host: '127.0.0.1', port }, () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

describe('the client through a TLS terminator', () => {
  let dir = '';
  let daemon: TestDaemon | undefined;
  let stunnel: ChildProcess | undefined;
  let stunnelExit: Promise<unknown> = Promise.resolve();
  let stunnelLog = '';
  let port = 0;
  let ca = '';

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sandcell-client-tls-'));
    makeCertificates(dir);
    ca = readFileSync(join(dir, 'ca.pem'), 'utf8');
    writeFileSync(join(dir, 'tokens'), `tls ${TOKEN}\n`);
    daemon = await startDaemon({ args: ['--listen', '127.0.0.1:0', '--token-file', join(dir, 'tokens')] });
    const daemonPort = Number(/"tcp":\{"address":"127\.0\.0\.1","family":"IPv4","port":(\d+)\}/.exec(daemon.log())?.[1]);
    expect(daemonPort).toBeGreaterThan(0);
    port = await namedPort();
    // In the foreground, no pid file, logging to stderr: a child of this test, ended by its pid.
    writeFileSync(
      join(dir, 'stunnel.conf'),
      [
        'foreground = yes',
        'pid =',
        'debug = 4',
        '[sandcell]',
        `accept = 127.0.0.1:${port}`,
        `connect = 127.0.0.1:${daemonPort}`,
        `cert = ${join(dir, 'server.pem')}`,
        `key = ${join(dir, 'server.key')}`,
        '',
      ].join('\n'),
    );
    const proc = spawn('stunnel4', [join(dir, 'stunnel.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
    stunnel = proc;
    stunnelExit = new Promise((resolve) => proc.once('exit', resolve));
    proc.stdout?.on('data', (c: Buffer) => (stunnelLog += c.toString()));
    proc.stderr?.on('data', (c: Buffer) => (stunnelLog += c.toString()));
    if (!(await until(() => proc.exitCode === null && accepts(port), 20_000))) throw new Error(`stunnel4 did not listen on ${port}:\n${stunnelLog}`);
  }, 120_000);

  afterAll(async () => {
    if (stunnel !== undefined && stunnel.exitCode === null && stunnel.signalCode === null) {
      stunnel.kill('SIGTERM');
      await stunnelExit;
    }
    const stopped = await daemon?.stop();
    rmSync(dir, { recursive: true, force: true });
    expect(stopped).toEqual({ code: 0, leftCgroups: [] });
  });

  it("with the CA: a run, a session's runs and a spawn through https and wss", async () => {
    const engine = connect({ url: `https://localhost:${port}`, token: TOKEN, tls: { ca } });
    try {
      expect(await engine.run({ command: ['/bin/echo', 'over tls'] })).toMatchObject({ status: 'ok', stdout: 'over tls\n' });
      await using session = await engine.session();
      const runs = await Promise.all([1, 2].map((n) => session.run({ command: ['/bin/echo', `run ${n}`] })));
      expect(runs.map((r) => r.stdout)).toEqual(['run 1\n', 'run 2\n']);
      const p = await engine.spawn({ command: ['/bin/cat'] });
      p.stdin.end('through wss');
      let out = '';
      p.stdout.on('data', (c: Buffer) => (out += c.toString()));
      expect((await p.wait()).status).toBe('ok');
      expect(out).toBe('through wss');
    } finally {
      engine.close();
    }
  });

  it('the address instead of the name: the certificate bears 127.0.0.1 too; tls.servername names the host it must bear', async () => {
    const byAddress = connect({ url: `https://127.0.0.1:${port}`, token: TOKEN, tls: { ca } });
    const named = connect({ url: `https://127.0.0.1:${port}`, token: TOKEN, tls: { ca, servername: 'localhost' } });
    try {
      expect((await byAddress.run({ command: ['/bin/echo', 'a'] })).stdout).toBe('a\n');
      expect((await named.run({ command: ['/bin/echo', 'b'] })).stdout).toBe('b\n');
    } finally {
      byAddress.close();
      named.close();
    }
  });

  it("the CLI as a client over https (`SANDCELL_HOST`) trusts the CA in Node's NODE_EXTRA_CA_CERTS", () => {
    const run = (extra: NodeJS.ProcessEnv) =>
      spawnSync(process.execPath, [CLI, 'run', '--', '/bin/echo', 'extra ca'], {
        env: { ...process.env, SANDCELL_HOST: `https://localhost:${port}`, SANDCELL_TOKEN: TOKEN, ...extra },
        encoding: 'utf8',
        timeout: 60_000,
      });
    const trusted = run({ NODE_EXTRA_CA_CERTS: join(dir, 'ca.pem') });
    expect([trusted.status, trusted.stdout]).toEqual([0, 'extra ca\n']);
    const untrusted = run({ NODE_EXTRA_CA_CERTS: '' });
    expect(untrusted.status).not.toBe(0);
    expect(untrusted.stderr).toMatch(/the daemon's TLS certificate is not trusted/);
  });

  it("without the CA: the certificate is refused, saying to give the CA; under another name, saying to name it", async () => {
    const stranger = connect({ url: `https://localhost:${port}`, token: TOKEN });
    const misnamed = connect({ url: `https://localhost:${port}`, token: TOKEN, tls: { ca, servername: 'sandcell.example' } });
    try {
      const e = await stranger.run({ command: ['/bin/true'] }).catch((err: unknown) => err);
      expect(e).toBeInstanceOf(SandcellRemoteError);
      expect(e).toMatchObject({ code: 'untrusted-certificate', field: 'tls', cause: { code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' } });
      expect((e as Error).message).toMatch(/the daemon's TLS certificate is not trusted: unable to verify the first certificate .*give the CA that signed it as connect\(\)'s tls\.ca/);
      // The WebSocket's TLS is the same TLS.
      await expect(stranger.session()).rejects.toMatchObject({ code: 'untrusted-certificate' });
      await expect(misnamed.version()).rejects.toMatchObject({ code: 'untrusted-certificate', cause: { code: 'ERR_TLS_CERT_ALTNAME_INVALID' }, message: expect.stringMatching(/tls\.servername/) });
    } finally {
      stranger.close();
      misnamed.close();
    }
  });
});
