// The daemon answers as the library does: the same result for the same options, through the TS
// client, curl and a Python client, for every kind of ending.
import { execFileSync, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { connect, type Engine } from '../../src/client/index.js';
import { resultToJson } from '../../src/daemon/wire.js';
import { run, SandboxOptionsError, SandboxSetupError, type RunOptions } from '../../src/index.js';
import { buildFixtures, type Fixtures } from '../helpers/fixtures.js';
import { requireRoot } from '../helpers/host.js';
import { comparable, isInit, processesOf, startDaemon, until, type TestDaemon } from './daemon.js';

const PY_CLIENT = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'client.py');

let fx: Fixtures;
let d: TestDaemon;
let engine: Engine;

beforeAll(async () => {
  requireRoot();
  fx = buildFixtures();
  d = await startDaemon({ policy: { binds: [{ source: fx.dir }], allowCustomSeccomp: false } });
  engine = connect({ socket: d.socket });
});

afterAll(async () => {
  engine?.close();
  expect(await d?.stop()).toEqual({ code: 0, leftCgroups: [] });
  fx?.remove();
});

const limits = { wallTime: '10s', cpuTime: '5s', memory: '256MiB' };

function viaCurl(body: string): { status: number; json: unknown } {
  const file = join(d.dir, 'body.json');
  writeFileSync(file, body);
  const out = execFileSync('curl', ['-sS', '--unix-socket', d.socket, '-H', 'content-type: application/json', '--data-binary', `@${file}`, '-w', '\n%{http_code}', 'http://sandcell/v1/run'], { encoding: 'utf8' });
  const at = out.lastIndexOf('\n');
  return { status: Number(out.slice(at + 1)), json: JSON.parse(out.slice(0, at)) };
}

function viaPython(body: string): { status: number; json: unknown } {
  const file = join(d.dir, 'body-py.json');
  writeFileSync(file, body);
  const r = JSON.parse(execFileSync('python3', [PY_CLIENT, d.socket, 'POST', '/v1/run', file], { encoding: 'utf8' })) as { status: number; body: unknown };
  return { status: r.status, json: r.body };
}

/** A case: the library's options, and their JSON form as a non-JS client sends it. */
const cases: { name: string; options: () => RunOptions; wire: () => unknown }[] = [
  {
    name: 'ok, with stdin, stdout and stderr',
    options: () => ({ command: ['/bin/sh', '-c', 'cat; echo err >&2'], stdin: 'hello\n', limits }),
    wire: () => ({ command: ['/bin/sh', '-c', 'cat; echo err >&2'], stdin: 'hello\n', limits }),
  },
  {
    name: 'nonzero-exit',
    options: () => ({ command: ['/bin/sh', '-c', 'echo bye; exit 3'], limits }),
    wire: () => ({ command: ['/bin/sh', '-c', 'echo bye; exit 3'], limits }),
  },
  {
    name: 'time-limit',
    options: () => ({ command: [fx.inBox('burn'), '5000'], binds: [fx.bind], limits: { ...limits, cpuTime: '300ms' } }),
    wire: () => ({ command: [fx.inBox('burn'), '5000'], binds: [fx.bind], limits: { ...limits, cpuTime: '300ms' } }),
  },
  {
    name: 'memory-limit',
    options: () => ({ command: [fx.inBox('alloc'), '200'], binds: [fx.bind], limits: { ...limits, memory: '32MiB' } }),
    wire: () => ({ command: [fx.inBox('alloc'), '200'], binds: [fx.bind], limits: { ...limits, memory: '32MiB' } }),
  },
  {
    name: 'output-limit',
    options: () => ({ command: ['/usr/bin/yes'], limits: { ...limits, output: '4KiB' } }),
    wire: () => ({ command: ['/usr/bin/yes'], limits: { ...limits, output: '4KiB' } }),
  },
  {
    name: 'syscall-denied',
    options: () => ({ command: ['/bin/sh', '-c', '/bin/true'], seccomp: 'judge', limits }),
    wire: () => ({ command: ['/bin/sh', '-c', '/bin/true'], seccomp: 'judge', limits }),
  },
  {
    name: 'binary stdin and files, collected files',
    options: () => ({
      command: ['/bin/sh', '-c', 'cat > out.bin; cat in.bin >> out.bin; cat text.txt'],
      stdin: Buffer.from([0, 255, 1, 254]),
      files: { 'in.bin': Buffer.from([0xc3, 0x28, 0]), 'text.txt': { data: 'text\n', mode: 0o600 } },
      collect: ['out.bin', 'missing.txt'],
      limits,
    }),
    wire: () => ({
      command: ['/bin/sh', '-c', 'cat > out.bin; cat in.bin >> out.bin; cat text.txt'],
      stdin: { base64: Buffer.from([0, 255, 1, 254]).toString('base64') },
      files: { 'in.bin': { base64: Buffer.from([0xc3, 0x28, 0]).toString('base64') }, 'text.txt': { data: 'text\n', mode: 0o600 } },
      collect: ['out.bin', 'missing.txt'],
      limits,
    }),
  },
];

