/**
 * The attack suite's tools: the attack programs (attacks/*.c) compiled statically into a temp dir
 * bound at /attacks, and a runner that starts a box either exactly as run() would, or with its
 * plan weakened through the test-only hook, to show that an attack detects the hole it looks for.
 */
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';

import type { NativePlan } from '../../src/native.js';
import { resolveOptions, type RunOptions } from '../../src/options.js';
import type { Result } from '../../src/result.js';
import { launch } from '../../src/launch/launcher.js';
import { boundDevices } from '../../src/plan/rootfs.js';
import { buildFixtureSet, type Fixtures } from '../helpers/fixtures.js';

const HERE = dirname(fileURLToPath(import.meta.url));

/** Escape attempts (attacks/*.c) and resource bombs (bombs/*.c), static: no dependence on the box's libraries. */
export function buildAttacks(): Fixtures {
  return buildFixtureSet({ sources: [join(HERE, 'attacks'), join(HERE, 'bombs')], target: '/attacks', static: true });
}

async function collect(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * Runs a box the way run() does (same option resolution, same default seccomp preset), except
 * that `weaken`, when given, alters the plan before the box starts.
 */
export async function runBox(options: RunOptions, weaken?: (plan: NativePlan) => void): Promise<Result> {
  const o = resolveOptions(options);
  const box = await launch(o, { stdin: 'null', output: 'streams', ...(weaken ? { weakenPlan: weaken } : {}) });
  const [result, stdout, stderr] = await Promise.all([box.wait(), collect(box.stdout), collect(box.stderr)]);
  return { ...result, stdout, stderr };
}

/** Lines "HOLE <what>: ..." an attack program printed. */
export function holes(r: Result): string[] {
  return r.stdout.split('\n').filter((l) => l.startsWith('HOLE '));
}

/** Asserts nothing an attack tried worked; returns the result for further checks. */
export function describeRun(r: Result): string {
  return `status ${r.status} exit ${r.exitCode} signal ${r.signal}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
}

/** Plan edits used by the weakened cases. */
export const weaken = {
  noSeccomp: (p: NativePlan): void => {
    p.seccomp = null;
    p.seccompListener = false;
    delete p.seccompExecPathLo;
    delete p.seccompExecPathHi;
  },
  /**
   * Adds mounts at the end. One below /dev needs a mount point there: the device tree is
   * read-only from the start, so /dev becomes the tmpfs with bound devices a box without the
   * tree has (read-only only once the root is built).
   */
  addMounts:
    (...mounts: NativePlan['mounts']) =>
    (p: NativePlan): void => {
      const tree = p.mounts.findIndex((m) => m.kind === 'devices');
      if (tree >= 0 && mounts.some((m) => m.target.startsWith('/dev/'))) p.mounts.splice(tree, 1, ...boundDevices());
      p.mounts.push(...mounts);
    },
  /** The program runs as root of its namespace, which is host root (uid and gid 0 → 0). */
  hostRoot: (p: NativePlan): void => {
    p.uid = 0;
    p.gid = 0;
    p.uidMap = '0 0 1\n';
    p.gidMap = '0 0 1\n';
    for (const m of p.mounts) if (m.kind === 'tmpfs') m.data = m.data.replace(/\buid=\d+/, 'uid=0').replace(/\bgid=\d+/, 'gid=0');
    for (const m of p.mounts) if (m.kind === 'file') m.data = m.data.toString().replace(/:65534:/g, ':0:');
  },
};

export function all(...fs: ((p: NativePlan) => void)[]): (p: NativePlan) => void {
  return (p) => {
    for (const f of fs) f(p);
  };
}
