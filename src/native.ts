/**
 * The only module that loads and calls the C++ addon. It states the addon's contract in types:
 * the plan the executor receives (pure data, every field re-validated on the C++ side) and what a
 * running box reports back.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { constants as osConstants } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { debugging } from './debug.js';
import { SandboxSetupError } from './errors.js';
import { HOST_ID_BASE, HOST_ID_LAST, ownerIds } from './plan/ids.js';
import { refusalHint } from './privilege.js';

/** One entry of the box's filesystem, applied in order below the new root. */
export type NativeMount =
  | { kind: 'bind'; source: string; target: string; readOnly?: boolean; noSuid?: boolean; noDev?: boolean; noExec?: boolean; optional?: boolean }
  | { kind: 'tmpfs'; target: string; data: string; readOnly?: boolean; noSuid?: boolean; noDev?: boolean; noExec?: boolean }
  | { kind: 'proc'; target: string }
  | { kind: 'dir'; target: string; mode: number; programOwned?: boolean }
  | { kind: 'symlink'; target: string; data: string }
  | { kind: 'file'; target: string; data: string | Buffer; mode: number; programOwned?: boolean }
  /** A clone of this process's device tree (`deviceTree`), moved to `target`. */
  | { kind: 'devices'; target: string };

export interface NativeRlimit {
  resource: number;
  soft: number | 'unlimited';
  hard: number | 'unlimited';
}

export type NativeStdio = 'pipe' | 'null' | number;

/** Everything the executor needs for one box; it knows no policy beyond this. */
export interface NativePlan {
  argv: string[];
  env: string[];
  cwd: string;
  /** Host directory the new root is assembled on, inside the box's private mount namespace. */
  staging: string;
  hostname: string;
  uid: number;
  gid: number;
  uidMap: string;
  gidMap: string;
  /** Write "deny" to /proc/<pid>/setgroups first: what lets an unprivileged caller map its gid. */
  denySetgroups?: boolean;
  /**
   * Host ids (uid and gid alike) the box's user namespace may be owned by: the executor takes a
   * free one for the box's life. Without it the namespace is the caller's (rootless).
   */
  owners?: { first: number; count: number };
  newNetwork: boolean;
  loopback: boolean;
  cgroupNamespace: boolean;
  rootReadOnly: boolean;
  /** Options of the tmpfs the root is assembled on (with `layers`, it holds the overlay's upper layer). */
  rootTmpfs: string;
  /** An overlay root over these image directories, uppermost first. */
  layers?: string[];
  /** The box only builds its root and waits for runs (Sandbox.create). */
  persistent?: boolean;
  /** A run inside a living box (given to spawn() as its second argument), or a prepared box's run (given to its start()). */
  join?: boolean;
  /**
   * The box builds its root and waits for its one run, which `start()` hands it. With `join`: a
   * run staged in a living box, its PID namespace and /proc made, waiting for its plan the same way.
   */
  prepared?: boolean;
  mounts: NativeMount[];
  rlimits: NativeRlimit[];
  seccomp: Buffer | null;
  seccompListener: boolean;
  /** Filter instructions whose constant the init sets to the low / high half of the address of its execve path. */
  seccompExecPathLo?: number[];
  seccompExecPathHi?: number[];
  cgroupProcs: string[];
  /** The cgroup file of the tree's CPU time, read by the executor the moment the program starts. */
  cpuUsageFile?: string;
  stdio: [NativeStdio, NativeStdio, NativeStdio];
}

/** How the box's main process ended, as the init saw it (with the whole tree's usage). */
export interface NativeMainStatus {
  terminated: boolean;
  exited: boolean;
  value: number;
  userUs: number;
  systemUs: number;
  maxRssKiB: number;
  /** process.hrtime.bigint()'s clock (CLOCK_MONOTONIC) when the init saw the main process end. */
  endedNs: bigint;
}

export interface NativeExit {
  /**
   * How the process the addon cloned ended; both null for a run in a living box delivered with
   * its init's report before that process (which holds nothing of the run) was reaped.
   */
  initExitCode: number | null;
  initSignal: number | null;
  /** null when the init was killed before it could report (a hard kill). */
  main: NativeMainStatus | null;
  /** The init's own rusage (includes the children it reaped; its max RSS is not meaningful); zero where `main` stands (see initExitCode). */
  rusage: { userUs: number; systemUs: number; maxRssKiB: number };
  endedNs: bigint;
  violation: { nr: number; arch: number } | null;
}

