/**
 * What a service does besides surviving a node: crashes restarted with backoff and shown by
 * `ls`, replies that are not JSON or too long, calls past their deadline, scaling, removal,
 * placement by labels, and values in Redis that are not what they should be. Agents run in this
 * process (each a worker of its own name); replicas are real boxes.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { ServiceError, ServicesClient, startServiceAgent, type ServiceAgent, type ServiceStatus } from '../../src/cluster/services/index.js';
import { SandboxOptionsError } from '../../src/index.js';
import { CLI, until } from '../daemon/daemon.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';

const HEARTBEAT = { interval: 100, timeout: 3000 };

/** Echoes each line; a line with "crash" ends it with 3, "garbage" gets a line that is not JSON, "hang" no reply. */
const PROGRAM = `while IFS= read -r line; do
  case "$line" in
    *crash*) echo "crashing on $line" >&2; exit 3 ;;
    *garbage*) echo 'this is not json' ;;
    *hang*) sleep 1000 ;;
    *long*) printf '"%0200d"\\n' 0 ;;
    *) printf '{"echo":%s}\\n' "$line" ;;
  esac
done`;

let redis: TestRedis;
let n = 0;
const agents: ServiceAgent[] = [];
const clients: ServicesClient[] = [];
const errors: string[] = [];

beforeAll(async () => {
  redis = await startRedis();
});

afterEach(async () => {
  await Promise.all(agents.splice(0).map((a) => a.close()));
  await Promise.all(clients.splice(0).map((c) => c.close()));
  errors.length = 0;
});

afterAll(async () => {
  await redis?.stop();
});

/** A fresh prefix per test: a farm of its own in the same Redis. */
async function farm(workers: { name: string; labels?: Record<string, string> }[] = [{ name: 'w1' }]): Promise<{ client: ServicesClient; prefix: string }> {
  const prefix = `t${++n}`;
  for (const w of workers) {
    agents.push(
      await startServiceAgent({
        connection: { path: redis.socket },
        prefix,
        worker: { name: w.name, labels: w.labels ?? {} },
        heartbeat: HEARTBEAT,
        onError: (e) => errors.push(e.message),
      }),
    );
  }
  const client = new ServicesClient({ connection: { path: redis.socket }, prefix });
  clients.push(client);
  return { client, prefix };
}

async function status(client: ServicesClient, name: string): Promise<ServiceStatus | undefined> {
  return (await client.ls()).find((s) => s.name === name);
}

async function running(client: ServicesClient, name: string, count: number): Promise<boolean> {
  return until(async () => (await status(client, name))?.running === count);
}

async function rejection(p: Promise<unknown>): Promise<ServiceError> {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(ServiceError);
  return e as ServiceError;
}

describe('declaring services', () => {
  it('refuses bad declarations naming the field, and a name taken twice', async () => {
    const { client } = await farm([]);
    const bad = async (o: object, path: string): Promise<void> => {
      const e = await client.create({ name: 'ok', replicas: 1, command: ['/bin/true'], ...o } as never).then(
        () => null,
        (err: unknown) => err,
      );
      expect(e).toBeInstanceOf(SandboxOptionsError);
      expect((e as SandboxOptionsError).issues.map((i) => i.path)).toContain(path);
    };
    await bad({ name: 'Bad Name' }, 'name');
    await bad({ replicas: -1 }, 'replicas');
    await bad({ replicas: 1.5 }, 'replicas');
    await bad({ command: [] }, 'command');
    await bad({ limits: { memory: 'lots' } }, 'limits.memory');
    await bad({ network: 'internet' }, 'network');
    await bad({ cgroupParent: '/' }, 'cgroupParent');
    // What reaches past the box on every worker is not taken from Redis.
    await bad({ binds: [{ source: '/etc' }] }, 'binds');
    await bad({ mounts: [{ type: 'tmpfs', target: '/scratch' }, { source: '/root' }] }, 'mounts.1');
    await bad({ network: 'host' }, 'network');
    await bad({ network: { allow: ['127.0.0.1:6379'] } }, 'network');
    await bad({ network: { publish: [{ box: 8000, host: 18000 }] } }, 'network');
    await client.create({ name: 'once', replicas: 0, command: ['/bin/true'] });
    expect((await rejection(client.create({ name: 'once', replicas: 0, command: ['/bin/true'] }))).code).toBe('exists');
    expect((await rejection(client.scale('nothing', 1))).code).toBe('no-service');
    expect((await rejection(client.rm('nothing'))).code).toBe('no-service');
    const e = await rejection(client.call('nothing', 1));
    expect(e).toMatchObject({ code: 'no-service', service: 'nothing' });
  });
});

