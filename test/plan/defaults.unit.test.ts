// What a run is bounded by when the caller gives no limits, and how `null` lifts a default: the
// resolved options and the plan the executor would receive (no root needed, nothing started).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { SandboxOptionsError } from '../../src/errors.js';
import { DEFAULT_MEMORY_BYTES } from '../../src/limits/memory.js';
import { RUN_WALL_TIME_MS } from '../../src/limits/wall-time.js';
import type { NativeMount, NativePlan } from '../../src/native.js';
import { resolveOptions, resolveSandboxOptions, resolveSandboxRun, type RunOptions } from '../../src/options.js';
import { planBox, planRun } from '../../src/plan/build.js';
import { privileged } from '../../src/privilege.js';

const MiB = 1024 * 1024;
let image: string;
beforeAll(() => {
  image = mkdtempSync(join(tmpdir(), 'sandcell-defaults-image-'));
});
afterAll(() => rmSync(image, { recursive: true, force: true }));

function plan(options: RunOptions): NativePlan {
  return planRun(resolveOptions(options), { into: 'new', cgroup: null, filter: null, stdin: 'null' }).plan;
}

function tmpfsOptions(p: NativePlan): Map<string, string> {
  return new Map(p.mounts.filter((m): m is Extract<NativeMount, { kind: 'tmpfs' }> => m.kind === 'tmpfs').map((m) => [m.target, m.data]));
}

