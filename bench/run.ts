/**
 * sandcell benchmark suite: `npm run bench` rewrites bench/RESULTS.md.
 *
 * Every figure is measured in this one process next to its baseline (Node's own
 * child_process.spawn, bubblewrap, util-linux unshare). Latency distributions use tinybench;
 * throughput at a concurrency and event-loop delay use plain loops timed with process.hrtime.
 *
 * Environment:
 *   BENCH_SECONDS     seconds per throughput point (default 10)
 *   BENCH_ITERATIONS  runs per latency distribution (default 500)
 *   BENCH_RSS_RUNS    runs of the host-RSS growth probe (default 10000)
 *   BENCH_JUDGE_ROUNDS  rounds of section 11 (judging 100 tests, and its baseline) (default 5)
 *   BENCH_DAEMON_ROUNDS interleaved rounds of section 12's throughput points (default 3)
 *   BENCH_COLD_ROUNDS interleaved rounds of section 17's fresh processes (default 40)
 *   BENCH_QUICK=1     smoke test: 1 s, 60 iterations, 300 RSS runs, 1 judge round (RESULTS.md says so)
 *   BENCH_ONLY        comma-separated section numbers to measure, e.g. 10,11,12 (default: all)
 *                     (section 15, the farm, needs redis-server)
 *   BENCH_OUT         where to write the report (default bench/RESULTS.md)
 */
import { execFileSync } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { Bench } from 'tinybench';

import { createNetwork, run, Sandbox, setWarmBoxes, shutdown, spawn, type RunOptions } from '../dist/index.js';
import { ImageStore } from '../dist/images/index.js';
import { Judge, submissionFromFile } from '../dist/problems/index.js';
import { idleCgroupDirs } from '../dist/runtime.js';
import { liveChildren, liveRunCgroups, machineInfo, openFds } from './host.js';
import { DAEMON_OPTIONS, startDaemon, startFloor } from './daemon.js';
import { bulkTar, hostRootfsLayers, ociLayout } from './images.js';
import { startFarm } from './farm.js';
import type { SeccompCost } from './seccomp-cost.js';
import { bwrapArgs, commandVersion, ensureBwrap, plainOk, plainOutput, UNSHARE_ALL, type BwrapSetup } from './procs.js';
import { dist, ms, nowMs, ratio, type Dist } from './stats.js';

// ---------------------------------------------------------------------------------------------
// configuration

const QUICK = process.env.BENCH_QUICK === '1';
function envNum(name: string, dflt: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number, got ${v}`);
  return n;
}
const SECONDS = envNum('BENCH_SECONDS', QUICK ? 1 : 10);
const ITER = Math.round(envNum('BENCH_ITERATIONS', QUICK ? 60 : 500));
const RSS_RUNS = Math.round(envNum('BENCH_RSS_RUNS', QUICK ? 300 : 10000));
const SUB_ITER = Math.max(50, Math.round(ITER * 0.6)); // breakdown variants and peers-of-peers
const JUDGE_ITER = Math.max(50, Math.round(ITER * 0.4));
const ELD_ROUNDS = QUICK ? 10 : 40;
const JUDGE_TESTS = 100;
const JUDGE_ROUNDS = Math.round(envNum('BENCH_JUDGE_ROUNDS', QUICK ? 1 : 5));
const DAEMON_ROUNDS = Math.round(envNum('BENCH_DAEMON_ROUNDS', QUICK ? 1 : 3));
const COLD_ROUNDS = Math.round(envNum('BENCH_COLD_ROUNDS', QUICK ? 10 : 40));
const CONCURRENCIES = [1, 2, 8, 32];

const benchDir = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'bench');
const distDir = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'dist');
const OUT = process.env.BENCH_OUT ?? join(benchDir, 'RESULTS.md');

const log = (s: string): void => {
  process.stderr.write(`[bench ${((nowMs() - T0) / 1000).toFixed(0).padStart(4)} s] ${s}\n`);
};
const T0 = nowMs();
const gc = (globalThis as { gc?: () => void }).gc;

// ---------------------------------------------------------------------------------------------
// what is measured

const TRUE_BOX: RunOptions = { command: ['/bin/true'] };

async function ours(options: RunOptions = TRUE_BOX): Promise<void> {
  const r = await guarded('sandcell run()', () => run(options));
  if (r.status !== 'ok') throw new Error(`sandcell run ended with ${r.status}: ${r.stderr.slice(0, 300)}`);
}
const nodeSpawnTrue = (): Promise<unknown> => plain('/bin/true', []);
const plain = (file: string, args: readonly string[], input?: Buffer): ReturnType<typeof plainOk> =>
  guarded(`plain spawn of ${file}`, () => plainOk(file, args, input));

/**
 * Latency distribution (ms) of one async function with tinybench: `iterations` samples after a
 * short warm-up; with `idleMs`, the process idles that long before each sample (not timed).
 */
async function latency(name: string, fn: () => Promise<unknown>, iterations = ITER, idleMs = 0): Promise<Dist> {
  const bench = new Bench({ iterations, time: 0, warmupIterations: 10, warmupTime: 0, throws: true });
  bench.add(name, fn, idleMs > 0 ? { beforeEach: () => new Promise((r) => setTimeout(r, idleMs)) } : {});
  await bench.run();
  const task = bench.tasks[0];
  const r = task?.result;
  if (!r || r.error) throw r?.error ?? new Error(`${name}: no result`);
  return dist(r.latency.samples);
}

/**
 * Latency distributions of several variants sampled round-robin (one run of each per round, the
 * order rotating, or `shuffled`: drawn anew each round), so drift and other load on a shared
 * machine hit every variant alike.
 */
async function interleaved(fns: (() => Promise<unknown>)[], iterations: number, shuffled = false): Promise<Dist[]> {
  const samples: number[][] = fns.map(() => []);
  for (const fn of fns) for (let w = 0; w < 5; w++) await fn();
  for (let i = 0; i < iterations; i++) {
    const order = fns.map((_, k) => (i + k) % fns.length);
    if (shuffled) {
      for (let k = order.length - 1; k > 0; k--) {
        const r = Math.floor(Math.random() * (k + 1));
        [order[k], order[r]] = [order[r]!, order[k]!];
      }
    }
    for (const j of order) {
      const t0 = nowMs();
      await fns[j]!();
      samples[j]!.push(nowMs() - t0);
    }
  }
  return samples.map(dist);
}

/** Runs `work` with warm boxes turned off (restored to the default after). */
async function withoutWarmBoxes<T>(work: () => Promise<T>): Promise<T> {
  await setWarmBoxes(0);
  try {
    return await work();
  } finally {
    await setWarmBoxes(WARM_BOXES);
  }
}
const WARM_BOXES = 4;
const IDLE_MS = 10;

/** The machine's CPU times from /proc/stat's first line: user nice system idle iowait irq softirq steal. */
function cpuTimes(): number[] {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  return line.trim().split(/\s+/).slice(1, 9).map(Number);
}

/**
 * Busy CPU time of the whole machine (all CPUs, every process, kernel included) in ms. Steal is
 * left out: it is time the hypervisor gave to other guests, not work done here.
 */
function machineBusyMs(): number {
  const f = cpuTimes();
  const busy = (f[0] ?? 0) + (f[1] ?? 0) + (f[2] ?? 0) + (f[5] ?? 0) + (f[6] ?? 0);
  return (busy * 1000) / CLK_TCK;
}

/** Of the machine's CPU time since `from` (a `cpuTimes()`), the share the hypervisor stole. */
function stolenShare(from: readonly number[]): number {
  const now = cpuTimes();
  const d = now.map((v, i) => v - (from[i] ?? 0));
  const total = d.reduce((a, b) => a + b, 0);
  return total > 0 ? (d[7] ?? 0) / total : NaN;
}
const CLK_TCK = 100; // USER_HZ: 100 on every Linux ABI Node runs on

export interface CpuPerRun {
  /** Busy CPU of the whole machine per completed run (ms). */
  machineMs: number;
  /** CPU of this Node process (all threads, user + system) per run (ms). */
  nodeMs: number;
  /** Of `nodeMs`, its main thread's (the event loop's: JavaScript, the loop, worker trips' submissions and completions). */
  mainThreadMs: number;
}
let lastCpu: CpuPerRun = { machineMs: NaN, nodeMs: NaN, mainThreadMs: NaN };

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

/** CPU time of this process's main thread so far (ns): the first field of its schedstat. */
function mainThreadNs(): number {
  return Number(readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8').split(' ')[0]);
}

/** Completed runs per second with `concurrency` runs in flight for `seconds`; CPU per run lands in `lastCpu`. */
async function throughput(fn: () => Promise<unknown>, concurrency: number, seconds = SECONDS): Promise<number> {
  const busy0 = machineBusyMs();
  const cpu0 = process.cpuUsage();
  const main0 = mainThreadNs();
  const start = nowMs();
  const deadline = start + seconds * 1000;
  let done = 0;
  const worker = async (): Promise<void> => {
    while (nowMs() < deadline) {
      await fn();
      done++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsed = (nowMs() - start) / 1000;
  const cpu = process.cpuUsage(cpu0);
  lastCpu = { machineMs: (machineBusyMs() - busy0) / done, nodeMs: (cpu.user + cpu.system) / 1000 / done, mainThreadMs: (mainThreadNs() - main0) / 1e6 / done };
  return done / elapsed;
}

interface Eld {
  p50: number;
  p99: number;
  max: number;
}

/** Event-loop delay (ms, monitorEventLoopDelay at 1 ms resolution) while `rounds` × `width` starts happen at once. */
async function eventLoopDelay(fn: (() => Promise<unknown>) | null, rounds: number, width: number): Promise<Eld> {
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  if (fn === null) await new Promise((r) => setTimeout(r, 2000));
  else for (let i = 0; i < rounds; i++) await Promise.all(Array.from({ length: width }, fn));
  h.disable();
  return { p50: h.percentile(50) / 1e6, p99: h.percentile(99) / 1e6, max: h.max / 1e6 };
}

function rssMB(): number {
  return process.memoryUsage.rss() / 2 ** 20;
}

async function settleGc(): Promise<void> {
  for (let i = 0; i < 4; i++) {
    gc?.();
    await new Promise((r) => setImmediate(r));
  }
}

// ---------------------------------------------------------------------------------------------
// watchdog: a run that never finishes (a box stuck in setup holds a libuv thread forever, and no
// option of run() can interrupt the native spawn) must not hang the bench. After STALL_MS the bench
// writes what it has, SIGKILLs its own children (boxes and peers it started, found through
// /proc/self/task/*/children) and exits 2.

const STALL_MS = envNum('BENCH_STALL_SECONDS', 60) * 1000;
const inflight = new Map<number, { what: string; since: number }>();
let inflightSeq = 0;
/** `work` may call `alive()` when a long piece of work moves on (a judge between tests): the watch starts over. */
async function guarded<T>(what: string, work: (alive: () => void) => Promise<T>): Promise<T> {
  const id = inflightSeq++;
  const entry = { what, since: nowMs() };
  inflight.set(id, entry);
  try {
    return await work(() => {
      entry.since = nowMs();
    });
  } finally {
    inflight.delete(id);
  }
}
let stalled: string | null = null;
setInterval(() => {
  const now = nowMs();
  for (const { what, since } of inflight.values()) {
    if (now - since < STALL_MS) continue;
    stalled = `a ${what} did not finish within ${STALL_MS / 1000} s (bench section: ${currentTitle}); live children: ${liveChildren().join(', ') || 'none'}`;
    log(`STALL: ${stalled}`);
    try {
      writeReport();
    } catch (e) {
      log(`could not write the partial report: ${String(e)}`);
    }
    for (const pid of liveChildren()) {
      try {
        process.kill(pid, 'SIGKILL'); // our own child: a box init or a peer we spawned
      } catch {
        // already gone
      }
    }
    cleanup();
    process.exit(2);
  }
}, 2000).unref();

// ---------------------------------------------------------------------------------------------
// report

/** Report sections in their numbered order; they are measured in another order (the 1 GB ballast last). */
const sections: { order: number; lines: string[] }[] = [];
let current: string[] = [];
let currentTitle = 'setup';
const p = (s = ''): void => {
  current.push(s);
};
const figures: Record<string, number> = {};
/** Whether these figures were all measured in this run. */
const has = (...k: string[]): boolean => k.every((x) => Number.isFinite(figures[x]));
/** Section 9's figures for its targets (null: not run). */
let seccompTargets: SeccompCost | null = null;
function row(name: string, d: Dist, base?: Dist, extra = ''): string {
  return `| ${name} | ${ms(d.p50)} | ${ms(d.p90)} | ${ms(d.p99)} | ${ms(d.mean)} | ${d.n} | ${base ? ratio(d.p50, base.p50) : '—'} | ${extra}`;
}
const LAT_HEAD = '| what | p50 ms | p90 ms | p99 ms | mean ms | runs | p50 ratio to baseline | note\n|---|---:|---:|---:|---:|---:|---:|---|';

/** BENCH_ONLY: the numbers of the sections to measure (the others are left out of the report). */
const ONLY = process.env.BENCH_ONLY ? new Set(process.env.BENCH_ONLY.split(',').map((x) => Number.parseInt(x.trim(), 10))) : null;

async function section(title: string, body: () => Promise<void>): Promise<void> {
  if (ONLY && !ONLY.has(Number.parseInt(title, 10))) return;
  log(title);
  current = [];
  currentTitle = title;
  sections.push({ order: Number.parseFloat(title), lines: current });
  p(`## ${title}`);
  p();
  try {
    await body();
  } catch (e) {
    p(`**This section failed:** \`${String((e as Error).stack ?? e).split('\n').slice(0, 3).join(' ')}\``);
    log(`FAILED: ${String(e)}`);
  }
  p();
}

