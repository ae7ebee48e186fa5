// Starts made in one tick go one per turn of the event loop. A caller that starts eight boxes at
// once must not hold its loop for all eight starts' synchronous parts (their cgroups taken, their
// limits written, their plans made) back to back: its timers and other requests come between them.
// What shows a start's synchronous part here is its first trip to the addon: the run cgroup's
// limits (a processes limit no other write of the suite has) handed to `cgroupFiles`.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { AbortError, run, setWarmBoxes } from '../../src/index.js';
import { idleCgroupDirs } from '../../src/runtime.js';
import { childPids, requireRoot, runCgroupsInUse } from '../helpers/host.js';

const ADDON = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'build', 'Release', 'sandcell.node');
const PROCESSES = 37;
const options = { command: ['/bin/true'], limits: { processes: PROCESSES } };

interface Addon {
  cgroupFiles: (...args: unknown[]) => unknown;
}
let addon: Addon;
let cgroupFiles: Addon['cgroupFiles'];
/** The turn of the event loop each start's limits went to the addon in. */
let limitTurns: number[] = [];
let turn = 0;

beforeAll(async () => {
  requireRoot();
  // The one the library loads: Node keeps one instance of an addon per path.
  addon = createRequire(import.meta.url)(ADDON) as Addon;
  cgroupFiles = addon.cgroupFiles;
  addon.cgroupFiles = (...args: unknown[]) => {
    const writes = args[1] as string[];
    if (writes.some((v, i) => i % 2 === 1 && v === String(PROCESSES))) limitTurns.push(turn);
    return cgroupFiles(...args);
  };
  // Every start takes a run cgroup: none waits in a warm box with its cgroup already limited.
  await setWarmBoxes(0);
  expect((await run(options)).status).toBe('ok');
  await idleCgroupDirs();
});
afterAll(async () => {
  addon.cgroupFiles = cgroupFiles;
  await setWarmBoxes(4);
  expect(await childPids()).toEqual([]);
  expect(await runCgroupsInUse()).toEqual([]);
});

/** Counts the turns of the event loop (each check phase) until stopped. */
function countTurns(): () => void {
  let on = true;
  const tick = (): void => {
    turn++;
    if (on) setImmediate(tick);
  };
  setImmediate(tick);
  return () => {
    on = false;
  };
}

describe('starts made in one tick', () => {
  it('go one per turn of the event loop, in order, and all of them run', async () => {
    limitTurns = [];
    turn = 0;
    const stop = countTurns();
    const results = Array.from({ length: 8 }, () => run(options));
    // By the end of the turn the eight calls were made in, one start went.
    await new Promise((resolve) => setImmediate(resolve));
    expect(limitTurns).toEqual([0]);
    const done = await Promise.all(results);
    stop();
    expect(done.map((r) => r.status)).toEqual(Array(8).fill('ok'));
    expect(limitTurns).toHaveLength(8);
    for (let i = 1; i < 8; i++) expect(limitTurns[i]).toBeGreaterThan(limitTurns[i - 1]!);
  });

  it('a start aborted while it waits for its turn builds nothing and rejects with AbortError', async () => {
    limitTurns = [];
    const controller = new AbortController();
    const first = Array.from({ length: 3 }, () => run(options));
    const aborted = run({ ...options, signal: controller.signal });
    controller.abort();
    await expect(aborted).rejects.toBeInstanceOf(AbortError);
    expect((await Promise.all(first)).map((r) => r.status)).toEqual(['ok', 'ok', 'ok']);
    expect(limitTurns).toHaveLength(3);
  });
});
