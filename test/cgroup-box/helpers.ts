/** What the cgroup-box suites check on the host besides results. */
import { readdirSync, readFileSync } from 'node:fs';

import { afterAll, beforeAll, expect } from 'vitest';

import { buildFixtures, type Fixtures } from '../helpers/fixtures.js';
import { childPids, requireRoot, runCgroupsInUse } from '../helpers/host.js';

/**
 * The suites' common frame: root required, fixtures built before and removed after, and at the
 * end no process of a box and no run cgroup left. Returns the fixtures once built.
 */
export function boxSuite(): () => Fixtures {
  let fx: Fixtures | undefined;
  beforeAll(() => {
    requireRoot();
    fx = buildFixtures();
  });
  afterAll(async () => {
    fx?.remove();
    expect(await childPids()).toEqual([]);
    expect(await noRunCgroupsLeft()).toEqual([]);
  });
  return () => {
    if (!fx) throw new Error('fixtures are built in beforeAll');
    return fx;
  };
}

/** Run cgroups below this process's `sandcell-<pid>` that a box holds or left behind: should be []. */
export function noRunCgroupsLeft(): Promise<string[]> {
  return runCgroupsInUse();
}

/** The run cgroups of this process that exist now in the hierarchy of `controller` (v1). */
export async function liveRunCgroups(controller: string): Promise<string[]> {
  return (await noRunCgroupsLeft()).filter((d) => d.includes(`/sys/fs/cgroup/${controller}/`));
}

export function readNumber(path: string): number {
  return Number(readFileSync(path, 'utf8').trim());
}

/** Number of processes on the host (every /proc/<pid>). */
export function hostProcessCount(): number {
  return readdirSync('/proc').filter((n) => /^\d+$/.test(n)).length;
}
