/**
 * What the seccomp filter costs a program: a C program inside a box times 300,000 cheap system
 * calls with CLOCK_THREAD_CPUTIME_ID around the loop and prints the nanoseconds; the same
 * program runs with no filter, an allow-all filter, a one-rule filter, `default` and `judge`,
 * each preset twice: as a run gets it (its stdio are pipes, so the rules marked `terminal` are
 * left out) and as a run that may hold a terminal gets it (`default+tty`, `judge+tty`: the
 * preset with those rules kept, the same program such a run is given).
 *
 * Two loops:
 * - `getppid` (raw syscall(), nothing cached by libc): every filter allows it without argument
 *   conditions, so on kernels ≥ 5.11 the seccomp action cache decides it from arch and number
 *   without running the filter at all.
 * - `ioctl(-1, TCGETS)` (fails with EBADF at once): without the terminal rules the presets allow
 *   ioctl outright and the cache answers it too; with them (TIOCSTI/TIOCLINUX, argument rules)
 *   the cache cannot decide it and the BPF program runs on every call: the worst case of a cheap
 *   call. `one-rule` (allow everything, one never-matching argument rule on ioctl) is the least a
 *   filter that runs for the call can cost: what any argument rule on ioctl costs, whatever the
 *   rest of the program.
 *
 * Rounds: each round runs every filter once per loop (each run a box of its own, the order
 * rotated from round to round), and every ratio is taken within the round, so a shift of the
 * machine's speed between rounds cancels. The section reports the median of the per-round
 * ratios and their interquartile range (the spread), not a ratio of medians.
 *
 * `seccompCost()` returns a Markdown section (for bench/RESULTS.md). Run on its own, as root, after
 * `npm run build`:
 *
 *   npx tsc -p tsconfig.bench.json && node dist-bench/seccomp-cost.js
 *
 * The loop's own CPU time, not the wall clock: on a shared machine the wall clock counts every
 * time the loop was preempted (4× its CPU time under load here), which drowned a 5 % difference
 * in noise however many calls were made; CPU time leaves the preemption out.
 *
 * Environment: SECCOMP_BENCH_REPS (rounds, default 25), SECCOMP_BENCH_CALLS (default 300000).
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { release, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { run } from '../dist/index.js';
import { AUDIT_ARCH, type SeccompPolicy, compile, emulateTrace, presets, syscallNumber, withoutTerminalRules } from '../dist/seccomp/index.js';

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

const TCGETS = 0x5401;
const TIOCSTI = 0x5412;

/** `empty`: a filter that allows everything (arch check, x32 check, `ret ALLOW`): the floor any filter costs. */
const EMPTY_POLICY: SeccompPolicy = { defaultAction: 'allow', rules: [] };
/** `one-rule`: allows everything, with one argument rule on ioctl that the loop never meets. */
const ONE_RULE_POLICY: SeccompPolicy = {
  defaultAction: 'allow',
  rules: [{ syscall: 'ioctl', action: { errno: 'EPERM' }, args: [{ index: 1, op: 'masked-eq', value: TIOCSTI, mask: '0xffffffff' }] }],
};
const PRESETS = ['none', 'empty', 'one-rule', 'default', 'default+tty', 'judge', 'judge+tty'] as const;
type Preset = (typeof PRESETS)[number];
const LOOPS = ['getppid', 'ioctl'] as const;
type Loop = (typeof LOOPS)[number];

/** A preset with nothing marked `terminal`: the filter of a run that may hold a terminal, whatever its stdio. */
const keepingTerminalRules = (policy: SeccompPolicy): SeccompPolicy => ({
  defaultAction: policy.defaultAction,
  rules: policy.rules.map(({ terminal: _terminal, ...rule }) => rule),
});

/** The policy given to run(). */
const policyOf = (p: Exclude<Preset, 'none'>): SeccompPolicy =>
  p === 'empty'
    ? EMPTY_POLICY
    : p === 'one-rule'
      ? ONE_RULE_POLICY
      : p === 'default+tty'
        ? keepingTerminalRules(presets.default)
        : p === 'judge+tty'
          ? keepingTerminalRules(presets.judge)
          : presets[p];

