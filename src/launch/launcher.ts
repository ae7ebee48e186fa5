/**
 * The one way a program is started. The launcher resolves the run's cgroup and seccomp filter,
 * decides where the program runs (a warm box built ahead for its shape, a box built now, or a
 * living box it joins), has the plan made (src/plan/build.ts), starts it through the addon and
 * hands it to the supervisor (src/supervise/process.ts). Nothing is left behind if it fails.
 * Living boxes themselves (Sandbox.create) are built here too.
 */
import type { RunCgroup } from '../cgroup/index.js';
import { debug, debugging, Stages, type WarmOutcome } from '../debug.js';
import { AbortError } from '../errors.js';
import { nativeSpawn, nativeStart, type NativePlan, type NativeSpawned } from '../native.js';
import { BoxNetwork } from '../network/box.js';
import type { ResolvedOptions } from '../options.js';
import { planBox, planRun, preparedShape, type PlannedRun } from '../plan/build.js';
import { cgroupsFor, warmBoxes } from '../runtime.js';
import { SandboxProcess } from '../supervise/process.js';
import { cgroupLimits, type CgroupPool } from './cgroups.js';
import { filterFor, type BoxFilter } from './filter.js';
import { startTurn } from './turns.js';
import { bindIdentity, shapeKey, stillBound, type WarmBox } from './warm.js';

/** A box that lives across runs (Sandbox): its init, and the cgroup holding the box's limits. */
export interface LivingBox {
  native: NativeSpawned;
  cgroup: RunCgroup | null;
  /** What the box is: its runs' shape, what a staged run is made of. */
  readonly options: ResolvedOptions;
  /**
   * The next run, staged ahead (`stageRun`): joined, its PID namespace and /proc made, waiting
   * for its plan; null while none is staged or being staged.
   */
  staged: Promise<WarmBox | null> | null;
  /** Whether `staged` has settled: a run takes a staged run only once it is made. */
  stagedReady: boolean;
  /** Whether runs are staged ahead: not in a box built for one run, nor once it is being destroyed. */
  staging: boolean;
}

export interface Launch {
  stdin: 'pipe' | 'null';
  /** `streams` for the caller to read (spawn), or `collect`: kept in memory for the result (run). */
  output: 'streams' | 'collect';
  /** Run inside this living box instead of a box of its own. */
  into?: LivingBox;
  /**
   * Test-only: alters the finished plan, to show that the security suite detects a weakened box.
   * Not reachable from the public API (src/index.ts does not export launch).
   */
  weakenPlan?: (plan: NativePlan) => void;
  /** The run's stage clock, started when its options were resolved (null: nobody listens). */
  stages?: Stages | null;
}

/**
 * Starts a program: in a box built ahead for its shape when one waits (and then another is built
 * for the next run), else in a box built now; or in the living box it is given.
 */
export async function launch(o: ResolvedOptions, how: Launch): Promise<SandboxProcess> {
  // Starts made in one tick go one per turn of the event loop (an abort meanwhile is seen below).
  const turn = startTurn();
  if (turn) await turn;
  if (o.signal?.aborted) throw new AbortError(o.signal.reason);
  const stages = how.stages ?? null;
  const filter = filterFor(o.seccomp);
  const { pool, reason } = await cgroupsFor(o.cgroupParent);
  const ctx: Context = { o, how, filter, pool, noCgroupReason: reason, stages };
  // A weakened plan (tests) must build its own box from it.
  if (how.into) return startLiving(ctx, how.into);
  const off = how.weakenPlan ? 'a weakened plan' : !warmBoxes.enabled ? 'setWarmBoxes(0)' : null;
  if (off !== null) return startNew(ctx, `off: ${off}`);
  const { plan: shape, key } = preparedShape(o, (plan) => shapeKey(o.cgroupParent, plan));
  const warm = warmBoxes.take(key);
  let proc: SandboxProcess | null = null;
  let outcome: WarmOutcome = 'miss';
  if (warm) {
    try {
      proc = await startWarm(ctx, warm);
    } catch (e) {
      // Whatever went wrong (the box died meanwhile, a limit its setup already exceeds, a program
      // that cannot start), a box built now for this run tries again and reports it.
      outcome = `discarded: ${e instanceof Error ? e.message : String(e)}`;
      await discardWarm(warm);
    }
  }
  proc ??= await startNew(ctx, outcome);
  // The next box of this shape is built once this run is over for its caller (its output
  // collected too), not while it starts or runs, nor ahead of the caller's continuation.
  const again = buildAgain(key, shape, pool, o.privateNetwork);
  proc.settled().then(again, again);
  return proc;
}

