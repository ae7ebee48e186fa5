/**
 * cleanupOrphans(): removes `sandcell-<pid>` trees of dead pids, and nothing else (live pids,
 * foreign dirs, cgroups with processes). On a fake v2 tree and on the real v1 cgroupfs.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { cleanupOrphans, listSandcellCgroups } from '../../src/cgroup/index.js';
import { FakeV2Tree } from './fake-cgroupfs.js';
import { spawnHeld } from '../helpers/cgroups.js';
import { requireRoot } from '../helpers/host.js';

/** A pid that was ours and has exited (and been reaped). */
async function deadPid(): Promise<number> {
  const c = spawn('/bin/true');
  await once(c, 'exit');
  return c.pid!;
}

describe('cleanupOrphans on a fake v2 tree', () => {
  let t: FakeV2Tree | undefined;
  afterEach(() => t?.dispose());

  it('removes dead-pid sandcell trees only', async () => {
    t = new FakeV2Tree('/svc');
    t.write('/', 'cgroup.subtree_control', 'memory pids cpu\n');
    t.mkcg('/svc', [1]);
    t.write('/svc', 'cgroup.subtree_control', 'memory pids cpu\n');
    const dead = await deadPid();
    const live = process.ppid; // alive, not us
    t.mkcg(`/svc/sandcell-${dead}`);
    t.mkcg(`/svc/sandcell-${dead}/run-1-0a1b2c3d`);
    t.mkcg(`/svc/sandcell-${dead}/run-2-deadbeef`);
    t.mkcg(`/svc/sandcell-${live}`);
    t.mkcg(`/svc/sandcell-${live}/run-1-00000000`);
    t.mkcg(`/svc/other-${dead}`);
    t.mkcg(`/svc/sandcell-x${dead}`);
    t.mkcg('/sandcell-999999999'); // outside the base: not looked at
    const r = await cleanupOrphans({ mountinfo: t.mountinfo, procSelfCgroup: t.procSelfCgroup, fake: t.fake });
    expect(r.removed.sort()).toEqual(
      [t.path(`/svc/sandcell-${dead}`), t.path(`/svc/sandcell-${dead}/run-1-0a1b2c3d`), t.path(`/svc/sandcell-${dead}/run-2-deadbeef`)].sort(),
    );
    for (const kept of [`/svc/sandcell-${live}/run-1-00000000`, `/svc/other-${dead}`, `/svc/sandcell-x${dead}`, '/sandcell-999999999']) {
      expect(t.exists(kept)).toBe(true);
    }
  });

  it('leaves a dead-pid tree that still has processes or dirs sandcell does not make', async () => {
    t = new FakeV2Tree('/svc');
    t.write('/', 'cgroup.subtree_control', 'memory pids cpu\n');
    t.mkcg('/svc');
    t.write('/svc', 'cgroup.subtree_control', 'memory pids cpu\n');
    const d1 = await deadPid();
    const d2 = await deadPid();
    t.mkcg(`/svc/sandcell-${d1}`);
    t.mkcg(`/svc/sandcell-${d1}/run-1-0a1b2c3d`, [4242]);
    t.mkcg(`/svc/sandcell-${d2}`);
    t.mkcg(`/svc/sandcell-${d2}/custom`);
    const before = t.snapshot();
    const r = await cleanupOrphans({ mountinfo: t.mountinfo, procSelfCgroup: t.procSelfCgroup, fake: t.fake });
    expect(r.removed).toEqual([]);
    expect(t.snapshot()).toEqual(before);
  });

  it('looks below a configured parent', async () => {
    t = new FakeV2Tree('/svc/main');
    t.write('/', 'cgroup.subtree_control', 'memory pids cpu\n');
    t.mkcg('/svc');
    t.write('/svc', 'cgroup.subtree_control', 'memory pids cpu\n');
    t.mkcg('/svc/sb');
    t.write('/svc/sb', 'cgroup.subtree_control', 'memory pids cpu\n');
    const dead = await deadPid();
    t.mkcg(`/svc/sb/sandcell-${dead}`);
    const r = await cleanupOrphans({ mountinfo: t.mountinfo, procSelfCgroup: t.procSelfCgroup, fake: t.fake, parent: '/svc/sb' });
    expect(r.removed).toEqual([t.path(`/svc/sb/sandcell-${dead}`)]);
  });
});

describe('cleanupOrphans on the real cgroupfs (v1 here)', () => {
  it('removes a dead pid’s tree in every hierarchy and leaves live and foreign ones', async () => {
    requireRoot('the real part of test/cgroup/cleanup.test.ts');
    const self = readFileSync('/proc/self/cgroup', 'utf8');
    const base = (ctrl: string): string => join('/sys/fs/cgroup', ctrl, /^\d+:([^:]*):(.*)$/m.exec(self.split('\n').find((l) => l.split(':')[1]!.split(',').includes(ctrl))!)![2]!);
    const dead = await deadPid();
    const holder = await spawnHeld(['/bin/sh', '-c', 'read x']); // a live pid of ours, for sandcell-<live>
    const live = holder.child.pid!;
    const made: string[] = [];
    const mk = (d: string): void => {
      mkdirSync(d);
      made.push(d);
    };
    try {
      for (const c of ['memory', 'pids']) {
        mk(join(base(c), `sandcell-${dead}`));
        mk(join(base(c), `sandcell-${dead}`, 'run-7-0a1b2c3d'));
        mk(join(base(c), `sandcell-${live}`));
        mk(join(base(c), `notsandcell-${dead}`));
      }
      // A dead pid's tree with a live process inside stays (the holder moved there and back would be fiddly: use a second holder).
      const stuck = await spawnHeld(['/bin/sh', '-c', 'read x']);
      const dead2 = await deadPid();
      mk(join(base('pids'), `sandcell-${dead2}`));
      mk(join(base('pids'), `sandcell-${dead2}`, 'run-1-00000000'));
      writeFileSync(join(base('pids'), `sandcell-${dead2}`, 'run-1-00000000', 'cgroup.procs'), String(stuck.child.pid));

      const listed = listSandcellCgroups();
      for (const c of ['memory', 'pids']) expect(listed).toContain(join(base(c), `sandcell-${dead}`));

      const r = await cleanupOrphans();
      const want = ['memory', 'pids'].flatMap((c) => [join(base(c), `sandcell-${dead}`, 'run-7-0a1b2c3d'), join(base(c), `sandcell-${dead}`)]);
      expect(r.removed.filter((d) => want.includes(d)).sort()).toEqual(want.sort());
      for (const d of want) expect(existsSync(d)).toBe(false);
      for (const c of ['memory', 'pids']) {
        expect(existsSync(join(base(c), `sandcell-${live}`))).toBe(true);
        expect(existsSync(join(base(c), `notsandcell-${dead}`))).toBe(true);
      }
      expect(existsSync(join(base('pids'), `sandcell-${dead2}`, 'run-1-00000000'))).toBe(true);
      stuck.release();
      await stuck.exit;
    } finally {
      holder.release();
      await holder.exit;
      for (const d of made.reverse()) if (existsSync(d)) rmdirSync(d);
    }
    expect(listSandcellCgroups().filter((d) => made.includes(d))).toEqual([]);
  });
});
