/**
 * p50 of one run through the daemon's socket against the same run() in this process: what the
 * daemon costs a client. Separate from `npm run bench`; run it as root after `npm run build`:
 *   tsc -p tsconfig.bench.json && node dist-bench/daemon.js
 * Environment: BENCH_ITERATIONS runs per figure (default 500).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { connect } from '../dist/client/index.js';
import { run, shutdown, type RunOptions } from '../dist/index.js';
import { dist, ms, nowMs, ratio } from './stats.js';

const ITERATIONS = Number(process.env.BENCH_ITERATIONS ?? 500);
const CLI = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'cli', 'main.js');
const OPTIONS: RunOptions = { command: ['/bin/true'], limits: { wallTime: '10s', cpuTime: '5s', memory: '256MiB' } };

async function sample(f: () => Promise<unknown>): Promise<number[]> {
  for (let i = 0; i < 50; i++) await f();
  const out: number[] = [];
  for (let i = 0; i < ITERATIONS; i++) {
    const t = nowMs();
    await f();
    out.push(nowMs() - t);
  }
  return out;
}

const dir = mkdtempSync(join(tmpdir(), 'sandcell-bench-daemon-'));
const socket = join(dir, 'sandcell.sock');
const daemon = spawn(process.execPath, [CLI, 'serve', '--socket', socket, '--log-level', 'warn'], { stdio: 'inherit' });
try {
  const engine = connect({ socket });
  for (let i = 0; i < 100; i++) {
    const up = await engine.health().then(() => true, () => false);
    if (up) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const local = dist(await sample(() => run(OPTIONS)));
  const remote = dist(await sample(() => engine.run(OPTIONS)));
  engine.close();
  console.log(`/bin/true, ${ITERATIONS} runs each, one at a time`);
  console.log(`  run() in process   p50 ${ms(local.p50)}  p99 ${ms(local.p99)}`);
  console.log(`  daemon via socket  p50 ${ms(remote.p50)}  p99 ${ms(remote.p99)}  (${ratio(remote.p50, local.p50)} of local)`);
} finally {
  daemon.kill('SIGTERM');
  await new Promise((r) => daemon.once('exit', r));
  await shutdown();
  rmSync(dir, { recursive: true, force: true });
}