/**
 * The plan fields that are a run's own; the rest is its shape's (`NativePreparedPlan`). `mounts`
 * are those the run adds after its shape's: files and directories only.
 */
export type NativeRunPart = Pick<NativePlan, 'mounts' | 'rlimits' | 'seccomp' | 'seccompListener' | 'seccompExecPathLo' | 'seccompExecPathHi' | 'cgroupProcs' | 'cpuUsageFile' | 'stdio'>;

/** A plan's shape, checked and encoded by the addon once, for every spawn or start of it. */
export type NativePreparedPlan = object & { readonly __preparedPlan: never };

/** How a box ended, as the addon hands it over (`nativeExit` reads it), valid only during the callback. */
export type NativeExitSlots = BigInt64Array;

export interface NativeBox {
  watch(callback: (exit: NativeExitSlots) => void): void;
  /** A regular file below `dir` in the box (no symlink followed, nothing special read), read off the event loop; errors carry `errno`. */
  readFile(dir: string, name: string, maxBytes: number): Promise<Buffer>;
  /**
   * At most `maxEntries` entries of a directory below `dir` (`truncated` when it has more), read
   * off the event loop: `names` each ended by NUL, `dirs` a byte per name (1: a directory).
   */
  listDir(dir: string, name: string, maxEntries: number): Promise<{ names: string; dirs: Buffer; truncated: boolean }>;
  kill(signal?: number): boolean;
  terminate(): boolean;
  /**
   * Kills and reaps a box that is not watched, and releases its descriptors (its mount namespace
   * a moment later, off the event loop: see `namespacesReleased`).
   */
  close(): void;
  /**
   * Calls back once the process the addon cloned is reaped (at once if it is): a run in a living
   * box is delivered with its init's report while the link and that process may still sit in the
   * run's cgroup. Absent from an addon built before it.
   */
  whenReaped?(callback: () => void): void;
  /**
   * A TCP socket made in the box's network namespace, close-on-exec and non-blocking: listening
   * on the box's 127.0.0.1:`port` (`listen`), or unbound for the caller to connect there.
   */
  netSocket(listen: boolean, port: number): number;
  /**
   * Puts the box on a private network (root only): a veth pair, `hostIf` on the bridge `br0` of
   * the namespace `networkNs` (an fd) and `eth0` in the box, given `address`/`prefix` and brought
   * up, on a libuv worker thread. Errors carry `errno` and `step`.
   */
  netAttach(networkNs: number, hostIf: string, address: string, prefix: number): Promise<void>;
  /** A prepared box's one run (a join plan, whole or as its prepared shape and the run's part); resolves once the program runs. */
  start(plan: NativePlan): Promise<RawStarted>;
  start(shape: NativePreparedPlan, run: NativeRunPart): Promise<RawStarted>;
}

/** What the addon resolves a start with: pid (-1 for a start), stdin, stdout, stderr (-1: none), startedNs, cpuUsageAtStart, marks. */
type RawStarted = [number, number, number, number, bigint, string | null, Readonly<Record<string, number>> | undefined];
type RawSpawned = [...RawStarted, NativeBox];

/** A program that runs: the caller's ends of its stdio, and when it started. */
export interface NativeStarted {
  stdin: number | null;
  stdout: number | null;
  stderr: number | null;
  startedNs: bigint;
  /** Contents of `cpuUsageFile` when the program started. */
  cpuUsageAtStart: string | null;
  /** With NODE_DEBUG=sandcell: ms spent in each step of the addon's worker, the init's work between them. */
  marks?: Readonly<Record<string, number>>;
}

export interface NativeSpawned extends NativeStarted {
  pid: number;
  box: NativeBox;
}

