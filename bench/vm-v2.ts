/**
 * What `npm run test:vm -- --bench` measures inside the test guest (a pure cgroup v2 kernel, see
 * scripts/vm/): the p50 latency of `run()` of /bin/true, and the precision of the CPU time of
 * the whole tree (what sandcell reports against what the program measured itself with
 * CLOCK_PROCESS_CPUTIME_ID, and how far past a CPU-time limit a run ends). Prints a Markdown
 * section to stdout, labelled with the kernel and the hierarchy; it writes no file.
 *
 * Environment: BENCH_ITERATIONS runs of /bin/true (default 300), BENCH_CPU_ROUNDS runs per CPU
 * point (default 5).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, chmodSync } from 'node:fs';
import { cpus, release, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { run, shutdown } from '../dist/index.js';
import { dist, ms, nowMs } from './stats.js';

function envNum(name: string, dflt: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} must be a positive integer, got ${v}`);
  return n;
}
const ITER = envNum('BENCH_ITERATIONS', 300);
const ROUNDS = envNum('BENCH_CPU_ROUNDS', 5);
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

const fixtures = mkdtempSync(join(tmpdir(), 'sandcell-bench-'));
chmodSync(fixtures, 0o755);
execFileSync('gcc', ['-O1', '-pthread', '-o', join(fixtures, 'burn'), join(ROOT, 'test/fixtures/burn.c')]);
const bind = { source: fixtures, target: '/fx', readonly: true as const };

const lines: string[] = [];
const out = (s = ''): void => {
  lines.push(s);
};

try {
  const hierarchy = readFileSync('/proc/self/mountinfo', 'utf8').includes(' - cgroup cgroup ') ? 'cgroup v1' : 'cgroup v2 only';
  const guest = process.env.SANDCELL_VM_ACCEL === 'tcg' ? 'a QEMU guest under software emulation (TCG, no KVM)' : 'a KVM guest';
  out(`## Measured in ${guest}: Linux ${release()}, ${hierarchy}, ${cpus().length} vCPUs (npm run test:vm -- --bench)`);
  out();

  for (let i = 0; i < 10; i++) await run({ command: ['/bin/true'] });
  const lat: number[] = [];
  for (let i = 0; i < ITER; i++) {
    const t0 = nowMs();
    const r = await run({ command: ['/bin/true'] });
    lat.push(nowMs() - t0);
    if (r.status !== 'ok') throw new Error(`/bin/true: ${r.status}`);
  }
  const d = dist(lat);
  out(`run() of /bin/true, ${d.n} runs one after another: p50 ${ms(d.p50)} ms, p90 ${ms(d.p90)} ms, p99 ${ms(d.p99)} ms`);
  out();

  out('| CPU work | runs | reported − self-measured (ms): min / max | bound 2 ms + 1 % |');
  out('|---|---|---|---|');
  for (const [work, args] of [
    ['50 ms, 1 thread', ['50', '1']],
    ['500 ms, 1 thread', ['500', '1']],
    ['2 × 700 ms, 2 threads', ['700', '2']],
  ] as const) {
    const diffs: number[] = [];
    let bound = 0;
    for (let i = 0; i < ROUNDS; i++) {
      const r = await run({ command: ['/fx/burn', ...args], binds: [bind], limits: { cpuTime: '10s', wallTime: '60s' } });
      if (r.status !== 'ok') throw new Error(`burn ${args.join(' ')}: ${r.status}`);
      const self = Number(r.stdout.trim()) / 1000;
      diffs.push(r.usage.cpuTimeMs - self);
      bound = 2 + self / 100;
    }
    const s = dist(diffs);
    out(`| ${work} | ${s.n} | ${ms(s.min)} / ${ms(s.max)} | ${ms(bound)} |`);
  }
  out();

  out('| under a limit | runs | CPU past the limit (ms): min / p50 / max |');
  out('|---|---|---|');
  for (const [work, args, limit] of [
    ['1 thread, 300 ms limit', ['2000', '1'], 300],
    ['2 threads, 1 s limit', ['2000', '2'], 1000],
    ['4 processes, 1 s limit', ['2000', '1', '3'], 1000],
  ] as const) {
    const over: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      const r = await run({ command: ['/fx/burn', ...args], binds: [bind], limits: { cpuTime: `${limit}ms`, wallTime: '60s' } });
      if (r.status !== 'time-limit') throw new Error(`burn ${args.join(' ')} under ${limit} ms: ${r.status}`);
      over.push(r.usage.cpuTimeMs - limit);
    }
    const s = dist(over);
    out(`| ${work} | ${s.n} | ${ms(s.min)} / ${ms(s.p50)} / ${ms(s.max)} |`);
  }
} finally {
  await shutdown();
  rmSync(fixtures, { recursive: true, force: true });
}
console.log(lines.join('\n'));
