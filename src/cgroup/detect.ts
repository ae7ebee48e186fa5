/**
 * Finding the cgroup hierarchies, choosing v1 or v2, creating `sandcell-<pid>`, and removing the
 * ones left by dead processes.
 *
 * Choice: v2 when the unified hierarchy has the memory controller (pure-v2 systems); else v1 when
 * a v1 hierarchy has it (v1 and hybrid systems, where /sys/fs/cgroup/unified is mounted with no
 * controllers); else whichever has pids/cpu. `driver: null` with a reason when no hierarchy
 * offers a controller or sandcell may not create cgroups there (not root, no delegation,
 * read-only cgroupfs, v2 parent that does not delegate controllers).
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join, relative } from 'node:path';
import type { CgroupDriver, CgroupVersion, DetectOptions, OpenResult } from './driver.js';
import { RUN_DIR_RE, SANDCELL_DIR_RE, sandcellDirName } from './common.js';
import { descendantsDeepestFirst, mkdirCgroup, pidAlive, readPids, rmdirCgroup, subdirs } from './fs.js';
import { type CgroupMount, dirOf, parentRelPath, parseMountinfo, parseProcCgroup, readText, WANTED_CONTROLLERS } from './hierarchy.js';
import { V1Driver, type V1Hierarchy } from './v1.js';
import { readControllers, readSubtreeControl, enableSubtree, V2Driver, V2_WANTED } from './v2.js';

interface Layout {
  mounts: CgroupMount[];
  v2?: { mount: CgroupMount; base: string; controllers: string[] };
  /** One entry per v1 hierarchy holding a wanted controller. */
  v1: { mount: CgroupMount; base: string; controllers: string[] }[];
}

/** Reads mountinfo and /proc/self/cgroup and computes each hierarchy's base dir (the dir `sandcell-<pid>` goes in). */
function layout(opts: DetectOptions): Layout {
  const mounts = parseMountinfo(readText(opts.mountinfo ?? '/proc/self/mountinfo'));
  const self = parseProcCgroup(readText(opts.procSelfCgroup ?? '/proc/self/cgroup'));
  const rel = opts.parent !== undefined ? parentRelPath(opts.parent, mounts) : undefined;
  const out: Layout = { mounts, v1: [] };
  const v2m = mounts.find((m) => m.version === 'v2' && self.v2 !== undefined);
  if (v2m && self.v2 !== undefined) {
    out.v2 = { mount: v2m, base: dirOf(v2m, rel ?? self.v2), controllers: readControllers(v2m.mountPoint) };
  }
  const seen = new Set<string>();
  for (const m of mounts) {
    if (m.version !== 'v1' || seen.has(m.mountPoint)) continue;
    const ctrls = m.controllers.filter((c) => (WANTED_CONTROLLERS as readonly string[]).includes(c));
    if (ctrls.length === 0) continue;
    // The same hierarchy can be mounted twice; use the first mount of it.
    if (out.v1.some((h) => h.controllers.some((c) => ctrls.includes(c)))) continue;
    const own = self.v1.get(ctrls[0] ?? '');
    if (own === undefined && rel === undefined) continue;
    seen.add(m.mountPoint);
    out.v1.push({ mount: m, base: dirOf(m, rel ?? own ?? '/'), controllers: ctrls });
  }
  return out;
}

function chooseVersion(l: Layout, forced: CgroupVersion | undefined): CgroupVersion | null {
  if (forced) return forced;
  const v1 = new Set(l.v1.flatMap((h) => h.controllers));
  const v2 = new Set(l.v2?.controllers ?? []);
  if (v2.has('memory')) return 'v2';
  if (v1.has('memory')) return 'v1';
  if (v2.has('pids') || v2.has('cpu')) return 'v2';
  if (v1.size > 0) return 'v1';
  return null;
}

const errCode = (e: unknown): string => (e as NodeJS.ErrnoException).code ?? String(e);
const errText = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** What to delegate, for a process that may not create cgroups where it is (docs/containers.md). */
const DELEGATE =
  'cgroup delegation is missing: give this process a writable cgroup v2 subtree with memory, pids and cpu in the cgroup.subtree_control of its parent ' +
  '(in a container: --cgroupns=private and a writable /sys/fs/cgroup, Docker: --security-opt writable-cgroups=true; under systemd: Delegate=yes) ' +
  'and pass an empty cgroup there as cgroupParent';