interface Addon {
  setInit(path: string): void;
  spawn(plan: NativePlan, box?: NativeBox): Promise<RawSpawned>;
  spawn(shape: NativePreparedPlan, run: NativeRunPart, box?: NativeBox): Promise<RawSpawned>;
  PreparedPlan: new (plan: NativePlan) => NativePreparedPlan;
  peerCred(fd: number): PeerCredentials;
  /** Absent from an addon built before it: the step times are then not reported. */
  setTimings?(on: boolean): void;
  overlayMark(kind: 'whiteout' | 'opaque', path: string): void;
  overlayIsOpaque(path: string): boolean;
  /** Absent from an addon built before it (which holds no namespace after a box's end). */
  whenReleased?(): Promise<void>;
  cgroupFiles(mkdirs: readonly string[], writes: readonly string[], reads: readonly string[], rmdirs?: readonly string[]): Promise<(string | null)[]>;
  /** Absent from an addon built before it: boxes then bind each device. */
  deviceTree?(spec: DeviceTreeSpec): string | null;
  fileIds(paths: readonly string[]): string;
  RunPipes: new (stdout: number, stderr: number, limitBytes: number, onExceeded: () => void) => NativeRunPipes;
}

/**
 * A run's stdio as `run()` keeps it, on the event loop's own poller (native/run_pipes.h): the
 * output read into a buffer per stream within one budget, the input written, every descriptor
 * owned and closed by it.
 */
export interface NativeRunPipes {
  /** Writes `bytes` to the program's stdin (`fd`, now owned) as the pipe takes them, then closes it. */
  feed(fd: number, bytes: Uint8Array): void;
  /**
   * The run has ended: closes the input, reads the output until end of file, a pause of
   * `quietMs` or `maxMs` in all, then calls back (`truncated`: 1 stdout, 2 stderr).
   */
  end(quietMs: number, maxMs: number, done: (stdout: Buffer | undefined, stderr: Buffer | undefined, truncated: number) => void): void;
}

const packageDir = join(dirname(fileURLToPath(import.meta.url)), '..');
const built = join(packageDir, 'build', 'Release');
const prebuilt = join(packageDir, 'prebuilds', `${process.platform}-${process.arch}`);
/**
 * Where the addon and the init are: a build from source (a clone's `npm ci`, or
 * `npm run build:native` in an installed package) wins over the binaries the package ships for
 * linux-x64 and linux-arm64, so what a developer compiles is what runs.
 */
const nativeDir = existsSync(join(built, 'sandcell.node')) ? built : prebuilt;
/** The init every box runs as its first process (and every run in a living box as its own init). */
export const INIT_PATH = join(nativeDir, 'sandcell-init');
let addon: Addon | null = null;

/** How to get a native build where no prebuilt binary fits: the package runs no install script. */
const BUILD_FROM_SOURCE =
  'build it from source with `npm explore sandcell -- npm run build:native` (needs python3, make, gcc and g++)';

function load(): Addon {
  if (addon) return addon;
  const path = join(nativeDir, 'sandcell.node');
  if (!existsSync(path) || !existsSync(INIT_PATH)) {
    throw new SandboxSetupError(
      'load native addon',
      osConstants.errno.ENOENT,
      'ENOENT',
      `no native binary for ${process.platform}-${process.arch}: none prebuilt in ${prebuilt} (the package ships linux-x64 and linux-arm64) nor built from source in ${built}; ${BUILD_FROM_SOURCE}`,
    );
  }
  const require = createRequire(import.meta.url);
  let a: Addon;
  try {
    a = require(path) as Addon;
  } catch (e) {
    throw new SandboxSetupError(
      'load native addon',
      osConstants.errno.ENOEXEC,
      'ENOEXEC',
      `${path} does not load here (${(e as Error).message}): ${BUILD_FROM_SOURCE}`,
    );
  }
  a.setInit(INIT_PATH);
  a.setTimings?.(debugging);
  addon = a;
  return a;
}

const errnoNames = new Map<number, string>(Object.entries(osConstants.errno).map(([name, n]) => [n, name]));

/** The symbolic name of an errno value ("ENOENT"). */
export function errnoName(errno: number): string {
  return errnoNames.get(errno) ?? `E${errno}`;
}

/** Who is at the other end of a connected Unix socket, as the kernel recorded it at connect(). */
export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
}

/** The peer of the Unix socket `fd` (SO_PEERCRED); throws (with `errno`) for anything else. */
export function peerCredentials(fd: number): PeerCredentials {
  return load().peerCred(fd);
}

