/** The host the bench runs on, and leak probes of this process (fds, children, run cgroups). */
import { readdirSync, readFileSync } from 'node:fs';
import { availableParallelism, release, totalmem } from 'node:os';
import { listSandcellCgroups } from '../dist/cgroup/index.js';

export interface MachineInfo {
  nproc: number;
  memoryGiB: string;
  cpuModel: string;
  kernel: string;
  node: string;
  cgroup: string;
}

export function machineInfo(): MachineInfo {
  let cpuModel = 'unknown';
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m?.[1]) cpuModel = m[1].trim();
  } catch {
    // keep unknown
  }
  let cgroup = 'unknown';
  try {
    const lines = readFileSync('/proc/self/cgroup', 'utf8').trim().split('\n');
    cgroup = lines.length === 1 && lines[0]?.startsWith('0::') ? 'v2' : 'v1 (hybrid)';
  } catch {
    // keep unknown
  }
  return {
    nproc: availableParallelism(),
    memoryGiB: (totalmem() / 2 ** 30).toFixed(1),
    cpuModel,
    kernel: release(),
    node: process.version,
    cgroup,
  };
}

export function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

/** Live children of this process (any thread's). */
export function liveChildren(): number[] {
  const out: number[] = [];
  for (const t of readdirSync('/proc/self/task')) {
    try {
      const s = readFileSync(`/proc/self/task/${t}/children`, 'utf8').trim();
      if (s) out.push(...s.split(/\s+/).map(Number));
    } catch {
      // thread ended
    }
  }
  return out;
}

/** Run cgroups still present below this process's sandcell-<pid> parents (should be 0 between runs). */
/**
 * Run cgroups of this process that a box holds or left behind. `idle`: those made ahead for the
 * next runs (from idleCgroupDirs() of the library), which are not counted.
 */
export function liveRunCgroups(idle: ReadonlySet<string> = new Set()): number {
  return listSandcellCgroups({ pid: process.pid })
    .flatMap((dir) => readdirSync(dir).filter((n) => n.startsWith('run-')).map((n) => `${dir}/${n}`))
    .filter((d) => !idle.has(d)).length;
}