describe('remote result equals local result', () => {
  for (const c of cases) {
    it(c.name, async () => {
      const local = await run(c.options());
      const remote = await engine.run(c.options());
      expect(comparable(remote)).toEqual(comparable(local));
      const json = JSON.parse(JSON.stringify(resultToJson(local))) as unknown;
      const curl = viaCurl(JSON.stringify(c.wire()));
      expect(curl.status).toBe(200);
      expect(comparable(curl.json)).toEqual(comparable(json));
      const py = viaPython(JSON.stringify(c.wire()));
      expect(py.status).toBe(200);
      expect(comparable(py.json)).toEqual(comparable(json));
    });
  }

  it('every usage field is there, as the library reports it', async () => {
    const r = await engine.run({ command: ['/bin/true'], limits });
    expect(Object.keys(r.usage).sort()).toEqual(['cpuTimeMs', 'maxRssBytes', 'memoryPeakBytes', 'systemTimeMs', 'userTimeMs', 'wallTimeMs']);
  });

  it('a setup error is the same SandboxSetupError, and a 500 naming the stage for curl and Python', async () => {
    const o: RunOptions = { command: ['/no/such/program'], limits };
    const local = await run(o).catch((e: unknown) => e);
    const remote = await engine.run(o).catch((e: unknown) => e);
    expect(local).toBeInstanceOf(SandboxSetupError);
    expect(remote).toBeInstanceOf(SandboxSetupError);
    const [l, r] = [local as SandboxSetupError, remote as SandboxSetupError];
    expect({ message: r.message, stage: r.stage, errno: r.errno, code: r.code }).toEqual({ message: l.message, stage: l.stage, errno: l.errno, code: l.code });
    for (const via of [viaCurl, viaPython]) {
      const res = via(JSON.stringify(o));
      expect(res.status).toBe(500);
      expect(res.json).toEqual({ error: { code: 'setup-failed', message: l.message, stage: 'execve', errno: l.errno, errnoCode: 'ENOENT' } });
    }
  });

  it('an option error is the same SandboxOptionsError, and a 400 naming the field', async () => {
    const o = { command: ['/bin/true'], limits: { ...limits, memory: 'lots' } } as RunOptions;
    const local = (await run(o).catch((e: unknown) => e)) as SandboxOptionsError;
    const remote = (await engine.run(o).catch((e: unknown) => e)) as SandboxOptionsError;
    expect(local).toBeInstanceOf(SandboxOptionsError);
    expect(remote).toBeInstanceOf(SandboxOptionsError);
    expect(remote.message).toBe(local.message);
    expect(remote.issues).toEqual(local.issues);
    for (const via of [viaCurl, viaPython]) {
      const res = via(JSON.stringify(o));
      expect(res.status).toBe(400);
      expect(res.json).toMatchObject({ error: { code: 'invalid-options', field: 'limits.memory' } });
    }
  });

  it('sandcell run with SANDCELL_HOST runs on the daemon: same output and exit status', async () => {
    const r = execFileSync(process.execPath, [join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'cli', 'main.js'), 'run', '--json', '--wall', '5s', '--', '/bin/sh', '-c', 'cat; echo e >&2'], {
      env: { ...process.env, SANDCELL_HOST: `unix://${d.socket}` },
      input: 'via the daemon\n',
      encoding: 'utf8',
    });
    expect(JSON.parse(r)).toMatchObject({ status: 'ok', stdout: 'via the daemon\n', stderr: 'e\n' });
    expect(await until(() => d.log().includes('"what":"run","status":"ok"'))).toBe(true);
  });

  it('sandcell run with SANDCELL_HOST passes output that is not UTF-8 through as the program wrote it', () => {
    const r = spawnSync(process.execPath, [join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'cli', 'main.js'), 'run', '--wall', '5s', '--', '/bin/sh', '-c', "printf '\\377\\376\\000A'; printf '\\303' >&2"], {
      env: { ...process.env, SANDCELL_HOST: `unix://${d.socket}` },
      timeout: 30_000,
    });
    expect(r.status).toBe(0);
    expect(r.stdout).toEqual(Buffer.from([0xff, 0xfe, 0x00, 0x41]));
    expect(r.stderr).toEqual(Buffer.from([0xc3]));
  });

  it('sandcell version with SANDCELL_HOST names the daemon\'s version and API beside its own', async () => {
    const v = await engine.version();
    const r = execFileSync(process.execPath, [join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'cli', 'main.js'), 'version'], {
      env: { ...process.env, SANDCELL_HOST: `unix://${d.socket}` },
      encoding: 'utf8',
    });
    expect(r).toBe(`sandcell ${v.version}\ndaemon ${v.version} (api ${v.api}) at unix://${d.socket}\n`);
  });

  it('a living box keeps its files between runs, like a local Sandbox', async () => {
    await using box = await engine.Sandbox.create({ limits });
    expect((await box.run({ command: ['/bin/sh', '-c', 'echo kept > f'] })).status).toBe('ok');
    const r = await box.run({ command: ['/bin/cat', 'f'], collect: ['f'] });
    expect(r.stdout).toBe('kept\n');
    expect(r.files?.f).toEqual(Buffer.from('kept\n'));
    expect((await engine.boxes()).map((b) => b.id)).toEqual([box.id]);
  });

  it('leaves no program running in its cgroups between requests', () => {
    const programs = processesOf(d.pid).filter((p) => !isInit(p));
    expect(programs).toEqual([]);
  });
});