/**
 * Marks `path` in an image layer the way overlayfs reads it: a whiteout (a 0/0 character
 * device, hiding the same name in lower layers) or an opaque directory (user.overlay.opaque).
 * Throws (with `errno`) when the kernel refuses.
 */
export function overlayMark(kind: 'whiteout' | 'opaque', path: string): void {
  load().overlayMark(kind, path);
}

/** Whether `path`, a directory of an image layer, carries the opaque mark `overlayMark` sets. */
export function overlayIsOpaque(path: string): boolean {
  return load().overlayIsOpaque(path);
}

/**
 * On a libuv worker thread: removes `rmdirs`, makes `mkdirs`, then writes `writes` (flat: path,
 * value, …), then reads `reads` (null for a read that fails). The first refused rmdir, mkdir or
 * write rejects with { op, path, value, errno } and stops the batch.
 */
export function cgroupFiles(mkdirs: readonly string[], writes: readonly string[], reads: readonly string[], rmdirs: readonly string[] = []): Promise<(string | null)[]> {
  return rmdirs.length > 0 ? load().cgroupFiles(mkdirs, writes, reads, rmdirs) : load().cgroupFiles(mkdirs, writes, reads);
}

/**
 * Which file each path is now, as one string ("dev:ino" each, "-" for none, space-separated):
 * the same paths give the same string exactly while none of them was replaced. Errors other than
 * a missing path throw, carrying `errno` and `path`.
 */
export function fileIds(paths: readonly string[]): string {
  return load().fileIds(paths);
}

/** Reads the output pipes (null: not a pipe) within `limitBytes`; `onExceeded` is called once bytes were dropped. */
export function runPipes(stdout: number | null, stderr: number | null, limitBytes: number, onExceeded: () => void): NativeRunPipes {
  return new (load().RunPipes)(stdout ?? -1, stderr ?? -1, limitBytes, onExceeded);
}

/** A box's /dev: character devices (name, major, minor), symlinks (name, target), empty dirs, and the owner of all but the devices. */
export interface DeviceTreeSpec {
  nodes: readonly (readonly [string, number, number])[];
  links: readonly (readonly [string, string])[];
  dirs: readonly string[];
  uid: number;
  gid: number;
}

/**
 * Makes, once per process, the tree every box's `devices` entry is a clone of: a read-only tmpfs
 * owned by the host's user namespace, so that its device nodes work in a box (whose own user
 * namespace may not make any). Null once made; otherwise why it cannot be (not root, an addon
 * without it), and boxes bind each device instead.
 */
export function deviceTree(spec: DeviceTreeSpec): string | null {
  const a = load();
  return a.deviceTree ? a.deviceTree(spec) : 'the addon has no deviceTree';
}

/**
 * The addon's prepared form of each shape plan (frozen and kept per options shape by
 * src/plan/build.ts), made on its first spawn or start: the shape's fields are read and checked
 * once, and each run sends only its own part.
 */
const preparedPlans = new WeakMap<NativePlan, NativePreparedPlan>();

function preparedPlan(a: Addon, shape: NativePlan): NativePreparedPlan {
  let p = preparedPlans.get(shape);
  if (!p) preparedPlans.set(shape, (p = new a.PreparedPlan(shape)));
  return p;
}

/** The fields of `plan` that are the run's own, `plan` having been made from `shape` (its mounts first). */
function runPart(plan: NativePlan, shape: NativePlan): NativeRunPart {
  return {
    mounts: plan.mounts.length > shape.mounts.length ? plan.mounts.slice(shape.mounts.length) : [],
    rlimits: plan.rlimits,
    seccomp: plan.seccomp,
    seccompListener: plan.seccompListener,
    ...(plan.seccompExecPathLo ? { seccompExecPathLo: plan.seccompExecPathLo } : {}),
    ...(plan.seccompExecPathHi ? { seccompExecPathHi: plan.seccompExecPathHi } : {}),
    cgroupProcs: plan.cgroupProcs,
    ...(plan.cpuUsageFile !== undefined ? { cpuUsageFile: plan.cpuUsageFile } : {}),
    stdio: plan.stdio,
  };
}

