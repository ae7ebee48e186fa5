/**
 * Options → native plan: pure data, no I/O beyond reading the host's layout once. Every plan the
 * executor receives is made here, where it can be tested without root: a one-shot box with its
 * program, a box without one (built ahead, or one that lives), and a program joining a box that
 * exists. What the run's cgroup offers decides how each limit is enforced, and the plan says so.
 */
import { readFileSync } from 'node:fs';
import { release } from 'node:os';

import type { RunCgroup } from '../cgroup/index.js';
import type { BoxFilter } from '../launch/filter.js';
import { cpuTimeEnforcement, cpuTimeRlimit } from '../limits/cpu-time.js';
import { memoryEnforcement, memoryRlimit } from '../limits/memory.js';
import type { NativeMount, NativePlan, NativeRlimit, NativeStdio } from '../native.js';
import { hostsFileOf } from '../network/private.js';
import type { ResolvedOptions } from '../options.js';
import { privileged } from '../privilege.js';
import type { LimitsEnforced } from '../result.js';
import { idMap, ownerIds, type OwnerIds } from './ids.js';
import { boxRoot, DEVICES, filesIn, tmpfsBounds } from './rootfs.js';

export const SAFE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Linux RLIMIT_* numbers (the same on x86_64 and aarch64). */
export const RLIMIT = { CPU: 0, FSIZE: 1, DATA: 2, STACK: 3, CORE: 4, NPROC: 6, NOFILE: 7, AS: 9 } as const;

/** Where a program runs and what it gets from the launcher. */
interface RunSetupOf<Into extends string, Stdin> {
  /**
   * `new`: a box of its own, built now. `warm`: the one run of a box built ahead, whose init
   * already waits in `cgroup`. `living`: a run inside a living box (Sandbox), entering `cgroup`,
   * its own below the box's.
   */
  into: Into;
  cgroup: RunCgroup | null;
  filter: BoxFilter | null;
  stdin: Stdin;
}

/**
 * The program's stdin: the library's own pipe or /dev/null, or (native layer, tests) a caller's
 * descriptor, which may be a terminal. Never a caller's descriptor in a living box: its runs can
 * pass descriptors to each other, and each run's filter is chosen from its own stdio alone.
 */
export type RunSetup = RunSetupOf<'new' | 'warm', NativeStdio> | RunSetupOf<'living', 'pipe' | 'null'>;

/** A program's plan, and how its limits are enforced. */
export interface PlannedRun {
  plan: NativePlan;
  enforced: LimitsEnforced;
  /**
   * The kept plan of the options' shape that `plan` was made from (null: the options have no
   * shape): the same but for the run's own fields (see `NativeRunPart`), its mounts first. The
   * addon keeps it decoded, and a run sends only its own part.
   */
  shape: NativePlan | null;
}

/** The plan of a program: in a box of its own (`new`), or joining a box that exists. */
export function planRun(o: ResolvedOptions, s: RunSetup): PlannedRun {
  const l = o.limits;
  const cg = s.cgroup;
  const enforced: LimitsEnforced = {
    memory: memoryEnforcement(l.memoryBytes, cg),
    cpuTime: cpuTimeEnforcement(l.cpuTimeMs, cg),
    processes: cg?.enforced.processes === 'cgroup' ? 'cgroup' : 'rlimit',
  };
  const { plan, shape } = basePlan(o, s.into === 'new' ? 'run' : 'join');
  plan.rlimits = rlimits(o, enforced);
  // A warm box's init is in its cgroup already.
  plan.cgroupProcs = cg && s.into !== 'warm' ? [...cg.procsFiles] : [];
  plan.stdio = [s.stdin, 'pipe', 'pipe'];
  if (cg?.cpuTimeFile !== undefined && l.cpuTimeMs !== null) plan.cpuUsageFile = cg.cpuTimeFile;
  if (s.filter) {
    const f = mayHoldTerminal(o, plan) ? s.filter.terminal : s.filter.noTerminal;
    plan.seccomp = f.program;
    plan.seccompListener = f.listener;
    plan.seccompExecPathLo = f.execPathLo;
    plan.seccompExecPathHi = f.execPathHi;
  }
  return { plan, enforced, shape };
}

/**
 * A box without a program. `prepared`: built ahead, it waits for one run (a join plan); it holds
 * only what the box is, so that every run of the same shape can use it. `living`: it builds its
 * root and waits for runs until it is told to end (Sandbox.create); its init enters `cgroupProcs`.
 */
export function planBox(o: ResolvedOptions, kind: 'prepared' | 'living', cgroupProcs: readonly string[] = []): NativePlan {
  const { plan } = basePlan(o, kind);
  plan.cgroupProcs = [...cgroupProcs];
  return plan;
}

/** A box built ahead for these options, and the key of its shape (see `shapeKey`). */
export interface PreparedShape {
  readonly plan: NativePlan;
  readonly key: string;
}

