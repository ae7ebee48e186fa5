// The pids limit of the box (cgroup pids.max = limits.processes, the init counted): a fork bomb
// is contained, the run ends at its wall time and leaves nothing behind.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';

import { run, spawn } from '../../src/index.js';
import { boxSuite, hostProcessCount, liveRunCgroups, readNumber } from '../helpers/cgroups.js';
import { idleCgroupDirs } from '../../src/runtime.js';
import { childPids, runCgroupsInUse } from '../helpers/host.js';

const fixtures = boxSuite();

describe('processes (cgroup pids)', () => {
  it('a fork bomb under processes: 64 is contained, ends at its wall time and leaves nothing', async () => {
    const before = hostProcessCount();
    // A spinning bomb; cpus: 0.5 keeps it from taking the shared machine's two cores meanwhile.
    const box = await spawn({ command: [fixtures().inBox('forkbomb')], binds: [fixtures().bind], limits: { processes: 64, cpus: 0.5, wallTime: '1500ms' } });
    box.stdout.resume();
    box.stderr.resume();
    const [dir] = await liveRunCgroups('pids');
    expect(dir).toBeDefined();
    expect(readNumber(join(dir!, 'pids.max'))).toBe(64);
    // While it runs: the box holds at most 64 tasks, the init included, and the host's count
    // grows by no more than that (other work on this shared machine gets 48 of slack: the other
    // test worker's runs, and up to 4 warm boxes and one being built).
    let most = 0;
    let hostMost = 0;
    let refused = 0;
    for (let i = 0; i < 20; i++) {
      await sleep(50);
      if (!existsSync(dir!)) break;
      try {
        most = Math.max(most, readNumber(join(dir!, 'pids.current')));
        refused = Number(/^max (\d+)/m.exec(readFileSync(join(dir!, 'pids.events'), 'utf8'))?.[1]);
      } catch {
        break; // the run ended meanwhile
      }
      hostMost = Math.max(hostMost, hostProcessCount());
    }
    expect(most).toBe(64);
    expect(refused).toBeGreaterThan(0); // forks were refused by the cgroup
    expect(hostMost - before).toBeLessThanOrEqual(64 + 48);
    const r = await box.wait();
    expect(r.status).toBe('wall-time-limit');
    expect(r.limitsEnforced.processes).toBe('cgroup');
    expect(r.usage.wallTimeMs).toBeLessThan(3000);
    // Half a CPU for 1.5 s is about 750 ms of CPU time; the end (64 exits) is charged too, so
    // the bound is one CPU's worth: without cpus the bomb takes both cores (3000 ms).
    expect(r.usage.cpuTimeMs).toBeLessThan(1500);
    expect(await childPids()).toEqual([]);
    expect(await runCgroupsInUse()).toEqual([]);
    // Removed, or (v1) readied for the next run: kept only empty and with its limit lifted.
    if (existsSync(dir!)) {
      expect(await idleCgroupDirs()).toContain(dir);
      expect(readNumber(join(dir!, 'pids.current'))).toBe(0);
      expect(readFileSync(join(dir!, 'pids.max'), 'utf8').trim()).toBe('max');
    }
    // Every process of the bomb is gone: the host is back where it was (same slack).
    expect(hostProcessCount() - before).toBeLessThanOrEqual(48);
  });

  it.each([4, 10, 32])('the init counts, threads count: under processes: %i the program starts processes - 2 threads', async (n) => {
    const r = await run({ command: [fixtures().inBox('threads'), '100'], binds: [fixtures().bind], limits: { processes: n, wallTime: '10s' } });
    expect(r.status).toBe('ok');
    // init + the program's main thread + n - 2 threads = pids.max
    expect(r.stdout).toBe(`started ${n - 2} EAGAIN\n`);
  });

  it('a fork bomb in the shell (:(){ :|:& };:) is contained too', async () => {
    const r = await run({ command: ['/bin/sh', '-c', 'f() { f | f & }; f; sleep 1'], limits: { processes: 32, cpus: 0.5, wallTime: '1500ms' } });
    expect(['ok', 'wall-time-limit', 'nonzero-exit']).toContain(r.status);
    expect(await childPids()).toEqual([]);
    expect(await runCgroupsInUse()).toEqual([]);
  });
});
