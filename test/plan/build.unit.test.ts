// Options → the plan the executor receives: ids and their maps, rlimits, namespaces, the root's
// read-only flag, and what each kind of plan (run, living box, prepared box, join) carries.
import { afterEach, describe, expect, it, vi } from 'vitest';

import type { RunCgroup } from '../../src/cgroup/index.js';
import type { BoxFilter } from '../../src/launch/filter.js';
import type { NativeMount, NativeRlimit } from '../../src/native.js';
import { resolveOptions, type RunOptions } from '../../src/options.js';
import { nodevReachesSubmounts, planBox, planRun, RLIMIT, SAFE_PATH } from '../../src/plan/build.js';

/** What the run's cgroup offers (a memory controller, CPU accounting) and the filter it gets. */
interface Setup {
  memoryByCgroup?: boolean;
  cpuByCgroup?: boolean;
  filter?: BoxFilter;
}

/** A run cgroup as far as the plan is concerned: its procs file and which mechanisms it has. */
function cgroup(s: Setup): RunCgroup {
  return {
    procsFiles: ['/fake/cgroup.procs'],
    cpuTimeFile: undefined,
    enforced: { memory: s.memoryByCgroup === false ? 'none' : 'cgroup', cpuTime: s.cpuByCgroup ? 'cgroup' : 'none', processes: 'cgroup', cpus: 'none' },
  } as unknown as RunCgroup;
}

/** A plan of /bin/prog, made as root (ids mapped to unprivileged host ids) unless `euid` says otherwise. */
function plan(options: Omit<RunOptions, 'command'>, more: Setup = {}, mode: 'run' | 'box' | 'join' | 'prepared' = 'run', euid = 0) {
  vi.spyOn(process, 'geteuid').mockReturnValue(euid);
  vi.spyOn(process, 'getegid').mockReturnValue(euid);
  const o = resolveOptions({ command: ['/bin/prog', 'arg'], ...options });
  if (mode === 'box') return planBox(o, 'living', ['/fake/cgroup.procs']);
  if (mode === 'prepared') return planBox(o, 'prepared');
  return planRun(o, { into: mode === 'join' ? 'living' : 'new', cgroup: cgroup(more), filter: more.filter ?? null, stdin: 'null' }).plan;
}
afterEach(() => {
  vi.restoreAllMocks();
});

const rlimit = (rlimits: NativeRlimit[], resource: number) => rlimits.find((r) => r.resource === resource);

