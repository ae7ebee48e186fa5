// Who may ask for what: the server's policy (403 naming the field), tokens (TCP only with them,
// 401 for a wrong one) and boxes that belong to the client that made them.
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { connect, SandcellRemoteError } from '../../src/client/index.js';
import { requireRoot } from '../helpers/host.js';
import { CLI, http, startDaemon, type TestDaemon } from './daemon.js';

const run = (socket: string, body: unknown) => http(socket, 'POST', '/v1/run', JSON.stringify(body));
const ALICE = 'alice-token-0123456789abcdef';
const BOB = 'bob-token-0123456789abcdefgh';

let hostDir: string;

beforeAll(() => {
  requireRoot();
  hostDir = mkdtempSync(join(tmpdir(), 'sandcell-policy-'));
  chmodSync(hostDir, 0o755);
  mkdirSync(join(hostDir, 'allowed', 'sub'), { recursive: true });
  chmodSync(join(hostDir, 'allowed'), 0o755);
  symlinkSync('/etc', join(hostDir, 'allowed', 'escape'));
});
afterAll(() => rmSync(hostDir, { recursive: true, force: true }));

describe('the default policy is strict', () => {
  let d: TestDaemon;
  beforeAll(async () => {
    d = await startDaemon();
  });
  afterAll(async () => expect(await d.stop()).toEqual({ code: 0, leftCgroups: [] }));

  const refusals: [string, Record<string, unknown>, string][] = [
    ['a bind of a host path', { binds: [{ source: '/etc' }] }, 'binds[0].source'],
    ['a bind mount of a host path', { mounts: [{ source: '/usr', target: '/x' }] }, 'mounts[0].source'],
    ['an image', { image: '/' }, 'image'],
    ['the host network', { network: 'host' }, 'network'],
    ['an egress allow list', { network: { allow: ['127.0.0.1:22'] } }, 'network'],
    ['a published port', { network: { publish: [{ box: 8000 }] } }, 'network'],
    ['a private network', { network: 'judge-net' }, 'network'],
    ['no seccomp filter', { seccomp: 'none' }, 'seccomp'],
    ['a seccomp policy of its own', { seccomp: { defaultAction: 'allow' } }, 'seccomp'],
    ['a cgroup parent', { cgroupParent: '/sys/fs/cgroup/x' }, 'cgroupParent'],
    ['a limit over the ceiling', { limits: { memory: '64GiB' } }, 'limits.memory'],
    ['a tmpfs over the ceiling', { mounts: [{ type: 'tmpfs', target: '/big', size: '100GiB' }] }, 'mounts[0].size'],
  ];
  for (const [what, options, field] of refusals) {
    it(`refuses ${what} with 403 naming ${field}`, async () => {
      const r = await run(d.socket, { command: ['/bin/true'], ...options });
      expect(r.status).toBe(403);
      expect(JSON.parse(r.body)).toMatchObject({ error: { code: 'forbidden', field } });
    });
  }

  it('refuses the same in a living box and in its runs', async () => {
    const box = await http(d.socket, 'POST', '/v1/boxes', JSON.stringify({ binds: [{ source: '/etc' }] }));
    expect(box.status).toBe(403);
    expect(JSON.parse(box.body)).toMatchObject({ error: { field: 'binds[0].source' } });
    const made = await http(d.socket, 'POST', '/v1/boxes', '{}');
    expect(made.status).toBe(201);
    const { id } = JSON.parse(made.body) as { id: string };
    const r = await http(d.socket, 'POST', `/v1/boxes/${id}/run`, JSON.stringify({ command: ['/bin/true'], limits: { wallTime: '1h' } }));
    expect(r.status).toBe(403);
    expect(JSON.parse(r.body)).toMatchObject({ error: { field: 'limits.wallTime' } });
    expect((await http(d.socket, 'DELETE', `/v1/boxes/${id}`)).status).toBe(204);
  });

  it('the socket is 0660: only its owner and group may connect', () => {
    const mode = spawnSync('stat', ['-c', '%a', d.socket], { encoding: 'utf8' }).stdout.trim();
    expect(mode).toBe('660');
  });
});

describe('a policy that allows some host paths', () => {
  let d: TestDaemon;
  beforeAll(async () => {
    d = await startDaemon({ policy: { binds: [{ source: join(hostDir, 'allowed') }], limits: { wallTime: '300ms' } } });
  });
  afterAll(async () => expect(await d.stop()).toEqual({ code: 0, leftCgroups: [] }));

  it('allows a path below an allowed one, read-only', async () => {
    const r = await run(d.socket, { command: ['/bin/ls', '/in'], binds: [{ source: join(hostDir, 'allowed'), target: '/in' }] });
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toMatchObject({ status: 'ok', stdout: 'escape\nsub\n' });
    const sub = await run(d.socket, { command: ['/bin/true'], binds: [{ source: join(hostDir, 'allowed', 'sub') }] });
    expect(JSON.parse(sub.body)).toMatchObject({ status: 'ok' });
  });

  it('refuses it read-write, a symlink that leads out of it, and a path beside it', async () => {
    const rw = await run(d.socket, { command: ['/bin/true'], binds: [{ source: join(hostDir, 'allowed', 'sub'), readonly: false }] });
    expect(rw.status).toBe(403);
    expect(JSON.parse(rw.body)).toMatchObject({ error: { field: 'binds[0].source' } });
    const escape = await run(d.socket, { command: ['/bin/true'], binds: [{ source: join(hostDir, 'allowed', 'escape'), target: '/x' }] });
    expect(escape.status).toBe(403);
    expect(JSON.parse(escape.body).error.message).toContain('resolves outside');
    const beside = await run(d.socket, { command: ['/bin/true'], binds: [{ source: `${join(hostDir, 'allowed')}-not` }] });
    expect(beside.status).toBe(403);
  });

  it('gives a run that names no wall time the ceiling', async () => {
    const r = await run(d.socket, { command: ['/bin/sleep', '30'] });
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toMatchObject({ status: 'wall-time-limit' });
  });
});