// ---------------------------------------------------------------------------------------------
// setup that needs cleanup: the judge program in a temp dir

const JUDGE_C = `#include <unistd.h>
static unsigned char buf[1 << 20];
int main(void) {
  size_t n = 0;
  while (n < sizeof buf) {
    ssize_t r = read(0, buf + n, sizeof buf - n);
    if (r <= 0) break;
    n += (size_t)r;
  }
  for (size_t i = 0; i < n; i++) buf[i] = (unsigned char)(buf[i] + 1);
  size_t off = 0;
  while (off < n) {
    ssize_t w = write(1, buf + off, n - off);
    if (w <= 0) return 2;
    off += (size_t)w;
  }
  return n == sizeof buf ? 0 : 3;
}
`;

let tempDir: string | null = null;
function cleanup(): void {
  if (tempDir) {
    rmSync(tempDir, { recursive: true, force: true });
    tempDir = null;
  }
}
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    cleanup();
    process.exit(130);
  });
}

// ---------------------------------------------------------------------------------------------

const m = machineInfo();
const started = new Date();
const load0 = loadavg()[0] ?? NaN;
const cpuTimes0 = cpuTimes();
let fds0 = 0;
let bw: BwrapSetup = { path: null, version: null, note: 'not checked' };
let bwrapOk = false;
let unshareVersion: string | null = null;
let unshareOk = false;

