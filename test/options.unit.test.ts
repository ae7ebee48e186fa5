// What a caller may ask for: each refusal names its field and says why; what is not given gets
// its documented default; a living box's runs inherit and override the box's defaults.
import { afterEach, describe, expect, it, vi } from 'vitest';

import { SandboxOptionsError } from '../src/errors.js';
import { resolveOptions, resolveSandboxOptions, resolveSandboxRun } from '../src/options.js';
import { presetNames } from '../src/seccomp/index.js';
import { refusal } from './helpers/refusal.js';

const HERE = import.meta.dirname;

const refused = (input: unknown): string[] => refusal(() => resolveOptions(input));

const asRoot = (root: boolean): void => {
  vi.spyOn(process, 'geteuid').mockReturnValue(root ? 0 : 1000);
};
afterEach(() => {
  vi.restoreAllMocks();
});

describe('resolveOptions: defaults', () => {
  it('fills every default: limits, cwd, network, seccomp, nothing collected, no stdin', () => {
    asRoot(true);
    const o = resolveOptions({ command: ['/bin/true'] });
    // The documented defaults: 5 minutes of wall time for run(), no CPU-time limit, 512 MiB of
    // memory, 256 processes and open files, 64 MiB of output, file size and tmpfs, an 8 MiB stack.
    const MiB = 1 << 20;
    expect(o.limits).toEqual({
      wallTimeMs: 300_000, cpuTimeMs: null, memoryBytes: 512 * MiB, cpus: null,
      processes: 256, openFiles: 256, outputBytes: 64 * MiB, fileSizeBytes: 64 * MiB, tmpfsBytes: 64 * MiB, stackBytes: 8 * MiB,
    });
    expect(o).toMatchObject({ cwd: '/work', network: 'none', seccomp: 'default', env: {}, mounts: [], files: [], collect: [], stdin: null });
    expect(o).toMatchObject({ image: null, writable: false, cgroupParent: null, signal: null, uid: 65534, gid: 65534 });
  });

  it('parses sizes and durations of limits to bytes and ms', () => {
    const o = resolveOptions({ command: ['x'], limits: { wallTime: '2s', cpuTime: 1500, memory: '256MiB', output: '1kB', stack: '1MiB' } });
    expect(o.limits).toMatchObject({ wallTimeMs: 2000, cpuTimeMs: 1500, memoryBytes: 256 << 20, outputBytes: 1000, stackBytes: 1 << 20 });
  });

  it('binds are read-only and at their source path unless said otherwise; tmpfs volumes default to the tmpfs limit', () => {
    const o = resolveOptions({
      command: ['x'],
      limits: { tmpfs: '8MiB' },
      binds: [{ source: HERE }, { source: HERE, target: '/data/', readonly: false }],
      mounts: [{ type: 'tmpfs', target: '/scratch' }, { source: '/tmp/./', target: '/t' }],
    });
    expect(o.mounts).toEqual([
      { type: 'bind', source: HERE, target: HERE, readonly: true },
      { type: 'bind', source: HERE, target: '/data', readonly: false },
      { type: 'tmpfs', target: '/scratch', sizeBytes: 8 << 20 },
      { type: 'bind', source: '/tmp', target: '/t', readonly: true },
    ]);
  });

  it('files get mode 0644 by default and normalised names', () => {
    const o = resolveOptions({ command: ['x'], files: { './a/b.txt': 'hi', run: { data: new Uint8Array([1, 2]), mode: 0o755 } } });
    expect(o.files).toEqual([
      { name: 'a/b.txt', data: Buffer.from('hi'), mode: 0o644 },
      { name: 'run', data: Buffer.from([1, 2]), mode: 0o755 },
    ]);
  });
});

