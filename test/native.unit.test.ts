// The addon's results as the rest of the library reads them: a warm box's start gives its run as a
// spawn does, in one object shape from run to run (the supervisor reads it on every run).
import { describe, expect, it } from 'vitest';

import { nativeStart, type NativeBox, type NativePlan, type NativeSpawned } from '../src/native.js';
import { shapeChanges } from './helpers/shapes.js';

/** A box waiting for its run whose start reports these descriptors (-1: none) and step times. */
function waitingBox(marks?: Record<string, number>): Pick<NativeSpawned, 'pid' | 'box'> {
  const box = { start: async () => [0, 5, -1, 7, 10n, null, marks] } as unknown as NativeBox;
  return { pid: 4242, box };
}

describe('nativeStart', () => {
  it("gives the run with its box's pid, its stdio (null for none), its start and step times", async () => {
    const warm = waitingBox({ exec: 1.5 });
    const run = await nativeStart(warm, {} as NativePlan);
    expect(run).toEqual({ pid: 4242, box: warm.box, stdin: 5, stdout: null, stderr: 7, startedNs: 10n, cpuUsageAtStart: null, marks: { exec: 1.5 } });
    expect((await nativeStart(waitingBox(), {} as NativePlan)).marks).toBeUndefined();
  });

  it('gives runs one object shape, run after run, with step times or without', async () => {
    const runs: object[] = [];
    for (let i = 0; i < 200; i++) runs.push(await nativeStart(waitingBox(i % 3 === 0 ? { exec: i } : undefined), {} as NativePlan));
    expect(shapeChanges(runs)).toBe(0);
  });
});
