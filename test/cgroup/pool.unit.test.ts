// The pool of run cgroups made ahead (src/launch/cgroups.ts), against a driver that only
// counts: every cgroup is handed out once, refills never stall, settled() always resolves.
import { describe, expect, it } from 'vitest';

import type { CgroupDriver, CgroupLimits, RunCgroup } from '../../src/cgroup/index.js';
import { CgroupPool, retireRunCgroup } from '../../src/launch/cgroups.js';

/** What the fake cgroups were asked: readied for reuse (answering `reusable`), destroyed. */
interface Calls {
  reused: string[];
  destroyed: string[];
  reusable: boolean;
}

function countingDriver(): { driver: CgroupDriver; made: RunCgroup[]; calls: Calls } {
  const made: RunCgroup[] = [];
  const calls: Calls = { reused: [], destroyed: [], reusable: true };
  const tick = (): Promise<void> => new Promise((r) => setImmediate(r));
  const driver = {
    version: 'v1',
    parents: {},
    controllers: [],
    warnings: [],
    async create(limits: CgroupLimits, under?: RunCgroup): Promise<RunCgroup> {
      await tick();
      const name = `run-${made.length}`;
      const rc = {
        name,
        dirs: [`${under ? under.dirs[0] : '/fake'}/${name}`],
        limits,
        async reuse() {
          await tick();
          calls.reused.push(name);
          return calls.reusable;
        },
        async destroy() {
          calls.destroyed.push(name);
        },
        // Slower than making a cgroup: a refill can complete while limits are being written.
        async applyLimits(l: CgroupLimits) {
          for (let i = 0; i < 3; i++) await tick();
          rc.limits = l;
        },
      } as unknown as RunCgroup & { limits: CgroupLimits };
      made.push(rc);
      return rc;
    },
  } as unknown as CgroupDriver;
  return { driver, made, calls };
}

const settledWithin = (pool: CgroupPool, ms: number): Promise<boolean> =>
  Promise.race([pool.settled().then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);

describe('CgroupPool', () => {
  it('hands each cgroup out once, with the limits asked for, and refills in the background', async () => {
    const { driver, made } = countingDriver();
    const pool = new CgroupPool(driver, 2);
    const a = await pool.take({ pids: 5 });
    expect(await settledWithin(pool, 1000)).toBe(true);
    expect(pool.idleDirs()).toHaveLength(2);
    const b = await pool.take({ pids: 7 });
    expect(b).not.toBe(a);
    expect(b.limits).toEqual({ pids: 7 });
    expect(await settledWithin(pool, 1000)).toBe(true);
    expect(new Set(made).size).toBe(made.length);
    expect(pool.idleDirs()).not.toContain(b.dirs[0]);
  });

  it('a refill asked for when the pool is already full does not leave it stuck', async () => {
    const { driver } = countingDriver();
    const pool = new CgroupPool(driver, 1);
    await pool.take({});
    await pool.settled(); // one ready
    // The second take pops it and waits for its limits; the third finds none and refills the
    // pool to full meanwhile; the second then asks for a refill of a full pool.
    const second = pool.take({ pids: 1 });
    const third = pool.take({ pids: 2 });
    await Promise.all([second, third]);
    expect(await settledWithin(pool, 1000)).toBe(true);
    await pool.take({});
    expect(await settledWithin(pool, 1000)).toBe(true);
    expect(pool.idleDirs()).toHaveLength(1);
  });

  it('a cgroup whose run is over serves the next run when it can be readied, else is destroyed', async () => {
    const { driver, made, calls } = countingDriver();
    // Room for twice its size: 2 made ahead and the 2 given back.
    const pool = new CgroupPool(driver, 2);
    const a = await pool.take({ pids: 5 });
    await pool.settled();
    const b = await pool.take({ pids: 6 });
    await pool.settled();
    await retireRunCgroup(a);
    await retireRunCgroup(b);
    expect(calls.reused).toEqual([a.name, b.name]);
    expect(calls.destroyed).toEqual([]);
    // The last one given back is handed out next, with the new run's limits.
    const c = await pool.take({ pids: 7 });
    expect(c).toBe(b);
    expect(c.limits).toEqual({ pids: 7 });
    calls.reusable = false;
    await retireRunCgroup(c);
    expect(calls.destroyed).toEqual([c.name]);
    expect(pool.idleDirs()).not.toContain(c.dirs[0]);
    await pool.settled();
    expect(new Set(made).size).toBe(made.length);
  });

  it('keeps a few readied cgroups below a living box, handed out only below it', async () => {
    const { driver, calls } = countingDriver();
    const pool = new CgroupPool(driver, 1);
    const box = await pool.take({ pids: 64 });
    const other = await pool.take({ pids: 64 });
    const runs = await Promise.all([1, 2, 3].map(() => pool.take({}, box)));
    for (const r of runs) await retireRunCgroup(r);
    // Two kept, the third destroyed: there is room for two per box.
    expect(calls.reused).toHaveLength(2);
    expect(calls.destroyed).toEqual([runs[2]!.name]);
    const below = await pool.take({ pids: 3 }, box);
    expect(runs).toContain(below);
    expect(below.limits).toEqual({ pids: 3 });
    const belowOther = await pool.take({}, other);
    expect(runs).not.toContain(belowOther);
    expect(belowOther.dirs[0]!.startsWith(`${other.dirs[0]}/`)).toBe(true);
    await pool.settled();
  });
});
