/**
 * A fake cgroupfs in a temp dir, for testing the drivers' logic where the real kernel does not
 * offer it (cgroup v2 controllers on this machine). It mimics what the kernel does by itself:
 * populating a new cgroup dir with its interface files (depending on the controllers its parent
 * enables and on kernel features), and rmdir refusing a cgroup with children or processes.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import type { FakeCgroupFs } from '../../src/cgroup/index.js';

export interface FakeFeatures {
  /** memory.peak (5.19+) */ peak?: boolean;
  /** memory.swap.max (swap accounting) */ swap?: boolean;
  /** memory.oom.group (4.19+) */ oomGroup?: boolean;
  /** cgroup.kill (5.14+) */ kill?: boolean;
  /** pids.peak (6.1+) */ pidsPeak?: boolean;
}

const ALL: Required<FakeFeatures> = { peak: true, swap: true, oomGroup: true, kill: true, pidsPeak: true };

export class FakeV2Tree {
  readonly tmp: string;
  readonly root: string;
  readonly mountinfo: string;
  readonly procSelfCgroup: string;
  readonly features: Required<FakeFeatures>;
  /** Snapshots (file → content) of the dirs rmdir()ed, keyed by dir. */
  readonly removed = new Map<string, Record<string, string>>();
  readonly fake: FakeCgroupFs;

  constructor(selfPath: string, features: FakeFeatures = {}) {
    this.features = { ...ALL, ...features };
    this.tmp = mkdtempSync(join(tmpdir(), 'sandcell-fakecg-'));
    this.root = join(this.tmp, 'cgroup');
    mkdirSync(this.root);
    this.mountinfo = join(this.tmp, 'mountinfo');
    writeFileSync(
      this.mountinfo,
      [
        `22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw`,
        `31 22 0:28 / ${this.root} rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot`,
        '',
      ].join('\n'),
    );
    this.procSelfCgroup = join(this.tmp, 'self-cgroup');
    writeFileSync(this.procSelfCgroup, `0::${selfPath}\n`);
    // The root cgroup: every controller, none enabled yet.
    this.write('/', 'cgroup.controllers', 'cpuset cpu io memory hugetlb pids rdma misc\n');
    this.write('/', 'cgroup.subtree_control', '');
    this.write('/', 'cgroup.procs', '1\n');
    this.fake = {
      populate: (dir) => this.populate(dir),
      rmdir: async (dir) => this.rmdir(dir),
    };
  }

  /** Absolute path of a cgroup path ("/a/b"). */
  path(cg: string, file?: string): string {
    const d = join(this.root, cg);
    return file ? join(d, file) : d;
  }

  write(cg: string, file: string, content: string): void {
    mkdirSync(this.path(cg), { recursive: true });
    writeFileSync(this.path(cg, file), content);
  }

  read(cg: string, file: string): string {
    return readFileSync(this.path(cg, file), 'utf8');
  }

  /** Makes a cgroup as the kernel would (below an existing one), with optional processes. */
  mkcg(cg: string, procs: number[] = []): void {
    mkdirSync(this.path(cg), { recursive: true });
    this.populate(this.path(cg));
    if (procs.length) this.write(cg, 'cgroup.procs', procs.map((p) => `${p}\n`).join(''));
  }

  /** Every file under the root with its content, keyed by path relative to the root. */
  snapshot(): Record<string, string> {
    const out: Record<string, string> = {};
    const walk = (d: string): void => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        const p = join(d, e.name);
        if (e.isDirectory()) walk(p);
        else out[relative(this.root, p)] = readFileSync(p, 'utf8');
      }
    };
    walk(this.root);
    return out;
  }

  private populate(dir: string): void {
    const parentSubtree = readFileSync(join(dirname(dir), 'cgroup.subtree_control'), 'utf8')
      .split(/\s+/)
      .filter(Boolean)
      .map((c) => c.replace(/^\+/, ''));
    const f = this.features;
    const files: Record<string, string> = {
      'cgroup.controllers': parentSubtree.join(' ') + '\n',
      'cgroup.subtree_control': '',
      'cgroup.procs': '',
      'cgroup.events': 'populated 0\nfrozen 0\n',
      'cpu.stat': 'usage_usec 0\nuser_usec 0\nsystem_usec 0\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n',
    };
    if (f.kill) files['cgroup.kill'] = '';
    if (parentSubtree.includes('memory')) {
      files['memory.max'] = 'max\n';
      files['memory.current'] = '0\n';
      files['memory.events'] = 'low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n';
      if (f.peak) files['memory.peak'] = '0\n';
      if (f.swap) files['memory.swap.max'] = 'max\n';
      if (f.oomGroup) files['memory.oom.group'] = '0\n';
    }
    if (parentSubtree.includes('pids')) {
      files['pids.max'] = 'max\n';
      files['pids.current'] = '0\n';
      files['pids.events'] = 'max 0\n';
      if (f.pidsPeak) files['pids.peak'] = '0\n';
    }
    if (parentSubtree.includes('cpu')) {
      files['cpu.max'] = 'max 100000\n';
      files['cpu.weight'] = '100\n';
    }
    for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content);
  }

  private rmdir(dir: string): void {
    const entries = readdirSync(dir, { withFileTypes: true });
    const busy = (): never => {
      throw Object.assign(new Error(`EBUSY: fake cgroup busy, rmdir '${dir}'`), { code: 'EBUSY', errno: -16 });
    };
    if (entries.some((e) => e.isDirectory())) busy();
    if (readFileSync(join(dir, 'cgroup.procs'), 'utf8').trim() !== '') busy();
    const snap: Record<string, string> = {};
    for (const e of entries) snap[e.name] = readFileSync(join(dir, e.name), 'utf8');
    this.removed.set(dir, snap);
    rmSync(dir, { recursive: true });
  }

  exists(cg: string): boolean {
    try {
      return statSync(this.path(cg)).isDirectory();
    } catch {
      return false;
    }
  }

  dispose(): void {
    rmSync(this.tmp, { recursive: true, force: true });
  }
}