/** The policy the run's filter is compiled from: the bench's runs have pipes and reach no host socket, so without the rules marked `terminal`. */
const compiledFrom = (p: Exclude<Preset, 'none'>): SeccompPolicy => withoutTerminalRules(policyOf(p));

function envInt(name: string, dflt: number): number {
  const v = Number(process.env[name] ?? dflt);
  if (!Number.isInteger(v) || v <= 0) throw new Error(`${name} must be a positive integer`);
  return v;
}

function quantile(xs: readonly number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  return s[lo]! + (s[Math.min(lo + 1, s.length - 1)]! - s[lo]!) * (pos - lo);
}
const median = (xs: readonly number[]): number => quantile(xs, 0.5);

/** Per-round ratios of `a` to `b`: the median and the interquartile range. */
export interface RoundRatio {
  median: number;
  p25: number;
  p75: number;
  rounds: number;
}

export function roundRatios(a: readonly number[], b: readonly number[]): RoundRatio {
  const r = a.map((x, i) => x / b[i]!);
  return { median: median(r), p25: quantile(r, 0.25), p75: quantile(r, 0.75), rounds: r.length };
}

export const fmtRatio = (r: RoundRatio): string => `${r.median.toFixed(3)}× (${r.p25.toFixed(3)}–${r.p75.toFixed(3)})`;

/** The C loop, built with gcc into `dir` (`dir/loop <getppid|ioctl> <calls>`). */
export function buildLoop(dir: string): void {
  chmodSync(dir, 0o755);
  writeFileSync(join(dir, 'loop.c'), LOOP_C);
  execFileSync('gcc', ['-O2', '-o', join(dir, 'loop'), join(dir, 'loop.c')], { stdio: ['ignore', 'ignore', 'inherit'] });
}

/** The section, and what bench/RESULTS.md's table of targets reads from it. */
export interface SeccompCost {
  markdown: string;
  /** `default` ÷ `empty`, per loop: the target is ≤ 1.05 on every loop. */
  defaultToEmpty: Record<Loop, RoundRatio>;
  /** Whether the kernel's action cache answers the loop's call under both `default` and `empty` (neither program runs for it). */
  cacheAnswers: Record<Loop, boolean>;
}

/**
 * Whether the kernel's seccomp action cache answers this call under this program without running
 * it: the kernel decides so when the filter is attached, by following the program with only the
 * call's number and arch known, and accepts the path only if it loads nothing else, uses only
 * constant jumps and `and`, and returns ALLOW (`seccomp_is_const_allow` in kernel/seccomp.c).
 * The same walk here.
 */
function answeredByCache(p: Exclude<Preset, 'none'>, loop: Loop): boolean {
  const nr = syscallNumber(loop, 'x86_64')!;
  const prog = compile(compiledFrom(p), 'x86_64').program;
  const view = new DataView(prog.buffer, prog.byteOffset, prog.byteLength);
  let a = 0;
  for (let pc = 0; pc < prog.byteLength / 8; pc++) {
    const code = view.getUint16(pc * 8, true);
    const jt = view.getUint8(pc * 8 + 2);
    const jf = view.getUint8(pc * 8 + 3);
    const k = view.getUint32(pc * 8 + 4, true);
    switch (code) {
      case 0x20: // ld [k]
        if (k === 0) a = nr;
        else if (k === 4) a = AUDIT_ARCH.x86_64 >>> 0;
        else return false;
        break;
      case 0x06: // ret #k
        return k === 0x7fff0000;
      case 0x05: // ja
        pc += k;
        break;
      case 0x15: // jeq #k
        pc += a === k ? jt : jf;
        break;
      case 0x35: // jge #k
        pc += a >= k ? jt : jf;
        break;
      case 0x25: // jgt #k
        pc += a > k ? jt : jf;
        break;
      case 0x45: // jset #k
        pc += (a & k) !== 0 ? jt : jf;
        break;
      case 0x54: // and #k
        a = (a & k) >>> 0;
        break;
      default:
        return false;
    }
  }
  return false;
}

