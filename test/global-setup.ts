/**
 * Before the suite: the Debian programs some suites talk to are installed (test/helpers/peers.ts).
 * After the whole suite: no cgroup sandcell made may remain. Run cgroups must all have been
 * removed by their runs. The `sandcell-<pid>` parents of test workers that ended without an
 * orderly exit are swept the way the product sweeps any dead process's parent (cleanupOrphans,
 * which only removes empty ones); then nothing named sandcell* may be left.
 */
import { readdirSync, readFileSync } from 'node:fs';

import { cleanupOrphans, listSandcellCgroups } from '../src/cgroup/index.js';
import { ensurePeers } from './helpers/peers.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Parents of processes other than test workers (a benchmark on a shared machine) are not ours to judge. */
function ours(dir: string): boolean {
  const pid = Number(/sandcell-(\d+)$/.exec(dir)?.[1]);
  return Number.isInteger(pid) && !alive(pid);
}

function parentOf(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return null;
  }
}

/** Test workers (our children) may still be exiting when teardown starts: give them time. */
async function workersGone(): Promise<void> {
  const workers = listSandcellCgroups()
    .map((dir) => Number(/sandcell-(\d+)$/.exec(dir)?.[1]))
    .filter((pid) => parentOf(pid) === process.pid);
  for (let i = 0; i < 100 && workers.some(alive); i++) await new Promise((r) => setTimeout(r, 50));
}

/** Before any worker starts: the Debian programs some suites talk to are installed once, here. */
export function setup(): void {
  ensurePeers();
}

// Vitest ignores errors thrown from a global teardown, so a leak sets the exit code itself.
export async function teardown(): Promise<void> {
  try {
    await checkNothingLeft();
  } catch (e) {
    console.error(`\nLEAK CHECK FAILED: ${(e as Error).message}\n`);
    process.exitCode = 1;
  }
}

async function checkNothingLeft(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the suite needs root to check for leaked cgroups');
  await workersGone();
  const leakedRuns = listSandcellCgroups()
    .filter(ours)
    .flatMap((dir) => readdirSync(dir).filter((n) => n.startsWith('run-')).map((n) => `${dir}/${n}`));
  if (leakedRuns.length > 0) throw new Error(`run cgroups left behind by the suite: ${leakedRuns.join(', ')}`);
  // A process that just exited may still be on its way out: sweep again for a short while.
  let left: string[] = [];
  for (let i = 0; i < 10; i++) {
    await cleanupOrphans();
    left = listSandcellCgroups().filter(ours);
    if (left.length === 0) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`sandcell cgroups left behind by the suite: ${left.join(', ')}`);
}
