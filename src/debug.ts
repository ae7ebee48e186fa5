/**
 * What sandcell decided and why, for `NODE_DEBUG=sandcell`: which cgroup driver and controllers a
 * parent got, what was degraded and why, warm-box hits and misses, and how long each stage of a
 * run took. Events are data (a name and its fields); the debuglog only prints them, and a listener
 * (`onDebugEvent`: a daemon's JSON log) takes the same events without touching the call sites.
 * With neither NODE_DEBUG nor a listener nothing is built: call sites check `debugging` first.
 */
import { debuglog } from 'node:util';

const log = debuglog('sandcell');

type Listener = (e: DebugEvent) => void;
const listeners = new Set<Listener>();

/** Whether events are wanted at all: NODE_DEBUG (read at process start) or a listener. */
export let debugging: boolean = log.enabled;

export type DebugEvent =
  /** Once per cgroup parent: the driver opened, or why there is none. */
  | { event: 'cgroups'; parent: string; driver: 'v1' | 'v2'; controllers: readonly string[]; warnings: readonly string[] }
  | { event: 'cgroups'; parent: string; driver: 'none'; reason: string }
  /** A program started: in which box, how its limits are enforced, what stands in for what. */
  | {
      event: 'start';
      pid: number;
      box: 'new' | 'warm' | 'living';
      warm: WarmOutcome;
      enforced: Readonly<Record<string, string>>;
      degraded: readonly string[];
    }
  /** A run ended: its status and the time of each stage, in ms. */
  | { event: 'end'; pid: number; status: string; ms: Readonly<Record<string, number>> }
  /** A warm box was built for a shape, or could not be. */
  | { event: 'warm-build'; pid: number | null; ms: number; steps?: Readonly<Record<string, number>>; error?: string }
  /** A living box's next run was staged (joined, waiting for its plan), or could not be; `box` is the box's pid. */
  | { event: 'staged'; box: number; pid: number | null; ms: number; steps?: Readonly<Record<string, number>>; error?: string }
  /** A living box (Sandbox) was built. */
  | { event: 'box'; pid: number; cgroup: boolean; ms: number };

/** Whether a run found a warm box: `hit`, `miss` (none waited), `discarded` (one waited but could not take the run: why), or `off` (why warm boxes do not apply). */
export type WarmOutcome = 'hit' | 'miss' | `discarded: ${string}` | `off: ${string}`;

export function debug(e: DebugEvent): void {
  if (!debugging) return;
  if (log.enabled) {
    const { event, ...fields } = e;
    log('%s %s', event, format(fields));
  }
  for (const l of listeners) {
    try {
      l(e);
    } catch (err) {
      // The event is emitted in the middle of building or tearing down a box: a listener's
      // bug is reported, never thrown into the run it was told about.
      process.emitWarning(`a sandcell debug event listener threw: ${err instanceof Error ? err.message : String(err)}`, 'SandcellDebugListenerWarning');
    }
  }
}

/**
 * Calls `listener` with every debug event of this process (the events `NODE_DEBUG=sandcell`
 * prints, as objects), synchronously where they happen: an AsyncLocalStorage the caller entered
 * around run() is still in effect. Returns the function that removes the listener. While no
 * listener is left (and NODE_DEBUG does not name sandcell) runs build no events at all.
 */
export function onDebugEvent(listener: (event: DebugEvent) => void): () => void {
  listeners.add(listener);
  debugging = true;
  return () => {
    listeners.delete(listener);
    debugging = log.enabled || listeners.size > 0;
  };
}

function format(fields: Record<string, unknown>, prefix = ''): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(fields)) {
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) parts.push(format(v as Record<string, unknown>, `${prefix}${k}.`));
    else parts.push(`${prefix}${k}=${typeof v === 'string' && /^[\w.:/+-]*$/.test(v) && v !== '' ? v : JSON.stringify(v)}`);
  }
  return parts.join(' ');
}

/** Times the stages of one run; null (and no clock read) when nobody is listening. */
export class Stages {
  private last = performance.now();
  readonly ms: Record<string, number> = {};

  static start(): Stages | null {
    return debugging ? new Stages() : null;
  }

  /** The stage that just ended. */
  mark(stage: string): void {
    const now = performance.now();
    this.ms[stage] = Math.round((now - this.last) * 1000) / 1000;
    this.last = now;
  }

  /** The steps of the stage that just ended, as the addon timed them (`stage.step` in the event). */
  steps(stage: string, marks: Readonly<Record<string, number>> | undefined): void {
    for (const [step, ms] of Object.entries(marks ?? {})) this.ms[`${stage}.${step}`] = Math.round(ms * 1000) / 1000;
  }
}