describe('calls', () => {
  it('answers each call with the program reply; a reply that is not JSON is an error naming the service', async () => {
    const { client } = await farm();
    await client.create({ name: 'echo', replicas: 1, command: ['/bin/sh', '-c', PROGRAM] });
    expect(await running(client, 'echo', 1)).toBe(true);
    expect(await client.call('echo', { text: '# hi', n: [1, 2.5, null] })).toEqual({ echo: { text: '# hi', n: [1, 2.5, null] } });
    const e = await rejection(client.call('echo', 'garbage'));
    expect(e.code).toBe('bad-reply');
    expect(e.message).toMatch(/service echo: replica .* not JSON: "this is not json"/);
    // The same replica goes on: one line came for one call.
    expect(await client.call('echo', 'after')).toEqual({ echo: 'after' });
    expect((await status(client, 'echo'))?.replicas[0]?.restarts).toBe(0);
  });

  it('a reply longer than the line bound is refused and the replica starts over', async () => {
    const { client } = await farm();
    await client.create({ name: 'long', replicas: 1, maxLine: 100, command: ['/bin/sh', '-c', PROGRAM] });
    expect(await running(client, 'long', 1)).toBe(true);
    const e = await rejection(client.call('long', 'long'));
    expect(e.code).toBe('too-long');
    expect(e.message).toMatch(/service long: .* longer than 100 bytes/);
    expect((await rejection(client.call('long', 'x'.repeat(200)))).code).toBe('too-long');
    expect(await running(client, 'long', 1)).toBe(true);
    const s = await status(client, 'long');
    expect(s?.lastCrash).toMatchObject({ reason: 'reply-too-long', worker: 'w1' });
    expect(await client.call('long', 1)).toEqual({ echo: 1 });
  });

  it('a call past its deadline fails with timeout, and the replica that did not answer starts over', async () => {
    const { client } = await farm();
    await client.create({ name: 'slow', replicas: 1, command: ['/bin/sh', '-c', PROGRAM] });
    expect(await running(client, 'slow', 1)).toBe(true);
    expect((await rejection(client.call('slow', 'hang', { timeout: 300 }))).code).toBe('timeout');
    expect(await until(async () => (await status(client, 'slow'))?.lastCrash?.reason === 'call-timeout')).toBe(true);
    expect(await running(client, 'slow', 1)).toBe(true);
    expect(await client.call('slow', 2)).toEqual({ echo: 2 });
  });
});

describe('crashes', () => {
  it('a replica that crashes on a call is restarted; the call is retried once, then fails as lost', async () => {
    const { client } = await farm([{ name: 'w1' }, { name: 'w2' }]);
    await client.create({ name: 'fragile', replicas: 2, command: ['/bin/sh', '-c', PROGRAM] });
    expect(await running(client, 'fragile', 2)).toBe(true);
    const e = await rejection(client.call('fragile', 'crash'));
    expect(e.code).toBe('lost');
    expect(e.message).toMatch(/service fragile: the call was lost twice/);
    const s = await status(client, 'fragile');
    expect(s?.lastCrash).toMatchObject({ reason: 'nonzero-exit', exitCode: 3, detail: 'crashing on "crash"' });
    expect(s?.replicas.reduce((sum, r) => sum + r.restarts, 0)).toBe(2);
    expect(await running(client, 'fragile', 2)).toBe(true);
    expect(await client.call('fragile', 'fine')).toEqual({ echo: 'fine' });
  });

  it('a program that keeps dying is restarted with growing delays, and ls shows its crash', async () => {
    const { client } = await farm();
    await client.create({ name: 'dies', replicas: 1, command: ['/bin/sh', '-c', 'echo "no config" >&2; exit 7'] });
    expect(await until(async () => ((await status(client, 'dies'))?.replicas[0]?.restarts ?? 0) >= 3, 10_000)).toBe(true);
    const s = (await status(client, 'dies')) as ServiceStatus;
    expect(s.running).toBe(0);
    expect(s.replicas[0]).toMatchObject({ worker: 'w1', lastCrash: { reason: 'nonzero-exit', exitCode: 7, detail: 'no config' } });
    // 0.5 s, 1 s, 2 s...: three restarts take at least 1.5 s of backoff, never a busy loop.
    const crashes = s.replicas[0]!.restarts;
    await new Promise((r) => setTimeout(r, 1000));
    expect((await status(client, 'dies'))!.replicas[0]!.restarts).toBeLessThanOrEqual(crashes + 1);
  });

  it('a replica that cannot start says why in ls', async () => {
    const { client } = await farm();
    await client.create({ name: 'nosuch', replicas: 1, command: ['/nonexistent/program'] });
    expect(await until(async () => (await status(client, 'nosuch'))?.lastCrash !== null)).toBe(true);
    const s = (await status(client, 'nosuch')) as ServiceStatus;
    expect(s.lastCrash?.reason).toMatch(/start-failed|nonzero-exit/);
    expect(s.running).toBe(0);
  });
});

