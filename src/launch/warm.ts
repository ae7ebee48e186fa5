/**
 * Boxes built ahead of their runs. Building a box (namespaces, id maps, cgroup, root filesystem)
 * is most of a run's start; a warm box has done all of it and waits for its program. Boxes are
 * kept per shape (everything that decides what the box is, not what runs in it), a few at most,
 * and each serves exactly one run: nothing a program did can reach the next one.
 */
import { rmdirSync } from 'node:fs';

import type { RunCgroup } from '../cgroup/index.js';
import { fileIds, type NativePlan, type NativeSpawned } from '../native.js';
import type { PreparedMembership } from '../network/private.js';

/**
 * What a box is, apart from what runs in it: runs whose keys match can use the same warm box.
 * `plan` is the box's plan built ahead (`planBox(o, 'prepared')`).
 */
export function shapeKey(cgroupParent: string | null, plan: NativePlan): string {
  return `${cgroupParent ?? ''}\0${JSON.stringify(plan)}`;
}

/** A box whose root is built and whose init waits for its run. */
export interface WarmBox {
  readonly native: NativeSpawned;
  /** Its run cgroup, made without limits: the run writes its own. */
  readonly cgroup: RunCgroup | null;
  /** What its bind mounts are bound to (see `bindIdentity`), as they were when it was built. */
  readonly binds: BindIdentity;
  /** Its place on its private network, made when it was built (null: it is on none). */
  readonly network: PreparedMembership | null;
}

/** The host paths a box binds, and which file each one was (device and inode), or missing. */
export interface BindIdentity {
  readonly sources: readonly string[];
  readonly ids: string;
}

/** Identifies what the plan's bind sources are now. */
export function bindIdentity(plan: NativePlan): BindIdentity {
  const sources = plan.mounts.flatMap((m) => (m.kind === 'bind' ? [m.source] : []));
  return { sources, ids: fileIds(sources) };
}

/**
 * Whether a warm box still binds what a box built now would: a source replaced since (a work dir
 * removed and made again, a rewritten ld.so.cache, an optional source that appeared) makes it stale.
 */
export function stillBound(box: WarmBox): boolean {
  return fileIds(box.binds.sources) === box.binds.ids;
}

/** Builds one warm box of a shape. */
export type PrepareBox = () => Promise<WarmBox>;

/** Boxes kept per shape. Two cover a caller that runs one program after another. */
const PER_SHAPE = 2;
/** Shapes remembered, most recently used first; the rest are forgotten with their boxes. */
const MAX_SHAPES = 8;
/** Runs of a shape before boxes are built for it: a shape seen once (a run binding a directory made for it alone) would only waste the build. */
export const RUNS_BEFORE_WARM = 2;
/** A shape not used for this long gives its boxes back. */
const IDLE_MS = 30_000;
/**
 * Runs of other shapes since a shape's last run after which, the pool being full, its boxes go to
 * a shape in use: a caller that has moved on from it. Shapes that take turns (a judge's compile,
 * run and check) come back well within this many runs and keep theirs: taking each other's slots,
 * they would discard boxes built for the shape that comes next.
 */
export const SUPERSEDED_RUNS = 8;

interface Shape {
  boxes: WarmBox[];
  lastUsed: number;
  runs: number;
  /** The pool's count of ended runs (`ended`) at this shape's last. */
  lastRun: number;
  prepare: PrepareBox;
}

/** The boxes built ahead, per shape (the process's one pool is in src/runtime.ts). */
export class WarmPool {
  private limit = 2 * PER_SHAPE;
  private readonly shapes = new Map<string, Shape>();
  private building: Promise<void> | null = null;
  private scheduled: NodeJS.Immediate | null = null;
  /** Bumped by drain(): a box whose build began before is discarded, not kept. */
  private generation = 0;
  private idleTimer: NodeJS.Timeout | null = null;
  /** Boxes being discarded (their cgroups are being removed). */
  private readonly discarding = new Map<WarmBox, Promise<void>>();
  /** Runs ended, of every shape. */
  private ended = 0;

  /** Whether boxes are built ahead at all (setWarmBoxes(0) turns it off). */
  get enabled(): boolean {
    return this.limit > 0;
  }

  /** A warm box of this shape, if one waits. */
  take(key: string): WarmBox | null {
    const shape = this.shapes.get(key);
    if (!shape) return null;
    shape.lastUsed = Date.now();
    return shape.boxes.shift() ?? null;
  }

  /**
   * A run of this shape has ended: once the shape has been seen often enough, boxes for it are
   * built in the background, up to the limit.
   */
  want(key: string, prepare: PrepareBox): void {
    if (this.limit === 0) return;
    const shape = this.shapes.get(key) ?? { boxes: [], lastUsed: 0, runs: 0, lastRun: 0, prepare };
    // Re-inserted at the end: the map stays in order of use, the least recent first.
    this.shapes.delete(key);
    shape.lastUsed = Date.now();
    shape.runs++;
    shape.lastRun = ++this.ended;
    shape.prepare = prepare;
    this.shapes.set(key, shape);
    for (const [old, forgotten] of this.shapes) {
      if (this.shapes.size <= MAX_SHAPES) break;
      this.shapes.delete(old);
      for (const box of forgotten.boxes.splice(0)) void this.discard(box);
    }
    this.schedule();
  }

  /** How many boxes may wait in all (0: none are built, those there are go). */
  async setLimit(limit: number): Promise<void> {
    this.limit = limit;
    if (limit === 0) return this.drain();
    for (const shape of this.shapes.values()) while (this.count() > limit && shape.boxes.length > 0) await this.discard(shape.boxes.pop() as WarmBox);
  }