async function main(): Promise<void> {
  if (!gc) log('warning: run with node --expose-gc for the RSS figures (npm run bench does)');
  fds0 = openFds();

  bw = ensureBwrap(log);
  unshareVersion = commandVersion('unshare', ['--version']);
  bwrapOk = bw.path !== null;
  if (bwrapOk) {
    try {
      await plain('bwrap', bwrapArgs(['/bin/true']));
    } catch (e) {
      bwrapOk = false;
      bw.note += `; but it does not run here: ${String(e).slice(0, 200)}`;
    }
  }
  unshareOk = unshareVersion !== null;
  if (unshareOk) {
    try {
      await plain('unshare', [...UNSHARE_ALL, '/bin/true']);
    } catch (e) {
      unshareOk = false;
      log(`unshare does not run: ${String(e)}`);
    }
  }
  const bwrapTrue = (): Promise<unknown> => plain('bwrap', bwrapArgs(['/bin/true']));
  const unshareTrue = (): Promise<unknown> => plain('unshare', [...UNSHARE_ALL, '/bin/true']);

  // Warm every path once (addon load, cgroup parent creation, seccomp compile, host layout).
  await ours();
  await nodeSpawnTrue();

  // ---- 1. latency, small host ----------------------------------------------------------------
  const lat: Record<string, Dist> = {};
  await section('1. Latency of /bin/true, small host', async () => {
    figures.rss1 = rssMB();
    p(`Host RSS at start of section: ${figures.rss1.toFixed(0)} MB. Each figure is ${ITER} sequential runs after 10 warm-up runs (tinybench).`);
    p(`Baseline: \`child_process.spawn('/bin/true')\` with piped stdio (stdin closed, stdout/stderr read to the end), awaited until 'close' — the same work \`run()\` does.`);
    p();
    p(`sandcell keeps up to ${WARM_BOXES} boxes built ahead (warm boxes, the default): back to back, a run often finds the next box still being built on the other core and builds its own. The "warm boxes off" line builds every box while the caller waits. The last two lines idle ${IDLE_MS} ms before each run (not timed), as a service between requests does: the next box is ready by then.`);
    p();
    lat.spawn = await latency('node spawn', nodeSpawnTrue);
    lat.ours = await latency('sandcell run', () => ours());
    lat.cold = await withoutWarmBoxes(() => latency('sandcell run, no warm boxes', () => ours()));
    if (bwrapOk) lat.bwrap = await latency('bwrap', bwrapTrue);
    if (unshareOk) lat.unshare = await latency('unshare', unshareTrue);
    lat.spawnIdle = await latency('node spawn, idle between', nodeSpawnTrue, ITER, IDLE_MS);
    lat.oursIdle = await latency('sandcell run, idle between', () => ours(), ITER, IDLE_MS);
    p(LAT_HEAD);
    p(row('Node `child_process.spawn` (baseline)', lat.spawn));
    p(row('**sandcell `run()` full default box**', lat.ours, lat.spawn, 'all namespaces, pivot_root, cgroup v1 limits, seccomp default; back to back'));
    p(row('sandcell `run()`, warm boxes off', lat.cold, lat.spawn, 'every box built while the caller waits'));
    if (lat.bwrap) p(row('bubblewrap `--unshare-all`', lat.bwrap, lat.spawn, `spawned by Node; ours ÷ bwrap = ${ratio(lat.ours.p50, lat.bwrap.p50)}`));
    if (lat.unshare) p(row('util-linux `unshare` (all ns)', lat.unshare, lat.spawn, `spawned by Node; ours ÷ unshare = ${ratio(lat.ours.p50, lat.unshare.p50)}`));
    p(row(`Node \`child_process.spawn\`, ${IDLE_MS} ms idle before each (baseline)`, lat.spawnIdle));
    p(row(`**sandcell \`run()\`, ${IDLE_MS} ms idle before each**`, lat.oursIdle, lat.spawnIdle, 'the box was built ahead'));
    if (!bwrapOk) p(`\nbubblewrap is **absent**: ${bw.note}.`);
    figures.oursIdleP50 = lat.oursIdle.p50;
    figures.coldP50 = lat.cold.p50;
    figures.spawnIdleP50 = lat.spawnIdle.p50;
    figures.oursP50 = lat.ours.p50;
    figures.spawnP50 = lat.spawn.p50;
    if (lat.bwrap) figures.bwrapP50 = lat.bwrap.p50;
    if (lat.unshare) figures.unshareP50 = lat.unshare.p50;
  });

  // ---- 8. where the time goes ----------------------------------------------------------------
  await section('8. Where the time goes', async () => {
    p(`### 8a. Box variants (same process, ${SUB_ITER} runs each, interleaved round-robin)`);
    p();
    const v: [string, RunOptions][] = [
      ['default box', TRUE_BOX],
      ["`seccomp: 'none'`", { command: ['/bin/true'], seccomp: 'none' }],
      ["`network: 'host'` (no new net namespace)", { command: ['/bin/true'], network: 'host' }],
      ["`seccomp: 'none'` + `network: 'host'`", { command: ['/bin/true'], seccomp: 'none', network: 'host' }],
    ];
    // Box variants differ in what is built: with warm boxes they would be built off the clock.
    const res = await withoutWarmBoxes(() => interleaved(v.map(([, o]) => () => ours(o)), SUB_ITER));
    p('Warm boxes off for these variants: what differs between them is in building the box.');
    p();
    const base = res[0] as Dist;
    p('| variant | p50 ms | p90 ms | p99 ms | mean ms | runs | p50 ratio to default | p50 saved vs default\n|---|---:|---:|---:|---:|---:|---:|---:|');
    v.forEach(([name], i) => {
      const d = res[i] as Dist;
      p(`| ${name} | ${ms(d.p50)} | ${ms(d.p90)} | ${ms(d.p99)} | ${ms(d.mean)} | ${d.n} | ${ratio(d.p50, base.p50)} | ${ms(base.p50 - d.p50)} ms`);
    });
    figures.seccompCost = base.p50 - (res[1] as Dist).p50;
    figures.netnsCost = base.p50 - (res[2] as Dist).p50;
    p();

    p(`### 8b. Phases of one run (${SUB_ITER} runs, \`spawn()\` then \`wait()\`, ${IDLE_MS} ms idle before each: the box was built ahead)`);
    p();
    const setup: number[] = [];
    const rest: number[] = [];
    for (let i = 0; i < SUB_ITER; i++) {
      await new Promise((r) => setTimeout(r, IDLE_MS));
      const t0 = nowMs();
      const box = await guarded('sandcell spawn()', () => spawn({ command: ['/bin/true'] }));
      const t1 = nowMs();
      box.stdin?.end();
      box.stdout.resume();
      box.stderr.resume();
      const r = await guarded('sandcell wait()', () => box.wait());
      const t2 = nowMs();
      if (r.status !== 'ok') throw new Error(`spawn: ${r.status}`);
      setup.push(t1 - t0);
      rest.push(t2 - t1);
    }
    const ds = dist(setup);
    const dr = dist(rest);
    p('| phase | p50 ms | p90 ms | p99 ms | mean ms |\n|---|---:|---:|---:|---:|');
    p(`| \`spawn()\` → program started (options, limits written to the warm box's cgroup, run plan and stdio sent, init: files, fork, seccomp, execve) | ${ms(ds.p50)} | ${ms(ds.p90)} | ${ms(ds.p99)} | ${ms(ds.mean)} |`);
    p(`| started → \`wait()\` resolved (program runs, init reaps and reports, init exits and its namespaces go, pidfd poll, cgroup outcome read; the rmdir follows the result) | ${ms(dr.p50)} | ${ms(dr.p90)} | ${ms(dr.p99)} | ${ms(dr.mean)} |`);
    figures.setupP50 = ds.p50;
    figures.teardownP50 = dr.p50;
    p();

    // Internal pieces, timed directly. These modules are internal: tolerate their absence.
    p('### 8c. Host-side pieces timed alone (internal modules of dist/)');
    p();
    p('| piece | p50 ms | p90 ms | p99 ms | runs |\n|---|---:|---:|---:|---:|');
    try {
      const opts = (await import(join(distDir, 'options.js'))) as { resolveOptions: (o: unknown) => unknown };
      const filter = (await import(join(distDir, 'launch', 'filter.js'))) as { filterFor: (c: unknown) => unknown };
      const cg = (await import(join(distDir, 'runtime.js'))) as {
        cgroupsFor: (p: null) => Promise<{ pool: { driver: { create(l: unknown): Promise<{ destroy(): Promise<void> }> } } | null }>;
      };
      const prep = await latency('resolveOptions+filterFor', async () => {
        const o = opts.resolveOptions({ command: ['/bin/true'] }) as { seccomp: unknown };
        filter.filterFor(o.seccomp);
      }, SUB_ITER);
      p(`| resolveOptions + seccomp filter lookup (JS, cached BPF) | ${ms(prep.p50, 3)} | ${ms(prep.p90, 3)} | ${ms(prep.p99, 3)} | ${prep.n} |`);
      const driver = (await cg.cgroupsFor(null)).pool?.driver;
      if (driver) {
        const create: number[] = [];
        const destroy: number[] = [];
        for (let i = 0; i < SUB_ITER; i++) {
          const t0 = nowMs();
          const c = await driver.create({ pids: 256 });
          const t1 = nowMs();
          await c.destroy();
          create.push(t1 - t0);
          destroy.push(nowMs() - t1);
        }
        const dc = dist(create);
        const dd = dist(destroy);
        p(`| cgroup create (mkdir + limits, every v1 hierarchy), empty | ${ms(dc.p50, 3)} | ${ms(dc.p90, 3)} | ${ms(dc.p99, 3)} | ${dc.n} |`);
        p(`| cgroup destroy (rmdir), never used by a task | ${ms(dd.p50, 3)} | ${ms(dd.p90, 3)} | ${ms(dd.p99, 3)} | ${dd.n} |`);
        figures.cgCreateP50 = dc.p50;
        figures.cgDestroyP50 = dd.p50;
      }
    } catch (e) {
      p(`| (internal modules not measurable: ${String(e).slice(0, 120)}) | | | | |`);
    }
    p();

    if (unshareOk) {
      p(`### 8d. Namespace creation cost, isolated with util-linux unshare (spawned by Node, ${SUB_ITER} runs each, interleaved round-robin)`);
      p();
      p('Each line adds namespaces to the one above; the differences are what the kernel charges for them (plus one extra execve for `unshare` itself, and one fork for `--fork`).');
      p();
      const variants: [string, string[]][] = [
        ['`/bin/true` (Node spawn baseline)', []],
        ['`unshare /bin/true` (no namespace: one more execve)', ['unshare']],
        ['+ user (`--user --map-root-user`)', ['unshare', '--user', '--map-root-user']],
        ['+ pid (`--pid --fork`)', ['unshare', '--user', '--map-root-user', '--pid', '--fork']],
        ['+ mount', ['unshare', '--user', '--map-root-user', '--pid', '--fork', '--mount']],
        ['+ ipc, uts, cgroup', ['unshare', '--user', '--map-root-user', '--pid', '--fork', '--mount', '--ipc', '--uts', '--cgroup']],
        ['+ net (all seven)', ['unshare', '--user', '--map-root-user', '--pid', '--fork', '--mount', '--ipc', '--uts', '--cgroup', '--net']],
        ['`unshare --net` alone (root, no user ns)', ['unshare', '--net']],
        ['`unshare --mount` alone', ['unshare', '--mount']],
        ['`unshare --ipc` alone', ['unshare', '--ipc']],
      ];
      p('| variant | p50 ms | p90 ms | p99 ms | Δ p50 vs line above | Δ p50 vs `unshare /bin/true`\n|---|---:|---:|---:|---:|---:|');
      let prev: number | null = null;
      let plainUnshare = NaN;
      const ds = await interleaved(
        variants.map(([, argv]) => (argv.length === 0 ? nodeSpawnTrue : () => plain(argv[0] as string, [...argv.slice(1), '/bin/true']))),
        SUB_ITER,
      );
      for (const [i, [name]] of variants.entries()) {
        const d = ds[i] as Dist;
        if (i === 1) plainUnshare = d.p50;
        const chained = i <= 6;
        p(`| ${name} | ${ms(d.p50)} | ${ms(d.p90)} | ${ms(d.p99)} | ${chained && prev !== null ? ms(d.p50 - prev) : '—'} | ${i >= 1 ? ms(d.p50 - plainUnshare) : '—'} |`);
        if (chained) prev = d.p50;
        if (i === 7) figures.unshareNetAlone = d.p50 - plainUnshare;
      }
      p();
      p(`### 8e. Does network-namespace creation serialise? Throughput at concurrency 8 (${SECONDS} s each)`);
      p();
      const tNone = await throughput(() => ours(), 8);
      const tHost = await throughput(() => ours({ command: ['/bin/true'], network: 'host' }), 8);
      const uPlain = await throughput(() => plain('unshare', ['/bin/true']), 8);
      const uNet = await throughput(() => plain('unshare', ['--net', '/bin/true']), 8);
      p('| what | runs/s at concurrency 8 | ratio\n|---|---:|---:|');
      p(`| sandcell default box (new net ns) | ${tNone.toFixed(1)} | ${ratio(tNone, tHost)} of host-network box |`);
      p(`| sandcell \`network: 'host'\` | ${tHost.toFixed(1)} | 1.00× |`);
      p(`| \`unshare --net /bin/true\` | ${uNet.toFixed(1)} | ${ratio(uNet, uPlain)} of plain unshare |`);
      p(`| \`unshare /bin/true\` | ${uPlain.toFixed(1)} | 1.00× |`);
      figures.netThroughputLoss = 1 - tNone / tHost;
    }
  });

  // ---- 4. judge-shaped ---------------------------------------------------------------------
  await section('4. Judge-shaped run: static C, 1 MB stdin → 1 MB stdout, memory + CPU limits', async () => {
    tempDir = mkdtempSync(join(tmpdir(), 'sandcell-bench-'));
    chmodSync(tempDir, 0o755);
    const src = join(tempDir, 'judge.c');
    const bin = join(tempDir, 'judge');
    writeFileSync(src, JUDGE_C);
    execFileSync('gcc', ['-static', '-O2', '-o', bin, src], { stdio: ['ignore', 'ignore', 'pipe'] });
    chmodSync(bin, 0o755);
    const input = Buffer.alloc(1 << 20, 'a');
    const opts: RunOptions = {
      command: ['/judge/judge'],
      stdin: input,
      binds: [{ source: tempDir, target: '/judge', readonly: true }],
      limits: { memory: '256MiB', cpuTime: '2s', wallTime: '10s', output: '4MiB' },
      seccomp: 'judge',
    };
    const first = await guarded('judge run()', () => run(opts));
    if (first.status !== 'ok' || first.stdout.length !== 1 << 20 || first.stdout[0] !== 'b') {
      throw new Error(`judge run wrong: ${first.status}, ${first.stdout.length} bytes, ${first.stderr.slice(0, 200)}`);
    }
    // The baseline keeps the output as run() does (one string, decoded as UTF-8 the way Node code
    // usually does it: the chunks concatenated, then toString), interleaved round-robin with the
    // box, so both see the same machine. Decoding a MiB is milliseconds of CPU on a slow machine:
    // a baseline that only counts the bytes flatters plain spawn by that much.
    const asString = async (): Promise<void> => {
      const out = await guarded(`plain spawn of ${bin}`, () => plainOutput(bin, input));
      if (out.length !== 1 << 20) throw new Error('short output');
    };
    const bytesOnly = async (): Promise<void> => {
      const r = await plain(bin, [], input);
      if (r.stdoutBytes !== 1 << 20) throw new Error('short output');
    };
    const asBuffer = async (): Promise<void> => {
      const out = await guarded(`plain spawn of ${bin}`, () => plainOutput(bin, input, 'buffer'));
      if (out.length !== 1 << 20) throw new Error('short output');
    };
    const inBox = async (): Promise<void> => {
      const r = await guarded('judge run()', () => run(opts));
      if (r.status !== 'ok' || r.stdout.length !== 1 << 20) throw new Error(`judge: ${r.status}`);
    };
    const bufferOpts = { ...opts, encoding: 'buffer' } as const;
    const inBoxBuffer = async (): Promise<void> => {
      const r = await guarded('judge run()', () => run(bufferOpts));
      if (r.status !== 'ok' || r.stdout.length !== 1 << 20 || r.stdout[0] !== 0x62) throw new Error(`judge: ${r.status}`);
    };
    const [base, bytes, box, baseBuffer, boxBuffer] = await interleaved([asString, bytesOnly, inBox, asBuffer, inBoxBuffer], JUDGE_ITER) as [Dist, Dist, Dist, Dist, Dist];
    p(`Program: \`gcc -static -O2\`, built in a temp dir bound read-only at /judge (deleted afterwards). Box: default namespaces/root, seccomp \`judge\`, limits memory 256MiB, cpuTime 2s, wallTime 10s, output 4MiB; \`run()\` returns stdout as a string, or with \`encoding: 'buffer'\` as the bytes in a Buffer. Baselines: the same binary under \`child_process.spawn\`, same input, its output kept as one string (chunks concatenated, then \`toString('utf8')\`) as \`run()\` keeps it, or as one Buffer (chunks concatenated) for the Buffer line. The five lines are sampled round-robin, ${JUDGE_ITER} rounds.`);
    p();
    p(LAT_HEAD);
    p(row('plain `child_process.spawn`, output as a string (baseline)', base));
    p(row('plain `child_process.spawn`, output bytes only counted', bytes, base, 'no string made: not the work run() does'));
    p(row('**sandcell `run()` judge box**', box, base, `overhead per run: p50 ${box.p50 >= base.p50 ? '+' : ''}${ms(box.p50 - base.p50)} ms`));
    p(row('plain `child_process.spawn`, output as one Buffer (baseline of the next line)', baseBuffer, base));
    p(row("**sandcell `run()` judge box, `encoding: 'buffer'`**", boxBuffer, baseBuffer, `overhead per run over the Buffer baseline: p50 ${boxBuffer.p50 >= baseBuffer.p50 ? '+' : ''}${ms(boxBuffer.p50 - baseBuffer.p50)} ms`));
    figures.judgeOverhead = box.p50 - base.p50;
    figures.judgeBufferOverhead = boxBuffer.p50 - baseBuffer.p50;
    cleanup();
  });

  // ---- 3 & 5. throughput ------------------------------------------------------------------------
  const thr: Record<string, Record<number, number>> = { ours: {}, spawn: {} };
  const cpuOf: Record<string, Record<number, CpuPerRun>> = { ours: {}, spawn: {} };
  await section(`3. Throughput (runs/s of /bin/true, ${SECONDS} s per point)`, async () => {
    for (const c of CONCURRENCIES) {
      thr.spawn![c] = await throughput(nodeSpawnTrue, c);
      cpuOf.spawn![c] = lastCpu;
      thr.ours![c] = await throughput(() => ours(), c);
      cpuOf.ours![c] = lastCpu;
    }
    p(`${SECONDS} s per point (BENCH_SECONDS, default 10 s). Runs of /bin/true kept in flight with N async workers; runs/s = completed ÷ elapsed.`);
    p();
    p('CPU per run: busy time of the whole machine (all processes and the kernel, from /proc/stat) ÷ completed runs, and the part spent by this Node process (process.cpuUsage, all its threads). With 2 CPUs, 2000 ÷ machine CPU ms per run is the ceiling on runs/s.');
    p();
    p('| concurrency | Node spawn runs/s (baseline) | sandcell runs/s | ratio | spawn: machine / Node CPU ms per run | sandcell: machine / Node CPU ms per run |\n|---:|---:|---:|---:|---:|---:|');
    for (const c of CONCURRENCIES) {
      const cs = cpuOf.spawn![c]!;
      const co = cpuOf.ours![c]!;
      p(`| ${c} | ${thr.spawn![c]!.toFixed(1)} | ${thr.ours![c]!.toFixed(1)} | ${ratio(thr.ours![c]!, thr.spawn![c]!)} | ${ms(cs.machineMs)} / ${ms(cs.nodeMs)} | ${ms(co.machineMs)} / ${ms(co.nodeMs)} |`);
    }
    figures.cpuPerRunMachine = cpuOf.ours![8]!.machineMs;
    figures.cpuPerRunNode = cpuOf.ours![8]!.nodeMs;
  });

  await section(`5. Peers on the same machine (p50 from section 1; throughput at concurrency 2, ${SECONDS} s)`, async () => {
    const t2: Record<string, number> = { ours: thr.ours?.[2] ?? NaN, spawn: thr.spawn?.[2] ?? NaN };
    if (bwrapOk) t2.bwrap = await throughput(bwrapTrue, 2);
    if (unshareOk) t2.unshare = await throughput(unshareTrue, 2);
    p(`bubblewrap: ${bwrapOk ? `${bw.version} (${bw.note})` : `**absent** — ${bw.note}`}. \`bwrap ${bwrapArgs(['/bin/true']).join(' ')}\``);
    p();
    p(`unshare: ${unshareVersion ?? '**absent**'}. \`unshare ${UNSHARE_ALL.join(' ')} /bin/true\` (namespaces only: no new root, no cgroup, no seccomp).`);
    p();
    p('Both peers are started by Node\'s `child_process.spawn`, as an embedding service would start them, so their figures include Node\'s fork cost.');
    p();
    p('| tool | p50 ms | our p50 ÷ its p50 | runs/s at concurrency 2 | our runs/s ÷ its runs/s\n|---|---:|---:|---:|---:|');
    p(`| **sandcell** | ${ms(lat.ours?.p50 ?? NaN)} | 1.00× | ${t2.ours!.toFixed(1)} | 1.00× |`);
    for (const [k, name] of [['bwrap', 'bubblewrap'], ['unshare', 'unshare'], ['spawn', 'Node spawn, no isolation']] as const) {
      const l = lat[k];
      if (!l || t2[k] === undefined) {
        p(`| ${name} | absent | | | |`);
        continue;
      }
      p(`| ${name} | ${ms(l.p50)} | ${ratio(lat.ours?.p50 ?? NaN, l.p50)} | ${t2[k]!.toFixed(1)} | ${ratio(t2.ours!, t2[k]!)} |`);
    }
    figures.oursT2 = t2.ours!;
    if (t2.bwrap !== undefined) figures.bwrapT2 = t2.bwrap;
  });

  // ---- 6. event-loop delay ----------------------------------------------------------------------
  await section('6. Event-loop delay while 8 boxes start at once', async () => {
    const idle = await eventLoopDelay(null, 0, 0);
    const node8 = await eventLoopDelay(nodeSpawnTrue, ELD_ROUNDS, 8);
    const ours8 = await eventLoopDelay(() => ours(), ELD_ROUNDS, 8);
    p(`\`perf_hooks.monitorEventLoopDelay({ resolution: 1 })\`: ${ELD_ROUNDS} rounds of 8 concurrent runs of /bin/true, each round awaited before the next. The histogram records the whole timer interval, so an idle loop reads ≈1.1 ms; the figures below are raw.`);
    p();
    p('| load | p50 ms | p99 ms | max ms |\n|---|---:|---:|---:|');
    p(`| idle loop (2 s) | ${ms(idle.p50)} | ${ms(idle.p99)} | ${ms(idle.max)} |`);
    p(`| 8 × Node \`child_process.spawn\` (baseline) | ${ms(node8.p50)} | ${ms(node8.p99)} | ${ms(node8.max)} |`);
    p(`| **8 × sandcell \`run()\`** | ${ms(ours8.p50)} | ${ms(ours8.p99)} | ${ms(ours8.max)} |`);
    figures.eldP99 = ours8.p99;
    figures.eldIdleP99 = idle.p99;
    figures.eldNodeP99 = node8.p99;
  });

  // ---- 7. RSS growth ------------------------------------------------------------------------------
  await section(`7. Host RSS over ${RSS_RUNS} runs`, async () => {
    for (let i = 0; i < 200; i++) await ours();
    // Warm boxes hold a process and four fds each: the snapshots are taken with none waiting.
    await setWarmBoxes(0);
    await settleGc();
    const rss0 = rssMB();
    const heap0 = process.memoryUsage().heapUsed / 2 ** 20;
    const fdsA = openFds();
    await setWarmBoxes(WARM_BOXES);
    const t0 = nowMs();
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < RSS_RUNS) {
        next++;
        await ours();
      }
    };
    await Promise.all(Array.from({ length: 4 }, worker));
    const secs = (nowMs() - t0) / 1000;
    await setWarmBoxes(0);
    await settleGc();
    const rss1 = rssMB();
    const heap1 = process.memoryUsage().heapUsed / 2 ** 20;
    const fdsB = openFds();
    p(`${RSS_RUNS} runs of /bin/true at concurrency 4 (${secs.toFixed(1)} s, ${(RSS_RUNS / secs).toFixed(0)} runs/s), after 200 warm-up runs; RSS read after ${gc ? 'gc() (--expose-gc)' : 'NO gc (run without --expose-gc)'}.`);
    p();
    p('| | before | after | growth |\n|---|---:|---:|---:|');
    p(`| RSS MB | ${rss0.toFixed(1)} | ${rss1.toFixed(1)} | ${(rss1 - rss0).toFixed(1)} MB (${(((rss1 - rss0) * 1024) / RSS_RUNS).toFixed(2)} KiB/run) |`);
    p(`| V8 heap used MB | ${heap0.toFixed(1)} | ${heap1.toFixed(1)} | ${(heap1 - heap0).toFixed(1)} MB |`);
    p(`| open fds of this process | ${fdsA} | ${fdsB} | ${fdsB - fdsA} |`);
    p(`| live children of this process | | ${liveChildren().length} | |`);
    p(`| run cgroups left below sandcell-${process.pid} (not counting those made ahead) | | ${liveRunCgroups(new Set(await idleCgroupDirs()))} | |`);
    figures.rssGrowth = rss1 - rss0;
    figures.fdGrowth = fdsB - fdsA;
    await setWarmBoxes(WARM_BOXES);
  });

  // ---- 9. seccomp filter cost per system call (bench/seccomp-cost.ts) ----------------------------
  if (process.env.BENCH_SECCOMP !== '0') {
    await section('9. Seccomp filter cost per system call', async () => {
      const mod = await import('./seccomp-cost.js');
      const cost = await guarded('seccomp-cost run', (alive) => mod.seccompCost(alive));
      // Its own headings go one level down, under this section.
      for (const line of cost.markdown.split('\n')) p(line.replace(/^(#+) /, '$1# '));
      seccompTargets = cost;
    });
  }

  // ---- 10. living boxes ---------------------------------------------------------------------------
  await section('10. Runs in a living box (`Sandbox`)', async () => {
    const box = await guarded('Sandbox.create()', () => Sandbox.create());
    try {
      const inBox = async (): Promise<void> => {
        const r = await guarded('Sandbox run()', () => box.run({ command: ['/bin/true'] }));
        if (r.status !== 'ok') throw new Error(`run in a living box ended with ${r.status}: ${r.stderr.slice(0, 300)}`);
      };
      const [living, oneShot, node] = await interleaved([inBox, () => ours(), nodeSpawnTrue], ITER);
      const t2Box = await throughput(inBox, 2);
      p(`One box from \`Sandbox.create()\` (default shape), \`box.run({ command: ['/bin/true'] })\` in it ${ITER} times, interleaved round-robin with a one-shot \`run()\` (warm boxes on) and Node's \`child_process.spawn\`. Each run in a living box gets a PID and mount namespace of its own: it joins the box's namespaces with a mount namespace of the run's own, unshares a PID namespace, forks once more for the run's PID 1 and mounts a fresh /proc.`);
      p();
      p(LAT_HEAD);
      p(row('Node `child_process.spawn` (baseline)', node!));
      p(row('sandcell one-shot `run()`, warm boxes on', oneShot!, node));
      p(row('**`box.run()` in one living box**', living!, node, `÷ one-shot run() = ${ratio(living!.p50, oneShot!.p50)}`));
      p();
      p(`Throughput of runs in the one living box at concurrency 2 (${SECONDS} s): **${t2Box.toFixed(1)} runs/s**, machine / Node CPU ${ms(lastCpu.machineMs)} / ${ms(lastCpu.nodeMs)} ms per run.`);
      figures.livingP50 = living!.p50;
      figures.livingOneShotP50 = oneShot!.p50;
      figures.livingSpawnP50 = node!.p50;
      figures.livingT2 = t2Box;
    } finally {
      await box.destroy();
    }
    if (unshareOk) {
      p();
      p(`What the per-run PID namespace costs the kernel, isolated with util-linux unshare as root (spawned by Node, ${SUB_ITER} runs each, interleaved round-robin): \`--mount-proc\` mounts a fresh /proc in the new mount namespace, as a run's init does; both lines fork once after unsharing, as a run does.`);
      p();
      const [plainFork, pidNs] = await interleaved([
        () => plain('unshare', ['--fork', '/bin/true']),
        () => plain('unshare', ['--pid', '--mount', '--fork', '--mount-proc', '/bin/true']),
      ], SUB_ITER);
      const added = pidNs!.p50 - plainFork!.p50;
      p('| variant | p50 ms | p90 ms | p99 ms | Δ p50\n|---|---:|---:|---:|---:|');
      p(`| \`unshare --fork /bin/true\` | ${ms(plainFork!.p50)} | ${ms(plainFork!.p90)} | ${ms(plainFork!.p99)} | — |`);
      p(`| \`unshare --pid --mount --fork --mount-proc /bin/true\` | ${ms(pidNs!.p50)} | ${ms(pidNs!.p90)} | ${ms(pidNs!.p99)} | ${ms(added)} |`);
      p();
      p(`What the per-run PID namespace adds: **${ms(added)} ms** (p50 difference) of the living-box p50 of ${ms(figures.livingP50 ?? NaN)} ms${Number.isFinite(figures.livingP50) ? ` (${((100 * added) / figures.livingP50!).toFixed(0)} %)` : ''}.`);
      figures.pidNsAdds = added;
    } else p('\nutil-linux unshare is **absent**: the per-run PID namespace cost is not measured.');
  });

  // ---- 11. judging a problem --------------------------------------------------------------------
  await section(`11. Judging A+B with ${JUDGE_TESTS} tests (C++, \`sandcell/problems\`)`, async () => {
    tempDir = mkdtempSync(join(tmpdir(), 'sandcell-bench-'));
    chmodSync(tempDir, 0o755);
    const example = resolve(benchDir, '..', 'examples', 'aplusb');
    const problemText = readFileSync(join(example, 'problem.yaml'), 'utf8');
    const ownTests = problemText.replace(/^tests:[\s\S]*$/m, 'tests:\n  - { glob: tests/*.in }\n');
    if (ownTests === problemText) throw new Error('examples/aplusb/problem.yaml has no tests: list to replace');
    writeFileSync(join(tempDir, 'problem.yaml'), ownTests);
    mkdirSync(join(tempDir, 'tests'));
    // Deterministic operands across the whole |x| ≤ 10^18 range the problem allows.
    let seed = 0x9e3779b97f4a7c15n;
    const next = (): bigint => {
      seed ^= seed << 13n;
      seed &= (1n << 64n) - 1n;
      seed ^= seed >> 7n;
      seed ^= seed << 17n;
      seed &= (1n << 64n) - 1n;
      return (seed % (2n * 10n ** 18n + 1n)) - 10n ** 18n;
    };
    const tests: { input: Buffer; answer: string }[] = [];
    for (let i = 0; i < JUDGE_TESTS; i++) {
      const a = next();
      const b = next();
      const name = String(i + 1).padStart(3, '0');
      const input = `${a} ${b}\n`;
      writeFileSync(join(tempDir, 'tests', `${name}.in`), input);
      writeFileSync(join(tempDir, 'tests', `${name}.ans`), `${a + b}\n`);
      tests.push({ input: Buffer.from(input), answer: `${a + b}` });
    }
    const source = join(example, 'solutions', 'ac.cpp');
    const bin = join(tempDir, 'main');
    const tc0 = nowMs();
    execFileSync('g++', ['-O2', '-std=c++17', '-o', bin, source], { stdio: ['ignore', 'ignore', 'pipe'] });
    const hostCompileMs = nowMs() - tc0;

    const judge = await guarded('Judge.open()', () => Judge.open(join(tempDir!, 'problem.yaml'), { config: join(example, '..', 'sandcell.yaml') }));
    try {
      const submission = submissionFromFile(judge.problem, source);
      const judged = async (): Promise<{ total: number; compile: number; tests: number }> => {
        const t0 = nowMs();
        let firstTest = NaN;
        const r = await guarded('judge() (a build or a test)', (alive) => judge.judge(submission, {
          onProgress: (pr) => {
            alive();
            if (pr.stage === 'test' && pr.index === 0) firstTest = nowMs();
          },
        }));
        const t1 = nowMs();
        if (r.verdict !== 'AC' || r.tests.length !== JUDGE_TESTS) throw new Error(`judge: ${r.verdict} on ${r.tests.length} tests (${r.error ?? ''})`);
        return { total: t1 - t0, compile: firstTest - t0, tests: t1 - firstTest };
      };
      const baseline = async (): Promise<number> => {
        const t0 = nowMs();
        for (const t of tests) {
          const out = await guarded('plain spawn of the A+B binary', () => plainOutput(bin, t.input));
          if (out.trim().split(/\s+/).join(' ') !== t.answer) throw new Error(`baseline: wrong answer ${out.slice(0, 60)} for ${t.input.toString().trim()}`);
        }
        return nowMs() - t0;
      };
      const j: { total: number; compile: number; tests: number }[] = [];
      const b: number[] = [];
      for (let round = 0; round < JUDGE_ROUNDS; round++) {
        // Alternating order within a round so drift hits both.
        if (round % 2 === 0) {
          b.push(await baseline());
          j.push(await judged());
        } else {
          j.push(await judged());
          b.push(await baseline());
        }
      }
      const med = (xs: number[]): number => dist(xs).p50;
      const total = med(j.map((x) => x.total));
      const compile = med(j.map((x) => x.compile));
      const testsMs = med(j.map((x) => x.tests));
      const base = med(b);
      const perTest = (testsMs - base) / JUDGE_TESTS;
      p(`A temp copy of examples/aplusb/problem.yaml with ${JUDGE_TESTS} generated tests (random a, b with |a|, |b| ≤ 10^18; deleted afterwards), judged with \`Judge.open()\` (profiles from examples/sandcell.yaml) + \`judge.judge()\` on examples/aplusb/solutions/ac.cpp: the build in a box (the problem's \`compile\` profile, \`g++ -O2 -std=c++17\`), then every test in that box sequentially under the \`cpp\` run profile, output compared by tokens. Baseline: the same source built once on the host (\`g++ -O2 -std=c++17\`, ${ms(hostCompileMs, 0)} ms, outside the timed figures), run ${JUDGE_TESTS} times with \`child_process.spawn\` (stdin → stdout, tokens compared in Node), sequentially. Median of ${JUDGE_ROUNDS} round${JUDGE_ROUNDS > 1 ? 's' : ''}, judge and baseline alternating.`);
      p();
      p('| what | ms | ratio to baseline\n|---|---:|---:|');
      p(`| ${JUDGE_TESTS} × plain \`child_process.spawn\` of the host-built binary (baseline) | ${ms(base, 1)} | 1.00× |`);
      p(`| **judge: ${JUDGE_TESTS} tests** (first test started → report) | ${ms(testsMs, 1)} | ${ratio(testsMs, base)} |`);
      p(`| judge: build in the box (judge() called → first test started) | ${ms(compile, 1)} | |`);
      p(`| judge: total (build + ${JUDGE_TESTS} tests) | ${ms(total, 1)} | |`);
      p();
      p(`Per-test overhead of judging over the bare binary: **${ms(perTest)} ms** per test (${ms(testsMs / JUDGE_TESTS)} vs ${ms(base / JUDGE_TESTS)} ms).`);
      figures.judgeTestsMs = testsMs;
      figures.judgeBaseMs = base;
      figures.judgePerTest = perTest;
      figures.judgeTotalMs = total;
    } finally {
      await judge.close();
      cleanup();
    }
  });

  // ---- 12. the daemon (bench/daemon.ts) ------------------------------------------------------------
  await section('12. The daemon: runs through `sandcell serve` on a Unix socket', async () => {
    const daemon = await guarded('sandcell serve start', () => startDaemon());
    // The raw POST has a daemon of its own: on one shared daemon, the round-robin put it right
    // after the client's run, so it started while that daemon still built the warm box for the
    // next run (a build takes about two runs), and the client's run came after a shorter idle
    // time than the local run's. Each line's engine now idles as long before each sample.
    const rawDaemon = await guarded('sandcell serve start (raw POST)', () => startDaemon());
    const sessionDaemon = await guarded('sandcell serve start (session)', () => startDaemon());
    // The same daemon with as many runs at once as the throughput clients send: the library
    // in this process has no cap, the daemon's default is the CPUs.
    const wide = await guarded('sandcell serve --parallelism 8 start', () => startDaemon(['--parallelism', '8']));
    const floor = await guarded('bare servers start (the floor)', () => startFloor());
    try {
      const local = (): Promise<void> => ours(DAEMON_OPTIONS);
      const client = (): Promise<void> => guarded('daemon run (client)', () => daemon.clientRun());
      const raw = (): Promise<void> => guarded('daemon run (raw POST)', () => rawDaemon.rawRun());
      const health = (): Promise<void> => guarded('daemon health', () => daemon.health());
      const session = (): Promise<void> => guarded('daemon run (session)', () => sessionDaemon.sessionRun());
      const floorHealth = (): Promise<void> => guarded('bare node:http health', () => floor.health());
      const floorPing = (): Promise<void> => guarded('bare node:net echo', () => floor.ping());
      const sessionT = (): Promise<void> => guarded('daemon run (session)', () => daemon.sessionRun());
      const wideClient = (): Promise<void> => guarded('daemon run (client, parallelism 8)', () => wide.clientRun());
      // In a new order every round: in a fixed rotation each line comes after the same one, and a
      // run right after another run of the same process competes with the warm box that process
      // is building to replace the one taken (the client's run always came right after the
      // local run, the local run after the health check).
      const [dl, dc, dr, ds, dh, fh, fp] = await interleaved([local, client, raw, session, health, floorHealth, floorPing], ITER, true);
      const rounds: { local: number; admitted: number; daemon: number; session: number; wide: number }[] = [];
      // A local line with as many runs in flight as the default daemon admits: what the default
      // parallelism itself allows on this host, with no daemon in the way.
      for (let i = 0; i < DAEMON_ROUNDS; i++) {
        rounds.push({ local: await throughput(local, 8), admitted: await throughput(local, availableParallelism()), daemon: await throughput(client, 8), session: await throughput(sessionT, 8), wide: await throughput(wideClient, 8) });
      }
      const med = (k: 'local' | 'admitted' | 'daemon' | 'session' | 'wide'): number => median(rounds.map((r) => r[k]));
      const ratios = (k: 'admitted' | 'daemon' | 'session' | 'wide'): string => rounds.map((r) => ratio(r[k], r.local)).join(', ');
      // A round's two figures are taken minutes apart at most, the rounds' are not: the load that
      // moves between rounds moves the local figure and the daemon's of one round together, so a
      // round's ratio is the comparison, and their median the verdict (as section 9 judges).
      const medRatio = (k: 'admitted' | 'daemon' | 'session' | 'wide'): number => median(rounds.map((r) => r[k] / r.local));
      p(`\`sandcell serve --socket <temp dir>/sandcell.sock\` started by this process as a service runs it (default settings: parallelism ${availableParallelism()} = the CPUs, its own warm boxes, the default log level with its JSON lines written to a file, not to a pipe this process reads). Every run is \`${JSON.stringify(DAEMON_OPTIONS)}\`, local and remote alike; ${ITER} runs each, interleaved round-robin in a new random order each round (in a fixed rotation the client's run always came right after the local run, while this process built the warm box to replace the one taken). The client's \`engine.run()\`, the raw POST and the session each talk to a daemon of their own, so before every sample each engine (the local one included) has been idle as long: a daemon shared by two lines would start one line's run while still building the warm box after the other's. The raw POST is what a go-judge-style caller does: \`POST /v1/run\` with that JSON body over a kept-alive node:http connection, reply parsed. The session is \`engine.session()\`: one WebSocket kept open, a frame per run. \`GET /v1/health\` is the round trip through the socket with no run in it: what any client of a daemon pays, go-judge's included. The last two lines are the floor under it, sampled among the others (so after the same idle and beside the same runs): the same client's \`GET /v1/health\` against a bare node:http server in a Node process of its own (none of the daemon's code), and a byte echoed by a bare node:net server (two Node processes' wake-ups, no HTTP).`);
      p();
      p('Yardsticks: through the daemon, p50 ≤ local p50 + 0.5 ms, and throughput at concurrency 8 ≥ 90 % of local.');
      p();
      p(LAT_HEAD);
      p(row('local `run()` in this process (baseline)', dl!));
      p(row('**daemon, `sandcell/client` `engine.run()`**', dc!, dl, `+${ms(dc!.p50 - dl!.p50)} ms over local`));
      p(row('daemon, raw JSON `POST /v1/run` (node:http)', dr!, dl, `+${ms(dr!.p50 - dl!.p50)} ms over local`));
      p(row('daemon, `sandcell/client` `engine.session()` (one WebSocket)', ds!, dl, `+${ms(ds!.p50 - dl!.p50)} ms over local`));
      p(row('daemon, `GET /v1/health` (round trip, no run)', dh!, undefined, `the client run less this and local: ${ms(dc!.p50 - dh!.p50 - dl!.p50)} ms`));
      p(row('floor: bare node:http server, the same `GET /v1/health`', fh!, undefined, `the daemon's health less this: ${ms(dh!.p50 - fh!.p50)} ms`));
      p(row('floor: a byte echoed by a bare node:net server', fp!, undefined, 'two Node processes, no HTTP'));
      p();
      p(`| at concurrency 8 (${SECONDS} s, ${DAEMON_ROUNDS} interleaved rounds) | runs/s (median) | median of the rounds' ratios to local (the verdict) | ratio of the medians | each round's ratio |\n|---|---:|---:|---:|---|`);
      p(`| local \`run()\` (baseline) | ${med('local').toFixed(1)} | 1.00× | 1.00× | |`);
      p(`| local \`run()\` at concurrency ${availableParallelism()} (as many in flight as the default daemon admits: its bound) | ${med('admitted').toFixed(1)} | ${medRatio('admitted').toFixed(2)}× | ${ratio(med('admitted'), med('local'))} | ${ratios('admitted')} |`);
      p(`| **daemon, \`sandcell/client\`, default parallelism (${availableParallelism()})** | ${med('daemon').toFixed(1)} | **${medRatio('daemon').toFixed(2)}×** | ${ratio(med('daemon'), med('local'))} | ${ratios('daemon')} |`);
      p(`| daemon, \`sandcell/client\` \`engine.session()\` (one WebSocket), default parallelism | ${med('session').toFixed(1)} | ${medRatio('session').toFixed(2)}× | ${ratio(med('session'), med('local'))} | ${ratios('session')} |`);
      p(`| daemon, \`sandcell/client\`, \`--parallelism 8\` | ${med('wide').toFixed(1)} | ${medRatio('wide').toFixed(2)}× | ${ratio(med('wide'), med('local'))} | ${ratios('wide')} |`);
      figures.daemonLocalP50 = dl!.p50;
      figures.daemonClientP50 = dc!.p50;
      figures.daemonRawP50 = dr!.p50;
      figures.daemonHealthP50 = dh!.p50;
      figures.daemonFloorHealthP50 = fh!.p50;
      figures.daemonFloorPingP50 = fp!.p50;
      figures.daemonLocalT8 = med('local');
      figures.daemonT8 = med('daemon');
      figures.daemonWideT8 = med('wide');
      figures.daemonSessionP50 = ds!.p50;
      figures.daemonSessionT8 = med('session');
      figures.daemonT8Ratio = medRatio('daemon');
      figures.daemonSessionT8Ratio = medRatio('session');
      figures.daemonWideT8Ratio = medRatio('wide');
    } finally {
      await daemon.stop();
      await rawDaemon.stop();
      await sessionDaemon.stop();
      await wide.stop();
      await floor.stop();
    }
  });

  // ---- 13. networks ---------------------------------------------------------------------------------
  await section('13. Networks: an allow list, published ports and a private network against `none`', async () => {
    const server = createServer((req, res) => {
      if (req.url === '/big') {
        res.end(Buffer.alloc(32 << 20, 'x'));
        return;
      }
      res.end('ok');
    });
    await new Promise<void>((ready) => server.listen(0, '127.0.0.1', ready));
    const port = (server.address() as AddressInfo).port;
    const privateNet = await createNetwork(`bench-${process.pid}`);
    try {
      const allow = [`127.0.0.1:${port}`];
      const withAllow: RunOptions = { ...TRUE_BOX, network: { allow } };
      const withPublish: RunOptions = { ...TRUE_BOX, network: { publish: [{ box: 8000, host: 0 }] } };
      const onNetwork: RunOptions = { ...TRUE_BOX, network: privateNet.name };
      const [none, allowed, published, joined] = await interleaved([() => ours(), () => ours(withAllow), () => ours(withPublish), () => ours(onNetwork)], SUB_ITER);
      const t2 = { none: await throughput(() => ours(), 2), allow: await throughput(() => ours(withAllow), 2) };
      const curl = (path: string): RunOptions => ({ command: ['curl', '-sSf', '-o', '/dev/null', `http://127.0.0.1:${port}${path}`], network: { allow } });
      const [oneRequest] = await interleaved([() => ours(curl('/'))], Math.max(30, Math.round(SUB_ITER / 4)));
      const t0 = nowMs();
      const rounds = 5;
      for (let i = 0; i < rounds; i++) await ours(curl('/big'));
      const mibps = (rounds * 32) / ((nowMs() - t0) / 1000);
      p(`\`run({ command: ['/bin/true'] })\` (warm boxes on) ${SUB_ITER} times each, interleaved round-robin: the default \`none\`, with an allow list (the proxy's listener made in the box's namespace, the proxy started and closed; no connection), with one published port (a host listener), on a private network (a veth pair made and addressed over rtnetlink on the addon's worker thread when the box is built, ahead of its run for a warm box; no hostname, so the network's hosts file is not rewritten). Throughput at concurrency 2, ${SECONDS} s each.`);
      p();
      p(LAT_HEAD);
      p(row('`network: none` (baseline)', none!));
      p(row('**`network: { allow }`**', allowed!, none, `Δ p50 ${ms(allowed!.p50 - none!.p50)} ms`));
      p(row('**`network: { publish }`**', published!, none, `Δ p50 ${ms(published!.p50 - none!.p50)} ms`));
      p(row('**`network: <private network>`**', joined!, none, `Δ p50 ${ms(joined!.p50 - none!.p50)} ms`));
      p(row('curl of a small page through the proxy (whole run)', oneRequest!, none));
      p();
      p(`Throughput at concurrency 2: none **${t2.none.toFixed(1)} runs/s**, with an allow list **${t2.allow.toFixed(1)} runs/s** (${ratio(t2.allow, t2.none)}). Bytes through the proxy: curl of 32 MiB from a server on the host's 127.0.0.1, ${rounds} runs: **${mibps.toFixed(0)} MiB/s** (whole runs, box start included).`);
      figures.netNoneP50 = none!.p50;
      figures.netAllowP50 = allowed!.p50;
      figures.netPublishP50 = published!.p50;
      figures.netPrivateP50 = joined!.p50;
      figures.netAllowT2 = t2.allow;
      figures.netNoneT2 = t2.none;
      figures.netProxyMiBs = mibps;
    } finally {
      server.closeAllConnections();
      await new Promise((done) => server.close(done));
      await privateNet.remove();
    }
  });

  // ---- 14. back to back, and throughput against the kernel's floor ---------------------------------
  await section('14. Back to back, in blocks, and throughput against fresh namespaces', async () => {
    const BLOCK = 50;
    figures.rss14 = rssMB();
    const blocks = Math.max(2, Math.round(ITER / BLOCK));
    const box = await guarded('Sandbox.create()', () => Sandbox.create());
    try {
      const inBox = async (): Promise<void> => {
        const r = await guarded('Sandbox run()', () => box.run({ command: ['/bin/true'] }));
        if (r.status !== 'ok') throw new Error(`run in a living box ended with ${r.status}: ${r.stderr.slice(0, 300)}`);
      };
      const fns: [string, () => Promise<unknown>][] = [
        ['Node `child_process.spawn` (baseline)', nodeSpawnTrue],
        ['**sandcell `run()`**, warm boxes on', () => ours()],
        ['**`box.run()` in one living box**', inBox],
      ];
      if (unshareOk) fns.push([`\`unshare\` with the same seven namespaces (spawned by Node)`, unshareTrue]);
      // Blocks of back-to-back runs with no idle time between them, the variants' blocks in turn
      // (the order rotating), so each block meets what the one before it left (warm boxes spent,
      // builds in flight) as a busy caller does, and load drifts over all variants alike.
      const samples: number[][] = fns.map(() => []);
      for (const [, fn] of fns) for (let w = 0; w < 5; w++) await fn();
      for (let b = 0; b < blocks; b++) {
        for (let k = 0; k < fns.length; k++) {
          const j = (b + k) % fns.length;
          const fn = fns[j]![1];
          for (let i = 0; i < BLOCK; i++) {
            const t0 = nowMs();
            await fn();
            samples[j]!.push(nowMs() - t0);
          }
        }
      }
      const ds = samples.map(dist);
      p(`${blocks} blocks of ${BLOCK} back-to-back runs of /bin/true per variant, no idle time, the variants' blocks in rotating turn. One living box from \`Sandbox.create()\` (default shape) for its line.`);
      p();
      p(`Host RSS at start of section: ${figures.rss14.toFixed(0)} MB${Number.isFinite(figures.rss1) ? ` (section 1: ${figures.rss1!.toFixed(0)} MB)` : ''}. Node's \`spawn\` forks this process, and a fork copies its page tables, so its cost grows with the host's memory (section 2); sandcell clones its boxes without copying the host's memory. Where the host has grown since section 1, this baseline (and the \`unshare\` line, spawned the same way) is slower than section 1's for that alone, while sandcell's own p50 does not grow with the host (section 2): these ratios compare sandcell with a spawn from this host, section 1's with a spawn from a small one.`);
      p();
      p(LAT_HEAD);
      fns.forEach(([name], i) => p(row(name, ds[i]!, i === 0 ? undefined : ds[0])));
      figures.b2bSpawnP50 = ds[0]!.p50;
      figures.b2bOursP50 = ds[1]!.p50;
      figures.b2bLivingP50 = ds[2]!.p50;
      p();
      p(`Throughput (${SECONDS} s per point) of sandcell against \`unshare\` with the same seven namespaces (\`unshare ${UNSHARE_ALL.join(' ')} /bin/true\`, spawned by Node: namespaces only, no new root, cgroup or seccomp: what the kernel charges for a fresh box per run) and bubblewrap; Node CPU per run (\`process.cpuUsage\`, all threads) of the sandcell line, and of it the main thread's (its schedstat).`);
      p();
      p('| concurrency | sandcell runs/s | Node CPU ms per run | of it the main thread | living box runs/s | unshare runs/s | bubblewrap runs/s | sandcell ÷ unshare | sandcell ÷ bubblewrap | living ÷ bubblewrap |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
      for (const c of [2, 8]) {
        const tOurs = await throughput(() => ours(), c);
        const cpu = lastCpu.nodeMs;
        const mainCpu = lastCpu.mainThreadMs;
        const tLiving = await throughput(inBox, c);
        const tUnshare = unshareOk ? await throughput(unshareTrue, c) : NaN;
        const tBwrap = bwrapOk ? await throughput(bwrapTrue, c) : NaN;
        p(`| ${c} | ${tOurs.toFixed(1)} | ${ms(cpu)} | ${ms(mainCpu)} | ${tLiving.toFixed(1)} | ${tUnshare.toFixed(1)} | ${tBwrap.toFixed(1)} | ${ratio(tOurs, tUnshare)} | ${ratio(tOurs, tBwrap)} | ${ratio(tLiving, tBwrap)} |`);
        figures[`t${c}Ours`] = tOurs;
        figures[`t${c}Living`] = tLiving;
        figures[`t${c}Unshare`] = tUnshare;
        figures[`t${c}Bwrap`] = tBwrap;
        if (c === 8) {
          figures.nodeCpuPerRun8 = cpu;
          figures.nodeCpuMain8 = mainCpu;
        }
      }
    } finally {
      await box.destroy();
    }
  });

  // ---- 15. the farm (bench/farm.ts) ---------------------------------------------------------------
  await section('15. The farm: runs through BullMQ on Redis to `sandcell worker` processes', async () => {
    const f = await guarded('farm start', () => startFarm());
    try {
      await f.workers(1);
      const farmRun = async (): Promise<void> => {
        const r = await guarded('farm run', () => f.farm.run(TRUE_BOX));
        if (r.status !== 'ok') throw new Error(`farm run ended with ${r.status}: ${r.stderr.slice(0, 300)}`);
      };
      const [local, remote] = await interleaved([() => ours(), farmRun], ITER);
      p(`A redis-server on a Unix socket (no persistence) and \`sandcell worker --concurrency 2\` processes, all on this machine, started by this process; \`connectCluster()\` in this process. Every run is \`/bin/true\`; ${ITER} runs each, interleaved round-robin with a local \`run()\` in this process. The workers share this machine's CPUs with this process and Redis: more workers add queue consumers, not CPUs, so runs/s here shows the farm's overhead, not how it scales across machines (see docs/cluster.md).`);
      p();
      p(LAT_HEAD);
      p(row('local `run()` in this process (baseline)', local!));
      p(row('**farm, 1 worker, `farm.run()`**', remote!, local, `+${ms(remote!.p50 - local!.p50)} ms over local`));
      p();
      p(`| at concurrency 8 (${SECONDS} s) | runs/s | ratio to local | machine CPU ms per run\n|---|---:|---:|---:|`);
      const tLocal = await throughput(() => ours(), 8);
      p(`| local \`run()\` (baseline) | ${tLocal.toFixed(1)} | 1.00× | ${lastCpu.machineMs.toFixed(1)} |`);
      figures.farmLocalP50 = local!.p50;
      figures.farmP50 = remote!.p50;
      figures.farmLocalT8 = tLocal;
      for (const n of [1, 2, 3]) {
        await f.workers(n);
        const t = await throughput(farmRun, 8);
        p(`| **farm, ${n} worker${n > 1 ? 's' : ''}** | ${t.toFixed(1)} | ${ratio(t, tLocal)} | ${lastCpu.machineMs.toFixed(1)} |`);
        figures[`farmT8w${n}`] = t;
      }
    } finally {
      await f.stop();
    }
  });

  // ---- 2. big host (last: the ballast would distort everything after it) ----------------------------
  await section('16. Images: a stored 3-layer image vs the same files as one directory; import time', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sandcell-bench-images-'));
    chmodSync(dir, 0o755);
    const storeBefore = process.env.SANDCELL_STORE;
    process.env.SANDCELL_STORE = join(dir, 'store');
    try {
      const { layers, union } = hostRootfsLayers(join(dir, 'rootfs'));
      const store = new ImageStore(join(dir, 'store'));
      const image = await store.import(await ociLayout(join(dir, 'layout'), layers, 'bench'), { names: ['bench-3-layers'] });
      const layered = async (): Promise<void> => {
        const r = await run({ image: 'bench-3-layers', command: ['/bin/true'] });
        if (r.status !== 'ok') throw new Error(`3-layer image run ended with ${r.status}: ${r.stderr.slice(0, 300)}`);
      };
      const flat = async (): Promise<void> => {
        const r = await run({ image: union, command: ['/bin/true'] });
        if (r.status !== 'ok') throw new Error(`directory image run ended with ${r.status}: ${r.stderr.slice(0, 300)}`);
      };
      const [ld, fd] = await interleaved([layered, flat], SUB_ITER);
      p(`\`run({ image, command: ['/bin/true'] })\` ${SUB_ITER} times each, interleaved round-robin (warm boxes on for both): the image is the host's /bin/sh, /bin/true, /bin/cat with their libraries and an /etc, imported as a ${image.layers.length}-layer OCI image (libraries, programs, /etc) and mounted as one read-only overlay of its layers; the directory holds the same files, its top-level entries bound read-only.`);
      p();
      p(LAT_HEAD);
      p(row('same files as one directory (`image: dir`)', fd!));
      p(row('**3-layer stored image (`image: name`)**', ld!, fd));
      figures.image3LayerP50 = ld!.p50;
      figures.imageDirP50 = fd!.p50;
      const mib = QUICK ? 64 : 256;
      const tar = await bulkTar(join(dir, 'bulk'), mib);
      const t0 = nowMs();
      await store.import(tar, { names: ['bench-bulk'] });
      const importMs = nowMs() - t0;
      const perGb = (importMs / 1000) * (1024 / mib);
      p();
      p(`Import of a ${mib} MiB rootfs tarball (uncompressed, ${mib} files of 1 MiB of random bytes; every entry checked, written, chowned and hashed): **${(importMs / 1000).toFixed(2)} s**, scaled to **${perGb.toFixed(1)} s per GiB** (a ${mib} MiB archive scaled, not a 1 GiB one).`);
      figures.imageImportSPerGb = perGb;
    } finally {
      if (storeBefore === undefined) delete process.env.SANDCELL_STORE;
      else process.env.SANDCELL_STORE = storeBefore;
      rmSync(dir, { recursive: true, force: true });
    }
  });

  // ---- 17. cold start: fresh processes ----------------------------------------------------------
  await section('17. Cold start: `sandcell run -- /bin/true` in a fresh process', async () => {
    const node = process.execPath;
    const importOf = (file: string): string[] => ['-e', `import(${JSON.stringify(pathToFileURL(join(distDir, file)).href)})`];
    const fresh = (file: string, args: string[]) => (): Promise<unknown> => guarded(`${file} ${args.join(' ')}`, () => plainOk(file, args));
    const fns: [string, () => Promise<unknown>][] = [
      ['`node -e 0` (baseline: Node\'s own start)', fresh(node, ['-e', '0'])],
      ['**`sandcell run -- /bin/true`** (`node dist/cli/main.js`)', fresh(node, [join(distDir, 'cli', 'main.js'), 'run', '--', '/bin/true'])],
      ['`import(\'sandcell\')` (`node -e`)', fresh(node, importOf('index.js'))],
      ['`import(\'sandcell/client\')` (`node -e`)', fresh(node, importOf(join('client', 'index.js')))],
    ];
    if (unshareOk) fns.push([`\`unshare\` with the same seven namespaces running /bin/true`, fresh('unshare', [...UNSHARE_ALL, '/bin/true'])]);
    const ds = await interleaved(fns.map(([, fn]) => fn), COLD_ROUNDS);
    const base = ds[0]!;
    p(`Each line a new process, spawned by this one and awaited to its exit (wall time, spawn to 'close'); ${COLD_ROUNDS} rounds, one process of each line per round, the order rotating, after 5 of each to warm the page cache. The CLI line is the whole of a one-shot run: Node's start, the modules it loads, the first run's setup (cgroups opened, the seccomp filter compiled, the box built), the run and the exit. The unshare line is what the kernel charges for the same fresh namespaces with nothing else (no new root, cgroup or seccomp).`);
    p();
    p(LAT_HEAD);
    fns.forEach(([name], i) => p(row(name, ds[i]!, i === 0 ? undefined : base, i === 0 ? '' : `${ds[i]!.p50 >= base.p50 ? '+' : '−'}${ms(Math.abs(ds[i]!.p50 - base.p50), 1)} ms against Node's start`)));
    figures.coldNodeP50 = base.p50;
    figures.coldCliP50 = ds[1]!.p50;
    figures.coldImportP50 = ds[2]!.p50;
    figures.coldClientP50 = ds[3]!.p50;
  });

  await section('2. Latency with the host grown to ~1 GB RSS', async () => {
    // Small-host figures measured again right before the ballast, interleaved, so both sides see the same machine load.
    // Each variant in a block of its own: a fork of a 1 GB Node process (Node spawn, bwrap) busies
    // the machine for tens of milliseconds after it returns, which would be charged to whatever
    // runs next if the variants were interleaved.
    const smallFns: (() => Promise<unknown>)[] = [nodeSpawnTrue, () => ours()];
    if (bwrapOk) smallFns.push(bwrapTrue);
    const blocks = async (): Promise<Dist[]> => {
      const out: Dist[] = [];
      for (const fn of smallFns) out.push((await interleaved([fn], SUB_ITER))[0]!);
      return out;
    };
    const smallRss = rssMB();
    const sm = await blocks();
    const small: Record<string, Dist> = { spawn: sm[0]!, ours: sm[1]! };
    if (bwrapOk) small.bwrap = sm[2]!;
    const ballast: Buffer[] = [];
    for (let i = 0; i < 16; i++) {
      const b = Buffer.allocUnsafeSlow(64 << 20);
      b.fill(i + 1); // touch every page
      ballast.push(b);
    }
    const rss = rssMB();
    const bg = await blocks();
    const big: Record<string, Dist> = { spawn: bg[0]!, ours: bg[1]! };
    if (bwrapOk) big.bwrap = bg[2]!;
    p(`Ballast: 16 × 64 MiB Buffers, every page written; host RSS during this section: ${rss.toFixed(0)} MB. Small-host figures (RSS ${smallRss.toFixed(0)} MB) measured just before the ballast was allocated; ${SUB_ITER} runs per figure, each variant in a block of its own (Node spawn, then sandcell, then bubblewrap), because a fork of the 1 GB process busies the machine after it returns.`);
    p();
    p('| what | small-host p50 ms | 1 GB-host p50 ms | p90 ms | p99 ms | runs | 1 GB ÷ small | 1 GB ratio to Node spawn (1 GB) |\n|---|---:|---:|---:|---:|---:|---:|---:|');
    const line = (name: string, s: Dist | undefined, b: Dist | undefined): void => {
      if (!s || !b) return;
      p(`| ${name} | ${ms(s.p50)} | ${ms(b.p50)} | ${ms(b.p90)} | ${ms(b.p99)} | ${b.n} | ${ratio(b.p50, s.p50)} | ${ratio(b.p50, big.spawn!.p50)} |`);
    };
    line('Node `child_process.spawn` (baseline)', small.spawn, big.spawn);
    line('**sandcell `run()`**', small.ours, big.ours);
    line('bubblewrap (via Node spawn)', small.bwrap, big.bwrap);
    figures.bigOursP50 = big.ours!.p50;
    figures.smallOursP50 = small.ours!.p50;
    figures.bigSpawnP50 = big.spawn!.p50;
    ballast.length = 0;
    await settleGc();
  });

  // What a service does before it exits: the warm boxes and the cgroups made ahead go.
  await shutdown();
  idleAtEnd = new Set(await idleCgroupDirs());
  writeReport();
  log(`wrote ${OUT} in ${((nowMs() - T0) / 1000).toFixed(0)} s`);
}

/** Writes RESULTS.md from what has been measured so far (also called by the watchdog on a stall). */
/** The library's cgroups made ahead for the next runs, at the end: not leftovers. */
let idleAtEnd: ReadonlySet<string> = new Set();

function writeReport(): void {
// ---- targets -------------------------------------------------------------------------------------
  const elapsed = (nowMs() - T0) / 1000;
  const fds1 = openFds();
  const t: string[] = [];
  const target = (name: string, ok: boolean | null, measured: string, gap: string): void => {
    t.push(`| ${name} | ${measured} | ${ok === null ? 'not measured' : ok ? '**met**' : `**missed** — ${gap}`} |`);
  };
  const f = figures;
  target('p50 ≤ 1.0× Node `spawn` p50', has('oursP50', 'spawnP50') ? f.oursP50! <= f.spawnP50! : null,
    `${ms(f.oursP50 ?? NaN)} vs ${ms(f.spawnP50 ?? NaN)} ms = ${ratio(f.oursP50 ?? NaN, f.spawnP50 ?? NaN)}`,
    `by ${ms((f.oursP50 ?? 0) - (f.spawnP50 ?? 0))} ms`);
  target(`p50 ≤ 1.0× Node \`spawn\` p50, ${IDLE_MS} ms idle between runs (a service between requests)`, has('oursIdleP50', 'spawnIdleP50') ? f.oursIdleP50! <= f.spawnIdleP50! : null,
    `${ms(f.oursIdleP50 ?? NaN)} vs ${ms(f.spawnIdleP50 ?? NaN)} ms = ${ratio(f.oursIdleP50 ?? NaN, f.spawnIdleP50 ?? NaN)}`,
    `by ${ms((f.oursIdleP50 ?? 0) - (f.spawnIdleP50 ?? 0))} ms`);
  target('p50 ≤ 0.5× bubblewrap p50', has('oursP50', 'bwrapP50') ? f.oursP50! <= 0.5 * f.bwrapP50! : null,
    `${ms(f.oursP50 ?? NaN)} vs ${ms(f.bwrapP50 ?? NaN)} ms = ${ratio(f.oursP50 ?? NaN, f.bwrapP50 ?? NaN)}`,
    `by ${ms((f.oursP50 ?? 0) - 0.5 * (f.bwrapP50 ?? 0))} ms (needs ≤ ${ms(0.5 * (f.bwrapP50 ?? NaN))} ms)`);
  target('throughput at concurrency 2 ≥ 2× bubblewrap', has('oursT2', 'bwrapT2') ? f.oursT2! >= 2 * f.bwrapT2! : null,
    `${(f.oursT2 ?? NaN).toFixed(1)} vs ${(f.bwrapT2 ?? NaN).toFixed(1)} runs/s = ${ratio(f.oursT2 ?? NaN, f.bwrapT2 ?? NaN)}`,
    `needs ≥ ${(2 * (f.bwrapT2 ?? NaN)).toFixed(1)} runs/s`);
  target('1 GB host: p50 within 10% of small host', has('bigOursP50', 'smallOursP50') ? f.bigOursP50! <= 1.1 * f.smallOursP50! : null,
    `${ms(f.bigOursP50 ?? NaN)} vs ${ms(f.smallOursP50 ?? NaN)} ms = ${ratio(f.bigOursP50 ?? NaN, f.smallOursP50 ?? NaN)} (Node spawn: ${ms(f.bigSpawnP50 ?? NaN)} ms at 1 GB)`,
    `by ${ms((f.bigOursP50 ?? 0) - 1.1 * (f.smallOursP50 ?? 0))} ms`);
  target('event-loop delay p99 ≤ 5 ms under 8 concurrent starts', has('eldP99') ? f.eldP99! <= 5 : null,
    `${ms(f.eldP99 ?? NaN)} ms (Node spawn: ${ms(f.eldNodeP99 ?? NaN)} ms)`, `by ${ms((f.eldP99 ?? 0) - 5)} ms`);
  target(`host RSS does not grow with runs (${RSS_RUNS} runs)`, has('rssGrowth') ? (f.rssGrowth ?? 0) <= 10 && (f.fdGrowth ?? 0) <= 0 : null,
    `${(f.rssGrowth ?? NaN).toFixed(1)} MB, fds ${f.fdGrowth ?? 'n/a'}`, 'grew (threshold: ≤ 10 MB, no fd growth)');

  // Section 14's spawn forks a host grown since section 1 (see its text): say so beside its ratio.
  const b2bHost = has('rss14') ? ` (Node spawn forks a host of ${f.rss14!.toFixed(0)} MB here${has('rss1') ? `, ${f.rss1!.toFixed(0)} MB in section 1` : ''})` : '';
  target('back to back (blocks of 50, section 14): p50 ≤ 1.0× Node `spawn`', has('b2bOursP50', 'b2bSpawnP50') ? f.b2bOursP50! <= f.b2bSpawnP50! : null,
    `${ms(f.b2bOursP50 ?? NaN)} vs ${ms(f.b2bSpawnP50 ?? NaN)} ms = ${ratio(f.b2bOursP50 ?? NaN, f.b2bSpawnP50 ?? NaN)}${b2bHost}`, `by ${ms((f.b2bOursP50 ?? 0) - (f.b2bSpawnP50 ?? 0))} ms`);
  target('living box, back to back (section 14): `box.run()` p50 ≤ 1.0× Node `spawn`', has('b2bLivingP50', 'b2bSpawnP50') ? f.b2bLivingP50! <= f.b2bSpawnP50! : null,
    `${ms(f.b2bLivingP50 ?? NaN)} vs ${ms(f.b2bSpawnP50 ?? NaN)} ms = ${ratio(f.b2bLivingP50 ?? NaN, f.b2bSpawnP50 ?? NaN)}`, `by ${ms((f.b2bLivingP50 ?? 0) - (f.b2bSpawnP50 ?? 0))} ms`);
  for (const c of [2, 8]) {
    const o = f[`t${c}Ours`] ?? NaN;
    const u = f[`t${c}Unshare`] ?? NaN;
    const b = f[`t${c}Bwrap`] ?? NaN;
    target(`throughput at concurrency ${c} (section 14) ≥ 1.5× bubblewrap`, has(`t${c}Ours`, `t${c}Bwrap`) ? o >= 1.5 * b : null,
      `${o.toFixed(1)} vs ${b.toFixed(1)} runs/s = ${ratio(o, b)}`, `needs ≥ ${(1.5 * b).toFixed(1)} runs/s`);
    target(`throughput at concurrency ${c} (section 14) ≥ 0.9× \`unshare\` with the same seven namespaces`, has(`t${c}Ours`, `t${c}Unshare`) ? o >= 0.9 * u : null,
      `${o.toFixed(1)} vs ${u.toFixed(1)} runs/s = ${ratio(o, u)}`, `needs ≥ ${(0.9 * u).toFixed(1)} runs/s`);
  }
  target('living box throughput at concurrency 2 (section 14) ≥ 2× bubblewrap', has('t2Living', 't2Bwrap') ? f.t2Living! >= 2 * f.t2Bwrap! : null,
    `${(f.t2Living ?? NaN).toFixed(1)} vs ${(f.t2Bwrap ?? NaN).toFixed(1)} runs/s = ${ratio(f.t2Living ?? NaN, f.t2Bwrap ?? NaN)}`, `needs ≥ ${(2 * (f.t2Bwrap ?? NaN)).toFixed(1)} runs/s`);
  target('Node CPU per run at concurrency 8 (section 14) ≤ 1 ms', has('nodeCpuPerRun8') ? f.nodeCpuPerRun8! <= 1 : null,
    `${ms(f.nodeCpuPerRun8 ?? NaN)} ms`, `by ${ms((f.nodeCpuPerRun8 ?? 0) - 1)} ms`);
  for (const [as, key] of [['a string', 'judgeOverhead'], ['a Buffer', 'judgeBufferOverhead']] as const) {
    const over = f[key];
    target(`judge-shaped run (section 4): p50 ≤ plain \`spawn\` (output as ${as}) + 1 ms`, has(key) ? over! <= 1 : null,
      `${over !== undefined && over >= 0 ? '+' : ''}${ms(over ?? NaN)} ms`, `by ${ms((over ?? 0) - 1)} ms`);
  }

  const sc = seccompTargets;
  for (const loop of ['getppid', 'ioctl'] as const) {
    const r = sc?.defaultToEmpty[loop];
    target(`seccomp (section 9): \`default\` ÷ an allow-all filter ≤ 1.05 on the \`${loop}\` loop`, r ? r.median <= 1.05 : null,
      r ? `${r.median.toFixed(3)}× (quartiles ${r.p25.toFixed(3)}–${r.p75.toFixed(3)}, ${r.rounds} rounds)` : 'n/a', `by ${r ? (r.median - 1.05).toFixed(3) : 'n/a'}`);
  }

  // The three below have no target of their own: the row gives the figure and its baseline.
  const info = (name: string, ok: boolean, measured: string): void => {
    t.push(`| ${name} | ${measured} | ${ok ? 'figure only' : 'not measured'} |`);
  };
  info('living box: `box.run()` p50 vs one-shot `run()` and Node `spawn`', has('livingP50', 'livingOneShotP50', 'livingSpawnP50'),
    `${ms(f.livingP50 ?? NaN)} ms = ${ratio(f.livingP50 ?? NaN, f.livingOneShotP50 ?? NaN)} of one-shot run() (${ms(f.livingOneShotP50 ?? NaN)} ms), ${ratio(f.livingP50 ?? NaN, f.livingSpawnP50 ?? NaN)} of Node spawn; the per-run PID namespace adds ${ms(f.pidNsAdds ?? NaN)} ms; ${(f.livingT2 ?? NaN).toFixed(1)} runs/s at concurrency 2`);
  info(`judging A+B, ${JUDGE_TESTS} tests (C++): per-test overhead over the bare binary`, has('judgePerTest', 'judgeTestsMs', 'judgeBaseMs'),
    `${ms(f.judgePerTest ?? NaN)} ms per test; ${ms(f.judgeTestsMs ?? NaN, 0)} vs ${ms(f.judgeBaseMs ?? NaN, 0)} ms for the ${JUDGE_TESTS} tests = ${ratio(f.judgeTestsMs ?? NaN, f.judgeBaseMs ?? NaN)}; ${ms(f.judgeTotalMs ?? NaN, 0)} ms with the build`);
  target('daemon: p50 through the socket ≤ local `run()` p50 + 0.5 ms', has('daemonClientP50', 'daemonLocalP50') ? f.daemonClientP50! <= f.daemonLocalP50! + 0.5 : null,
    `${ms(f.daemonClientP50 ?? NaN)} vs ${ms(f.daemonLocalP50 ?? NaN)} ms = ${ratio(f.daemonClientP50 ?? NaN, f.daemonLocalP50 ?? NaN)} (raw JSON POST: ${ms(f.daemonRawP50 ?? NaN)} ms; session: ${ms(f.daemonSessionP50 ?? NaN)} ms; the round trip alone, GET /v1/health: ${ms(f.daemonHealthP50 ?? NaN)} ms; its floor, the same request to a bare node:http server: ${ms(f.daemonFloorHealthP50 ?? NaN)} ms, a byte echoed by node:net: ${ms(f.daemonFloorPingP50 ?? NaN)} ms)`,
    `by ${ms((f.daemonClientP50 ?? 0) - (f.daemonLocalP50 ?? 0) - 0.5)} ms`);
  target('daemon: throughput at concurrency 8 ≥ 90 % of local (median of the rounds\' ratios)', has('daemonT8Ratio') ? f.daemonT8Ratio! >= 0.9 : null,
    `${(f.daemonT8Ratio ?? NaN).toFixed(2)}× by the median of the rounds' ratios; ${(f.daemonT8 ?? NaN).toFixed(1)} vs ${(f.daemonLocalT8 ?? NaN).toFixed(1)} runs/s = ${ratio(f.daemonT8 ?? NaN, f.daemonLocalT8 ?? NaN)} by the ratio of the medians (session: ${(f.daemonSessionT8Ratio ?? NaN).toFixed(2)}× / ${ratio(f.daemonSessionT8 ?? NaN, f.daemonLocalT8 ?? NaN)}; with --parallelism 8: ${(f.daemonWideT8Ratio ?? NaN).toFixed(2)}× / ${ratio(f.daemonWideT8 ?? NaN, f.daemonLocalT8 ?? NaN)})`,
    `by the median of the rounds' ratios, needs ≥ 0.90×`);

  target('cold start (section 17): `sandcell run -- /bin/true` p50 ≤ `node -e 0` p50 + 100 ms', has('coldCliP50', 'coldNodeP50') ? f.coldCliP50! <= f.coldNodeP50! + 100 : null,
    `${ms(f.coldCliP50 ?? NaN, 0)} vs ${ms(f.coldNodeP50 ?? NaN, 0)} ms = +${ms((f.coldCliP50 ?? NaN) - (f.coldNodeP50 ?? NaN), 0)} ms (\`import('sandcell')\` +${ms((f.coldImportP50 ?? NaN) - (f.coldNodeP50 ?? NaN), 0)} ms, \`import('sandcell/client')\` +${ms((f.coldClientP50 ?? NaN) - (f.coldNodeP50 ?? NaN), 0)} ms)`,
    `by ${ms((f.coldCliP50 ?? 0) - (f.coldNodeP50 ?? 0) - 100, 0)} ms`);
  info('images: a 3-layer stored image vs the same files as one directory (p50); import time', has('image3LayerP50', 'imageDirP50'),
    `${ms(f.image3LayerP50 ?? NaN)} vs ${ms(f.imageDirP50 ?? NaN)} ms = ${ratio(f.image3LayerP50 ?? NaN, f.imageDirP50 ?? NaN)}; import ${(f.imageImportSPerGb ?? NaN).toFixed(1)} s per GiB`);
  const head: string[] = [];
  head.push('# sandcell benchmarks');
  head.push('');
  head.push('Generated by `npm run bench` (bench/run.ts). Do not edit by hand: every run rewrites this file.');
  head.push('');
  head.push('| | |\n|---|---|');
  head.push(`| date | ${started.toISOString()} |`);
  head.push(`| duration | ${(elapsed / 60).toFixed(1)} min (${elapsed.toFixed(0)} s) |`);
  head.push(`| machine | ${m.nproc} CPUs (nproc), ${m.memoryGiB} GiB RAM, ${m.cpuModel} |`);
  head.push(`| kernel | ${m.kernel}, cgroup ${m.cgroup} |`);
  head.push(`| Node | ${m.node} |`);
  head.push(`| load average (1 min) | at start ${load0.toFixed(2)}, at end ${loadavg()[0]!.toFixed(2)} (the VM is shared: other work running meanwhile widens the tails) |`);
  head.push(`| CPU stolen by the hypervisor | ${(100 * stolenShare(cpuTimes0)).toFixed(1)} % of the machine's CPU time during the run (other guests of the host: it slows every line alike, and widens the tails) |`);
  head.push(`| settings | BENCH_SECONDS=${SECONDS} s per throughput point${SECONDS < 10 ? ' (below the default 10 s: rougher)' : ''}, BENCH_ITERATIONS=${ITER} (variants ${SUB_ITER}, judge ${JUDGE_ITER}), BENCH_RSS_RUNS=${RSS_RUNS}, BENCH_JUDGE_ROUNDS=${JUDGE_ROUNDS}${ONLY ? `, **BENCH_ONLY=${[...ONLY].join(',')}: other sections left out**` : ''}${QUICK ? ', **BENCH_QUICK smoke run: figures are rough**' : ''} |`);
  head.push(`| peers | bubblewrap: ${bwrapOk ? bw.version : '**absent**'} (${bw.note}); unshare: ${unshareOk ? unshareVersion : '**absent**'} |`);
  head.push(`| cleanup | temp dirs removed; open fds at start ${fds0}, at end ${fds1}; live children at end ${liveChildren().length}; run cgroups left ${liveRunCgroups(idleAtEnd)} |`);
  head.push('');
  if (stalled) head.push('', `**INCOMPLETE RUN: ${stalled}. The sections below are those measured before the stall.**`);
  head.push('');
  head.push('## Targets');
  head.push('');
  head.push('| target | measured | verdict |\n|---|---|---|');
  head.push(...t);
  head.push('');
  const misses = missedTargets();
  if (misses.length > 0) {
    head.push('### The targets missed: where the time goes, and the next step');
    head.push('');
    head.push(...misses.map((x) => `- ${x}`));
    head.push('');
  }
  if (has('setupP50', 'teardownP50')) {
    head.push('### Where the remaining cost is (p50 figures of section 8)');
    head.push('');
    head.push(`- A run in a warm box: start (\`spawn()\` until the program runs: limits written, run plan and stdio sent, the init forks, the program execs) ${ms(f.setupP50!)} ms; the rest (program, the init reaps, reports and exits, its namespaces go, outcome read, result) ${ms(f.teardownP50!)} ms. The start is JavaScript (options, shape, plan, limits, three stdio sockets), a thread-pool hop, the init's fork and the program's exec.`);
    if (has('coldP50', 'oursIdleP50', 'oursP50')) head.push(`- Back to back: a box is built in ${ms(f.coldP50!)} ms (p50 with warm boxes off, the caller waiting), a run in a warm one takes ${ms(f.oursIdleP50!)} ms; boxes are built one at a time, so back to back some runs find none and build their own: the back-to-back p50 (${ms(f.oursP50!)} ms) lies between the two. A service with any idle time between runs gets the warm figure.`);
    if (has('cgCreateP50', 'cgDestroyP50')) head.push(`- cgroup create ${ms(f.cgCreateP50!)} ms + destroy of an unused cgroup ${ms(f.cgDestroyP50!)} ms per run (sequential async fs calls on the libuv pool).`);
    if (has('cpuPerRunMachine', 'bwrapT2')) head.push(`- Throughput at concurrency 2 of 2× bubblewrap (${(2 * f.bwrapT2!).toFixed(0)} runs/s) would need at most ${ms(2000 / (2 * f.bwrapT2!))} ms of machine CPU per run with both cores busy; a run costs ${ms(f.cpuPerRunMachine!)} ms. bubblewrap itself is not CPU-bound here (two runs in flight of ${ms(f.bwrapP50 ?? NaN)} ms each). Most of a run's CPU is the kernel's: namespaces (the network namespace alone, created and torn down, is the largest single item), mounts, exec, cgroup mkdir/rmdir; warm boxes move that work off the caller's clock but do not remove it.`);
    if (has('cpuPerRunMachine')) head.push(`- CPU per run at concurrency 8: ${ms(f.cpuPerRunMachine!)} ms of machine CPU (${ms(f.cpuPerRunNode!)} ms of it in the Node process), so 2 CPUs cap throughput near ${(2000 / f.cpuPerRunMachine!).toFixed(0)} runs/s: throughput is CPU-bound, and every CPU-ms removed from a run raises it.`);
    if (has('seccompCost')) head.push(`- seccomp \`default\` vs \`none\`: ${ms(f.seccompCost!)} ms per run.`);
    if (has('netnsCost')) head.push(`- new network namespace (+ loopback up) vs \`network: 'host'\`: ${ms(f.netnsCost!)} ms per run${has('netThroughputLoss') ? `; at concurrency 8 it costs ${(100 * f.netThroughputLoss!).toFixed(0)}% of throughput` : ''}.`);
    if (has('unshareNetAlone')) head.push(`- \`unshare --net\` alone adds ${ms(f.unshareNetAlone!)} ms to a plain \`unshare\` (kernel cost of a network namespace, including its teardown work on exit).`);
    head.push('');
  }
  const body = [...sections].sort((a, b) => a.order - b.order).flatMap((x) => x.lines);
  writeFileSync(OUT, [...head, ...body].join('\n') + '\n');
}

/**
 * For each target of the run path (back to back, throughput, the living box, the event loop, the
 * judge-shaped run, Node CPU, seccomp) that this run missed: where its time goes, from this run's
 * own figures, and the step that would move it.
 */
function missedTargets(): string[] {
  const f = figures;
  const out: string[] = [];
  const backToBack = [
    ['Section 1', f.oursP50, f.spawnP50],
    ['Section 14 (blocks of 50)', f.b2bOursP50, f.b2bSpawnP50],
  ] as const;
  for (const [where, ours, spawned] of backToBack) {
    if (!(ours! > spawned!)) continue;
    const build = has('coldP50', 'oursIdleP50') ? ` Back to back, a run that finds its shape's next box still being built builds one while the caller waits (${ms(f.coldP50!)} ms with warm boxes off, against ${ms(f.oursIdleP50!)} ms in a box built ahead, section 1): the back-to-back p50 lies between the two.` : ' Back to back, a run that finds its shape\'s next box still being built builds one while the caller waits.';
    const net = has('unshareNetAlone') ? ` Of a build's CPU the network namespace, made and torn down, is the largest single item (\`unshare --net\` adds ${ms(f.unshareNetAlone!)} ms to a plain \`unshare\`, section 8d).` : '';
    out.push(`**${where}: the back-to-back p50** (${ratio(ours!, spawned!)} Node \`spawn\`).${build}${net} Next step: fewer CPU-ms per build: a box for \`network: 'none'\` without a network namespace of its own would remove the largest item, but changes what the box promises (a decision, not a tuning).`);
  }
  const throughputs = [
    ['section 3, concurrency 2', f.oursT2 ?? NaN, f.oursT2! < 2 * f.bwrapT2!],
    ...[2, 8].map((c) => {
      const o = f[`t${c}Ours`] ?? NaN;
      return [`section 14, concurrency ${c}`, o, o < 1.5 * (f[`t${c}Bwrap`] ?? NaN) || o < 0.9 * (f[`t${c}Unshare`] ?? NaN)] as const;
    }),
  ] as const;
  for (const [where, runsPerS, missed] of throughputs) {
    if (!missed) continue;
    const cpu = has('cpuPerRunMachine') ? ` A run costs ${ms(f.cpuPerRunMachine!)} ms of machine CPU (section 3), so ${m.nproc} CPUs cap it near ${(m.nproc * 1000 / f.cpuPerRunMachine!).toFixed(0)} runs/s.` : '';
    out.push(`**Throughput, ${where}** (${runsPerS.toFixed(1)} runs/s): throughput is CPU-bound.${cpu} Next step: fewer CPU-ms per run (section 8's items, largest first).`);
  }
  if (has('b2bLivingP50', 'b2bSpawnP50') && f.b2bLivingP50! > f.b2bSpawnP50!) {
    out.push(`**The living box back to back** (${ratio(f.b2bLivingP50!, f.b2bSpawnP50!)} Node \`spawn\`): each run joins the box with a PID namespace of its own${has('pidNsAdds') ? ` (${ms(f.pidNsAdds!)} ms, section 10)` : ''}, staged while the run before ends. Next step: fewer CPU-ms per run in a box (the run's PID namespace and \`/proc\`, its cgroup below the box's).`);
  }
  if (has('t2Living', 't2Bwrap') && f.t2Living! < 2 * f.t2Bwrap!) {
    out.push(`**The living box's throughput at concurrency 2** (${ratio(f.t2Living!, f.t2Bwrap!)} bubblewrap): CPU-bound as the one-shot runs are (section 10). Next step: fewer CPU-ms per run in a box (its PID namespace and /proc per run).`);
  }
  if (has('eldP99', 'eldIdleP99') && f.eldP99! > 5) {
    const idle = f.eldIdleP99!;
    const why = idle > 2
      ? `The idle loop alone reads a p99 of ${ms(idle)} ms in this run (section 6), against about 1.1 ms when the machine is quiet: the machine stalled the process whatever it did (the head's stolen CPU), and the starts' figure carries those stalls. Next step: the same section on a quiet machine before any change.`
      : `The idle loop reads a p99 of ${ms(idle)} ms, so the delay is the starts' own: the JavaScript each start runs on the loop (options, plan, launcher; section 8b's start phase). Next step: a profile of the loop during the 8 starts.`;
    out.push(`**Event-loop delay under 8 concurrent starts** (p99 ${ms(f.eldP99!)} ms). ${why}`);
  }
  for (const [as, key] of [['a string', 'judgeOverhead'], ['a Buffer', 'judgeBufferOverhead']] as const) {
    if (!has(key) || f[key]! <= 1) continue;
    out.push(`**The judge-shaped run, output as ${as}** (+${ms(f[key]!)} ms over plain \`spawn\`): a MiB in and a MiB out through pipes, the output kept in memory; the box's own start is section 1's. Next step: per-stage times of this run (\`NODE_DEBUG=sandcell\`'s \`end\` event) to say whether the start or the output's delivery is over.`);
  }
  if (has('nodeCpuPerRun8') && f.nodeCpuPerRun8! > 1) {
    const main = has('nodeCpuMain8') ? f.nodeCpuMain8! : NaN;
    const other = f.nodeCpuPerRun8! - main;
    const split = Number.isFinite(main)
      ? ` Of it the main thread ${ms(main)} ms (the JavaScript of options, plan, launcher and supervision; the event loop's wake-ups; the worker trips' submissions and completions; the three descriptors a run watches) and the other threads ${ms(other)} ms: libuv's pool doing the box's kernel work (the clone with new user and PID namespaces, the cgroup files, the memory cgroup made again per run, the box's mount tree torn down) and V8's own threads (GC, compilation).`
      : '';
    const next = Number.isFinite(main) && main < 1
      ? ` The pool's part is kernel work the box needs wherever it is done: the next step is a spawner process of sandcell's own that does the clone and the teardown outside the Node process (the machine's CPU per run stays the same; the Node process's falls toward its main thread's ${ms(main)} ms).`
      : ' The main thread alone is over the target: the next step is fewer worker trips and loop wake-ups per run.';
    out.push(`**Node CPU per run at concurrency 8** (${ms(f.nodeCpuPerRun8!)} ms).${split}${next}`);
  }
  for (const loop of ['getppid', 'ioctl'] as const) {
    const r = seccompTargets?.defaultToEmpty[loop];
    if (!r || r.median <= 1.05) continue;
    const why = seccompTargets!.cacheAnswers[loop]
      ? `the kernel's action cache answers \`${loop}\` under both \`default\` and the allow-all filter (section 9's table): neither program runs for the call and the kernel takes the same path under either, so a median above 1.05 is the spread between boxes here (quartiles ${r.p25.toFixed(3)}–${r.p75.toFixed(3)}), not the filter. Next step: more rounds (\`SECCOMP_BENCH_REPS\`) where the machine is this noisy.`
      : `\`default\`'s program runs for the call (a rule on its arguments keeps the action cache from answering it). Next step: leave that rule out of runs that cannot meet what it guards, as the terminal rules are.`;
    out.push(`**seccomp on the \`${loop}\` loop** (\`default\` ÷ allow-all ${r.median.toFixed(3)}×): ${why}`);
  }
  return out;
}

main().then(
  () => {
    cleanup();
  },
  (e: unknown) => {
    cleanup();
    console.error(e);
    process.exitCode = 1;
  },
);
