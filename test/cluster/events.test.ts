// A run's events reach its caller however late the farm's event reader makes its first read: on
// a loaded machine the worker can take the job and report it started before then.
import { QueueEvents } from 'bullmq';
import { afterAll, describe, expect, it, vi } from 'vitest';

import type { FarmProgress } from '../../src/cluster/index.js';
import { steps } from './steps.js';
import { startFarm, type TestFarm } from './workers.js';

describe("the farm's events", () => {
  let t: TestFarm | undefined;
  afterAll(async () => {
    vi.restoreAllMocks();
    await t?.stop();
  }, 120_000);

  it('a reader whose first read comes after the worker started the run still sees it started, then done', async () => {
    t = await startFarm(['w1']);
    const step = steps();
    // The reader the farm opens for its queue starts 1.5 s late, as a starved process's would.
    const run = QueueEvents.prototype.run;
    vi.spyOn(QueueEvents.prototype, 'run').mockImplementation(async function (this: QueueEvents) {
      await new Promise((r) => setTimeout(r, 1500));
      return run.call(this);
    });
    const seen: FarmProgress[] = [];
    let started!: () => void;
    const isStarted = new Promise<void>((r) => (started = r));
    const result = t.farm.run({ command: ['/bin/echo', 'x'] }, { onProgress: (p) => (seen.push(p), p.event === 'started' && started()) });
    await step.wait('the run to be seen started', isStarted, 30_000, () => JSON.stringify(seen));
    expect((await step.wait('the result', result, 30_000)).stdout).toBe('x\n');
    expect(seen.map((p) => p.event)).toEqual(['queued', 'started', 'done']);
  }, 120_000);
});