describe('planRun', () => {
  it('runs the command with a safe PATH that the caller may override, in its cgroup, with its stdio', () => {
    const p = plan({ env: { LANG: 'C' } });
    expect(p.argv).toEqual(['/bin/prog', 'arg']);
    expect(p.env).toEqual([`PATH=${SAFE_PATH}`, 'LANG=C']);
    expect(plan({ env: { PATH: '/opt/bin' } }).env).toEqual(['PATH=/opt/bin']);
    expect(p).toMatchObject({ cwd: '/work', hostname: 'sandcell', cgroupProcs: ['/fake/cgroup.procs'], stdio: ['null', 'pipe', 'pipe'] });
  });

  it("as root: the box's root and the program's ids map to distinct unprivileged host ids", () => {
    const p = plan({});
    expect(p).toMatchObject({ uid: 65534, gid: 65534, denySetgroups: false });
    expect(p.uidMap).toBe('0 100000 1\n65534 165535 1\n');
    expect(p.gidMap).toBe('0 100000 1\n65534 165535 1\n');
    expect(plan({ user: { uid: 0, gid: 0 } }).uidMap).toBe('0 100000 1\n');
  });

  it("without root: only the caller's own id, as the box's root, and setgroups denied", () => {
    const p = plan({}, {}, 'run', 1000);
    expect(p).toMatchObject({ uid: 0, gid: 0, uidMap: '0 1000 1\n', gidMap: '0 1000 1\n', denySetgroups: true });
  });

  it('limits become rlimits: no core, file size, open files, stack, processes', () => {
    const p = plan({ limits: { fileSize: '1MiB', openFiles: 32, stack: '16MiB', processes: 9 } });
    expect(p.rlimits).toEqual([
      { resource: RLIMIT.CORE, soft: 0, hard: 0 },
      { resource: RLIMIT.FSIZE, soft: 1 << 20, hard: 1 << 20 },
      { resource: RLIMIT.NOFILE, soft: 32, hard: 32 },
      { resource: RLIMIT.STACK, soft: 16 << 20, hard: 16 << 20 },
      { resource: RLIMIT.NPROC, soft: 9, hard: 9 },
    ]);
  });

  it('the CPU-time limit is RLIMIT_CPU in whole seconds, a second later when a cgroup enforces it', () => {
    expect(rlimit(plan({ limits: { cpuTime: '1.5s' } }).rlimits, RLIMIT.CPU)).toEqual({ resource: RLIMIT.CPU, soft: 2, hard: 3 });
    expect(rlimit(plan({ limits: { cpuTime: '1.5s' } }, { cpuByCgroup: true }).rlimits, RLIMIT.CPU)).toEqual({ resource: RLIMIT.CPU, soft: 3, hard: 4 });
    expect(rlimit(plan({}).rlimits, RLIMIT.CPU)).toBeUndefined();
  });

  it('memory is RLIMIT_AS only when no memory cgroup enforces it', () => {
    expect(rlimit(plan({ limits: { memory: '64MiB' } }, { memoryByCgroup: false }).rlimits, RLIMIT.AS)).toEqual({ resource: RLIMIT.AS, soft: 64 << 20, hard: 64 << 20 });
    expect(rlimit(plan({ limits: { memory: '64MiB' } }).rlimits, RLIMIT.AS)).toBeUndefined();
  });

  it("network 'none' and 'loopback' are a new namespace with loopback up; 'host' is the host's", () => {
    expect(plan({})).toMatchObject({ newNetwork: true, loopback: true });
    expect(plan({ network: 'loopback' })).toMatchObject({ newNetwork: true, loopback: true });
    expect(plan({ network: 'host' })).toMatchObject({ newNetwork: false, loopback: false });
  });

  it("the root is read-only on a small tmpfs, except over a writable image: the image's layer, of the tmpfs size and its inodes", () => {
    const p = plan({});
    expect(p).toMatchObject({ rootReadOnly: true, rootTmpfs: 'mode=755,size=4194304,nr_inodes=4096' });
    expect(p.layers).toBeUndefined();
    const w = plan({ image: '/usr', writable: true, limits: { tmpfs: '8MiB' } });
    expect(w).toMatchObject({ rootReadOnly: false, rootTmpfs: `size=${8 << 20},nr_inodes=2048,mode=755`, layers: ['/usr'] });
  });

  it('passes the seccomp program and its listener through: the one without terminal rules when the run can hold no terminal', () => {
    const program = Buffer.alloc(8);
    const noTerminal = Buffer.alloc(16);
    const filter: BoxFilter = {
      terminal: { program, listener: true, execPathLo: [1], execPathHi: [2] },
      noTerminal: { program: noTerminal, listener: false, execPathLo: [3], execPathHi: [4] },
    };
    expect(plan({}, { filter })).toMatchObject({ seccomp: noTerminal, seccompListener: false, seccompExecPathLo: [3], seccompExecPathHi: [4] });
    expect(plan({}, { filter }, 'join')).toMatchObject({ seccomp: noTerminal });
    expect(plan({ network: 'none', mounts: [{ type: 'tmpfs', target: '/scratch' }] }, { filter })).toMatchObject({ seccomp: noTerminal });
    // A host process could hand the box a terminal over a socket it reaches: through a host
    // directory bound in, or the host's abstract sockets.
    for (const reach of [{ binds: [{ source: '/usr/share', target: '/share' }] }, { image: '/usr' }, { network: 'host' as const }]) {
      expect(plan(reach, { filter })).toMatchObject({ seccomp: program });
      expect(plan(reach, { filter }, 'join')).toMatchObject({ seccomp: program });
    }
    // A caller's descriptor may be a terminal: the whole policy.
    vi.spyOn(process, 'geteuid').mockReturnValue(0);
    vi.spyOn(process, 'getegid').mockReturnValue(0);
    const o = resolveOptions({ command: ['/bin/prog'] });
    for (const into of ['new', 'warm'] as const) {
      const p = planRun(o, { into, cgroup: null, filter, stdin: 7 }).plan;
      expect(p).toMatchObject({ stdio: [7, 'pipe', 'pipe'], seccomp: program, seccompListener: true, seccompExecPathLo: [1], seccompExecPathHi: [2] });
    }
  });

  it('leaves the terminal rules out only where nodev reaches below every bind (mount_setattr, no seccomp filter over this process)', () => {
    const free = 'Name:\tnode\nSeccomp:\t0\nSeccomp_filters:\t0\n';
    expect(nodevReachesSubmounts('6.18.44-fc-v782', free)).toBe(true);
    expect(nodevReachesSubmounts('5.12.0', free)).toBe(true);
    expect(nodevReachesSubmounts('5.11.22', free)).toBe(false);
    expect(nodevReachesSubmounts('4.19.0', free)).toBe(false);
    expect(nodevReachesSubmounts('6.8.0', 'Name:\tnode\nSeccomp:\t2\nSeccomp_filters:\t1\n')).toBe(false);
    expect(nodevReachesSubmounts('6.8.0', '')).toBe(false);
  });

  it('refuses a root that would open a device other than the memory devices', async () => {
    // Every root rootfs.ts makes passes (binds, images, host network), with /dev as the device
    // tree's clone or as the host's memory devices bound.
    const kinds: Omit<RunOptions, 'command'>[] = [
      {},
      { binds: [{ source: '/dev', target: '/hostdev' }], mounts: [{ type: 'tmpfs', target: '/scratch' }] },
      { image: '/usr' },
      { image: '/usr', writable: true },
      { network: 'host' },
    ];
    const bound = ['/dev/full', '/dev/null', '/dev/random', '/dev/urandom', '/dev/zero'];
    for (const k of kinds) {
      for (const mode of ['run', 'box', 'prepared'] as const) {
        const p = plan(k, {}, mode);
        const devices = p.mounts.flatMap((m) => (m.kind === 'devices' ? ['tree'] : m.kind === 'bind' && m.noDev !== true ? [m.source] : []));
        expect([['tree'], bound]).toContainEqual(devices.sort());
      }
    }
    const rootfs = await import('../../src/plan/rootfs.js');
    const { boxRoot, DEVICES } = rootfs;
    let added: NativeMount = { kind: 'bind', source: '/dev/tty', target: '/dev/tty' };
    vi.spyOn(rootfs, 'boxRoot').mockImplementation((r) => [...boxRoot(r), added]);
    expect(() => plan({ hostname: 'refused-root' })).toThrow(/\/dev\/tty would be bound from \/dev\/tty without nodev/);
    // A device tree of memory devices passes; one holding a terminal does not.
    added = { kind: 'devices', target: '/dev2' };
    expect(() => plan({ hostname: 'a-tree' })).not.toThrow();
    const devices = DEVICES as [string, number, number][];
    devices.push(['tty', 5, 0]);
    try {
      // As root the tree holds DEVICES (refused at `/dev2`, or at `/dev` first); rootless they are bound (refused as a bind).
      expect(() => plan({ hostname: 'refused-tree' })).toThrow(/\/dev\/tty.*: a box opens no device but the memory devices/);
    } finally {
      devices.pop();
    }
  });
});

