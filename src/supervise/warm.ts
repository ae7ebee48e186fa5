/**
 * Boxes built ahead of their runs. Building a box (namespaces, id maps, cgroup, root filesystem)
 * is most of a run's start; a warm box has done all of it and waits for its program. Boxes are
 * kept per shape (everything that decides what the box is, not what runs in it), a few at most,
 * and each serves exactly one run: nothing a program did can reach the next one.
 */
import { rmdirSync, statSync } from 'node:fs';

import type { RunCgroup } from '../cgroup/index.js';
import type { NativePlan, NativeSpawned } from '../native.js';

/** A box whose root is built and whose init waits for its run. */
export interface WarmBox {
  readonly native: NativeSpawned;
  /** Its run cgroup, made without limits: the run writes its own. */
  readonly cgroup: RunCgroup | null;
  /** What its bind mounts are bound to (see `bindIdentity`), as they were when it was built. */
  readonly binds: BindIdentity;
}

/** The host paths a box binds, and which file each one was (device and inode), or missing. */
export interface BindIdentity {
  readonly sources: readonly string[];
  readonly ids: string;
}

/** Identifies what the plan's bind sources are now. */
export function bindIdentity(plan: NativePlan): BindIdentity {
  const sources = plan.mounts.flatMap((m) => (m.kind === 'bind' ? [m.source] : []));
  return { sources, ids: idsOf(sources) };
}

/**
 * Whether a warm box still binds what a box built now would: a source replaced since (a work dir
 * removed and made again, a rewritten ld.so.cache, an optional source that appeared) makes it stale.
 */
export function stillBound(box: WarmBox): boolean {
  return idsOf(box.binds.sources) === box.binds.ids;
}

function idsOf(sources: readonly string[]): string {
  return sources
    .map((p) => {
      const st = statSync(p, { throwIfNoEntry: false });
      return st ? `${st.dev}:${st.ino}` : '-';
    })
    .join(' ');
}

/** Builds one warm box of a shape. */
export type PrepareBox = () => Promise<WarmBox>;

/** Boxes kept per shape. Two cover a caller that runs one program after another. */
const PER_SHAPE = 2;
/** A shape not used for this long gives its boxes back. */
const IDLE_MS = 30_000;

interface Shape {
  boxes: WarmBox[];
  lastUsed: number;
  prepare: PrepareBox;
}

class WarmPool {
  private limit = 2 * PER_SHAPE;
  private readonly shapes = new Map<string, Shape>();
  private building: Promise<void> | null = null;
  private scheduled: NodeJS.Immediate | null = null;
  /** Bumped by drain(): a box whose build began before is discarded, not kept. */
  private generation = 0;
  private idleTimer: NodeJS.Timeout | null = null;

  /** A warm box of this shape, if one waits. */
  take(key: string): WarmBox | null {
    const shape = this.shapes.get(key);
    if (!shape) return null;
    shape.lastUsed = Date.now();
    return shape.boxes.shift() ?? null;
  }

  /** Makes sure boxes of this shape are being built ahead, in the background, up to the limit. */
  want(key: string, prepare: PrepareBox): void {
    if (this.limit === 0) return;
    const shape = this.shapes.get(key);
    if (shape) {
      shape.lastUsed = Date.now();
      shape.prepare = prepare;
    } else {
      this.shapes.set(key, { boxes: [], lastUsed: Date.now(), prepare });
    }
    this.schedule();
  }

  /** How many boxes may wait in all (0: none are built, those there are go). */
  async setLimit(limit: number): Promise<void> {
    this.limit = limit;
    if (limit === 0) return this.drain();
    const byAge = [...this.shapes.values()].sort((a, b) => a.lastUsed - b.lastUsed);
    for (const shape of byAge) while (this.count() > limit && shape.boxes.length > 0) await discard(shape.boxes.pop() as WarmBox);
  }

  /** Ends every warm box, and any being built, and forgets the shapes. */
  async drain(): Promise<void> {
    this.generation++;
    const boxes = [...this.shapes.values()].flatMap((shape) => shape.boxes);
    this.shapes.clear();
    this.stopIdleTimer();
    while (this.building) await this.building;
    for (const box of boxes) await discard(box);
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
    for (const shape of this.shapes.values()) {
      for (const box of shape.boxes.splice(0)) {
        box.native.box.close();
        for (const dir of box.cgroup?.dirs ?? []) {
          try {
            rmdirSync(dir);
          } catch {
            // swept by the next sandcell process as an orphan
          }
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
      for (const box of failed?.boxes.splice(0) ?? []) await discard(box);
      return;
    }
    const shape = this.shapes.get(next.key);
    if (generation !== this.generation || !shape || this.count() >= this.limit) {
      await discard(box);
      return;
    }
    shape.boxes.push(box);
    this.startIdleTimer();
  }

  /** The shape most recently used that is short of boxes, while the pool has room. */
  private neediest(): { key: string; prepare: PrepareBox } | null {
    if (this.count() >= this.limit) return null;
    let best: [string, Shape] | null = null;
    for (const entry of this.shapes) {
      if (entry[1].boxes.length >= PER_SHAPE) continue;
      if (!best || entry[1].lastUsed > best[1].lastUsed) best = entry;
    }
    return best ? { key: best[0], prepare: best[1].prepare } : null;
  }

  private async expire(): Promise<void> {
    const now = Date.now();
    for (const [key, shape] of this.shapes) {
      if (now - shape.lastUsed < IDLE_MS) continue;
      this.shapes.delete(key);
      for (const box of shape.boxes.splice(0)) await discard(box);
    }
    if (this.count() === 0) this.stopIdleTimer();
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

async function discard(box: WarmBox): Promise<void> {
  box.native.box.close();
  await box.cgroup?.destroy().catch(() => undefined);
}

/** The process's warm boxes. */
export const warmBoxes = new WarmPool();