/**
 * What builds the next box of a shape. Made outside launch(): the warm pool keeps it until the
 * shape's next run, and a closure made in launch() would keep launch()'s scope, this run's
 * options (their signal, stdin and files) with it.
 */
function buildAgain(key: string, plan: NativePlan, pool: CgroupPool | null, network: string | null): () => void {
  return () => warmBoxes.want(key, () => prepareBox(plan, pool, network, plan));
}

interface Context {
  o: ResolvedOptions;
  how: Launch;
  filter: BoxFilter | null;
  pool: CgroupPool | null;
  noCgroupReason: string | null;
  stages: Stages | null;
}

/**
 * The run's limits go on the warm box's cgroup, then the init gets the run's plan and stdio. The
 * host side of the box's network (egress proxy, published ports) is opened in between: the
 * program finds it there from its first instruction.
 */
async function startWarm(
  c: Context,
  warm: WarmBox,
  box: 'warm' | 'new' | 'living' = 'warm',
  outcome: WarmOutcome = 'hit',
): Promise<SandboxProcess> {
  if (!stillBound(warm)) throw new Error('a bind source of the warm box was replaced');
  if (warm.cgroup) await warm.cgroup.applyLimits(cgroupLimits(c.o));
  c.stages?.mark('cgroup');
  const run = planRun(c.o, { into: 'warm', cgroup: warm.cgroup, filter: c.filter, stdin: c.how.stdin });
  c.stages?.mark('plan');
  // A living box's network is the box's, opened with it for all its runs.
  const network = box !== 'living' && BoxNetwork.wanted(c.o) ? await BoxNetwork.open(warm.native, c.o, warm.network) : null;
  let started;
  try {
    started = await nativeStart(warm.native, run.plan, run.shape);
  } catch (e) {
    await network?.close();
    throw e;
  }
  c.stages?.mark('start');
  c.stages?.steps('start', started.marks);
  return supervise(c, started, warm.cgroup, run, box, outcome, network);
}

/**
 * A run in a living box: its staged run when one is ready, else it joins now (and a run being
 * staged is left for the next one). Waiting for a run still being staged doubled the time per
 * test of a judge running tests back to back: the staging, begun as the previous run ended,
 * competes with that run's teardown, and the wait is the whole of it. Once a run ends, the next
 * run is staged. A weakened plan (tests) joins now, from its own plan.
 */
async function startLiving(c: Context, into: LivingBox): Promise<SandboxProcess> {
  const staging = c.how.weakenPlan || !into.stagedReady ? null : into.staged;
  const off = c.how.weakenPlan ? 'a weakened plan' : into.staging ? null : 'a box built for one run';
  let outcome: WarmOutcome = off === null ? 'miss' : `off: ${off}`;
  let proc: SandboxProcess | null = null;
  if (staging) {
    into.staged = null;
    into.stagedReady = false;
    const staged = await staging;
    c.stages?.mark('staged');
    if (staged) {
      try {
        proc = await startWarm(c, staged, 'living', 'hit');
      } catch (e) {
        outcome = `discarded: ${e instanceof Error ? e.message : String(e)}`;
        await discardWarm(staged);
      }
    }
  }
  const again = (): void => stageRun(into);
  try {
    proc ??= await startNew(c, outcome);
  } catch (e) {
    again();
    throw e;
  }
  proc.wait().then(again, again);
  return proc;
}

