// sandcell.yaml profiles: extends chains, overrides, errors naming the line, the JSON Schema,
// and a profile applied to a real run (library and CLI).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { run } from '../../src/index.js';
import { problemSchema } from '../../src/problems/index.js';
import { configSchema, DeclarationError, jsonSchemaOf, loadProfiles, Profiles, Source, withProfile } from '../../src/profiles/index.js';
import { requireRoot } from '../helpers/host.js';
import { example } from './helpers.js';
import { validate } from './json-schema.js';

const CLI = join(example('..'), 'dist', 'cli', 'main.js');
let tmp: string;

beforeAll(() => {
  requireRoot();
  tmp = mkdtempSync(join(tmpdir(), 'sandcell-profiles-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const profiles = (text: string): Profiles => Profiles.fromSource(Source.parse(text, 'sandcell.yaml'));

function declarationError(f: () => unknown): DeclarationError {
  try {
    f();
  } catch (e) {
    if (e instanceof DeclarationError) return e;
    throw e;
  }
  throw new Error('no DeclarationError thrown');
}

const CHAIN = `sandcell: 1
profiles:
  base:
    description: the root
    network: none
    env: { LANG: C.UTF-8, A: base }
    binds: [{ source: /usr }]
    limits: { memory: 256MiB, cpuTime: 1s }
  middle:
    extends: base
    env: { A: middle, B: middle }
    limits: { cpuTime: 2s }
  top:
    extends: middle
    binds: [{ source: /etc }]
    seccomp: judge
    limits: { wallTime: 5s }
`;

describe('profiles', () => {
  it('an extends chain: later values override, maps merge, lists replace', () => {
    const p = profiles(CHAIN);
    expect(p.names()).toEqual(['base', 'middle', 'top']);
    expect(p.description('base')).toBe('the root');
    expect(p.resolve('top')).toEqual({
      network: 'none',
      env: { LANG: 'C.UTF-8', A: 'middle', B: 'middle' },
      binds: [{ source: '/etc' }],
      seccomp: 'judge',
      limits: { memory: '256MiB', cpuTime: '2s', wallTime: '5s' },
    });
    expect(p.resolve('base').limits).toEqual({ memory: '256MiB', cpuTime: '1s' });
  });

  it('withProfile: what the run asks for itself wins, limits and env merge', () => {
    const o = withProfile(profiles(CHAIN), 'top', { command: ['/bin/true'], env: { B: 'run' }, limits: { memory: '64MiB' }, binds: [] });
    expect(o).toEqual({
      command: ['/bin/true'],
      network: 'none',
      env: { LANG: 'C.UTF-8', A: 'middle', B: 'run' },
      binds: [],
      seccomp: 'judge',
      limits: { memory: '64MiB', cpuTime: '2s', wallTime: '5s' },
    });
  });

  it('errors name the file, the line and the path', () => {
    const bad = CHAIN.replace('limits: { cpuTime: 2s }', 'limits: { cpuTime: soon }').replace('seccomp: judge', 'seccomp: strict');
    const e = declarationError(() => profiles(bad));
    expect(e.message).toBe(
      [
        'sandcell.yaml:12: profiles.middle.limits.cpuTime: must be a duration such as 1500, "1500ms", "2s" or "1m", got "soon"',
        'sandcell.yaml:16: profiles.top.seccomp: Invalid input',
      ].join('\n'),
    );
    expect(e.issues[0]).toMatchObject({ file: 'sandcell.yaml', line: 12, path: 'profiles.middle.limits.cpuTime' });
    expect(declarationError(() => profiles(CHAIN.replace('    network: none', '    netwrok: none'))).message).toBe(
      'sandcell.yaml:5: profiles.base.netwrok: is not a known field',
    );
    expect(declarationError(() => profiles(CHAIN.replace('binds: [{ source: /etc }]', 'binds: [{ source: etc }]'))).message).toBe(
      'sandcell.yaml:15: profiles.top.binds[0].source: must be an absolute path',
    );
    // A seccomp policy is checked by the seccomp module, down to the rule.
    const policy = CHAIN.replace('seccomp: judge', 'seccomp:\n      defaultAction: allow\n      rules:\n        - { syscall: read, action: explode }');
    expect(declarationError(() => profiles(policy)).issues[0]).toMatchObject({ line: 19, path: expect.stringMatching(/^profiles\.top\.seccomp\.rules\[0\]/) });
  });

  it('extends: an unknown name and a cycle are errors at the extends line', () => {
    expect(declarationError(() => profiles(CHAIN.replace('extends: base', 'extends: bsae'))).message).toBe(
      'sandcell.yaml:10: profiles.middle.extends: no profile named "bsae" to extend',
    );
    const cycle = CHAIN.replace('    description: the root\n', '    extends: top\n');
    expect(declarationError(() => profiles(cycle)).message).toContain('sandcell.yaml:4: profiles.base.extends: extends itself: base → top → middle → base');
  });

  it('YAML syntax errors and duplicate keys name their line; an unknown profile lists the known ones', () => {
    expect(declarationError(() => profiles('profiles:\n  a: { network: none\n')).issues[0]?.line).toBe(3);
    expect(declarationError(() => profiles('profiles:\n  a: {}\n  a: {}\n')).issues[0]?.line).toBe(3);
    expect(declarationError(() => withProfile(profiles(CHAIN), 'cpp', {})).message).toBe(
      'sandcell.yaml: no profile named "cpp" (known: base, middle, top)',
    );
  });

  it('a profile applied to a real run: its env, limits and filter hold', async () => {
    const p = loadProfiles(example('sandcell.yaml'));
    const r = await run(withProfile(p, 'cpp', { command: ['/bin/sh', '-c', '/bin/true; echo $LANG'] }));
    // The judge filter ends a second execve: the profile's seccomp is in force.
    expect(r.status).toBe('syscall-denied');
    expect(r.violation?.syscall).toBe('execve');
    const ok = await run(withProfile(p, 'compile', { command: ['/bin/sh', '-c', 'echo $LANG; ulimit -s'], limits: { memory: '128MiB' } }));
    expect(ok.status).toBe('ok');
    expect(ok.stdout).toBe('C.UTF-8\n8192\n');
    const mle = await run(withProfile(p, 'compile', { command: ['/usr/bin/python3', '-c', 'b = b"x" * (300 << 20)'], limits: { memory: '64MiB' } }));
    expect(mle.status).toBe('memory-limit');
  });

  it('sandcell run --profile: flags given win over the profile', () => {
    const cfg = join(tmp, 'sandcell.yaml');
    writeFileSync(cfg, 'profiles:\n  small:\n    env: { WHO: profile }\n    limits: { wallTime: 200ms }\n');
    const r = spawnSync(process.execPath, [CLI, 'run', '--profile', 'small', '--config', cfg, '--env', 'X=flag', '--', '/bin/sh', '-c', 'echo $WHO $X'], { encoding: 'utf8' });
    expect(r.stdout).toBe('profile flag\n');
    expect(r.status).toBe(0);
    const slow = spawnSync(process.execPath, [CLI, 'run', '--profile', 'small', '--config', cfg, '--', '/bin/sleep', '5'], { encoding: 'utf8' });
    expect(slow.stderr).toContain('wall-time-limit');
    const typo = spawnSync(process.execPath, [CLI, 'run', '--profile', 'smal', '--config', cfg, '--', '/bin/true'], { encoding: 'utf8' });
    expect(typo.status).toBe(125);
    expect(typo.stderr).toContain('no profile named "smal" (known: small)');
  });
});

describe('JSON Schema', () => {
  const cli = (what: string) => JSON.parse(spawnSync(process.execPath, [CLI, 'schema', what], { encoding: 'utf8' }).stdout) as Record<string, unknown>;
  let config: Record<string, unknown>;
  let problem: Record<string, unknown>;
  beforeAll(() => {
    config = cli('config');
    problem = cli('problem');
  });

  it('sandcell schema prints the schema zod gives for the file', () => {
    expect(config).toEqual(jsonSchemaOf(configSchema, 'sandcell.yaml'));
    expect(problem).toEqual(jsonSchemaOf(problemSchema, 'sandcell problem file'));
  });

  it('validates the examples and rejects wrong files', () => {
    const yaml = (f: string) => parse(readFileSync(example(f), 'utf8')) as unknown;
    expect(validate(config, yaml('sandcell.yaml'))).toEqual([]);
    for (const f of ['aplusb', 'divide', 'guess']) expect(validate(problem, yaml(`${f}/problem.yaml`))).toEqual([]);
    expect(validate(config, parse(CHAIN))).toEqual([]);
    expect(validate(config, parse(CHAIN.replace('network: none', 'network: Wi-Fi!')))).toEqual([
      expect.stringContaining('$.profiles.base.network: is not one of'),
    ]);
    expect(validate(config, parse(CHAIN.replace('seccomp: judge', 'secomp: judge')))).toEqual(['$.profiles.top: has no field secomp']);
    expect(validate(problem, { sandcell: 1, name: 'x', languages: { c: { source: 'a.c' } }, tests: [] })).toEqual([
      '$.languages.c: lacks run',
      '$.tests: fewer than 1 items',
    ]);
  });
});
