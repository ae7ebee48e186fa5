// Without root: the box still works (the caller's own id is the box's root, the program runs as
// that root without capabilities), cgroup limits fall back to rlimits, and the result says so.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';

import { requireRoot } from '../helpers/host.js';

const DIST = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'index.js');

/** Runs `script` (ESM, with `run` imported) in a Node process as uid/gid 65534. */
function asNobody(script: string) {
  const code = `import { onDebugEvent, run, Sandbox, SandboxOptionsError } from ${JSON.stringify(DIST)};\n${script}`;
  return spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '--input-type=module', '-e', code], {
    encoding: 'utf8',
    timeout: 30_000,
  });
}

beforeAll(() => {
  // Root is needed to become someone else; the checkout must be readable by that user.
  requireRoot();
  const probe = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'test', '-r', DIST]);
  if (probe.status !== 0) throw new Error(`uid 65534 cannot read ${DIST}: the rootless tests need a world-readable checkout`);
});

describe('rootless', () => {
  it('a living box stages its next run and each run takes it, with rlimits standing in', () => {
    const r = asNobody(`
      const events = [];
      onDebugEvent((e) => { if (e.event === 'staged') events.push(e.error ?? 'staged'); if (e.event === 'start') events.push(e.warm); });
      const box = await Sandbox.create();
      const results = [];
      // A run takes the staged one once it is made (a run that comes earlier joins now).
      const staged = (n) => new Promise((ok) => { const t = setInterval(() => { if (events.filter((e) => e === 'staged').length > n) { clearInterval(t); ok(); } }, 5); });
      for (let i = 0; i < 3; i++) {
        await staged(i);
        results.push(await box.run({ command: ['/bin/sh', '-c', 'id -u; echo "$N"'], env: { N: String(i) }, limits: { processes: 16 } }));
      }
      await box.destroy();
      console.log(JSON.stringify({ events, results: results.map((x) => [x.status, x.stdout, x.limitsEnforced.processes]) }));`);
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout) as { events: string[]; results: unknown[] };
    expect(out.results).toEqual([0, 1, 2].map((i) => ['ok', `0\n${i}\n`, 'rlimit']));
    expect(out.events.slice(0, 6)).toEqual(['staged', 'hit', 'staged', 'hit', 'staged', 'hit']);
  });

  it('runs a box, with rlimits standing in for cgroups, and says so', () => {
    const r = asNobody(`
      const r = await run({ command: ['/bin/sh', '-c', 'id -u; hostname; grep CapEff /proc/self/status; echo x > /work/f && cat /work/f'], limits: { cpuTime: '1s', memory: '256MiB', processes: 32, wallTime: '10s' } });
      console.log(JSON.stringify(r));`);
    expect(r.stderr).toBe('');
    const result = JSON.parse(r.stdout) as { status: string; stdout: string; limitsEnforced: Record<string, string>; usage: { memoryPeakBytes: unknown } };
    expect(result.status).toBe('ok');
    expect(result.stdout).toBe('0\nsandcell\nCapEff:\t0000000000000000\nx\n');
    expect(result.limitsEnforced).toEqual({ memory: 'rlimit', cpuTime: 'rlimit', processes: 'rlimit' });
    expect(result.usage.memoryPeakBytes).toBeNull();
  });

  it('enforces the CPU limit with RLIMIT_CPU', () => {
    const r = asNobody(`
      const r = await run({ command: ['/bin/sh', '-c', 'while :; do :; done'], limits: { cpuTime: '1s', wallTime: '10s' } });
      console.log(r.status);`);
    expect(r.stdout.trim()).toBe('time-limit');
  });

  it('uses warm boxes too: a run in one gets its own program and rlimits', () => {
    const warm = JSON.stringify(join(dirname(DIST), 'runtime.js'));
    const r = asNobody(`
      const { warmBoxes } = await import(${warm});
      for (let i = 0; i < 2; i++) await run({ command: ['/bin/true'] });
      await warmBoxes.settled();
      const waiting = warmBoxes.pids().length;
      const r = await run({ command: ['/bin/sh', '-c', 'id -u; echo x > /work/f && cat /work/f; ulimit -v'], limits: { memory: '256MiB', wallTime: '10s' } });
      console.log(JSON.stringify({ waiting, left: warmBoxes.pids().length, status: r.status, stdout: r.stdout, memory: r.limitsEnforced.memory }));`);
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout) as { waiting: number; left: number; status: string; stdout: string; memory: string };
    expect(out.waiting).toBeGreaterThan(0);
    expect(out.left).toBe(out.waiting - 1);
    expect(out.status).toBe('ok');
    expect(out.stdout).toBe(`0\nx\n${256 * 1024}\n`);
    expect(out.memory).toBe('rlimit');
  });

  it('refuses other ids than 0 for the program, naming the field', () => {
    const r = asNobody(`
      try { await run({ command: ['/bin/true'], user: { uid: 1000 } }); console.log('ran'); }
      catch (e) { console.log(e instanceof SandboxOptionsError ? e.path : String(e)); }`);
    expect(r.stdout.trim()).toBe('user.uid');
  });
});
