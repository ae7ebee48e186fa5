/**
 * What the seccomp filter costs a program: a C program inside a box times 300,000 cheap system
 * calls with CLOCK_THREAD_CPUTIME_ID around the loop and prints the nanoseconds; the same
 * program runs under `none`, `default` and `judge`, interleaved, several repetitions, and the
 * medians are compared with `none` of the same run.
 *
 * Two loops:
 * - `getppid` (raw syscall(), nothing cached by libc): the loop of the ≤ 5% target. Both presets allow it
 *   without argument conditions, so on kernels ≥ 5.11 the seccomp action cache decides it from
 *   arch and number without running the filter at all.
 * - `ioctl(-1, TCGETS)` (fails with EBADF at once): both presets have argument rules for ioctl
 *   (TIOCSTI/TIOCLINUX), so the cache cannot decide it and the BPF program runs on every call:
 *   the worst case of a cheap call.
 *
 * `seccompCost()` returns a Markdown section (for bench/RESULTS.md). Run on its own, as root, after
 * `npm run build`:
 *
 *   npx tsc -p tsconfig.bench.json && node dist-bench/seccomp-cost.js
 *
 * The loop's own CPU time, not the wall clock: on a shared machine the wall clock counts every
 * time the loop was preempted (4× its CPU time under load here), which drowned a 5 % difference
 * in noise however many calls were made; CPU time leaves the preemption out, so fewer calls give
 * the same spread and the section stays short on a slow machine.
 *
 * Environment: SECCOMP_BENCH_REPS (default 9), SECCOMP_BENCH_CALLS (default 300000).
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { release, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { run } from '../dist/index.js';
import { compile, presets } from '../dist/seccomp/index.js';

const LOOP_C = `#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <termios.h>

int main(int argc, char **argv) {
  long n = atol(argv[2]);
  int ioctl_loop = strcmp(argv[1], "ioctl") == 0;
  struct termios t;
  struct timespec a, b;
  for (long i = 0; i < 10000; i++) syscall(SYS_getppid); /* warm-up */
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
  if (ioctl_loop)
    for (long i = 0; i < n; i++) syscall(SYS_ioctl, -1, TCGETS, &t);
  else
    for (long i = 0; i < n; i++) syscall(SYS_getppid);
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
  printf("%lld\\n", (long long)(b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec));
  return 0;
}
`;

/** `empty`: a filter that allows everything (arch check, x32 check, `ret ALLOW`): the floor any filter costs. */
const PRESETS = ['none', 'empty', 'default', 'judge'] as const;
type Preset = (typeof PRESETS)[number];
const EMPTY_POLICY = { defaultAction: 'allow' as const, rules: [] };
const LOOPS = ['getppid', 'ioctl'] as const;
type Loop = (typeof LOOPS)[number];

function envInt(name: string, dflt: number): number {
  const v = Number(process.env[name] ?? dflt);
  if (!Number.isInteger(v) || v <= 0) throw new Error(`${name} must be a positive integer`);
  return v;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/**
 * Measures and returns the Markdown section. Needs root (real boxes) and gcc. `progress` is called
 * after every run: a caller's stall watchdog watches each run, not the whole section (tens of runs
 * of a million calls each, minutes on a slow shared machine).
 */
export async function seccompCost(progress: () => void = () => undefined): Promise<string> {
  const reps = envInt('SECCOMP_BENCH_REPS', 9);
  const calls = envInt('SECCOMP_BENCH_CALLS', 300_000);
  const dir = mkdtempSync(join(tmpdir(), 'sandcell-seccomp-cost-'));
  try {
    chmodSync(dir, 0o755);
    writeFileSync(join(dir, 'loop.c'), LOOP_C);
    execFileSync('gcc', ['-O2', '-o', join(dir, 'loop'), join(dir, 'loop.c')], { stdio: ['ignore', 'ignore', 'inherit'] });
    const ns: Record<Loop, Record<Preset, number[]>> = {
      getppid: { none: [], empty: [], default: [], judge: [] },
      ioctl: { none: [], empty: [], default: [], judge: [] },
    };
    const once = async (loop: Loop, seccomp: Preset): Promise<number> => {
      const r = await run({
        command: ['/bench/loop', loop, String(calls)],
        binds: [{ source: dir, target: '/bench', readonly: true }],
        seccomp: seccomp === 'empty' ? EMPTY_POLICY : seccomp,
        limits: { wallTime: '60s' },
      });
      const v = Number(r.stdout.trim());
      if (r.status !== 'ok' || !Number.isFinite(v) || v <= 0) {
        throw new Error(`loop ${loop} under ${seccomp}: ${r.status} ${JSON.stringify(r.violation)} ${r.stdout} ${r.stderr}`);
      }
      progress();
      return v;
    };
    for (const loop of LOOPS) await once(loop, 'none'); // warm: addon, filters compiled, page cache
    for (let i = 0; i < reps; i++) {
      // Rotate the order each repetition so drift on a shared machine does not favour one preset.
      const order = PRESETS.map((_, k) => PRESETS[(k + i) % PRESETS.length]!);
      for (const loop of LOOPS) for (const p of order) ns[loop][p].push(await once(loop, p));
    }
    const insns = (p: Preset): string =>
      p === 'none' ? '— (no filter)' : String(compile(p === 'empty' ? EMPTY_POLICY : presets[p], 'x86_64').instructions);
    const lines: string[] = [];
    lines.push('## Seccomp filter cost (bench/seccomp-cost.ts)');
    lines.push('');
    lines.push(
      `A C program in a box times ${calls.toLocaleString('en-US')} raw system calls, timed with the loop's own CPU time (CLOCK_THREAD_CPUTIME_ID: preemption by other work on a shared machine left out); ` +
        `${reps} repetitions per preset and loop, presets interleaved in rotating order; medians; ratio = median ÷ median under \`none\` of this run. ` +
        `Kernel ${release()}, ${new Date().toISOString()}.`,
    );
    lines.push('');
    lines.push('`getppid` is allowed by both presets without argument conditions: the kernel\'s seccomp action cache (≥ 5.11) decides it without running the filter. `ioctl(-1, TCGETS)` meets the TIOCSTI/TIOCLINUX argument rules of both presets, so the BPF program runs on every call. `empty` is a filter that allows everything (`{ defaultAction: \'allow\', rules: [] }`): what having any filter at all costs (the syscall entry takes the kernel\'s slow path with seccomp work flagged, even when the action cache answers).');
    lines.push('');
    lines.push('| loop | preset | BPF instructions | median ns/call | min ns/call | max ns/call | ratio to `none` | overhead |');
    lines.push('|---|---|---:|---:|---:|---:|---:|---:|');
    const verdict: string[] = [];
    for (const loop of LOOPS) {
      const base = median(ns[loop].none);
      for (const p of PRESETS) {
        const xs = ns[loop][p];
        const m = median(xs);
        const per = (x: number): string => (x / calls).toFixed(1);
        const r = m / base;
        lines.push(
          `| \`${loop}\` | ${p} | ${insns(p)} | ${per(m)} | ${per(Math.min(...xs))} | ${per(Math.max(...xs))} | ${r.toFixed(3)}× | ${p === 'none' ? '—' : `${((r - 1) * 100).toFixed(1)}%`} |`,
        );
        if (loop === 'getppid' && p === 'default') {
          verdict.push(`Target: ≤ 5% overhead for \`default\` on the getppid loop: **${r <= 1.05 ? 'met' : 'missed'}** (${((r - 1) * 100).toFixed(1)}%).`);
        }
      }
    }
    for (const loop of LOOPS) {
      const r = median(ns[loop].default) / median(ns[loop].empty);
      verdict.push(`Target: \`${loop}\`: \`default\` ÷ \`empty\` ≤ 1.05 (what the policy adds beyond having a filter at all): ${r.toFixed(3)}×, **${r <= 1.05 ? 'met' : 'missed'}**.`);
    }
    lines.push('');
    lines.push(verdict.join(' '));
    lines.push('');
    return lines.join('\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  seccompCost().then(
    (md) => process.stdout.write(md),
    (e: unknown) => {
      console.error(e);
      process.exitCode = 1;
    },
  );
}
