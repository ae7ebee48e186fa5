// Bad input and failed setup: typed errors naming the field or stage, never a crash or a leak.
import { mkdirSync, readdirSync, readFileSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

import { run, SandboxOptionsError, SandboxSetupError, spawn } from '../../src/index.js';
import { filterFor } from '../../src/launch/filter.js';
import { nativeSpawn } from '../../src/native.js';
import { resolveOptions } from '../../src/options.js';
import { planRun } from '../../src/plan/build.js';
import { childPids, requireRoot } from '../helpers/host.js';

beforeAll(() => requireRoot());

async function optionError(options: unknown): Promise<SandboxOptionsError> {
  try {
    await run(options as Parameters<typeof run>[0]);
  } catch (e) {
    expect(e).toBeInstanceOf(SandboxOptionsError);
    return e as SandboxOptionsError;
  }
  throw new Error('expected a SandboxOptionsError');
}

describe('errors', () => {
  it('a missing command is a SandboxSetupError at stage execve with ENOENT', async () => {
    const e = await run({ command: ['/no/such/program'] }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(SandboxSetupError);
    expect((e as SandboxSetupError).stage).toBe('execve');
    expect((e as SandboxSetupError).code).toBe('ENOENT');
    const byName = await run({ command: ['no-such-program-anywhere'] }).catch((x: unknown) => x);
    expect((byName as SandboxSetupError).code).toBe('ENOENT');
  });

  it('a file that is not executable is EACCES at execve', async () => {
    const e = await run({ command: ['/etc/passwd'] }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(SandboxSetupError);
    expect((e as SandboxSetupError).stage).toBe('execve');
    expect((e as SandboxSetupError).code).toBe('EACCES');
  });

  it('a missing working directory names the chdir stage', async () => {
    const e = await run({ command: ['/bin/true'], cwd: '/usr/no-such-dir' }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(SandboxSetupError);
    expect((e as SandboxSetupError).stage).toBe('chdir /usr/no-such-dir');
  });

  it('a bind of a missing host path is refused up front, naming the bind', async () => {
    const e = await optionError({ command: ['/bin/true'], binds: [{ source: '/no/such/host/dir', target: '/data' }] });
    expect(e.path).toBe('binds[0].source');
    expect(e.message).toContain('does not exist');
  });


  it.each([
    [{ command: ['/bin/true'], limits: { memory: 'lots' } }, 'limits.memory'],
    [{ command: ['/bin/true'], limits: { wallTime: -5 } }, 'limits.wallTime'],
    [{ command: ['/bin/true'], limits: { cpuTime: '-1s' } }, 'limits.cpuTime'],
    [{ command: ['/bin/true'], limits: { wallTime: 0 } }, 'limits.wallTime'],
    [{ command: ['/bin/true'], limits: { processes: 1.5 } }, 'limits.processes'],
    [{ command: ['/bin/true'], nonsense: true }, ''],
    [{ command: ['/bin/true'], limits: { memry: '1MiB' } }, 'limits'],
    [{ command: ['/bin/true', 42] }, 'command[1]'],
    [{ command: [] }, 'command'],
    [{ command: 'ls' }, 'command'],
    [{ command: ['/bin/echo', 'a\0b'] }, 'command[1]'],
    [{ command: ['/bin/true'], env: { 'A=B': 'x' } }, 'env'],
    [{ command: ['/bin/true'], cwd: 'relative' }, 'cwd'],
    [{ command: ['/bin/true'], binds: [{ source: '/tmp', target: '/proc/x' }] }, 'binds[0].target'],
    [{ command: ['/bin/true'], binds: [{ source: '/tmp/../etc' }] }, 'binds[0].source'],
    [{ command: ['/bin/true'], network: 'the internet' }, 'network'],
    [{ command: ['/bin/true'], seccomp: 'strict' }, 'seccomp'],
    [{ command: ['/bin/true'], user: { uid: -1 } }, 'user.uid'],
  ])('%j is refused naming %s', async (options, path) => {
    const e = await optionError(options);
    // The named field, or a key below it (env.A=B names the bad variable).
    expect(e.issues.some((i) => i.path === path || (path !== '' && i.path.startsWith(`${path}.`)))).toBe(true);
    expect(e.message).toContain(path || '(root)');
  });

  it('refuses non-object options', async () => {
    for (const bad of [null, undefined, 42, 'ls', [['ls']]]) await optionError(bad);
  });

  it('a box its cgroup refuses is a setup error at stage cgroup attach, leaving no process, fd or member', async () => {
    const o = resolveOptions({ command: ['/bin/true'] });
    const { plan } = planRun(o, { into: 'new', cgroup: null, filter: filterFor(o.seccomp), stdin: 'null' });
    const attachError = async (procs: string): Promise<SandboxSetupError> => {
      const e = await nativeSpawn({ ...plan, cgroupProcs: [procs] }).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(SandboxSetupError);
      expect((e as SandboxSetupError).stage).toBe('cgroup attach');
      return e as SandboxSetupError;
    };
    // A v1 cpuset cgroup with no CPUs takes no task (ENOSPC): the box's own move into it is refused.
    const dir = `/sys/fs/cgroup/cpuset/sandcell-attach-test-${process.pid}`;
    mkdirSync(dir);
    try {
      const before = readdirSync('/proc/self/fd').length;
      for (let i = 0; i < 5; i++) expect((await attachError(join(dir, 'cgroup.procs'))).code).toBe('ENOSPC');
      expect((await attachError(join(dir, 'gone', 'cgroup.procs'))).code).toBe('ENOENT');
      expect(readFileSync(join(dir, 'cgroup.procs'), 'utf8')).toBe('');
      expect(readdirSync('/proc/self/fd').length).toBe(before);
      expect(await childPids()).toEqual([]);
    } finally {
      rmdirSync(dir);
    }
  });

  it('a setup failure leaves no process and no extra fd behind', async () => {
    const before = (await import('node:fs')).readdirSync('/proc/self/fd').length;
    for (let i = 0; i < 20; i++) await spawn({ command: ['/no/such'] }).catch(() => undefined);
    const after = (await import('node:fs')).readdirSync('/proc/self/fd').length;
    expect(after).toBe(before);
  });
});
