// Small pieces of the cgroup layer that need no cgroupfs.
import { describe, expect, it } from 'vitest';

import { Once } from '../../src/cgroup/common.js';
import { keyedValue } from '../../src/cgroup/fs.js';

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

describe('keyedValue', () => {
  it('reads one key of a keyed file, not a key it is the start of', () => {
    const oomControl = 'oom_kill_disable 0\nunder_oom 0\noom_kill 3\n';
    expect(keyedValue(oomControl, 'oom_kill')).toBe(3);
    expect(keyedValue(oomControl, 'oom_kill_disable')).toBe(0);
    expect(keyedValue('oom_kill_disable 1\nunder_oom 0\n', 'oom_kill')).toBeUndefined();
    expect(keyedValue('xoom_kill 5\n', 'oom_kill')).toBeUndefined();
    expect(keyedValue('oom_kill 7', 'oom_kill')).toBe(7);
    expect(keyedValue('oom_kill x\n', 'oom_kill')).toBeUndefined();
    expect(keyedValue(undefined, 'oom_kill')).toBeUndefined();
  });
});
