// The pool of run cgroups made ahead (src/launch/cgroups.ts), against a driver that only
// counts: every cgroup is handed out once, refills never stall, settled() always resolves.
import { describe, expect, it } from 'vitest';

import type { CgroupDriver, CgroupLimits, RunCgroup } from '../../src/cgroup/index.js';
import { CgroupPool } from '../../src/launch/cgroups.js';

function countingDriver(): { driver: CgroupDriver; made: RunCgroup[] } {
  const made: RunCgroup[] = [];
  const tick = (): Promise<void> => new Promise((r) => setImmediate(r));
  const driver = {
    version: 'v1',
    parents: {},
    controllers: [],
    warnings: [],
    async create(limits: CgroupLimits): Promise<RunCgroup> {
      await tick();
      const rc = {
        name: `run-${made.length}`,
        dirs: [`/fake/run-${made.length}`],
        limits,
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
  return { driver, made };
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
});
