// A living box's `processes` limit counts everything in it (docs/architecture.md, "Boxes that
// live"): the box's init, three processes per run running or staged (the clone child, the link,
// the run's init), and the programs' own. So under `processes: N` a program alone in the box
// (it took the staged run, and the next is staged only once it ends) has N − 4 tasks; one that
// runs while the next run is staged has N − 7. Each program counts how many children it can fork.
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { onDebugEvent, Sandbox, type DebugEvent, type SandboxProcess } from '../../src/index.js';
import { childPids, requireRoot, runCgroupsInUse } from '../helpers/host.js';

const N = 16;

const events: DebugEvent[] = [];
let stop: () => void = () => {};
beforeAll(() => {
  requireRoot();
  stop = onDebugEvent((e) => events.push(e));
});
afterAll(async () => {
  stop();
  expect(await childPids()).toEqual([]);
  expect(await runCgroupsInUse()).toEqual([]);
});

/** The box's cgroup in the pids hierarchy: the parent of the leaf its init sits in. */
function boxPidsCgroup(box: Sandbox): string {
  const line = readFileSync(`/proc/${box.pid}/cgroup`, 'utf8')
    .split('\n')
    .find((l) => l.split(':')[1]?.split(',').includes('pids'));
  if (line === undefined) throw new Error('the box has no pids cgroup: this suite needs the pids controller');
  return dirname(`/sys/fs/cgroup/pids${line.split(':')[2]}`);
}

/** Waits until the box's cgroup holds exactly `n` tasks (runs that ended are reaped after their result). */
async function tasksSettleAt(cgroup: string, n: number): Promise<void> {
  let current = -1;
  for (let i = 0; i < 1000; i++) {
    current = Number(readFileSync(`${cgroup}/pids.current`, 'utf8'));
    if (current === n) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`the box's cgroup holds ${current} tasks, expected ${n}`);
}

/** How the run with this pid found its box: 'hit' when it took the staged run. */
function outcomeOf(pid: number): string | undefined {
  for (const e of events) if (e.event === 'start' && e.pid === pid && e.box === 'living') return e.warm;
  return undefined;
}

/** Staged runs of `box` so far (the debug events). */
function stagedCount(box: Sandbox): number {
  return events.filter((e) => e.event === 'staged' && e.box === box.pid && e.error === undefined).length;
}

/** Waits until `box` has staged `n` runs in all (the debug event comes once the staged run waits for its plan). */
async function stagedRuns(box: Sandbox, n: number): Promise<void> {
  for (let i = 0; i < 1000 && stagedCount(box) < n; i++) await new Promise((r) => setTimeout(r, 10));
  expect(stagedCount(box)).toBe(n);
}

/** Forks children that sleep until it cannot, once told to on stdin; prints how many it forked. */
const FORKER = ['/usr/bin/perl', '-e', '$| = 1; print "ready\\n"; <STDIN>; my $n = 0; while (1) { my $p = fork(); last unless defined $p; if (!$p) { sleep 100; exit 0 } $n++ } print "$n\\n"'];

/** The lines of `p`'s stdout, one per call, as they come. */
function linesOf(p: SandboxProcess): () => Promise<string> {
  let text = '';
  let ended = false;
  let wake: (() => void) | null = null;
  p.stdout!.on('data', (c: Buffer) => {
    text += String(c);
    wake?.();
  });
  p.stdout!.on('end', () => {
    ended = true;
    wake?.();
  });
  return async () => {
    for (;;) {
      const i = text.indexOf('\n');
      if (i !== -1) {
        const line = text.slice(0, i);
        text = text.slice(i + 1);
        return line;
      }
      if (ended) throw new Error(`stdout ended before a line; so far: ${JSON.stringify(text)}`);
      await new Promise<void>((resolve) => (wake = resolve));
      wake = null;
    }
  };
}

/** Lets the forker fork once the box holds `tasks` tasks, and returns its count. */
async function forked(p: SandboxProcess, cgroup: string, tasks: number): Promise<number> {
  const line = linesOf(p);
  expect(await line()).toBe('ready');
  await tasksSettleAt(cgroup, tasks);
  p.stdin!.end('go\n');
  const n = Number(await line());
  expect((await p.wait()).status).toBe('ok');
  return n;
}

describe(`a living box with processes: ${N}`, () => {
  it('its staged run takes three of them: a program alone forks N − 5 children, one beside a staged run N − 8', async () => {
    const box = await Sandbox.create({ limits: { processes: N, wallTime: '60s' } });
    const procs: SandboxProcess[] = [];
    try {
      const cgroup = boxPidsCgroup(box);
      expect(readFileSync(`${cgroup}/pids.max`, 'utf8').trim()).toBe(String(N));
      // The box's init and the staged run.
      await stagedRuns(box, 1);
      await tasksSettleAt(cgroup, 1 + 3);

      const alone = await box.spawn({ command: FORKER });
      procs.push(alone);
      expect(outcomeOf(alone.pid)).toBe('hit');
      // The init, this run's three, the forker: nothing is staged while it runs.
      expect(await forked(alone, cgroup, 1 + 3 + 1)).toBe(N - 1 - 3 - 1);

      // The next run is staged once that one ended; a sleeper takes it, and the forker joins now.
      await stagedRuns(box, 2);
      await tasksSettleAt(cgroup, 1 + 3);
      const sleeper = await box.spawn({ command: ['/bin/sleep', '100'] });
      procs.push(sleeper);
      expect(outcomeOf(sleeper.pid)).toBe('hit');
      const beside = await box.spawn({ command: FORKER });
      procs.push(beside);
      expect(outcomeOf(beside.pid)).toBe('miss');
      sleeper.kill();
      expect((await sleeper.wait()).status).toBe('signaled');
      // The init, the run staged after the sleeper ended, the forker's run and the forker.
      await stagedRuns(box, 3);
      expect(await forked(beside, cgroup, 1 + 3 + 3 + 1)).toBe(N - 1 - 3 - 3 - 1);
    } finally {
      for (const p of procs) p.kill();
      await Promise.all(procs.map((p) => p.wait()));
      await box.destroy();
    }
  }, 120_000);
});