/**
 * Plans of boxes built ahead, per options shape (`o.shape`): such a plan holds nothing of a run's,
 * so every run of the shape would make the same one. Kept while the shape is, and only for the
 * range of owner ids it was made with.
 */
const prepared = new WeakMap<object, PreparedShape & { owners: Readonly<OwnerIds> | undefined }>();

/** `planBox(o, 'prepared')` and its shape key, made once per options shape; the plan is frozen. */
export function preparedShape(o: ResolvedOptions, key: (plan: NativePlan) => string): PreparedShape {
  const owners = ownerIds();
  const kept = o.shape ? prepared.get(o.shape) : undefined;
  if (kept && kept.owners === owners) return kept;
  const plan = planBox(o, 'prepared');
  const made = { plan, key: key(plan), owners };
  if (o.shape) prepared.set(o.shape, deepFreeze(made));
  return made;
}

function deepFreeze<T>(v: T): T {
  // Bytes stay as they are: a typed array cannot be frozen.
  if (typeof v === 'object' && v !== null && !ArrayBuffer.isView(v) && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const k of Object.keys(v)) deepFreeze((v as Record<string, unknown>)[k]);
  }
  return v;
}

function rlimits(o: ResolvedOptions, enforced: LimitsEnforced): NativeRlimit[] {
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
  const cpu = cpuTimeRlimit(l.cpuTimeMs, enforced.cpuTime);
  if (cpu) out.push(cpu);
  const memory = memoryRlimit(l.memoryBytes, enforced.memory);
  if (memory) out.push(memory);
  return out;
}

const NO_STDIO: [NativeStdio, NativeStdio, NativeStdio] = ['null', 'null', 'null'];

/**
 * `run`: a box that lives as long as its program. `living`: a box that only builds its root and
 * waits. `join`: a program inside such a box, or the one run of a `prepared` box; its root
 * already exists. `prepared`: a box built ahead that waits for one run.
 */
function basePlan(o: ResolvedOptions, mode: Mode): { plan: NativePlan; shape: NativePlan | null } {
  if (!o.shape) return { plan: makePlan(o, mode), shape: null };
  const owners = ownerIds();
  let modes = planned.get(o.shape);
  if (!modes) planned.set(o.shape, (modes = new Map()));
  let kept = modes.get(mode);
  if (!kept || kept.owners !== owners) {
    const plan = deepFreeze(makePlan({ ...o, files: [] }, mode));
    kept = { owners, plan, fields: { ...plan } };
    modes.set(mode, kept);
  }
  // The run's files come last in every kind of plan; the list is the run's own.
  return { plan: { ...kept.fields, mounts: [...kept.plan.mounts, ...(mode === 'prepared' ? [] : filesIn(o.cwd, o.files))] }, shape: kept.plan };
}

type Mode = 'run' | 'living' | 'join' | 'prepared';

/**
 * Plans without a run's files, per options shape and kind, frozen: what the box is and what
 * program it runs with which environment is the shape's; each plan made from one is a copy with
 * the run's files, and `planRun` puts in the run's rlimits, cgroup, stdio and filter.
 */
const planned = new WeakMap<object, Map<Mode, KeptPlan>>();

interface KeptPlan {
  owners: Readonly<OwnerIds> | undefined;
  plan: NativePlan;
  /**
   * `plan`'s fields (frozen) on an object that is not, never handed out: what each run's plan is
   * spread from. V8 spreads a frozen object by its slow path, one property at a time.
   */
  fields: NativePlan;
}

/** The memory devices (major 1): the only devices a box's /dev may hold, none of them a terminal. */
const MEMORY_DEVICES = new Map([
  ['null', 3],
  ['zero', 5],
  ['full', 7],
  ['random', 8],
  ['urandom', 9],
]);

/**
 * A box's root opens no terminal: its /dev holds memory devices only (the device tree's nodes, or
 * the host's bound), every other bind is nodev, and what the box mounts itself (tmpfs, proc, an
 * image's overlay) is mounted in its user namespace, whose filesystems the kernel opens no device
 * node on. `planRun` relies on this to leave the rules marked `terminal` out of a run's filter; a
 * root that would break it is refused here, before any box is built from it.
 */
function rootDevices(mounts: NativeMount[]): NativeMount[] {
  for (const m of mounts) {
    if (m.kind === 'devices') {
      const other = DEVICES.find(([name, major, minor]) => major !== 1 || MEMORY_DEVICES.get(name) !== minor);
      if (other) throw new Error(`plan: ${m.target} would hold /dev/${other[0]} (${other[1]}:${other[2]}): ${NOT_A_MEMORY_DEVICE}`);
    }
    if (m.kind === 'bind' && m.noDev !== true && !(m.source.startsWith('/dev/') && MEMORY_DEVICES.has(m.source.slice('/dev/'.length))))
      throw new Error(`plan: ${m.target} would be bound from ${m.source} without nodev: ${NOT_A_MEMORY_DEVICE}`);
  }
  return mounts;
}

