/**
 * What the tests need to know about the host: that they run as root (loudly, not skipped), and
 * snapshots of the things a run must leave as it found them.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { listSandcellCgroups } from '../../src/cgroup/index.js';
import { NETWORKS_DIR } from '../../src/network/private.js';
import { idleCgroupDirs, warmBoxes } from '../../src/runtime.js';

export function requireRoot(suite = 'this suite'): void {
  const uid = process.getuid?.();
  if (uid !== 0) {
    throw new Error(`${suite} runs real sandboxes or uses the real cgroupfs and needs root (uid ${uid}): run it with sudo (CI runs it as root); it is not skipped on purpose`);
  }
}

/**
 * The snapshots below first end the boxes built ahead for the next runs (warm boxes hold a child
 * process, a cgroup and four descriptors each, by design): what remains is what runs or leaked.
 */
export async function openFds(): Promise<number> {
  await warmBoxes.drain();
  // What the library does after a run goes on on worker threads, each with files of its own open
  // for a moment: a finished run's cgroup read and removed, cgroups made ahead for the next runs
  // and their limits written, an ended box's mount namespace let go. A count taken meanwhile can
  // catch one (two counts 50 ms apart can each catch one, and agree): the suite once counted one
  // more before a test than after it, under the full suite's load. So the count waits for that
  // work to be done.
  await idleCgroupDirs();
  // A spawn's output sockets close a turn or two after their end: the count is taken once it
  // holds still for 50 ms, at most 2 s. A leaked descriptor never closes, so it is counted all
  // the same.
  let n = readdirSync('/proc/self/fd').length;
  for (let i = 0; i < 40; i++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    const again = readdirSync('/proc/self/fd').length;
    if (again === n) break;
    n = again;
  }
  return n;
}

/**
 * The host's mount table, less the namespaces held by private networks: a network is shared
 * across processes, and another test file may make or remove one meanwhile. The files that make
 * networks check their own mounts (test/network/private.test.ts).
 */
export function mountTable(): string {
  const held = `${NETWORKS_DIR}/`;
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((line) => !line.split(' ')[4]?.startsWith(held))
    .join('\n');
}

/** Pids of this process's children (boxes' inits are children of the Node process). */
export async function childPids(): Promise<number[]> {
  await warmBoxes.drain();
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === process.pid) out.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** Host pids whose command line is exactly `argv`. */
export function pidsRunning(argv: string[]): number[] {
  const want = argv.join('\0') + '\0';
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, 'utf8') === want) out.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/**
 * Run cgroups (`run-*`) of this process that a box holds or left behind, in every hierarchy:
 * [] when nothing runs. Those made ahead of time for the next runs are not counted.
 */
export async function runCgroupsInUse(): Promise<string[]> {
  await warmBoxes.drain();
  const idle = new Set(await idleCgroupDirs());
  return listSandcellCgroups({ pid: process.pid })
    .flatMap((dir) => readdirSync(dir).filter((n) => n.startsWith('run-')).map((n) => join(dir, n)))
    .filter((d) => !idle.has(d));
}