  /** Ends every warm box, and any being built, and forgets the shapes. */
  async drain(): Promise<void> {
    this.generation++;
    const boxes = [...this.shapes.values()].flatMap((shape) => shape.boxes);
    this.shapes.clear();
    this.stopIdleTimer();
    while (this.building) await this.building;
    for (const box of boxes) await this.discard(box);
    while (this.discarding.size > 0) await Promise.all(this.discarding.values());
  }

  /** Resolves when no box is being built or about to be. */
  async settled(): Promise<void> {
    while (this.building || this.scheduled) {
      if (this.building) await this.building;
      else await new Promise((resolve) => setImmediate(resolve));
    }
  }

  /** Host pids of the warm boxes' inits. */
  pids(): number[] {
    return [...this.shapes.values()].flatMap((shape) => shape.boxes.map((b) => b.native.pid));
  }

  /** At process exit: kill the warm boxes' inits, reap them and remove their cgroups, synchronously. */
  releaseSync(): void {
    this.generation++;
    const boxes = [...this.shapes.values()].flatMap((shape) => shape.boxes.splice(0));
    for (const box of [...boxes, ...this.discarding.keys()]) {
      box.native.box.close();
      box.network?.leave();
      for (const dir of box.cgroup?.dirs ?? []) {
        try {
          rmdirSync(dir);
        } catch {
          // swept by the next sandcell process as an orphan
        }
      }
    }
  }

  private count(): number {
    let n = 0;
    for (const shape of this.shapes.values()) n += shape.boxes.length;
    return n;
  }

  /**
   * One build at a time: a warm box must not compete with the runs it is meant to speed up. Each
   * build starts from an unreferenced immediate, so a process with nothing else to do exits
   * instead of building boxes nobody will use.
   */
  private schedule(): void {
    if (this.building || this.scheduled || !this.neediest()) return;
    this.scheduled = setImmediate(() => {
      this.scheduled = null;
      if (this.building) return;
      this.building = this.buildOne().finally(() => {
        this.building = null;
        this.schedule();
      });
    });
    this.scheduled.unref();
  }

  private async buildOne(): Promise<void> {
    const next = this.neediest();
    if (!next) return;
    if (next.room) await this.discard(next.room.boxes.shift() as WarmBox);
    const generation = this.generation;
    let box: WarmBox;
    try {
      box = await next.prepare();
    } catch {
      // The shape cannot be built now (a bind source went away, say), and the boxes it has are
      // as stale. Its runs build their own box, which reports the error; the pool tries again
      // once a run of it succeeds.
      const failed = this.shapes.get(next.key);
      this.shapes.delete(next.key);
      for (const box of failed?.boxes.splice(0) ?? []) await this.discard(box);
      return;
    }
    const shape = this.shapes.get(next.key);
    if (generation !== this.generation || !shape || this.count() >= this.limit) {
      await this.discard(box);
      return;
    }
    shape.boxes.push(box);
    this.startIdleTimer();
  }

  /**
   * The shape most recently used that is short of boxes, while the pool has room or a superseded
   * shape holds a box that can make it: boxes kept for shapes a caller has moved on from would
   * otherwise hold every slot until they expire, and each run of the shapes in use now would
   * build its own box meanwhile. `room`: that shape, whose oldest box the build replaces.
   */
  private neediest(): { key: string; prepare: PrepareBox; room: Shape | null } | null {
    let best: [string, Shape] | null = null;
    for (const entry of this.shapes) {
      if (entry[1].boxes.length >= PER_SHAPE || entry[1].runs < RUNS_BEFORE_WARM) continue;
      if (!best || entry[1].lastUsed > best[1].lastUsed) best = entry;
    }
    if (!best) return null;
    if (this.count() < this.limit) return { key: best[0], prepare: best[1].prepare, room: null };
    // A full pool makes room only for a shape in use, and only from one superseded (never itself).
    const room = this.ended - best[1].lastRun > SUPERSEDED_RUNS ? null : this.superseded();
    return room ? { key: best[0], prepare: best[1].prepare, room } : null;
  }

  /** The least recently used shape that holds a box and has had no run in the last SUPERSEDED_RUNS. */
  private superseded(): Shape | null {
    for (const shape of this.shapes.values()) {
      // The map is in order of use, the least recent first.
      if (this.ended - shape.lastRun <= SUPERSEDED_RUNS) return null;
      if (shape.boxes.length > 0) return shape;
    }
    return null;
  }

  private async expire(): Promise<void> {
    const now = Date.now();
    for (const [key, shape] of this.shapes) {
      if (now - shape.lastUsed < IDLE_MS) continue;
      this.shapes.delete(key);
      for (const box of shape.boxes.splice(0)) await this.discard(box);
    }
    if (this.count() === 0) this.stopIdleTimer();
  }

  /** Kills and reaps the box's init now; its cgroup goes after, tracked until it has. */
  private discard(box: WarmBox): Promise<void> {
    box.native.box.close();
    box.network?.leave();
    const done = (box.cgroup?.destroy() ?? Promise.resolve())
      .catch(() => undefined)
      .finally(() => this.discarding.delete(box));
    this.discarding.set(box, done);
    return done;
  }

  private startIdleTimer(): void {
    if (this.idleTimer) return;
    // Unreferenced: warm boxes never keep the embedding process alive.
    this.idleTimer = setInterval(() => void this.expire(), IDLE_MS / 2);
    this.idleTimer.unref();
  }

  private stopIdleTimer(): void {
    if (this.idleTimer) clearInterval(this.idleTimer);
    this.idleTimer = null;
  }
}