describe('plan kinds', () => {
  const files = { files: { 'in.txt': 'x' } };
  const hasProc = (p: ReturnType<typeof plan>) => p.mounts.some((m) => m.kind === 'proc');
  const fileTargets = (p: ReturnType<typeof plan>) => p.mounts.filter((m) => m.kind === 'file' && m.target.startsWith('/work/')).map((m) => m.target);

  it('run: the whole root and the files', () => {
    const p = plan(files);
    expect(hasProc(p)).toBe(true);
    expect(fileTargets(p)).toEqual(['/work/in.txt']);
    expect([p.persistent, p.join, p.prepared]).toEqual([undefined, undefined, undefined]);
  });

  it('box: the root only, persistent, no program', () => {
    const p = plan(files, {}, 'box');
    expect(p).toMatchObject({ argv: [], persistent: true });
    expect(hasProc(p)).toBe(true);
  });

  it('join: only the files of the run, no root of its own', () => {
    const p = plan(files, {}, 'join');
    expect(p.join).toBe(true);
    expect(p.mounts).toEqual([{ kind: 'file', target: '/work/in.txt', data: Buffer.from('x'), mode: 0o644, programOwned: true }]);
  });

  it("prepared: the box's shape only (no program, env, rlimits or files), so any run of that shape can use it", () => {
    const p = plan({ ...files, env: { A: '1' }, limits: { cpuTime: '1s' } }, {}, 'prepared');
    expect(p).toMatchObject({ prepared: true, argv: [], env: [], rlimits: [] });
    expect(hasProc(p)).toBe(true);
    expect(fileTargets(p)).toEqual([]);
  });
});
