/** What the cgroup-box suites check on the host besides results. */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { listSandcellCgroups } from '../../src/cgroup/index.js';

/** Run cgroups (`run-*`) below this process's `sandcell-<pid>`, in every hierarchy: should be []. */
export function noRunCgroupsLeft(): string[] {
  return listSandcellCgroups({ pid: process.pid }).flatMap((dir) =>
    readdirSync(dir)
      .filter((n) => n.startsWith('run-'))
      .map((n) => join(dir, n)),
  );
}

/** The run cgroups of this process that exist now in the hierarchy of `controller` (v1). */
export function liveRunCgroups(controller: string): string[] {
  return noRunCgroupsLeft().filter((d) => d.includes(`/sys/fs/cgroup/${controller}/`));
}

export function readNumber(path: string): number {
  return Number(readFileSync(path, 'utf8').trim());
}

/** Number of processes on the host (every /proc/<pid>). */
export function hostProcessCount(): number {
  return readdirSync('/proc').filter((n) => /^\d+$/.test(n)).length;
}
