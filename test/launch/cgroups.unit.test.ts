// The cgroup limits of a run, as the launcher hands them to the cgroup pool: what each run's
// options ask for, in one object shape from run to run.
import { describe, expect, it } from 'vitest';

import { cgroupLimits } from '../../src/launch/cgroups.js';
import { resolveOptions, type RunOptions } from '../../src/options.js';
import { shapeChanges } from '../helpers/shapes.js';

const limitsOf = (options: Omit<RunOptions, 'command'>) => cgroupLimits(resolveOptions({ command: ['/bin/true'], ...options }));

describe('cgroupLimits', () => {
  it('holds the memory, process and CPU limits asked for, and no key for one not asked for', () => {
    expect(Object.entries(limitsOf({ limits: { memory: '64MiB', processes: 10 } }))).toEqual([
      ['memoryBytes', 64 * 2 ** 20],
      ['pids', 10],
    ]);
    expect(Object.entries(limitsOf({ limits: { memory: null, processes: 5, cpus: 0.5 } }))).toEqual([
      ['pids', 5],
      ['cpus', 0.5],
    ]);
    expect(Object.keys(limitsOf({ limits: { memory: null } }))).toEqual(['pids']);
    expect(Object.keys(limitsOf({ limits: { cpus: 2 } }))).toEqual(['memoryBytes', 'pids', 'cpus']);
  });

  it('gives the limits of runs of the same options one object shape, run after run', () => {
    for (const limits of [{}, { memory: null }, { cpus: 1 }, { memory: null, cpus: 1 }]) {
      const o = resolveOptions({ command: ['/bin/true'], limits });
      expect(shapeChanges(Array.from({ length: 200 }, () => cgroupLimits(o)))).toBe(0);
    }
  });
});
