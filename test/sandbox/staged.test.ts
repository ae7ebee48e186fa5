// A living box stages its next run ahead: joined, its PID namespace and /proc made, waiting for its
// plan. A run that takes it must behave exactly as one joined now (its own program, environment,
// files, stdin, limits and filter; only its own processes in view), a second run at the same time
// joins now, and a box destroyed while a run is staged leaves nothing behind.
import { existsSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { onDebugEvent, Sandbox, type DebugEvent, type SandboxProcess } from '../../src/index.js';
import { childPids, mountTable, openFds, requireRoot, runCgroupsInUse } from '../helpers/host.js';

type Staged = Extract<DebugEvent, { event: 'staged' }>;
type Start = Extract<DebugEvent, { event: 'start' }>;

const staged: Staged[] = [];
const starts: Start[] = [];
let stop: () => void = () => {};
beforeAll(() => {
  requireRoot();
  stop = onDebugEvent((e) => {
    if (e.event === 'staged') staged.push(e);
    if (e.event === 'start') starts.push(e);
  });
});
afterAll(async () => {
  stop();
  expect(await childPids()).toEqual([]);
  expect(await runCgroupsInUse()).toEqual([]);
});

const taken = new Set<number>();

/** The pid of the run staged in `box` and not taken yet, once one waits, with a deadline. */
async function stagedPid(box: Sandbox): Promise<number> {
  for (let i = 0; i < 1000; i++) {
    const e = staged.find((s) => s.box === box.pid && (s.pid === null || !taken.has(s.pid)));
    if (e) {
      expect(e.error).toBeUndefined();
      taken.add(e.pid!);
      return e.pid!;
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error('no run was staged within 10 s');
}

/** How the run with this pid found its box ('hit': it took the staged run). */
function outcomeOf(pid: number): string | undefined {
  return starts.find((s) => s.pid === pid && s.box === 'living')?.warm;
}

async function text(stream: NodeJS.ReadableStream | null): Promise<string> {
  let s = '';
  for await (const c of stream ?? []) s += String(c);
  return s;
}

describe('a staged run in a living box', () => {
  it('takes the run: its own program, environment, files, stdin and exit code; the next run is staged again', async () => {
    const box = await Sandbox.create({ env: { BOX: 'box' } });
    try {
      for (let i = 0; i < 3; i++) {
        const pid = await stagedPid(box);
        const p = await box.spawn({
          command: ['/bin/sh', '-c', 'echo "$BOX $RUN"; cat data.txt; cat; ls /proc | grep -c "^[0-9]"; exit 3'],
          env: { RUN: `run${i}` },
          files: { 'data.txt': `file${i}\n` },
        });
        expect(p.pid).toBe(pid);
        expect(outcomeOf(p.pid)).toBe('hit');
        p.stdin!.end(`stdin${i}\n`);
        const [out, result] = await Promise.all([text(p.stdout), p.wait()]);
        expect(result.exitCode).toBe(3);
        // The shell and ls, grep, cat of its pipeline: the run's /proc shows its own processes only.
        const lines = out.split('\n');
        expect(lines.slice(0, 3)).toEqual([`box run${i}`, `file${i}`, `stdin${i}`]);
        expect(Number(lines[3])).toBeLessThanOrEqual(3);
      }
    } finally {
      await box.destroy();
    }
  });

  it('applies the run\'s own limits and seccomp filter', async () => {
    const box = await Sandbox.create({ limits: { memory: '256MiB', processes: 64 } });
    try {
      await stagedPid(box);
      const before = starts.length;
      const mem = await box.run({
        command: ['/bin/sh', '-c', 'x=$(head -c 100000000 /dev/zero | tr "\\0" a); echo ${#x}'],
        limits: { memory: '32MiB', wallTime: '20s' },
      });
      expect(mem.status).toBe('memory-limit');
      expect(starts.slice(before).some((s) => s.warm === 'hit')).toBe(true);

      const forks = await box.run({
        command: ['/bin/sh', '-c', 'for i in 1 2 3 4 5 6 7 8; do sleep 1 & done; wait; echo done'],
        limits: { processes: 6, wallTime: '20s' },
      });
      expect(forks.stderr).toMatch(/fork|resource/i);

      const denied = await box.run({ command: ['/usr/bin/perl', '-e', 'socket(S, 2, 1, 0); print "never\\n"'], seccomp: 'judge' });
      expect(denied.status).toBe('syscall-denied');
      expect(denied.violation?.syscall).toBe('socket');
      expect(denied.stdout).toBe('');
      const socket = await box.run({ command: ['/usr/bin/perl', '-e', 'socket(S, 2, 1, 0) or die; print "ok\\n"'] });
      expect(socket.stdout).toBe('ok\n');
      expect(socket.status).toBe('ok');
    } finally {
      await box.destroy();
    }
  });

  it('a second run at the same time joins now; each sees only its own processes', async () => {
    const box = await Sandbox.create();
    const procs: SandboxProcess[] = [];
    try {
      await stagedPid(box);
      const ps = 'sleep 30 & echo ready; ls /proc | grep -c "^[0-9]"; wait';
      procs.push(await box.spawn({ command: ['/bin/sh', '-c', ps] }), await box.spawn({ command: ['/bin/sh', '-c', ps] }));
      expect(procs.map((p) => outcomeOf(p.pid)).sort()).toEqual(['hit', 'miss']);
      for (const p of procs) {
        const first = await new Promise<string>((resolve) => {
          let s = '';
          p.stdout!.on('data', (c: Buffer) => {
            s += String(c);
            if (s.split('\n').length > 2) resolve(s);
          });
        });
        // sh, sleep, ls and grep at most: never the other run's shell and sleep.
        expect(Number(first.split('\n')[1])).toBeLessThanOrEqual(4);
      }
    } finally {
      for (const p of procs) p.kill();
      await Promise.all(procs.map((p) => p.wait()));
      await box.destroy();
    }
  });

  it('a box destroyed with a run staged leaves no process, cgroup, mount or descriptor', async () => {
    const mounts = mountTable();
    const fds = await openFds();
    const box = await Sandbox.create();
    const pid = await stagedPid(box);
    const cgroups = readFileSync(`/proc/${pid}/cgroup`, 'utf8')
      .split('\n')
      .flatMap((l) => {
        const [, controllers, path] = l.split(':');
        return controllers?.split(',').includes('pids') ? [`/sys/fs/cgroup/pids${path}`] : [];
      });
    expect(cgroups).toHaveLength(1);
    expect(existsSync(cgroups[0]!)).toBe(true);
    await box.destroy();
    expect(existsSync(`/proc/${pid}`)).toBe(false);
    expect(existsSync(cgroups[0]!)).toBe(false);
    expect(await childPids()).toEqual([]);
    expect(await runCgroupsInUse()).toEqual([]);
    expect(mountTable()).toBe(mounts);
    expect(await openFds()).toBe(fds);
  });

  it('a box built for one run (run() with collect) stages nothing', async () => {
    const { run } = await import('../../src/index.js');
    const before = staged.length;
    const r = await run({ command: ['/bin/sh', '-c', 'echo hi > out.txt'], collect: ['out.txt'] });
    expect(r.files?.['out.txt']?.toString()).toBe('hi\n');
    expect(staged.length).toBe(before);
  });
});