function permissionHint(code: string): string {
  if (code === 'EROFS') return `the cgroup filesystem is mounted read-only here (EROFS): ${DELEGATE}`;
  if (code === 'EACCES' || code === 'EPERM') {
    return `not permitted (${code}${process.getuid?.() === 0 ? '' : ', not root, and this cgroup is not delegated to this user'}): ${DELEGATE}`;
  }
  return code;
}

/** A fake tree's kernel populates each dir `mkdir -p` created, from `first` down to `last`. */
function populateDown(fake: NonNullable<DetectOptions['fake']>, first: string, last: string): void {
  const rest = relative(first, last);
  let d = first;
  fake.populate(d);
  for (const part of rest ? rest.split('/') : []) fake.populate((d = join(d, part)));
}

export async function openCgroupDriver(opts: DetectOptions = {}): Promise<OpenResult> {
  let l: Layout;
  try {
    l = layout(opts);
  } catch (e) {
    return { driver: null, reason: `cannot read the cgroup layout: ${errText(e)}` };
  }
  const version = chooseVersion(l, opts.version);
  if (version === null) {
    return { driver: null, reason: 'no cgroup hierarchy offers the memory, pids or cpu controller' };
  }
  const pid = opts.pid ?? process.pid;
  return version === 'v2' ? openV2(l, opts, pid) : openV1(l, opts, pid);
}

async function openV1(l: Layout, opts: DetectOptions, pid: number): Promise<OpenResult> {
  if (l.v1.length === 0) return { driver: null, reason: 'no cgroup v1 hierarchy with memory, pids, cpu or cpuacct is mounted' };
  const name = sandcellDirName(pid);
  const hierarchies: V1Hierarchy[] = [];
  const warnings: string[] = [];
  const failed = new Map<string, string[]>(); // hint → dirs
  for (const h of l.v1) {
    const sandcellDir = join(h.base, name);
    try {
      if (opts.parent !== undefined) {
        const first = await mkdir(h.base, { recursive: true });
        if (first !== undefined && opts.fake) populateDown(opts.fake, first, h.base);
      }
      await mkdirCgroup(sandcellDir, opts.fake, true);
      hierarchies.push({ controllers: h.controllers, sandcellDir });
    } catch (e) {
      const hint = permissionHint((e as { code?: string }).code ?? errCode(e));
      failed.set(hint, [...(failed.get(hint) ?? []), sandcellDir]);
      warnings.push(`cgroup v1 ${h.controllers.join(',')}: cannot create ${sandcellDir}: ${hint}`);
    }
  }
  if (hierarchies.length === 0) {
    return { driver: null, reason: [...failed].map(([hint, dirs]) => `cgroup v1: cannot create ${dirs.join(', ')}: ${hint}`).join('; ') };
  }
  return { driver: new V1Driver(hierarchies, name, opts.fake, warnings) };
}

