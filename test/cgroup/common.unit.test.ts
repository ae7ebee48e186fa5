// Small pieces of the cgroup layer that need no cgroupfs.
import { describe, expect, it } from 'vitest';

import { forgetWithDescendants, Once } from '../../src/cgroup/common.js';

describe('forgetWithDescendants', () => {
  it('forgets a removed cgroup and everything below it in every hierarchy, and nothing else', () => {
    const box = { dirs: ['/cg/cpu/s/run-1', '/cg/pids/s/run-1'] };
    const leaf = { dirs: ['/cg/cpu/s/run-1/run-2', '/cg/pids/s/run-1/run-2'] };
    const sibling = { dirs: ['/cg/cpu/s/run-10', '/cg/pids/s/run-10'] };
    const live = new Set([box, leaf, sibling]);
    forgetWithDescendants(live, box);
    expect([...live]).toEqual([sibling]);
  });
});

describe('Once', () => {
  it('runs a teardown once, shares it while in flight, and allows another try after a failure', async () => {
    const once = new Once();
    let calls = 0;
    let gone = 0;
    const fail = once.run(async () => {
      calls++;
      throw new Error('busy');
    }, () => gone++);
    await expect(fail).rejects.toThrow('busy');
    const a = once.run(async () => void calls++, () => gone++);
    const b = once.run(async () => void calls++, () => gone++);
    await Promise.all([a, b]);
    await once.run(async () => void calls++, () => gone++);
    expect(calls).toBe(2);
    expect(gone).toBe(1);
  });
});
