/**
 * Living boxes held for clients: each belongs to the client that made it, and is destroyed when
 * it was left idle for the TTL, when its owner deletes it, or when the daemon stops.
 */
import { randomBytes } from 'node:crypto';

import { Sandbox, type SandboxOptions } from '../index.js';
import { HttpError } from './http-error.js';

interface HeldBox {
  id: string;
  owner: string;
  box: Sandbox;
  created: number;
  lastUsed: number;
  runs: number;
  active: number;
}

export class Boxes {
  private readonly boxes = new Map<string, HeldBox>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    readonly idleTtlMs: number,
    private readonly onDestroyed: (id: string, why: string) => void,
  ) {
    this.sweeper = setInterval(() => this.sweep(), Math.max(50, Math.min(idleTtlMs / 4, 5000)));
    this.sweeper.unref();
  }

  get size(): number {
    return this.boxes.size;
  }

  countOf(owner: string): number {
    let n = 0;
    for (const b of this.boxes.values()) if (b.owner === owner) n++;
    return n;
  }

  async create(owner: string, options: SandboxOptions): Promise<string> {
    const box = await Sandbox.create(options);
    const id = `box-${randomBytes(12).toString('hex')}`;
    const now = Date.now();
    this.boxes.set(id, { id, owner, box, created: now, lastUsed: now, runs: 0, active: 0 });
    return id;
  }

  /** The box, if it exists and is the client's; another client's box is as good as absent. */
  get(owner: string, id: string): HeldBox {
    const b = this.boxes.get(id);
    if (!b || b.owner !== owner) throw new HttpError(404, 'not-found', `no box ${id}`);
    return b;
  }

  /** Runs `fn` on the box, counting it busy meanwhile (a busy box is never swept). */
  async use<T>(owner: string, id: string, fn: (box: Sandbox) => Promise<T>): Promise<T> {
    const b = this.get(owner, id);
    b.active++;
    try {
      return await fn(b.box);
    } finally {
      b.active--;
      b.runs++;
      b.lastUsed = Date.now();
    }
  }

  list(owner: string): { id: string; ageMs: number; idleMs: number; runs: number }[] {
    const now = Date.now();
    return [...this.boxes.values()]
      .filter((b) => b.owner === owner)
      .map((b) => ({ id: b.id, ageMs: now - b.created, idleMs: b.active > 0 ? 0 : now - b.lastUsed, runs: b.runs }));
  }

  async destroy(owner: string, id: string): Promise<void> {
    await this.remove(this.get(owner, id), 'deleted');
  }

  async destroyAll(why: string): Promise<void> {
    clearInterval(this.sweeper);
    await Promise.all([...this.boxes.values()].map((b) => this.remove(b, why)));
  }

  private sweep(): void {
    const now = Date.now();
    for (const b of this.boxes.values()) {
      if (b.active === 0 && now - b.lastUsed >= this.idleTtlMs) void this.remove(b, 'idle');
    }
  }

  private async remove(b: HeldBox, why: string): Promise<void> {
    if (this.boxes.get(b.id) !== b) return;
    this.boxes.delete(b.id);
    await b.box.destroy();
    this.onDestroyed(b.id, why);
  }
}