describe('scale, rm and placement', () => {
  it('scales up over the workers and down, and rm stops every replica and fails queued calls', async () => {
    const { client } = await farm([{ name: 'w1' }, { name: 'w2' }]);
    await client.create({ name: 'elastic', replicas: 1, command: ['/bin/sh', '-c', PROGRAM] });
    expect(await running(client, 'elastic', 1)).toBe(true);
    await client.scale('elastic', 4);
    expect(await running(client, 'elastic', 4)).toBe(true);
    const s = (await status(client, 'elastic')) as ServiceStatus;
    expect(s.replicas.filter((r) => r.worker === 'w1')).toHaveLength(2);
    const pids = s.replicas.map((r) => r.pid as number);
    await client.scale('elastic', 1);
    expect(await until(async () => (await status(client, 'elastic'))?.replicas.length === 1)).toBe(true);
    expect(await until(() => pids.filter((p) => alive(p)).length === 1, 5000)).toBe(true);
    await client.scale('elastic', 0);
    expect(await until(async () => (await status(client, 'elastic'))?.replicas.length === 0)).toBe(true);
    // No replica: a call waits in the queue, and rm answers it.
    const waiting = client.call('elastic', 1, { timeout: 10_000 });
    await new Promise((r) => setTimeout(r, 200));
    await client.rm('elastic');
    expect(await rejection(waiting)).toMatchObject({ code: 'removed', service: 'elastic' });
    expect(await status(client, 'elastic')).toBeUndefined();
    expect(pids.some(alive)).toBe(false);
  });

  it('runs replicas only on workers whose labels match the constraints', async () => {
    const { client } = await farm([
      { name: 'plain', labels: {} },
      { name: 'debian', labels: { images: 'debian' } },
    ]);
    await client.create({ name: 'picky', replicas: 2, constraints: { images: 'debian' }, command: ['/bin/sh', '-c', PROGRAM] });
    expect(await running(client, 'picky', 2)).toBe(true);
    expect((await status(client, 'picky'))?.replicas.map((r) => r.worker)).toEqual(['debian', 'debian']);
  });

  it('an agent that closes stops its replicas and hands them to the other workers', async () => {
    const { client } = await farm([{ name: 'w1' }, { name: 'w2' }]);
    await client.create({ name: 'moving', replicas: 2, command: ['/bin/sh', '-c', PROGRAM] });
    expect(await running(client, 'moving', 2)).toBe(true);
    const leaving = (await status(client, 'moving'))!.replicas.find((r) => r.worker === 'w1')!;
    await agents[0]!.close();
    expect(alive(leaving.pid as number)).toBe(false);
    expect(await until(async () => (await status(client, 'moving'))?.replicas.every((r) => r.worker === 'w2' && r.state === 'running') === true)).toBe(true);
    expect(await running(client, 'moving', 2)).toBe(true);
  });
});

describe('slots and replicas agree', () => {
  it('a slot Redis gives this worker but that no replica here fills is given up and filled again; the replica that lost its slot stops', async () => {
    const { client, prefix } = await farm();
    await client.create({ name: 'ghost', replicas: 1, command: ['/bin/sh', '-c', PROGRAM] });
    expect(await running(client, 'ghost', 1)).toBe(true);
    const real = (await status(client, 'ghost'))!.replicas[0]!;
    const raw = new Redis({ path: redis.socket });
    try {
      // What a worker restarted under the same name finds: its name on a slot, no replica of it.
      await raw.hset(`${prefix}:svc:slots:ghost`, '0', JSON.stringify({ worker: 'w1', id: 'ghostghostgh', state: 'running', since: 0, restarts: 0 }));
    } finally {
      raw.disconnect();
    }
    expect(await until(async () => {
      const r = (await status(client, 'ghost'))?.replicas[0];
      return r !== undefined && r.state === 'running' && r.id !== 'ghostghostgh' && r.id !== real.id;
    })).toBe(true);
    expect(await until(() => !alive(real.pid as number), 5000)).toBe(true);
    expect(await client.call('ghost', 'back')).toEqual({ echo: 'back' });
  });
});