describe('defaults', () => {
  it('run(): 512 MiB of memory, 256 processes, 64 MiB tmpfs, 5 minutes of wall time', () => {
    const l = resolveOptions({ command: ['/bin/true'] }).limits;
    expect(DEFAULT_MEMORY_BYTES).toBe(512 * MiB);
    expect(RUN_WALL_TIME_MS).toBe(5 * 60 * 1000);
    expect(l).toMatchObject({ memoryBytes: 512 * MiB, processes: 256, tmpfsBytes: 64 * MiB, wallTimeMs: 300_000, cpuTimeMs: null });
  });

  it('spawn() and a living box have no wall-time default; box.run() has, box.spawn() has not', () => {
    expect(resolveOptions({ command: ['/bin/true'] }, 'spawn').limits.wallTimeMs).toBeNull();
    expect(resolveOptions({ command: ['/bin/true'] }, 'spawn').limits.memoryBytes).toBe(512 * MiB);
    const box = resolveSandboxOptions({});
    expect(box.limits.wallTimeMs).toBeNull();
    expect(box.limits.memoryBytes).toBe(512 * MiB);
    expect(resolveSandboxRun({ command: ['/bin/true'] }, box, 'run').limits.wallTimeMs).toBe(300_000);
    expect(resolveSandboxRun({ command: ['/bin/true'] }, box, 'spawn').limits.wallTimeMs).toBeNull();
    // A box's own wall-time limit is its runs' default, for both.
    const timed = resolveSandboxOptions({ limits: { wallTime: '2s' } });
    expect(resolveSandboxRun({ command: ['/bin/true'] }, timed, 'spawn').limits.wallTimeMs).toBe(2000);
  });

  it('null lifts a default, also one a living box set for its runs', () => {
    const l = resolveOptions({ command: ['/bin/true'], limits: { memory: null, wallTime: null, tmpfs: null, cpuTime: null, cpus: null } }).limits;
    expect(l).toMatchObject({ memoryBytes: null, wallTimeMs: null, tmpfsBytes: null, cpuTimeMs: null, cpus: null });
    const box = resolveSandboxOptions({ limits: { memory: '1GiB', cpuTime: '1s' } });
    const run = resolveSandboxRun({ command: ['/bin/true'], limits: { memory: null, cpuTime: null } }, box, 'run').limits;
    expect(run).toMatchObject({ memoryBytes: null, cpuTimeMs: null });
    // undefined keeps it.
    expect(resolveSandboxRun({ command: ['/bin/true'] }, box, 'run').limits).toMatchObject({ memoryBytes: 1024 * MiB, cpuTimeMs: 1000 });
  });

  it('null is refused where there is no default to lift, naming the field', () => {
    expect(() => resolveOptions({ command: ['/bin/true'], limits: { processes: null } })).toThrow(SandboxOptionsError);
    const refused = (() => {
      try {
        resolveOptions({ command: ['/bin/true'], limits: { output: null } });
        return null;
      } catch (e) {
        return e;
      }
    })();
    expect(refused).toBeInstanceOf(SandboxOptionsError);
    expect((refused as SandboxOptionsError).path).toBe('limits.output');
  });

  it('without a memory cgroup the default memory limit is RLIMIT_AS, and the plan says so', () => {
    const run = planRun(resolveOptions({ command: ['/bin/true'] }), { into: 'new', cgroup: null, filter: null, stdin: 'null' });
    expect(run.enforced.memory).toBe('rlimit');
    expect(run.plan.rlimits).toContainEqual({ resource: 9, soft: 512 * MiB, hard: 512 * MiB });
    const lifted = planRun(resolveOptions({ command: ['/bin/true'], limits: { memory: null } }), { into: 'new', cgroup: null, filter: null, stdin: 'null' });
    expect(lifted.enforced.memory).toBe('none');
    expect(lifted.plan.rlimits.some((r) => r.resource === 9)).toBe(false);
  });

  it('every writable tmpfs has a size and an inode count: /tmp, the working dir, /dev/shm, tmpfs mounts', () => {
    const p = plan({ command: ['/bin/true'], mounts: [{ type: 'tmpfs', target: '/scratch', size: '1MiB' }, { type: 'tmpfs', target: '/cache' }] });
    const t = tmpfsOptions(p);
    expect(t.get('/tmp')).toBe('size=67108864,nr_inodes=16384,mode=1777');
    expect(t.get('/work')).toMatch(/^size=67108864,nr_inodes=16384,mode=755,uid=65534,gid=65534$|^size=67108864,nr_inodes=16384,mode=755,uid=0,gid=0$/);
    expect(t.get('/dev/shm')).toBe('size=67108864,nr_inodes=16384,mode=1777');
    expect(t.get('/scratch')).toBe('size=1048576,nr_inodes=256,mode=1777');
    expect(t.get('/cache')).toBe('size=67108864,nr_inodes=16384,mode=1777');
    // /dev is read-only either way: as root a clone of the addon's device tree (64 KiB, 64 inodes,
    // fixed there), rootless a tmpfs as small.
    if (privileged()) expect(p.mounts.filter((m) => m.target === '/dev')).toEqual([{ kind: 'devices', target: '/dev' }]);
    else expect(t.get('/dev')).toMatch(/size=64k,nr_inodes=64/);
    expect(p.rootTmpfs).toMatch(/size=\d+,nr_inodes=\d+/);
    // Each inode count follows its size.
    expect(tmpfsOptions(plan({ command: ['/bin/true'], limits: { tmpfs: '8MiB' } })).get('/tmp')).toBe('size=8388608,nr_inodes=2048,mode=1777');
  });

  it('the root tmpfs of a writable image is bounded in size and inodes too', () => {
    const p = plan({ command: ['/bin/true'], image, writable: true });
    expect(p.rootTmpfs).toBe('size=67108864,nr_inodes=16384,mode=755');
    expect(planBox(resolveSandboxOptions({ image, writable: true }), 'living').rootTmpfs).toBe('size=67108864,nr_inodes=16384,mode=755');
  });

  it('tmpfs: null leaves size and inodes to the kernel on every writable tmpfs', () => {
    const p = plan({ command: ['/bin/true'], limits: { tmpfs: null }, image, writable: true, mounts: [{ type: 'tmpfs', target: '/cache' }] });
    const t = tmpfsOptions(p);
    for (const target of ['/tmp', '/dev/shm', '/cache']) expect(t.get(target)).toBe('mode=1777');
    expect(p.rootTmpfs).toBe('mode=755');
  });
});
