/**
 * The v2 driver on a real pure cgroup v2 kernel, in a subtree delegated the way a service manager
 * delegates one (systemd Delegate=yes): the service's cgroup lists memory, cpu and pids in its
 * cgroup.controllers, enables nothing below itself, and the service's processes live in a leaf.
 * Runs only in the test guest (`npm run test:vm`, scripts/vm/guest.sh makes the subtree and
 * names it in SANDCELL_TEST_CGROUP_PARENT / SANDCELL_TEST_DELEGATED_LEAF); elsewhere it fails.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { rmdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { openCgroupDriver } from '../../src/cgroup/index.js';
import { run, Sandbox } from '../../src/index.js';
import { joinCgroup, PY, spawnHeld } from '../helpers/cgroups.js';
import { requireRoot, runCgroupsInUse } from '../helpers/host.js';

const read = (dir: string, file: string): string => readFileSync(join(dir, file), 'utf8').trim();
const keyed = (dir: string, file: string): Record<string, number> =>
  Object.fromEntries(read(dir, file).split('\n').map((l) => [l.split(' ')[0]!, Number(l.split(' ')[1])]));

let parent: string;
let service: string;
let leaf: string;

beforeAll(() => {
  requireRoot('test/vm/v2-delegated.test.ts');
  const p = process.env.SANDCELL_TEST_CGROUP_PARENT;
  const l = process.env.SANDCELL_TEST_DELEGATED_LEAF;
  if (!p || !l) throw new Error('SANDCELL_TEST_CGROUP_PARENT and SANDCELL_TEST_DELEGATED_LEAF are unset: this suite runs in the guest of npm run test:vm');
  parent = p;
  leaf = l;
  service = dirname(p);
  expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toMatch(/ - cgroup cgroup /);
  // What the service does first in its delegated cgroup: its processes go to a leaf, then it lends
  // the controllers to its children (allowed once the service's cgroup itself holds no process).
  writeFileSync(join(service, 'cgroup.subtree_control'), '+memory +cpu +pids');
});

afterAll(async () => {
  expect(await runCgroupsInUse()).toEqual([]);
});

describe('cgroup v2 driver in a delegated subtree of a real kernel', () => {
  it('creates the configured parent, enables the controllers there and runs limits, usage and OOM in it', async () => {
    const r = await openCgroupDriver({ parent });
    if (!r.driver) throw new Error(r.reason);
    const driver = r.driver;
    try {
      expect(driver.version).toBe('v2');
      expect([...driver.controllers].sort()).toEqual(['cpu', 'memory', 'pids']);
      expect(driver.parents.unified).toBe(join(parent, `sandcell-${process.pid}`));
      expect(read(parent, 'cgroup.subtree_control').split(' ').sort()).toEqual(['cpu', 'memory', 'pids']);

      const rc = await driver.create({ memoryBytes: 32 << 20, pids: 16, cpus: 0.5 });
      const dir = rc.dirs[0]!;
      expect(read(dir, 'memory.max')).toBe(String(32 << 20));
      expect(read(dir, 'memory.swap.max')).toBe('0');
      expect(read(dir, 'memory.oom.group')).toBe('0');
      expect(read(dir, 'pids.max')).toBe('16');
      expect(read(dir, 'cpu.max')).toBe('50000 100000');
      rc.capCpu(20_000);
      expect(read(dir, 'cpu.max')).toBe('20000 1000000');
      rc.capCpu(null);
      expect(read(dir, 'cpu.max')).toBe('50000 100000');

      const h = await spawnHeld([PY, '-c', 'import sys\nsys.stdin.readline()\nx = b"x" * (200 << 20)\nprint(len(x))']);
      joinCgroup(rc.procsFiles, h.child.pid!);
      expect(rc.pids()).toEqual([h.child.pid]);
      h.release();
      const exit = await h.exit;
      expect(exit.signal).toBe('SIGKILL');
      const u = await rc.outcome();
      expect(u.oomKilled).toBe(true);
      expect(keyed(dir, 'memory.events').oom_kill).toBe(1);
      expect(keyed(dir, 'memory.events').oom_group_kill).toBe(0);
      expect(u.memoryPeakSource).toBe('cgroup');
      expect(u.memoryPeakBytes).toBeGreaterThan(16 << 20);
      expect(u.memoryPeakBytes).toBeLessThanOrEqual(32 << 20);
      expect(u.cpuTimeUs).toBeGreaterThan(0);
      expect(read(dir, 'pids.peak')).toBe('1');
      await rc.destroy();
      expect(existsSync(dir)).toBe(false);
    } finally {
      await rmdir(driver.parents.unified!).catch(() => undefined);
    }
  });

  it('runs boxes with every limit enforced by the cgroup, below the delegated parent', async () => {
    const r = await run({
      command: ['/bin/sh', '-c', 'cat /proc/self/cgroup; for i in 1 2 3 4 5 6 7 8; do sleep 5 & done; wait'],
      limits: { memory: '64MiB', processes: 4, cpuTime: '2s', wallTime: '20s' },
      cgroupParent: parent,
    });
    expect(r.limitsEnforced).toEqual({ memory: 'cgroup', cpuTime: 'cgroup', processes: 'cgroup' });
    // The box has its own cgroup namespace: it sees itself at the root.
    expect(r.stdout.split('\n')[0]).toBe('0::/');
    expect(r.stderr).toMatch(/fork|Resource temporarily unavailable|Cannot fork/i);
    expect(r.usage.memoryPeakBytes).toBeGreaterThan(0);
  });

  it('a living box in the delegated parent: its init in a leaf, each run a sibling cgroup, all removed at the end', async () => {
    const box = await Sandbox.create({ limits: { memory: '64MiB', processes: 16 }, cgroupParent: parent });
    try {
      const a = await box.run({ command: ['/bin/sh', '-c', 'echo ok'] });
      expect(a.status).toBe('ok');
      expect(a.stdout).toBe('ok\n');
      const b = await box.run({ command: [PY, '-c', 'x = b"x" * (200 << 20)'] });
      expect(b.status).toBe('memory-limit');
    } finally {
      await box.destroy();
    }
    expect(await runCgroupsInUse()).toEqual([]);
  });

  it('the service leaf stays as it was: sandcell never writes a cgroup it did not create or was not given', () => {
    expect(read(leaf, 'cgroup.subtree_control')).toBe('');
    expect(read(leaf, 'cgroup.procs')).toBe('');
  });
});