/**
 * A started program as the supervisor reads it, with its box. One object literal for a box built
 * now and for a warm box's start, `marks` present either way: its readers (the supervisor, the
 * launcher) see one object shape. Spread from the start's values, it was a shape of its own per
 * run, and each of their property reads went to V8's runtime (about a dozen per run).
 */
function spawned(x: RawStarted | RawSpawned, pid: number, box: NativeBox): NativeSpawned {
  const [, stdin, stdout, stderr, startedNs, cpuUsageAtStart, marks] = x;
  return {
    pid,
    box,
    stdin: stdin < 0 ? null : stdin,
    stdout: stdout < 0 ? null : stdout,
    stderr: stderr < 0 ? null : stderr,
    startedNs,
    cpuUsageAtStart,
    marks,
  };
}

/**
 * Starts a box (or, with `plan.join`, a run inside `box`); setup failures become SandboxSetupError
 * naming the stage. `shape`: the kept plan `plan` was made from (its fields but the run's own the
 * same, its mounts first), whose prepared form the addon keeps.
 */
export async function nativeSpawn(plan: NativePlan, box?: NativeBox, shape?: NativePlan | null): Promise<NativeSpawned> {
  const a = load();
  let raw: RawSpawned;
  try {
    if (shape) raw = await (box ? a.spawn(preparedPlan(a, shape), runPart(plan, shape), box) : a.spawn(preparedPlan(a, shape), runPart(plan, shape)));
    else raw = await (box ? a.spawn(plan, box) : a.spawn(plan));
  } catch (e) {
    throw setupError(e);
  }
  return spawned(raw, raw[0], raw[7]);
}

/** Starts the run of `warm`, a box spawned with `prepared` (`shape` as for `nativeSpawn`), and gives it as `nativeSpawn` does; setup failures become SandboxSetupError. */
export async function nativeStart(warm: Pick<NativeSpawned, 'pid' | 'box'>, plan: NativePlan, shape?: NativePlan | null): Promise<NativeSpawned> {
  const box = warm.box;
  let raw: RawStarted;
  try {
    raw = await (shape ? box.start(preparedPlan(load(), shape), runPart(plan, shape)) : box.start(plan));
  } catch (e) {
    throw setupError(e);
  }
  return spawned(raw, warm.pid, box);
}

/** How the box ended (`NativeBox.watch`'s slots, in native/addon.cc's order). */
export function nativeExit(x: NativeExitSlots): NativeExit {
  const kind = Number(x[2]);
  return {
    initExitCode: x[0]! < 0n ? null : Number(x[0]),
    initSignal: x[1]! < 0n ? null : Number(x[1]),
    main:
      kind === 0
        ? null
        : {
            terminated: kind === EXIT_TERMINATED,
            exited: kind === EXIT_EXITED,
            value: Number(x[3]),
            userUs: Number(x[4]),
            systemUs: Number(x[5]),
            maxRssKiB: Number(x[6]),
            endedNs: x[7]!,
          },
    rusage: { userUs: Number(x[8]), systemUs: Number(x[9]), maxRssKiB: Number(x[10]) },
    endedNs: x[11]!,
    violation: x[12] === 0n ? null : { nr: Number(x[13]), arch: Number(x[14]) },
  };
}

/** native/wire.h's ExitKind. */
const EXIT_EXITED = 1;
const EXIT_TERMINATED = 3;

function setupError(e: unknown): unknown {
  const err = e as { stage?: unknown; errno?: unknown };
  if (typeof err.stage === 'string' && typeof err.errno === 'number') {
    return new SandboxSetupError(err.stage, err.errno, errnoName(err.errno), refusalHint(err.stage, errnoName(err.errno), { owner: ownerIds(), box: [HOST_ID_BASE, HOST_ID_LAST] }));
  }
  return e;
}

/**
 * Resolves once no ended box's mount namespace is held any more. The addon holds each box's mount
 * namespace so that the box's init exits without tearing the mount tree down (the run's result
 * does not wait for it); once the box is reaped the tree goes on a libuv worker thread, and until
 * then this process has one more descriptor per box.
 */
export function namespacesReleased(): Promise<void> {
  return addon?.whenReleased?.() ?? Promise.resolve();
}
