// After many runs of every kind — ok, limits hit, aborted at every moment, setups that fail — no
// run cgroup of this process remains, in any hierarchy, and no process of a box.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { listSandcellCgroups } from '../../src/cgroup/index.js';
import { run, SandboxSetupError, spawn } from '../../src/index.js';
import { buildFixtures, type Fixtures } from '../helpers/fixtures.js';
import { childPids, requireRoot, runCgroupsInUse } from '../helpers/host.js';

let fx: Fixtures;
beforeAll(() => {
  requireRoot();
  fx = buildFixtures();
});
afterAll(() => fx?.remove());

const limits = { memory: '64MiB', processes: 16, cpuTime: '2s', wallTime: '5s' };

/** Resolves to what happened, never rejects. */
async function outcome(p: Promise<{ status: string }>): Promise<string> {
  try {
    return (await p).status;
  } catch (e) {
    if (e instanceof SandboxSetupError) return `setup:${e.stage}`;
    return (e as Error).name;
  }
}

async function aborted(afterMs: number): Promise<string> {
  const ac = new AbortController();
  const p = run({ command: ['/bin/sleep', '10'], limits, signal: ac.signal });
  if (afterMs < 0) ac.abort();
  else setTimeout(() => ac.abort(), afterMs);
  return outcome(p);
}

describe('no run cgroup remains', () => {
  it('after a mix of ok, limits, aborts and failed setups, sequential and concurrent', async () => {
    const kinds: (() => Promise<string>)[] = [
      () => outcome(run({ command: ['/bin/true'], limits })),
      () => outcome(run({ command: ['/no/such/program'], limits })),
      // Refused at the box's setup (open of the bind source), or up front as an option error.
      async () => {
        const o = await outcome(run({ command: ['/bin/true'], binds: [{ source: '/no/such/dir', target: '/x' }], limits }));
        return o === 'setup:open /no/such/dir' || o === 'SandboxOptionsError' ? 'bad-bind' : o;
      },
      () => outcome(run({ command: ['/bin/true'], cwd: '/usr/no-such-dir', limits })),
      () => outcome(run({ command: [fx.inBox('alloc'), '128'], binds: [fx.bind], limits })),
      () => outcome(run({ command: [fx.inBox('burn'), '3000'], binds: [fx.bind], limits: { ...limits, cpuTime: '50ms' } })),
      () => outcome(run({ command: [fx.inBox('forkbomb')], binds: [fx.bind], limits: { ...limits, wallTime: '200ms' } })),
      () => outcome(run({ command: ['/bin/sleep', '10'], limits: { ...limits, wallTime: '50ms' } })),
      () => aborted(-1), // aborted before it starts
      () => aborted(0), // while its cgroup and box are being built
      () => aborted(1),
      () => aborted(30), // while it runs
      async () => {
        const ac = new AbortController();
        ac.abort();
        return outcome(run({ command: ['/bin/true'], limits, signal: ac.signal }));
      },
      async () => {
        const box = await spawn({ command: ['/bin/sleep', '10'], limits });
        box.stdout.resume();
        box.stderr.resume();
        await sleep(10);
        box.kill();
        return outcome(box.wait());
      },
    ];
    const seen = new Map<string, number>();
    const note = (s: string): void => void seen.set(s, (seen.get(s) ?? 0) + 1);
    for (let round = 0; round < 3; round++) for (const k of kinds) note(await k());
    // Concurrent: 6 at a time, every kind 4 times.
    const queue = Array.from({ length: 4 }, () => kinds).flat();
    await Promise.all(
      Array.from({ length: 6 }, async () => {
        for (let k = queue.shift(); k; k = queue.shift()) note(await k());
      }),
    );
    // Every kind really happened.
    expect([...seen.keys()].sort()).toEqual(
      ['AbortError', 'bad-bind', 'memory-limit', 'ok', 'setup:chdir /usr/no-such-dir', 'setup:execve', 'signaled', 'time-limit', 'wall-time-limit'].sort(),
    );
    expect(seen.get('ok')).toBeGreaterThan(0);
    expect(seen.get('setup:execve')).toBeGreaterThan(0);
    expect(seen.get('setup:chdir /usr/no-such-dir')).toBeGreaterThan(0);
    expect(seen.get('memory-limit')).toBeGreaterThan(0);
    expect(seen.get('time-limit')).toBeGreaterThan(0);
    expect(seen.get('wall-time-limit')).toBeGreaterThan(0);
    expect(seen.get('AbortError')).toBeGreaterThanOrEqual(5 * 7);
    expect(seen.get('signaled')).toBeGreaterThan(0);

    for (let i = 0; i < 50 && (await childPids()).length > 0; i++) await sleep(20);
    expect(await childPids()).toEqual([]);
    expect(await runCgroupsInUse()).toEqual([]);
    // The parent itself stays while the process lives (and goes at its exit), one per hierarchy.
    expect(listSandcellCgroups({ pid: process.pid }).length).toBeGreaterThan(0);
  });
});