async function openV2(l: Layout, opts: DetectOptions, pid: number): Promise<OpenResult> {
  if (!l.v2) return { driver: null, reason: 'cgroup v2 is not mounted (or /proc/self/cgroup has no 0:: line)' };
  const { base } = l.v2;
  const warnings: string[] = [];
  // Only the host's root cgroup is exempt from the no-internal-processes rule, and it alone has no
  // cgroup.type: the root of a cgroup namespace (a container's /sys/fs/cgroup) is not exempt.
  const isRootCgroup = base === l.v2.mount.mountPoint && !existsSync(join(base, 'cgroup.type'));
  if (opts.parent !== undefined) {
    // A configured parent: create it if missing, and hand it the controllers (the only write to a cgroup we did not create).
    try {
      const first = await mkdir(base, { recursive: true });
      if (first !== undefined && opts.fake) populateDown(opts.fake, first, base);
    } catch (e) {
      return { driver: null, reason: `cannot create the cgroup parent ${base}: ${permissionHint(errCode(e))}` };
    }
    const missing = V2_WANTED.filter((c) => readControllers(base).includes(c) && !readSubtreeControl(base).includes(c));
    if (missing.length > 0) {
      if (!isRootCgroup && readPids(join(base, 'cgroup.procs')).length > 0) {
        return {
          driver: null,
          reason:
            `the cgroup parent ${base} holds processes, so cgroup v2 does not let it enable ${missing.join(', ')} for its children ` +
            '(no-internal-processes rule); give an empty cgroup as cgroupParent (e.g. move the service into a leaf such as <service>/main and pass <service>/sandcell)',
        };
      }
      try {
        await enableSubtree(base, V2_WANTED);
      } catch (e) {
        return { driver: null, reason: `cannot enable controllers in ${base}/cgroup.subtree_control: ${permissionHint(errCode(e))}` };
      }
    }
  }
  const delegated = V2_WANTED.filter((c) => readSubtreeControl(base).includes(c));
  if (delegated.length === 0) {
    const procs = readPids(join(base, 'cgroup.procs')).length;
    return {
      driver: null,
      reason:
        `cgroup v2: ${base} does not enable memory, pids or cpu for its children (its cgroup.subtree_control is empty` +
        (procs > 0 && !isRootCgroup ? ' and it holds processes, so it cannot: no-internal-processes rule' : '') +
        `): ${DELEGATE}`,
    };
  }
  const sandcellDir = join(base, sandcellDirName(pid));
  let created: boolean;
  try {
    created = await mkdirCgroup(sandcellDir, opts.fake, true);
  } catch (e) {
    const code = (e as { code?: string }).code ?? errCode(e);
    return { driver: null, reason: `cannot create ${sandcellDir}: ${permissionHint(code)}` };
  }
  let enabled: string[];
  try {
    enabled = await enableSubtree(sandcellDir, V2_WANTED);
  } catch (e) {
    enabled = [];
    warnings.push(errText(e));
  }
  if (enabled.length === 0) {
    if (created) await rmdirCgroup(sandcellDir, opts.fake, 0).catch(() => undefined);
    return { driver: null, reason: `cannot enable ${delegated.join(', ')} in ${sandcellDir}/cgroup.subtree_control${warnings.length ? `: ${warnings.join('; ')}` : ''}` };
  }
  for (const c of V2_WANTED) if (!enabled.includes(c)) warnings.push(`cgroup v2 controller ${c} is not available below ${base}`);
  const driver: CgroupDriver = new V2Driver(sandcellDir, enabled, opts.fake, warnings);
  return { driver };
}

/**
 * Removes `sandcell-<pid>` dirs (with their `run-*` children) left by dead processes under each
 * hierarchy's base dir. Only dirs matching that pattern, only when that pid is not alive (and is
 * not this process), only cgroups with no processes left. Returns the dirs removed.
 */
export async function cleanupOrphans(opts: DetectOptions = {}): Promise<{ removed: string[] }> {
  const l = layout(opts);
  const self = opts.pid ?? process.pid;
  const bases = [...new Set([...(l.v2 ? [l.v2.base] : []), ...l.v1.map((h) => h.base)])];
  const removed: string[] = [];
  for (const base of bases) {
    for (const entry of subdirs(base)) {
      const m = SANDCELL_DIR_RE.exec(entry);
      if (!m) continue;
      const pid = Number(m[1]);
      if (pid === self || pidAlive(pid)) continue;
      const dir = join(base, entry);
      const tree = descendantsDeepestFirst(dir);
      // Only what sandcell makes below it (run-*), and nothing with processes in it.
      const foreign = tree.some((d) => !RUN_DIR_RE.test(d.slice(dir.length + 1).split('/')[0] ?? ''));
      if (foreign) continue;
      if ([dir, ...tree].some((d) => readPids(join(d, 'cgroup.procs')).length > 0)) continue;
      try {
        for (const d of tree) {
          await rmdirCgroup(d, opts.fake, 200);
          removed.push(d);
        }
        await rmdirCgroup(dir, opts.fake, 200);
        removed.push(dir);
      } catch {
        /* became busy or not ours to remove: leave the rest */
      }
    }
  }
  return { removed };
}

/**
 * For tests: every directory named `sandcell*` under the cgroup mounts (it does not descend into
 * them). `pid` restricts it to `sandcell-<pid>`.
 */
export function listSandcellCgroups(opts: { mountinfo?: string; pid?: number; maxDepth?: number } = {}): string[] {
  const mounts = parseMountinfo(readText(opts.mountinfo ?? '/proc/self/mountinfo'));
  const out: string[] = [];
  const want = opts.pid === undefined ? undefined : sandcellDirName(opts.pid);
  const maxDepth = opts.maxDepth ?? 12;
  const walk = (dir: string, depth: number): void => {
    if (depth > maxDepth) return;
    for (const name of subdirs(dir)) {
      const child = join(dir, name);
      if (name.startsWith('sandcell')) {
        if (want === undefined || name === want) out.push(child);
      } else {
        walk(child, depth + 1);
      }
    }
  };
  for (const m of new Map(mounts.map((m) => [m.mountPoint, m])).values()) walk(m.mountPoint, 1);
  return out.sort();
}