/**
 * Measures and returns the Markdown section with the figures of its targets. Needs root (real
 * boxes) and gcc. `progress` is called after every run: a caller's stall watchdog watches each
 * run, not the whole section (a hundred and more runs, minutes on a slow shared machine).
 */
export async function seccompCost(progress: () => void = () => undefined): Promise<SeccompCost> {
  const reps = envInt('SECCOMP_BENCH_REPS', 25);
  const calls = envInt('SECCOMP_BENCH_CALLS', 300_000);
  const dir = mkdtempSync(join(tmpdir(), 'sandcell-seccomp-cost-'));
  try {
    buildLoop(dir);
    // A file of the run, not a bind: a box that reaches a host directory keeps the terminal rules
    // (a host process could hand it a terminal through a socket there), and these runs are to get
    // the filter a run with neither gets.
    const loopFile = { loop: { data: readFileSync(join(dir, 'loop')), mode: 0o755 } };
    const perFilter = (): Record<Preset, number[]> => Object.fromEntries(PRESETS.map((p) => [p, []])) as unknown as Record<Preset, number[]>;
    const ns: Record<Loop, Record<Preset, number[]>> = { getppid: perFilter(), ioctl: perFilter() };
    const once = async (loop: Loop, seccomp: Preset): Promise<number> => {
      const r = await run({
        command: ['/work/loop', loop, String(calls)],
        files: loopFile,
        seccomp: seccomp === 'none' ? 'none' : policyOf(seccomp),
        limits: { wallTime: '60s' },
      });
      const v = Number(r.stdout.trim());
      if (r.status !== 'ok' || !Number.isFinite(v) || v <= 0) {
        throw new Error(`loop ${loop} under ${seccomp}: ${r.status} ${JSON.stringify(r.violation)} ${r.stdout} ${r.stderr}`);
      }
      progress();
      return v;
    };
    for (const loop of LOOPS) for (const p of PRESETS) await once(loop, p); // warm: addon, filters compiled, page cache
    for (let i = 0; i < reps; i++) {
      // Rotate the order each round so drift on a shared machine does not favour one filter.
      const order = PRESETS.map((_, k) => PRESETS[(k + i) % PRESETS.length]!);
      for (const loop of LOOPS) for (const p of order) ns[loop][p].push(await once(loop, p));
    }
    const insns = (p: Preset): string => (p === 'none' ? '— (no filter)' : String(compile(compiledFrom(p), 'x86_64').instructions));
    /** Instructions the program runs for the loop's call (x86_64, emulated; the action cache may skip them all). */
    const path = (loop: Loop, p: Preset): string => {
      if (p === 'none') return '—';
      const nr = syscallNumber(loop, 'x86_64')!;
      const args = loop === 'ioctl' ? [0xffffffffffffffffn, BigInt(TCGETS), 0n] : [];
      return String(emulateTrace(compile(compiledFrom(p), 'x86_64').program, { nr, arch: AUDIT_ARCH.x86_64, args }).steps);
    };
    const lines: string[] = [];
    lines.push('## Seccomp filter cost (bench/seccomp-cost.ts)');
    lines.push('');
    lines.push(
      `A C program in a box times ${calls.toLocaleString('en-US')} raw system calls, timed with the loop's own CPU time (CLOCK_THREAD_CPUTIME_ID: preemption by other work on a shared machine left out). ` +
        `${reps} rounds; each round runs every filter once per loop, each run a box of its own, in an order rotated from round to round. ` +
        `Ratios are taken within each round and the table gives their median and, in brackets, their interquartile range (the spread between rounds). ` +
        `Kernel ${release()}, ${new Date().toISOString()}.`,
    );
    lines.push('');
    lines.push(
      "`getppid` is allowed by every filter without argument conditions: the kernel's seccomp action cache (≥ 5.11) decides it without running the filter. " +
        "`default` and `judge` are the filters these runs get: their stdio are pipes and they reach no host socket (the loop is a file of the run, not a bind), so the preset's rules marked `terminal` (ioctl TIOCSTI, TIOCLINUX) are left out and the cache answers `ioctl` as well. " +
        "`default+tty` and `judge+tty` are the filters a run that may hold a terminal gets (the rules kept): `ioctl(-1, TCGETS)` meets their argument rules, so the BPF program runs on every call. " +
        "`empty` is a filter that allows everything (`{ defaultAction: 'allow', rules: [] }`): what having any filter at all costs (the syscall entry takes the kernel's slow path with seccomp work flagged, even when the action cache answers). " +
        '`one-rule` allows everything but has one argument rule on ioctl (TIOCSTI → EPERM) that the loop never meets: what running any filter program for the call costs, however short.',
    );
    lines.push('');
    lines.push('| loop | filter | BPF instructions | instructions run for the call | answered by the action cache | median ns/call | ratio to `none` | ratio to `empty` |');
    lines.push('|---|---|---:|---:|---|---:|---:|---:|');
    for (const loop of LOOPS) {
      for (const p of PRESETS) {
        const xs = ns[loop][p];
        const toNone = p === 'none' ? '—' : fmtRatio(roundRatios(xs, ns[loop].none));
        const toEmpty = p === 'none' || p === 'empty' ? '—' : fmtRatio(roundRatios(xs, ns[loop].empty));
        const cached = p === 'none' ? '—' : answeredByCache(p, loop) ? 'yes' : 'no: the program runs';
        lines.push(`| \`${loop}\` | ${p} | ${insns(p)} | ${path(loop, p)} | ${cached} | ${(median(xs) / calls).toFixed(1)} | ${toNone} | ${toEmpty} |`);
      }
    }
    const verdict: string[] = [];
    const def = roundRatios(ns.getppid.default, ns.getppid.none);
    verdict.push(`Target: ≤ 5% overhead for \`default\` on the getppid loop: **${def.median <= 1.05 ? 'met' : 'missed'}** (${((def.median - 1) * 100).toFixed(1)}%).`);
    const defaultToEmpty = {} as Record<Loop, RoundRatio>;
    const cacheAnswers = {} as Record<Loop, boolean>;
    for (const loop of LOOPS) {
      const r = roundRatios(ns[loop].default, ns[loop].empty);
      defaultToEmpty[loop] = r;
      cacheAnswers[loop] = answeredByCache('default', loop) && answeredByCache('empty', loop);
      verdict.push(`Target: \`${loop}\`: \`default\` ÷ \`empty\` ≤ 1.05 (what the policy adds beyond having a filter at all, a run with pipes): ${fmtRatio(r)}, **${r.median <= 1.05 ? 'met' : 'missed'}**.`);
    }
    const tty = roundRatios(ns.ioctl['default+tty'], ns.ioctl.empty);
    const floor = roundRatios(ns.ioctl['one-rule'], ns.ioctl.empty);
    const beyond = roundRatios(ns.ioctl['default+tty'], ns.ioctl['one-rule']);
    verdict.push(
      `A run that may hold a terminal keeps the terminal rules: on \`ioctl\`, \`default+tty\` ÷ \`empty\` = ${fmtRatio(tty)}, ` +
        `\`judge+tty\` ÷ \`empty\` = ${fmtRatio(roundRatios(ns.ioctl['judge+tty'], ns.ioctl.empty))}. ` +
        `\`one-rule\` ÷ \`empty\` = ${fmtRatio(floor)}: the cost of running a filter program at all for the call; ` +
        `\`default+tty\` ÷ \`one-rule\` = ${fmtRatio(beyond)}: what the preset's program adds beyond that.`,
    );
    lines.push('');
    lines.push(verdict.join(' '));
    lines.push('');
    return { markdown: lines.join('\n'), defaultToEmpty, cacheAnswers };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  seccompCost().then(
    (r) => process.stdout.write(r.markdown),
    (e: unknown) => {
      console.error(e);
      process.exitCode = 1;
    },
  );
}