describe('resolveOptions: refusals name the field and the reason', () => {
  it.each([
    [{ limits: { memory: '512KiB' } }, 'limits.memory: must be at least 1MiB'],
    [{ limits: { stack: 1024 } }, 'limits.stack: must be at least 64KiB'],
    [{ limits: { tmpfs: 100 } }, 'limits.tmpfs: must be at least 4KiB'],
    [{ limits: { wallTime: '0s' } }, 'limits.wallTime: must be greater than zero'],
    [{ limits: { cpuTime: '1 fortnight' } }, 'limits.cpuTime: must be a duration such as 1500, "1500ms", "2s" or "1m", got "1 fortnight"'],
    [{ limits: { memory: '-1MiB' } }, 'limits.memory: must be a size such as 65536, "64KiB", "256MiB" or "1GB", got "-1MiB"'],
    [{ cwd: 'work' }, 'cwd: must be an absolute path'],
    [{ cwd: '/work/../etc' }, "cwd: must not contain '..'"],
    [{ binds: [{ source: '/no/such/dir/anywhere' }] }, 'binds[0].source: does not exist on the host (/no/such/dir/anywhere)'],
    [{ mounts: [{ type: 'tmpfs', target: '/proc/sys' }] }, 'mounts[0].target: must not be / or lie under /proc or /dev (got /proc/sys)'],
    [{ binds: [{ source: '/tmp', target: '/' }] }, 'binds[0].target: must not be / or lie under /proc or /dev (got /)'],
    [{ writable: true }, 'writable: needs an image'],
    [{ image: '/etc/hostname' }, 'image: is not a directory (/etc/hostname)'],
    [{ seccomp: 'strict' }, `seccomp: must be one of ${presetNames.join(', ')} or a policy object`],
    [{ seccomp: { defaultAction: 'allow', rules: [{ syscall: 'getpid', action: 'explode' }] } }, /^seccomp\.rules\[0\]\.action: an action is /],
    [{ seccomp: { defaultAction: 'allow', rules: [{ syscall: 'read', action: 'allow' }, { syscall: 'read', action: 'allow', args: [{ index: 0, op: 'like', value: 1 }] }] } }, /^seccomp\.rules\[1\]\.args\[0\]\.op: /],
    [{ files: { '../escape': 'x' } }, "files.../escape: must not contain '..' or empty parts"],
    [{ collect: ['/etc/passwd'] }, 'collect[0]: must be relative to the working directory'],
    [{ collect: ['out/../../x'] }, "collect[0]: must not contain '..' or empty parts"],
  ])('%j', (extra, issue) => {
    const issues = refused({ command: ['/bin/true'], ...extra });
    if (typeof issue === 'string') expect(issues).toContain(issue);
    else expect(issues.some((i) => issue.test(i)), issues.join('\n')).toBe(true);
  });

  it('an empty command, an unknown field and a NUL in an argument are each named', () => {
    expect(refused({ command: [] })).toEqual(['command: must name a program']);
    expect(refused({ command: [''] })).toEqual(['command[0]: must name a program, not be empty']);
    expect(refused({ command: ['x'], limit: {} })[0]).toMatch(/^: .*limit/);
    expect(refused({ command: ['x', 'a\0b'] })).toEqual(['command[1]: must not contain a NUL byte']);
  });

  it('reports every bad field at once, the first one as the error path', () => {
    try {
      resolveOptions({ command: ['x'], limits: { memory: 10, stack: 10 } });
      expect.unreachable();
    } catch (e) {
      const err = e as SandboxOptionsError;
      expect(err.path).toBe('limits.memory');
      expect(err.message).toBe('invalid sandbox options: limits.memory: must be at least 1MiB; limits.stack: must be at least 64KiB');
    }
    expect(refused({ command: ['x'], binds: [{ source: '/no/such/dir' }], writable: true }).map((i) => i.split(':')[0])).toEqual([
      'binds[0].source',
      'writable',
    ]);
  });

  it('options that are not an object are refused as a whole', () => {
    for (const input of [null, 'run', ['/bin/true'], 42]) expect(refused(input)).toEqual([': options must be an object']);
  });
});

describe('ids inside the box', () => {
  it('as root: 65534 unless given', () => {
    asRoot(true);
    expect(resolveOptions({ command: ['x'], user: { uid: 1000 } })).toMatchObject({ uid: 1000, gid: 65534 });
  });

  it("without root: 0 (the caller's own id mapped as the box's root), and other ids refused by name", () => {
    asRoot(false);
    expect(resolveOptions({ command: ['x'] })).toMatchObject({ uid: 0, gid: 0 });
    expect(refused({ command: ['x'], user: { uid: 1000, gid: 5 } })).toEqual([
      "user.uid: only 0 is available without root (the box maps just the caller's own id)",
      "user.gid: only 0 is available without root (the box maps just the caller's own id)",
    ]);
  });
});

describe('a living box and its runs', () => {
  it('Sandbox.create() takes no command', () => {
    expect(refusal(() => resolveSandboxOptions({ command: ['x'] }))).toEqual(['command: is given per run: box.run({ command })']);
  });

  it("a run inherits the box's env and limits and overrides them field by field", () => {
    const box = resolveSandboxOptions({ env: { A: '1', B: '2' }, cwd: '/src', limits: { memory: '64MiB', wallTime: '5s' }, seccomp: 'judge' });
    const r = resolveSandboxRun({ command: ['x'], env: { B: '3' }, limits: { wallTime: '1s' } }, box, 'run');
    expect(r).toMatchObject({ command: ['x'], env: { A: '1', B: '3' }, cwd: '/src', seccomp: 'judge' });
    expect(r.limits).toMatchObject({ memoryBytes: 64 << 20, wallTimeMs: 1000, processes: 256 });
    expect(resolveSandboxRun({ command: ['y'], seccomp: 'none' }, box, 'run').seccomp).toBe('none');
  });

  it("a run may not change the box's filesystem: its tmpfs size and its volumes", () => {
    const box = resolveSandboxOptions({});
    expect(refusal(() => resolveSandboxRun({ command: ['x'], limits: { tmpfs: '1MiB' } }, box, 'run'))).toEqual([
      "limits.tmpfs: is the box's: give it to Sandbox.create()",
    ]);
    expect(refusal(() => resolveSandboxRun({ command: ['x'], binds: [{ source: '/tmp' }] }, box, 'run'))[0]).toMatch(/^: .*binds/);
  });
});