const NOT_A_MEMORY_DEVICE = 'a box opens no device but the memory devices, and its seccomp filter leaves out the terminal rules on that ground';

/**
 * Whether a program could hold a terminal, so that its filter keeps the rules marked `terminal`.
 * It holds none when (1) its stdio are the library's pipes or /dev/null, not a caller's
 * descriptor; (2) no terminal device opens in its box: its /dev holds memory devices only and
 * every other bind is nodev (`rootDevices`), down to the mounts below it (`nodevBelowBinds`), and
 * what the box mounts itself is its user namespace's, on which the kernel opens no device; and
 * (3) no process outside the box can hand it one over a Unix socket (SCM_RIGHTS): it reaches a
 * host process's socket only through a host directory bound in (a caller's bind, a directory
 * image) or the host's abstract socket namespace (`network: 'host'`); the default root's system
 * directories and a stored image's layers hold none. A run in a living box has the box's binds
 * and network.
 */
function mayHoldTerminal(o: ResolvedOptions, plan: NativePlan): boolean {
  if (plan.stdio.some((x) => typeof x === 'number') || !nodevBelowBinds()) return true;
  return o.network === 'host' || o.image !== null || o.mounts.some((m) => m.type === 'bind');
}

/**
 * Whether the init's nodev reaches the mounts below each bind: it sets it with
 * mount_setattr(AT_RECURSIVE) (Linux ≥ 5.12). Where that answers ENOSYS (an older kernel, or a
 * seccomp filter over this process, a container's) the init remounts each bind's top mount
 * alone, and a device filesystem mounted below a bound directory (a chroot's /dev) keeps its
 * devices: runs there keep the terminal rules. `kernel` is os.release(), `status` /proc/self/status.
 */
export function nodevReachesSubmounts(kernel: string, status: string): boolean {
  const [major = 0, minor = 0] = kernel.split('.').map((x) => Number.parseInt(x, 10));
  return (major > 5 || (major === 5 && minor >= 12)) && /^Seccomp:\s*0$/m.test(status);
}

let nodevBelow: boolean | null = null;

/** `nodevReachesSubmounts` of this host and process, read once. */
function nodevBelowBinds(): boolean {
  if (nodevBelow === null) {
    let status = '';
    try {
      status = readFileSync('/proc/self/status', 'utf8');
    } catch {
      // No /proc: the filter state is unknown, and the terminal rules stay.
    }
    nodevBelow = nodevReachesSubmounts(release(), status);
  }
  return nodevBelow;
}

function makePlan(o: ResolvedOptions, mode: Mode): NativePlan {
  const env = { PATH: SAFE_PATH, ...o.env };
  // A stored image is always an overlay of its layers (read-only unless writable); a directory
  // image only when writable.
  const layers = o.layers ?? (o.image !== null && o.writable ? [o.image] : null);
  const writableImage = layers !== null && o.writable;
  const program = mode === 'run' || mode === 'join';
  // A run joining a box makes no user namespace: the box's owner stays its owner.
  const owners = mode === 'join' ? undefined : ownerIds();
  return {
    argv: program ? o.command : [],
    env: mode === 'prepared' ? [] : Object.entries(env).map(([k, v]) => `${k}=${v}`),
    cwd: o.cwd,
    staging: '/tmp',
    hostname: o.hostname ?? 'sandcell',
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
    rootTmpfs: writableImage ? `${tmpfsBounds(o.limits.tmpfsBytes)}mode=755` : 'mode=755,size=4194304,nr_inodes=4096',
    ...(layers !== null ? { layers } : {}),
    ...(mode === 'living' ? { persistent: true } : {}),
    ...(mode === 'join' ? { join: true } : {}),
    ...(mode === 'prepared' ? { prepared: true } : {}),
    mounts:
      mode === 'join'
        ? filesIn(o.cwd, o.files)
        : rootDevices(boxRoot({
            uid: o.uid,
            gid: o.gid,
            cwd: o.cwd,
            tmpfsBytes: o.limits.tmpfsBytes,
            hostNetwork: o.network === 'host',
            hostname: o.hostname ?? 'sandcell',
            hostsFile: o.privateNetwork !== null ? hostsFileOf(o.privateNetwork) : null,
            mounts: o.mounts,
            image: o.image,
            layers: o.layers,
            writable: o.writable,
            cwdInImage: o.cwdInImage,
            // A box built ahead holds nothing of a run's; a living box's own files are placed now.
            files: mode === 'prepared' ? [] : o.files,
          })),
    rlimits: [],
    seccomp: null,
    seccompListener: false,
    cgroupProcs: [],
    stdio: NO_STDIO,
  };
}
