/** What the cgroup suites need of the real cgroupfs of this machine (as root), and the cgroup-box suites' frame. */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';

import { afterAll, beforeAll, expect } from 'vitest';

import { openCgroupDriver, type CgroupDriver, type DetectOptions } from '../../src/cgroup/index.js';
import { buildFixtures, type Fixtures } from './fixtures.js';
import { childPids, requireRoot, runCgroupsInUse } from './host.js';

/** Options for the real machine: SANDCELL_TEST_CGROUP_PARENT names a delegated parent (needed on pure v2 hosts). */
export function realOptions(): DetectOptions {
  const parent = process.env.SANDCELL_TEST_CGROUP_PARENT;
  return parent ? { parent } : {};
}

export async function openReal(): Promise<CgroupDriver> {
  const r = await openCgroupDriver(realOptions());
  if (!r.driver) throw new Error(`no cgroup driver on this machine: ${r.reason}`);
  return r.driver;
}

export const isV1Memory = (): boolean => isV1Controller('memory');

export interface Held {
  child: ChildProcess;
  /** Lets the child go on past its `read` (it waits for a line on stdin before running its own code). */
  release(): void;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string }>;
}

/**
 * Starts a program that first waits for a line on stdin, so that the test can put it into the
 * cgroup (write its pid to procsFiles) before it does its work: the same order the run pipeline uses.
 */
export async function spawnHeld(argv: string[]): Promise<Held> {
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'inherit'] });
  let stdout = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  const exit = once(child, 'exit').then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null, stdout }));
  await once(child, 'spawn');
  return {
    child,
    release: () => child.stdin!.write('go\n'),
    exit,
  };
}

export function joinCgroup(procsFiles: readonly string[], pid: number): void {
  for (const f of procsFiles) writeFileSync(f, String(pid));
}

export const PY = '/usr/bin/python3';

/**
 * The cgroup-box suites' common frame: root required, fixtures built before and removed after,
 * and at the end no process of a box and no run cgroup left. Returns the fixtures once built.
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
    expect(await runCgroupsInUse()).toEqual([]);
  });
  return () => {
    if (!fx) throw new Error('fixtures are built in beforeAll');
    return fx;
  };
}

/** Is `controller` bound to a cgroup v1 hierarchy here (else it is on the unified one, if anywhere)? */
export const isV1Controller = (controller: string): boolean =>
  readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((l) => / - cgroup cgroup /.test(l) && new RegExp(`[ ,]${controller}(,|$)`).test(l.split(' - ')[1] ?? ''));

/**
 * The run cgroups of this process that exist now in the hierarchy of `controller`: on v1 the
 * directories in that controller's hierarchy, on v2 the one directory per run (every controller
 * is in it).
 */
export async function liveRunCgroups(controller: string): Promise<string[]> {
  const dirs = await runCgroupsInUse();
  if (!isV1Controller(controller)) return dirs;
  return dirs.filter((d) => d.includes(`/sys/fs/cgroup/${controller}/`));
}

export function readNumber(path: string): number {
  return Number(readFileSync(path, 'utf8').trim());
}

/** Number of processes on the host (every /proc/<pid>). */
export function hostProcessCount(): number {
  return readdirSync('/proc').filter((n) => /^\d+$/.test(n)).length;
}