/**
 * Has the next run of a living box made ahead, unless one is (or is being) made or the box does not
 * stage runs: the box's run process joined, the link, the run's PID namespace and its init with a
 * fresh /proc, waiting for the run's plan and stdio (a join plan with `prepared`). Its run cgroup
 * is made below the box's without limits; the run writes its own, as in a warm box. The staged
 * processes are the run's, counted in the box's processes limit as a running run's are.
 */
export function stageRun(box: LivingBox): void {
  if (!box.staging || box.staged) return;
  const staged = stage(box);
  box.staged = staged;
  void staged.then(() => {
    if (box.staged === staged) box.stagedReady = true;
  });
}

async function stage(box: LivingBox): Promise<WarmBox | null> {
  const began = debugging ? performance.now() : 0;
  let cgroup: RunCgroup | null = null;
  try {
    const { pool } = await cgroupsFor(box.options.cgroupParent);
    cgroup = pool && box.cgroup ? await pool.take({}, box.cgroup) : null;
    const { plan } = planRun(box.options, { into: 'living', cgroup, filter: null, stdin: 'null' });
    // Only what the box is: the program, its environment, files, limits and stdio come with its run.
    const staged: NativePlan = { ...plan, argv: [], env: [], mounts: [], rlimits: [], stdio: ['null', 'null', 'null'], prepared: true };
    delete staged.cpuUsageFile;
    const native = await nativeSpawn(staged, box.native.box);
    const warm: WarmBox = { native, cgroup, binds: bindIdentity(staged), network: null };
    if (debugging) debug({ event: 'staged', box: box.native.pid, pid: native.pid, ms: performance.now() - began, steps: native.marks });
    // The box began to be destroyed meanwhile: nothing of the staged run may stay.
    if (!box.staging) {
      await discardWarm(warm);
      return null;
    }
    return warm;
  } catch (e) {
    if (cgroup) await cgroup.destroy();
    if (debugging) debug({ event: 'staged', box: box.native.pid, pid: null, ms: performance.now() - began, error: e instanceof Error ? e.message : String(e) });
    return null;
  }
}

/** Stops staging runs in a living box and ends the staged one: its processes, its cgroup. */
export async function endStaging(box: LivingBox): Promise<void> {
  box.staging = false;
  const staging = box.staged;
  box.staged = null;
  box.stagedReady = false;
  const staged = await staging;
  if (staged) await discardWarm(staged);
}

/** Builds the box now (or the run's process in a living box): cgroup first, then the native spawn. */
async function startNew(c: Context, outcome: WarmOutcome): Promise<SandboxProcess> {
  const into = c.how.into;
  if (!into && BoxNetwork.wanted(c.o)) {
    // The host side of its network must be in place before the program runs: the box is built
    // to wait for its run, as a warm box is.
    const box = await prepareBox(planBox(c.o, 'prepared'), c.pool, c.o.privateNetwork, null);
    try {
      return await startWarm(c, box, 'new', outcome);
    } catch (e) {
      await discardWarm(box);
      throw e;
    }
  }
  // A run in a living box gets its cgroup below the box's, so the box's limits still hold.
  const cgroup = c.pool && (!into || into.cgroup) ? await c.pool.take(cgroupLimits(c.o), into?.cgroup ?? undefined) : null;
  c.stages?.mark('cgroup');
  let run: PlannedRun;
  let native: NativeSpawned;
  try {
    // A plan to be weakened is made whole, sharing nothing with other runs' plans.
    run = planRun(c.how.weakenPlan ? { ...c.o, shape: null } : c.o, { into: into ? 'living' : 'new', cgroup, filter: c.filter, stdin: c.how.stdin });
    c.how.weakenPlan?.(run.plan);
    c.stages?.mark('plan');
    native = await nativeSpawn(run.plan, into?.native.box, run.shape);
  } catch (e) {
    if (cgroup) await cgroup.destroy();
    throw e;
  }
  c.stages?.mark('spawn');
  c.stages?.steps('spawn', native.marks);
  return supervise(c, native, cgroup, run, into ? 'living' : 'new', outcome);
}

