/**
 * Parsing of mountinfo and /proc/self/cgroup, the v1/v2 choice on a fake hybrid layout, and the
 * reason given to a user who may not create cgroups.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openCgroupDriver } from '../../src/cgroup/index.js';
import { dirOf, parentRelPath, parseMountinfo, parseProcCgroup } from '../../src/cgroup/hierarchy.js';
import { requireRoot } from '../helpers/host.js';

const HYBRID = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
42 31 0:39 /docker/abc /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:5 - cgroup cgroup rw,cpu,cpuacct
43 22 0:40 / /mnt/with\\040space rw - cgroup2 none rw
`;

describe('parsing', () => {
  it('parses cgroup mounts from mountinfo (v1 controllers, named hierarchies, v2, roots, escapes)', () => {
    const m = parseMountinfo(HYBRID);
    expect(m.map((x) => [x.version, x.mountPoint, x.root, x.controllers.join(','), x.name ?? ''])).toEqual([
      ['v1', '/sys/fs/cgroup/cpu', '/', 'cpu', ''],
      ['v1', '/sys/fs/cgroup/cpuacct', '/', 'cpuacct', ''],
      ['v1', '/sys/fs/cgroup/memory', '/', 'memory', ''],
      ['v1', '/sys/fs/cgroup/pids', '/', 'pids', ''],
      ['v1', '/sys/fs/cgroup/systemd', '/', '', 'systemd'],
      ['v2', '/sys/fs/cgroup/unified', '/', '', ''],
      ['v1', '/sys/fs/cgroup/cpu,cpuacct', '/docker/abc', 'cpu,cpuacct', ''],
      ['v2', '/mnt/with space', '/', '', ''],
    ]);
  });

  it('parses /proc/self/cgroup', () => {
    const p = parseProcCgroup('9:name=systemd:/\n4:memory:/process_api/6aa8\n2:cpu,cpuacct:/x\n0::/\n');
    expect(p.v2).toBe('/');
    expect(p.v1.get('memory')).toBe('/process_api/6aa8');
    expect(p.v1.get('cpu')).toBe('/x');
    expect(p.v1.get('cpuacct')).toBe('/x');
    expect(p.v1.get('name=systemd')).toBe('/');
    expect(parseProcCgroup('0::/user.slice/a.scope\n')).toEqual({ v1: new Map(), v2: '/user.slice/a.scope' });
  });

  it('maps cgroup paths to directories, stripping a mount root', () => {
    const [cpu, , , , , , docker] = parseMountinfo(HYBRID);
    expect(dirOf(cpu!, '/a/b')).toBe('/sys/fs/cgroup/cpu/a/b');
    expect(dirOf(cpu!, '/')).toBe('/sys/fs/cgroup/cpu');
    expect(dirOf(docker!, '/docker/abc/x')).toBe('/sys/fs/cgroup/cpu,cpuacct/x');
    expect(dirOf(docker!, '/docker/abc')).toBe('/sys/fs/cgroup/cpu,cpuacct');
    expect(dirOf(docker!, '/x')).toBe('/sys/fs/cgroup/cpu,cpuacct/x'); // cgroup namespace view
  });

  it('normalises a configured parent', () => {
    const m = parseMountinfo(HYBRID);
    expect(parentRelPath('/sandcell', m)).toBe('/sandcell');
    expect(parentRelPath('sandcell/x/', m)).toBe('/sandcell/x');
    expect(parentRelPath('/sys/fs/cgroup/memory/sandcell', m)).toBe('/sandcell');
    expect(parentRelPath('/sys/fs/cgroup/unified/a/b', m)).toBe('/a/b');
  });
});

describe('choice of version (fake hybrid tree)', () => {
  let tmp: string | undefined;
  afterEach(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  function hybrid(v2Controllers: string): { mountinfo: string; procSelfCgroup: string; root: string } {
    tmp = mkdtempSync(join(tmpdir(), 'sandcell-fakehy-'));
    const root = join(tmp, 'cg');
    for (const c of ['memory', 'pids', 'cpu', 'cpuacct', 'unified']) mkdirSync(join(root, c), { recursive: true });
    mkdirSync(join(root, 'memory', 'svc'));
    writeFileSync(join(root, 'unified', 'cgroup.controllers'), v2Controllers);
    writeFileSync(join(root, 'unified', 'cgroup.subtree_control'), v2Controllers);
    const mountinfo = join(tmp, 'mountinfo');
    writeFileSync(
      mountinfo,
      ['memory', 'pids', 'cpu', 'cpuacct'].map((c, i) => `${40 + i} 31 0:${30 + i} / ${root}/${c} rw - cgroup cgroup rw,${c}`).join('\n') +
        `\n50 31 0:50 / ${root}/unified rw - cgroup2 cgroup2 rw\n`,
    );
    const procSelfCgroup = join(tmp, 'self');
    writeFileSync(procSelfCgroup, '4:memory:/svc\n3:pids:/\n2:cpu:/\n1:cpuacct:/\n0::/\n');
    return { mountinfo, procSelfCgroup, root };
  }
  const fakeV1 = {
    populate(dir: string): void {
      const ctrl = dirname(dir).split('/').find((p) => ['memory', 'pids', 'cpu', 'cpuacct'].includes(p));
      const files: Record<string, string[]> = {
        memory: ['memory.limit_in_bytes', 'memory.memsw.limit_in_bytes', 'memory.usage_in_bytes', 'memory.max_usage_in_bytes'],
        pids: ['pids.max'],
        cpu: ['cpu.cfs_quota_us', 'cpu.cfs_period_us'],
        cpuacct: ['cpuacct.usage'],
      };
      writeFileSync(join(dir, 'cgroup.procs'), '');
      for (const f of files[ctrl ?? ''] ?? []) writeFileSync(join(dir, f), '');
    },
    async rmdir(dir: string): Promise<void> {
      rmSync(dir, { recursive: true });
    },
  };

  it('uses v1 when the unified hierarchy has no memory controller (hybrid), placing sandcell-<pid> below our own cgroups', async () => {
    const f = hybrid('hugetlb\n');
    const r = await openCgroupDriver({ mountinfo: f.mountinfo, procSelfCgroup: f.procSelfCgroup, pid: 77, fake: fakeV1 });
    if (!r.driver) throw new Error(r.reason);
    expect(r.driver.version).toBe('v1');
    expect(r.driver.parents).toEqual({
      memory: `${f.root}/memory/svc/sandcell-77`,
      pids: `${f.root}/pids/sandcell-77`,
      cpu: `${f.root}/cpu/sandcell-77`,
      cpuacct: `${f.root}/cpuacct/sandcell-77`,
    });
    const rc = await r.driver.create({ memoryBytes: 4096 * 10, cpus: 1.5, pids: 9 });
    expect(readFileSync(join(f.root, 'memory/svc/sandcell-77', rc.name, 'memory.limit_in_bytes'), 'utf8')).toBe('40960');
    expect(readFileSync(join(f.root, 'memory/svc/sandcell-77', rc.name, 'memory.memsw.limit_in_bytes'), 'utf8')).toBe('40960');
    expect(readFileSync(join(f.root, 'cpu/sandcell-77', rc.name, 'cpu.cfs_quota_us'), 'utf8')).toBe('150000');
    expect(readFileSync(join(f.root, 'pids/sandcell-77', rc.name, 'pids.max'), 'utf8')).toBe('9');
    expect(rc.procsFiles).toHaveLength(4);
    await rc.destroy();
  });

  it('uses v2 when the unified hierarchy has the memory controller', async () => {
    const f = hybrid('memory pids\n');
    const r = await openCgroupDriver({ mountinfo: f.mountinfo, procSelfCgroup: f.procSelfCgroup, pid: 78, fake: { populate: () => undefined, rmdir: fakeV1.rmdir } });
    // The fake's sandcell-78 gets no cgroup.controllers, so v2 is chosen and then refused with a reason.
    expect(r.driver).toBeNull();
    if (!r.driver) expect(r.reason).toMatch(/sandcell-78\/cgroup.subtree_control/);
  });

  it('gives a reason when no hierarchy has a controller', async () => {
    tmp = mkdtempSync(join(tmpdir(), 'sandcell-fakehy-'));
    const mi = join(tmp, 'mi');
    writeFileSync(mi, '22 1 8:1 / / rw - ext4 /dev/sda1 rw\n');
    const pc = join(tmp, 'pc');
    writeFileSync(pc, '0::/\n');
    const r = await openCgroupDriver({ mountinfo: mi, procSelfCgroup: pc });
    expect(r).toEqual({ driver: null, reason: expect.stringMatching(/no cgroup hierarchy/) });
  });
});

describe('a user who may not create cgroups', () => {
  it('gets driver null with a reason naming the cause (run as uid 65534 against the real cgroupfs)', () => {
    requireRoot('the unprivileged part of test/cgroup/detect.test.ts');
    const out = mkdtempSync(join(tmpdir(), 'sandcell-cgbuild-'));
    try {
      chmodSync(out, 0o755);
      const repo = join(import.meta.dirname, '..', '..');
      const tsc = spawnSync(
        process.execPath,
        [join(repo, 'node_modules/typescript/bin/tsc'), '--outDir', out, '--module', 'NodeNext', '--moduleResolution', 'NodeNext', '--target', 'ES2022', '--types', 'node', '--skipLibCheck', '--rootDir', join(repo, 'src'), join(repo, 'src/cgroup/index.ts')],
        { encoding: 'utf8', cwd: repo },
      );
      expect(tsc.status, tsc.stdout + tsc.stderr).toBe(0);
      writeFileSync(join(out, 'package.json'), '{"type":"module"}');
      const script = `import('${out}/cgroup/index.js').then((m) => m.openCgroupDriver()).then((r) => console.log(JSON.stringify({ driver: r.driver !== null, reason: r.reason })))`;
      const run = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', uid: 65534, gid: 65534, cwd: '/' });
      expect(run.status, run.stderr).toBe(0);
      const r = JSON.parse(run.stdout) as { driver: boolean; reason: string };
      expect(r.driver).toBe(false);
      expect(r.reason).toMatch(/not root.*cgroupParent/);
      expect(r.reason).toContain('sandcell-');
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
