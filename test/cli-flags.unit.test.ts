// Every verb reads its flags through src/cli/flags.ts: --flag value and --flag=value alike, and
// an unknown flag or a missing value is refused naming the flag, before anything is done.
import { describe, expect, it } from 'vitest';

import { parseRunArgs } from '../src/cli/args.js';
import { flagsOf, readFlags } from '../src/cli/flags.js';
import { UsageError } from '../src/cli/usage.js';
import { imageCommand } from '../src/cli/image.js';
import { judgeCommand } from '../src/cli/judge.js';
import { networkCommand } from '../src/cli/network.js';
import { serve } from '../src/cli/serve.js';
import { serviceCommand } from '../src/cli/service.js';
import { workerCommand } from '../src/cli/worker.js';

async function usage(p: Promise<unknown> | (() => unknown)): Promise<string> {
  const e = await (typeof p === 'function' ? Promise.resolve().then(p) : p).then(
    () => null,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(UsageError);
  return (e as Error).message;
}

const REDIS = ['--redis', 'redis://127.0.0.1:1'];

describe('flags.ts', () => {
  it('reads --flag value and --flag=value; a value is taken even when it looks like a flag', () => {
    const read = readFlags(['--name', 'a', '--name=b', '--json', 'x', '--', '--name', 'c'], { '--name': 'list', '--json': 'switch' }, 'image');
    expect(read.list('--name')).toEqual(['a', 'b']);
    expect(read.has('--json')).toBe(true);
    expect(read.operands).toEqual(['x']);
    expect(read.after).toEqual(['--name', 'c']);
    expect(readFlags(['--lang', '--weird'], { '--lang': 'value' }, 'judge').value('--lang')).toBe('--weird');
    expect([...flagsOf(['-', '--', '-q'])].map((f) => f.isFlag)).toEqual([false, false, true]);
  });

  it('refuses an unknown flag, a missing value and a value given to a switch, naming the flag', async () => {
    expect(await usage(() => readFlags(['--bogus'], {}, 'image'))).toBe('unknown option --bogus (see sandcell image --help)');
    expect(await usage(() => readFlags(['--name'], { '--name': 'list' }, 'image'))).toBe('--name needs a value');
    expect(await usage(() => readFlags(['--json=1'], { '--json': 'switch' }, 'image'))).toBe('--json takes no value');
  });
});

describe('each verb', () => {
  it('run: flags before the command, = or not; operands are the command (or args of an image); unknown and missing named', async () => {
    const r = parseRunArgs(['--memory=64MiB', '--env', 'A=1', '--image', 'app', '--entrypoint=/bin/sh', '--', '-c', 'x']);
    expect(r.options).toEqual({ limits: { memory: '64MiB' }, env: { A: '1' }, image: 'app', command: ['/bin/sh'], args: ['-c', 'x'] });
    expect(parseRunArgs(['/bin/echo', '--memory', '1']).options).toEqual({ args: ['/bin/echo', '--memory', '1'] });
    expect(parseRunArgs(['--image', 'app']).options).toEqual({ image: 'app' });
    expect(await usage(() => parseRunArgs(['--bogus', '--', 'x']))).toBe('unknown option --bogus (see sandcell run --help)');
    expect(await usage(() => parseRunArgs(['--memory']))).toBe('--memory needs a value');
    expect(await usage(() => parseRunArgs(['--pids', 'many', '--', 'x']))).toBe('--pids needs a number, got "many"');
    expect(await usage(() => parseRunArgs(['--env', 'A=1']))).toMatch(/^no command given/);
  });

  it('image: --name (repeatable, = or not), --json, --quiet/-q; build takes the recipe args after --', async () => {
    expect(await usage(imageCommand(['ls', '--bogus']))).toBe('unknown option --bogus (see sandcell image --help)');
    expect(await usage(imageCommand(['import', 'x.tar', '--name']))).toBe('--name needs a value');
    expect(await usage(imageCommand(['import']))).toMatch(/^usage: sandcell image import/);
    expect(await usage(imageCommand(['build', 'r.sh', '-q']))).toMatch(/^usage: sandcell image build/);
  });

  it('judge: --submission, --lang, --config (= or not), --stop-on-first, --json', async () => {
    expect(await usage(judgeCommand(['p.yaml', '--submission=a.cpp', '--bogus']))).toBe('unknown option --bogus (see sandcell judge --help)');
    expect(await usage(judgeCommand(['p.yaml', '--lang']))).toBe('--lang needs a value');
    expect(await usage(judgeCommand(['p.yaml']))).toBe('--submission <file> is required');
    expect(await usage(judgeCommand(['a.yaml', 'b.yaml', '--submission', 's']))).toBe('one problem file at a time (got a.yaml and b.yaml)');
  });

  it('network: create --subnet (= or not), ls --json, rm', async () => {
    expect(await usage(networkCommand(['create', 'n', '--bogus']))).toBe('unknown option --bogus (see sandcell network --help)');
    expect(await usage(networkCommand(['create', 'n', '--subnet']))).toBe('--subnet needs a value');
    expect(await usage(networkCommand(['ls', '--json=yes']))).toBe('--json takes no value');
    expect(await usage(networkCommand(['rm', '--force', 'n']))).toBe('unknown option --force (see sandcell network --help)');
  });

  it('service: --redis, --prefix (anywhere before --), each verb its own flags; refused before connecting', async () => {
    expect(await usage(serviceCommand(['ls', ...REDIS, '--bogus']))).toBe('unknown option --bogus (see sandcell service --help)');
    expect(await usage(serviceCommand(['ls', '--redis']))).toBe('--redis needs a value');
    expect(await usage(serviceCommand(['ls']))).toBe('--redis is required (see sandcell service --help)');
    expect(await usage(serviceCommand(['call', ...REDIS, 'svc', '{}', '--timeout']))).toBe('--timeout needs a value');
    expect(await usage(serviceCommand(['call', ...REDIS, 'svc', '{}', '--timeout=0']))).toBe('--timeout: must be greater than zero');
    expect(await usage(serviceCommand(['scale', ...REDIS, 'svc', 'many']))).toBe('scale <n> needs an integer of at least 0, got "many"');
    expect(await usage(serviceCommand(['create', ...REDIS, 'svc', '--replicas=x', '--', '/bin/true']))).toBe('--replicas needs an integer of at least 0, got "x"');
    expect(await usage(serviceCommand(['create', `--redis=${REDIS[1]}`, 'svc', '--replicas', '1', '--bogus', '--', '/bin/true']))).toBe('unknown option --bogus (see sandcell run --help)');
    expect(await usage(serviceCommand(['create', ...REDIS, 'svc', '--replicas', '1', '--constraint']))).toBe('--constraint needs a value');
  });

  it('serve and worker: integers, ports, Redis URLs and labels checked by the same readers, refused before anything starts', async () => {
    expect(await usage(serve(['--parallelism', '']))).toBe('--parallelism needs an integer of at least 1, got ""');
    expect(await usage(serve(['--listen', '127.0.0.1:70000', '--token-file', '/nonexistent']))).toBe('--listen port needs an integer from 0 to 65535, got "70000"');
    expect(await usage(serve(['--cluster=http://x']))).toMatch(/^--cluster: .*scheme must be redis:, rediss: or unix:/);
    expect(await usage(workerCommand(['--redis', 'http://x']))).toMatch(/^--redis: .*scheme must be redis:, rediss: or unix:/);
    expect(await usage(workerCommand([...REDIS, '--labels', '=x']))).toMatch(/^--labels: /);
    expect(await usage(serviceCommand(['create', ...REDIS, 'svc', '--replicas', '1', '--constraint', '=x', '--', '/bin/true']))).toMatch(/^--constraint: /);
  });
});