describe('values in Redis are untrusted', () => {
  it('a malformed call or slot is refused naming the field; a call naming a foreign reply key writes nothing there', async () => {
    const { client, prefix } = await farm();
    await client.create({ name: 'guard', replicas: 1, command: ['/bin/sh', '-c', PROGRAM] });
    expect(await running(client, 'guard', 1)).toBe(true);
    const raw = new Redis({ path: redis.socket });
    try {
      const queue = `${prefix}:svc:queue:guard`;
      await raw.lpush(queue, '{"v":1,"id":"short"}');
      await raw.lpush(queue, 'not json at all');
      await raw.lpush(queue, JSON.stringify({ v: 1, id: 'abcdefghijkl', reply: 'victim', attempt: 0, deadline: Date.now() + 60_000, line: '1' }));
      expect(await client.call('guard', 'still')).toEqual({ echo: 'still' });
      expect(await raw.exists('victim')).toBe(0);
      expect(errors.join('\n')).toMatch(/a call of service guard in Redis is invalid: .*reply/);
      expect(errors.join('\n')).toMatch(/a call of service guard in Redis is invalid: id:/);
      expect(errors.join('\n')).toMatch(/a call of service guard in Redis is not JSON/);

      // In a farm with no worker, so no reconcile clears them before ls reads them.
      const idle = new ServicesClient({ connection: { path: redis.socket }, prefix: `${prefix}-idle` });
      clients.push(idle);
      await idle.create({ name: 'guard', replicas: 1, command: ['/bin/true'] });
      await raw.hset(`${prefix}-idle:svc:slots:guard`, '7', '{"worker":"w1","id":"abcdefghijkl","state":"flying","since":0,"restarts":0}');
      await raw.hset(`${prefix}-idle:svc:service:guard`, 'replicas', 'many');
      const s = (await status(idle, 'guard')) as ServiceStatus;
      expect(s.problems.join('\n')).toMatch(/slot 7 of service guard in Redis is invalid: state:/);
      expect(s.problems.join('\n')).toMatch(/replica count of service guard in Redis is invalid: replicas: "many"/);
    } finally {
      raw.disconnect();
    }
  });
});

describe('sandcell service', () => {
  it('creates, lists, calls, scales and removes a service from the shell', async () => {
    const { client, prefix } = await farm();
    const cli = async (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => {
      try {
        const r = await promisify(execFile)(process.execPath, [CLI, 'service', args[0] as string, '--redis', redis.url, '--prefix', prefix, ...args.slice(1)]);
        return { code: 0, ...r };
      } catch (e) {
        const x = e as { code: number; stdout: string; stderr: string };
        return { code: x.code, stdout: x.stdout, stderr: x.stderr };
      }
    };
    expect(await cli('create', 'shell', '--replicas', '1', '--memory', '64MiB', '--', '/bin/sh', '-c', PROGRAM)).toMatchObject({ code: 0, stdout: 'created shell\n' });
    expect(await running(client, 'shell', 1)).toBe(true);
    // Each command is a node process of its own: they run side by side on a loaded machine.
    const [lsJson, lsText, call, garbage, badName, bind, scale] = await Promise.all([
      cli('ls', '--json'),
      cli('ls'),
      cli('call', 'shell', '{"a":[1,2]}'),
      cli('call', 'shell', '"garbage"'),
      cli('create', 'Bad', '--replicas', '1', '--', '/bin/true'),
      cli('create', 'x', '--replicas', '1', '--bind', '/etc', '--', '/bin/true'),
      cli('scale', 'shell', '1'),
    ]);
    expect(JSON.parse(lsJson.stdout)).toMatchObject([{ name: 'shell', desired: 1, running: 1, replicas: [{ worker: 'w1', state: 'running' }] }]);
    expect(lsText.stdout).toMatch(/^shell {2}1\/1 running {2}no crash\n {2}SLOT .*\n {2}0 .* w1 +running/);
    expect(call).toMatchObject({ code: 0, stdout: '{"echo":{"a":[1,2]}}\n' });
    expect(garbage).toMatchObject({ code: 1, stderr: expect.stringMatching(/sandcell: service shell: .*not JSON/) });
    expect(badName).toMatchObject({ code: 125, stderr: expect.stringMatching(/name: must be/) });
    expect(bind).toMatchObject({ code: 125, stderr: expect.stringMatching(/binds: is not an option of a service/) });
    expect(scale).toMatchObject({ code: 0, stdout: 'shell scaled to 1\n' });
    expect(await cli('rm', 'shell')).toMatchObject({ code: 0, stdout: 'removed shell\n' });
    expect(await cli('rm', 'shell')).toMatchObject({ code: 1, stderr: 'sandcell: no service named shell\n' });
  }, 180_000);
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
