// Small pieces of the cgroup layer that need no cgroupfs.
import { describe, expect, it } from 'vitest';

import { Once } from '../../src/cgroup/common.js';

describe('Once', () => {
  it('runs a teardown once, shares it while in flight, and allows another try after a failure', async () => {
    const once = new Once();
    let calls = 0;
    const fail = once.run(async () => {
      calls++;
      throw new Error('busy');
    });
    await expect(fail).rejects.toThrow('busy');
    const a = once.run(async () => void calls++);
    const b = once.run(async () => void calls++);
    await Promise.all([a, b]);
    await once.run(async () => void calls++);
    expect(calls).toBe(2);
  });
});