function supervise(
  c: Context,
  native: NativeSpawned,
  cgroup: RunCgroup | null,
  run: PlannedRun,
  box: 'new' | 'warm' | 'living',
  warm: WarmOutcome,
  network: BoxNetwork | null = null,
): SandboxProcess {
  if (debugging) debug({ event: 'start', pid: native.pid, box, warm, enforced: { ...run.enforced }, degraded: degraded(c, cgroup, run) });
  return new SandboxProcess({ native, cgroup, options: c.o, enforced: run.enforced, output: c.how.output, stages: c.stages, network });
}

/** What stands in for what in this run, and why (for the debug log). */
function degraded(c: Context, cgroup: RunCgroup | null, run: PlannedRun): string[] {
  const why = cgroup ? null : (c.noCgroupReason ?? 'the living box has no cgroup');
  const l = c.o.limits;
  const out: string[] = [];
  if (run.enforced.memory === 'rlimit') out.push(`memory: RLIMIT_AS (${why ?? 'no memory controller'})`);
  if (run.enforced.cpuTime === 'rlimit') out.push(`cpuTime: RLIMIT_CPU only (${why ?? 'no CPU accounting'})`);
  if (run.enforced.processes === 'rlimit') out.push(`processes: RLIMIT_NPROC (${why ?? 'no pids controller'})`);
  if (l.cpus !== null && cgroup?.enforced.cpus !== 'cgroup') out.push(`cpus: not enforced (${why ?? 'no CPU bandwidth control'})`);
  return out;
}

/**
 * Builds a box of this shape that waits for its run, in a run cgroup without limits yet, and puts
 * it on its private network (if any) then. `shape`: `plan` when it is kept for its shape's boxes.
 */
async function prepareBox(plan: NativePlan, pool: CgroupPool | null, network: string | null, shape: NativePlan | null): Promise<WarmBox> {
  const began = debugging ? performance.now() : 0;
  // Before the cgroup is taken: a source that cannot be stat'ed refuses the build with nothing to give back.
  const binds = bindIdentity(plan);
  const cgroup = pool ? await pool.take({}) : null;
  let native: NativeSpawned;
  try {
    native = await nativeSpawn({ ...plan, cgroupProcs: cgroup ? [...cgroup.procsFiles] : [] }, undefined, shape);
  } catch (e) {
    if (cgroup) await cgroup.destroy();
    if (debugging) debug({ event: 'warm-build', pid: null, ms: performance.now() - began, error: e instanceof Error ? e.message : String(e) });
    throw e;
  }
  let box: WarmBox = { native, cgroup, binds, network: null };
  // A source replaced while the init opened it: which one it bound is unknown.
  if (!stillBound(box)) {
    await discardWarm(box);
    throw new Error('a bind source changed while the box was built');
  }
  try {
    box = { ...box, network: await BoxNetwork.prepare(native, network) };
  } catch (e) {
    await discardWarm(box);
    throw e;
  }
  if (debugging) debug({ event: 'warm-build', pid: native.pid, ms: performance.now() - began, steps: native.marks });
  return box;
}

async function discardWarm(warm: WarmBox): Promise<void> {
  warm.native.box.close();
  warm.network?.leave();
  if (warm.cgroup) await warm.cgroup.destroy();
}

/**
 * Builds a living box (Sandbox.create): its cgroup holds the box's limits for everything in it;
 * its init sits in a leaf of its own so that runs can have cgroups below the box's (v2 allows
 * processes only in leaves).
 */
export async function startLivingBox(o: ResolvedOptions, staging: boolean): Promise<LivingBox> {
  const began = debugging ? performance.now() : 0;
  const { pool } = await cgroupsFor(o.cgroupParent);
  const cgroup = pool ? await pool.take(cgroupLimits(o)) : null;
  try {
    const initCgroup = pool && cgroup ? await pool.take({}, cgroup) : null;
    const native = await nativeSpawn(planBox(o, 'living', initCgroup?.procsFiles));
    if (debugging) debug({ event: 'box', pid: native.pid, cgroup: cgroup !== null, ms: performance.now() - began });
    return { native, cgroup, options: o, staged: null, stagedReady: false, staging };
  } catch (e) {
    if (cgroup) await cgroup.destroy();
    throw e;
  }
}