describe('tokens', () => {
  let tokenFile: string;
  beforeAll(() => {
    tokenFile = join(hostDir, 'tokens');
    spawnSync('sh', ['-c', `printf '# clients\\nalice ${ALICE}\\nbob ${BOB}\\n' > ${tokenFile}`]);
  });

  it('TCP without a token file refuses to start, before it opens anything', () => {
    const socket = join(hostDir, 'never.sock');
    const r = spawnSync(process.execPath, [CLI, 'serve', '--socket', socket, '--listen', '127.0.0.1:0'], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status).toBe(125);
    expect(r.stderr).toContain('--listen needs --token-file');
    expect(existsSync(socket)).toBe(false);
  });

  it('on TCP: no token or a wrong one → 401, the right one runs', async () => {
    const d = await startDaemon({ args: ['--listen', '127.0.0.1:0', '--token-file', tokenFile] });
    try {
      const port = Number(/"tcp":\{"address":"127\.0\.0\.1","family":"IPv4","port":(\d+)\}/.exec(d.log())?.[1]);
      expect(port).toBeGreaterThan(0);
      const tcp = (token: string | null) =>
        new Promise<{ status: number; auth: string | undefined; body: string }>((resolve, reject) => {
          const body = JSON.stringify({ command: ['/bin/echo', 'tcp'] });
          const req = request(
            { host: '127.0.0.1', port, method: 'POST', path: '/v1/run', agent: false, headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) } },
            (res) => {
              let text = '';
              res.on('data', (c: Buffer) => (text += c.toString()));
              res.on('end', () => resolve({ status: res.statusCode ?? 0, auth: res.headers['www-authenticate'], body: text }));
            },
          );
          req.on('error', reject);
          req.end(body);
        });
      const none = await tcp(null);
      expect(none.status).toBe(401);
      expect(none.auth).toBe('Bearer');
      expect((await tcp(`${ALICE}x`)).status).toBe(401);
      expect((await tcp('short')).status).toBe(401);
      const ok = await tcp(ALICE);
      expect(ok.status).toBe(200);
      expect(JSON.parse(ok.body)).toMatchObject({ status: 'ok', stdout: 'tcp\n' });
      const client = connect({ url: `http://127.0.0.1:${port}`, token: BOB });
      expect((await client.run({ command: ['/bin/echo', 'bob'] })).stdout).toBe('bob\n');
      client.close();
      // On the socket a token is optional, but a wrong one is still refused.
      expect((await http(d.socket, 'GET', '/v1/version', undefined, { authorization: 'Bearer nope-nope-nope-nope' })).status).toBe(401);
    } finally {
      expect(await d.stop()).toEqual({ code: 0, leftCgroups: [] });
    }
  });

  it("a box belongs to the client that made it: another client cannot see, run in or delete it", async () => {
    const d = await startDaemon({ args: ['--token-file', tokenFile] });
    const alice = connect({ socket: d.socket, token: ALICE });
    const bob = connect({ socket: d.socket, token: BOB });
    try {
      const box = await alice.Sandbox.create({});
      expect((await alice.boxes()).map((b) => b.id)).toEqual([box.id]);
      expect(await bob.boxes()).toEqual([]);
      const asBob = { Authorization: `Bearer ${BOB}` };
      const run = await http(d.socket, 'POST', `/v1/boxes/${box.id}/run`, JSON.stringify({ command: ['/bin/true'] }), asBob);
      expect(run.status).toBe(404);
      expect((await http(d.socket, 'DELETE', `/v1/boxes/${box.id}`, undefined, asBob)).status).toBe(404);
      expect((await box.run({ command: ['/bin/echo', 'mine'] })).stdout).toBe('mine\n');
      await box.destroy();
      expect(await alice.boxes()).toEqual([]);
      const after = await box.run({ command: ['/bin/true'] }).catch((e: unknown) => e);
      expect(after).toBeInstanceOf(SandcellRemoteError);
      expect(after).toMatchObject({ status: 404, code: 'not-found' });
    } finally {
      alice.close();
      bob.close();
      expect(await d.stop()).toEqual({ code: 0, leftCgroups: [] });
    }
  });
});
