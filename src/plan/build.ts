/**
 * Options → native plan: pure data, no I/O beyond reading the host's layout once. Everything that
 * decides what the box looks like is here, where it can be tested without root.
 */
import type { NativePlan, NativeRlimit, NativeStdio } from '../native.js';
import type { ResolvedOptions } from '../options.js';
import { idMap, ownerIds, privileged } from './ids.js';
import { boxRoot, filesIn } from './rootfs.js';

export const SAFE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Linux RLIMIT_* numbers (the same on x86_64 and aarch64). */
export const RLIMIT = { CPU: 0, FSIZE: 1, DATA: 2, STACK: 3, CORE: 4, NPROC: 6, NOFILE: 7, AS: 9 } as const;

export interface PlanExtras {
  cgroupProcs: string[];
  seccomp: Buffer | null;
  seccompListener: boolean;
  /** Memory limit enforced with RLIMIT_AS because no memory cgroup is available. */
  memoryRlimitBytes: number | null;
  /** The supervisor enforces the CPU-time limit from the cgroup; RLIMIT_CPU is only a backstop then. */
  cpuLimitByCgroup: boolean;
  stdio: [NativeStdio, NativeStdio, NativeStdio];
}

function rlimits(o: ResolvedOptions, extras: PlanExtras): NativeRlimit[] {
  const l = o.limits;
  const out: NativeRlimit[] = [
    { resource: RLIMIT.CORE, soft: 0, hard: 0 },
    { resource: RLIMIT.FSIZE, soft: l.fileSizeBytes, hard: l.fileSizeBytes },
    { resource: RLIMIT.NOFILE, soft: l.openFiles, hard: l.openFiles },
    { resource: RLIMIT.STACK, soft: l.stackBytes, hard: l.stackBytes },
    // Counted per user namespace (kernel ≥ 5.14), so each box has its own count; the pids cgroup,
    // where present, is the exact limit and also counts threads.
    { resource: RLIMIT.NPROC, soft: l.processes, hard: l.processes },
  ];
  if (l.cpuTimeMs !== null) {
    // Per process, in whole seconds: SIGXCPU at the soft limit, SIGKILL at the hard one. Without a
    // cgroup it is the limit itself; with one the supervisor ends the whole tree exactly at the
    // limit and this only backs it up, a second later.
    const s = Math.ceil(l.cpuTimeMs / 1000) + (extras.cpuLimitByCgroup ? 1 : 0);
    out.push({ resource: RLIMIT.CPU, soft: s, hard: s + 1 });
  }
  if (extras.memoryRlimitBytes !== null) {
    out.push({ resource: RLIMIT.AS, soft: extras.memoryRlimitBytes, hard: extras.memoryRlimitBytes });
  }
  return out;
}

export type PlanMode = 'run' | 'box' | 'join' | 'prepared';

/**
 * `run`: a box that lives as long as its program. `box`: a box that only builds its root and
 * waits (Sandbox.create). `join`: a program inside such a box, or the one run of a `prepared` box;
 * its root already exists. `prepared`: a box built ahead that waits for one run (a join plan): it
 * holds only what the box is, so that every run of the same shape can use it.
 */
export function buildPlan(o: ResolvedOptions, extras: PlanExtras, mode: PlanMode = 'run'): NativePlan {
  const env = { PATH: SAFE_PATH, ...o.env };
  const writableImage = o.image !== null && o.writable;
  const prepared = mode === 'prepared';
  // A run joining a box makes no user namespace: the box's owner stays its owner.
  const owners = mode === 'join' ? undefined : ownerIds();
  return {
    argv: mode === 'box' || prepared ? [] : o.command,
    env: prepared ? [] : Object.entries(env).map(([k, v]) => `${k}=${v}`),
    cwd: o.cwd,
    staging: '/tmp',
    hostname: 'sandcell',
    uid: o.uid,
    gid: o.gid,
    uidMap: idMap(o.uid, process.geteuid?.() ?? 0),
    gidMap: idMap(o.gid, process.getegid?.() ?? 0),
    denySetgroups: !privileged(),
    ...(owners ? { owners } : {}),
    newNetwork: o.network !== 'host',
    loopback: o.network !== 'host',
    cgroupNamespace: true,
    rootReadOnly: !writableImage,
    rootTmpfs: writableImage ? `mode=755,size=${o.limits.tmpfsBytes}` : 'mode=755,size=4194304,nr_inodes=4096',
    ...(writableImage && o.image !== null ? { image: o.image } : {}),
    ...(mode === 'box' ? { persistent: true } : {}),
    ...(mode === 'join' ? { join: true } : {}),
    ...(prepared ? { prepared: true } : {}),
    mounts:
      mode === 'join'
        ? filesIn(o.cwd, o.files)
        : boxRoot({
            uid: o.uid,
            gid: o.gid,
            cwd: o.cwd,
            tmpfsBytes: o.limits.tmpfsBytes,
            hostNetwork: o.network === 'host',
            mounts: o.mounts,
            image: o.image,
            writable: o.writable,
            files: prepared ? [] : o.files,
          }),
    rlimits: prepared ? [] : rlimits(o, extras),
    seccomp: extras.seccomp,
    seccompListener: extras.seccompListener,
    cgroupProcs: extras.cgroupProcs,
    stdio: extras.stdio,
  };
}
