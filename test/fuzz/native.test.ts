// The native boundary on its own: the addon is handed malformed plans directly (wrong types,
// missing fields, huge arrays, NUL bytes, relative paths, bad id maps, bad stdio) and must throw
// a TypeError, never crash the process. A mutation that happens to leave a valid plan starts a
// real box running /bin/true (or fails its setup with a stage): both are fine, and are waited for.
import fc from 'fast-check';
import { closeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';

import type { NativePlan } from '../../src/native.js';
import { resolveOptions } from '../../src/options.js';
import { planBox, planRun } from '../../src/plan/build.js';
import { childPids, openFds, requireRoot } from '../helpers/host.js';

const RUNS = Number(process.env.SANDCELL_FUZZ_RUNS ?? 2000);
const BUILD = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'build', 'Release');

/** pid, stdin, stdout, stderr (-1: none), startedNs, cpuUsageAtStart, marks, and for a spawn the box. */
type Started = [number, number, number, number, bigint, string | null, unknown];
interface Addon {
  setInit(path: string): void;
  spawn(...args: unknown[]): Promise<[...Started, NativeBoxHandle]>;
  PreparedPlan: new (plan: unknown) => object;
}
interface NativeBoxHandle {
  watch(cb: (e: unknown) => void): void;
  kill(s?: number): boolean;
  close(): void;
  start(...args: unknown[]): Promise<Started>;
}

function closeStdio([, ...stdio]: readonly unknown[]): void {
  for (const fd of stdio.slice(0, 3)) if (typeof fd === 'number' && fd >= 0) closeSync(fd);
}

/** The fields of a plan that are a run's own (src/native.ts, NativeRunPart). */
const RUN_FIELDS = ['mounts', 'rlimits', 'seccomp', 'seccompListener', 'seccompExecPathLo', 'seccompExecPathHi', 'cgroupProcs', 'cpuUsageFile', 'stdio'];
function runOf(plan: NativePlan): Record<string, unknown> {
  const run = Object.fromEntries(Object.entries(plan).filter(([k]) => RUN_FIELDS.includes(k)));
  return structuredClone({ ...run, mounts: [], seccomp: null });
}
let addon: Addon;
let base: NativePlan;
let prepared: NativePlan;
let joinPlan: NativePlan;

beforeAll(() => {
  requireRoot();
  addon = createRequire(import.meta.url)(join(BUILD, 'sandcell.node')) as Addon;
  addon.setInit(join(BUILD, 'sandcell-init'));
  const o = resolveOptions({ command: ['/bin/true'] });
  const stdio = ['null', 'null', 'null'] as const;
  base = { ...planRun(o, { into: 'new', cgroup: null, filter: null, stdin: 'null' }).plan, stdio: [...stdio] };
  prepared = planBox(o, 'prepared');
  joinPlan = { ...planRun(o, { into: 'warm', cgroup: null, filter: null, stdin: 'null' }).plan, stdio: [...stdio] };
});

const junk = fc.oneof(
  fc.anything({ withBigInt: true, withNullPrototype: true, withTypedArray: true, withSparseArray: true, maxDepth: 2 }),
  fc.constantFrom(undefined, null, NaN, -1, -0, 1.5, 2 ** 32, 2 ** 53, -(2 ** 53), Infinity, '', '\0', 'a\0b', 'relative/path', '../..', '/ok\0no', '/', 'unlimited'),
  fc.nat({ max: 1_000_000 }).map((n) => 'y'.repeat(n)),
  fc.nat({ max: 100_000 }).map((n) => new Array(n).fill('/bin/true')),
  fc.constantFrom('0 0 1', '0 0 1\n0 0 1\n', '0 100000\n', 'a b c\n', '4294967296 0 1\n', '0 0 4294967295\n', '\n', ' 0 0 1\n', '0  0 1\n'),
  fc.constantFrom(['pipe', 'pipe'], ['pipe', 'pipe', 'pipe', 'pipe'], [-1, 1, 2], [1e9, 1, 2], [0.5, 1, 2], ['tty', 'null', 'null'], [NaN, 'null', 'null']),
  fc.constantFrom([{ kind: 'bind' }], [{ kind: 'nope', target: '/x' }], [{ kind: 'tmpfs', target: '/tmp', data: 'size=1,exec' }], [{ kind: 'file', target: '/x', data: 5, mode: 0o777 }], [{ kind: 'dir', target: 'x', mode: -1 }], [{ kind: 'symlink', target: '/x' }]),
  fc.constantFrom({ first: 0, count: 1 }, { first: 1, count: 0 }, { first: 4294967294, count: 2 }, { first: 1.5, count: 1 }, { first: 1 }, { count: 1 }),
  fc.constantFrom([{ resource: 99, soft: 1, hard: 1 }], [{ resource: 0, soft: -1, hard: 1 }], [{ resource: 0, soft: 'lots', hard: 1 }], [{ resource: 7, soft: 2, hard: 1 }]),
);

const FIELDS = ['argv', 'env', 'cwd', 'staging', 'hostname', 'uid', 'gid', 'uidMap', 'gidMap', 'newNetwork', 'loopback', 'cgroupNamespace', 'rootReadOnly', 'mounts', 'rlimits', 'seccomp', 'seccompListener', 'seccompExecPathLo', 'seccompExecPathHi', 'cgroupProcs', 'cpuUsageFile', 'stdio', 'persistent', 'join', 'prepared', 'image', 'rootTmpfs', 'owners'];

/** One edit of a valid plan: replace or delete a field, or a field of its first mount / rlimit / argv. */
const edit = fc.record({
  field: fc.constantFrom(...FIELDS, 'mounts[0]', 'mounts[0].source', 'mounts[0].target', 'mounts[0].kind', 'rlimits[0].soft', 'argv[0]', 'env[0]', 'stdio[1]'),
  value: junk,
  remove: fc.boolean(),
});

function apply(plan: Record<string, unknown>, e: { field: string; value: unknown; remove: boolean }): void {
  const m = /^(\w+)\[0\](?:\.(\w+))?$/.exec(e.field);
  if (!m) {
    if (e.remove) delete plan[e.field];
    else plan[e.field] = e.value;
    return;
  }
  const arr = plan[m[1]!] as unknown[];
  if (!Array.isArray(arr) || arr.length === 0) return;
  if (m[2] === undefined) arr[0] = e.value;
  else if (typeof arr[0] === 'object' && arr[0] !== null) (arr[0] as Record<string, unknown>)[m[2]] = e.value;
}

let spawned = 0;

async function attempt(...args: unknown[]): Promise<'type' | 'setup' | 'ran'> {
  let p: ReturnType<Addon['spawn']>;
  try {
    p = addon.spawn(...args);
  } catch (e) {
    expect(e, String(e)).toBeInstanceOf(TypeError);
    return 'type';
  }
  try {
    const s = await p;
    spawned++;
    closeStdio(s);
    const box = s[7];
    await new Promise<void>((resolve) => {
      box.watch(() => resolve());
      box.kill(9);
    });
    return 'ran';
  } catch (e) {
    // A plan the addon accepted but the kernel refused: a setup error naming the stage.
    const err = e as { stage?: unknown; errno?: unknown };
    if (e instanceof TypeError) return 'type';
    expect(typeof err.stage, String(e)).toBe('string');
    expect(typeof err.errno).toBe('number');
    return 'setup';
  }
}

describe('the addon with malformed plans', () => {
  it(`throws TypeError (or runs a still-valid plan), never crashes (${RUNS} cases)`, async () => {
    const fdsBefore = await openFds();
    const seen: Record<string, number> = {};
    await fc.assert(
      fc.asyncProperty(fc.array(edit, { minLength: 1, maxLength: 3 }), async (edits) => {
        const plan = structuredClone({ ...base, seccomp: null }) as unknown as Record<string, unknown>;
        for (const e of edits) apply(plan, e);
        const k = await attempt(plan);
        seen[k] = (seen[k] ?? 0) + 1;
      }),
      { numRuns: RUNS, interruptAfterTimeLimit: 240_000 },
    );
    console.log('native outcomes', seen, 'spawned', spawned);
    expect(seen.type ?? 0).toBeGreaterThan(RUNS / 2);
    expect(await childPids()).toEqual([]);
    expect(await openFds()).toBe(fdsBefore);
  }, 300_000);

  it(`a prepared box given a malformed run plan: TypeError or a setup error, never a crash (${RUNS / 4} cases)`, async () => {
    const fdsBefore = await openFds();
    const seen: Record<string, number> = {};
    await fc.assert(
      fc.asyncProperty(fc.array(edit, { minLength: 1, maxLength: 3 }), async (edits) => {
        const box = (await addon.spawn(structuredClone(prepared)))[7];
        const plan = structuredClone({ ...joinPlan, seccomp: null }) as unknown as Record<string, unknown>;
        for (const e of edits) apply(plan, e);
        let k: string;
        try {
          closeStdio(await box.start(plan));
          k = 'ran';
          // Once only: a second start is refused.
          expect(() => box.start(structuredClone(joinPlan))).toThrow();
        } catch (e) {
          const err = e as { stage?: unknown };
          if (e instanceof TypeError || (e instanceof Error && /prepared box/.test(e.message))) k = 'type';
          else {
            expect(typeof err.stage, String(e)).toBe('string');
            k = 'setup';
          }
        }
        seen[k] = (seen[k] ?? 0) + 1;
        // Watched once its run started or failed to (a box being started is not watched).
        await new Promise<void>((resolve) => {
          box.watch(() => resolve());
          box.kill(9);
        });
      }),
      { numRuns: RUNS / 4, interruptAfterTimeLimit: 120_000 },
    );
    console.log('prepared outcomes', seen);
    expect(seen.type ?? 0).toBeGreaterThan(0);
    expect(seen.ran ?? 0).toBeGreaterThan(0);
    expect(await childPids()).toEqual([]);
    expect(await openFds()).toBe(fdsBefore);
  }, 300_000);

  it(`a prepared shape given malformed run parts, and malformed shapes (${RUNS / 4} cases)`, async () => {
    const fdsBefore = await openFds();
    const shape = new addon.PreparedPlan(structuredClone({ ...base, seccomp: null }));
    const joinShape = new addon.PreparedPlan(structuredClone({ ...joinPlan, seccomp: null }));
    const seen: Record<string, number> = {};
    await fc.assert(
      fc.asyncProperty(fc.array(edit, { minLength: 1, maxLength: 3 }), fc.boolean(), async (edits, asShape) => {
        const plan = structuredClone({ ...base, seccomp: null }) as unknown as Record<string, unknown>;
        for (const e of edits) apply(plan, e);
        let k: string;
        if (asShape) {
          // The same edits made to the shape: refused when the shape is made, or a box from it.
          let made: object | null = null;
          try {
            made = new addon.PreparedPlan(plan);
          } catch (e) {
            expect(e, String(e)).toBeInstanceOf(TypeError);
          }
          k = made ? `shape ${await attempt(made, runOf(base))}` : 'shape type';
        } else {
          const run = runOf(base);
          for (const e of edits) apply(run, e);
          k = `run ${await attempt(shape, run)}`;
        }
        seen[k] = (seen[k] ?? 0) + 1;
      }),
      { numRuns: RUNS / 4, interruptAfterTimeLimit: 120_000 },
    );
    // A run's own mounts place files and directories only, whatever the shape is.
    expect(() => addon.spawn(shape, { ...runOf(base), mounts: [{ kind: 'bind', source: '/etc', target: '/x' }] })).toThrow(TypeError);
    expect(() => addon.spawn(shape, { ...runOf(base), mounts: [{ kind: 'tmpfs', target: '/x', data: 'size=1' }] })).toThrow(TypeError);
    // A join shape needs its box; a shape spawned with a box it does not join is refused.
    expect(() => addon.spawn(joinShape, runOf(joinPlan))).toThrow(TypeError);
    const box = (await addon.spawn(structuredClone(prepared)))[7];
    expect(() => addon.spawn(shape, runOf(base), box)).toThrow(TypeError);
    // A prepared box started from a shape that is no join plan is refused, and left to be started.
    expect(() => box.start(shape, runOf(base))).toThrow(TypeError);
    closeStdio(await box.start(joinShape, { ...runOf(joinPlan), stdio: ['null', 'null', 'null'] }));
    await new Promise<void>((resolve) => {
      box.watch(() => resolve());
      box.kill(9);
    });
    console.log('prepared shape outcomes', seen);
    expect(seen['run type'] ?? 0).toBeGreaterThan(0);
    expect(seen['run ran'] ?? 0).toBeGreaterThan(0);
    expect(seen['shape type'] ?? 0).toBeGreaterThan(0);
    expect(await childPids()).toEqual([]);
    expect(await openFds()).toBe(fdsBefore);
  }, 300_000);

  it(`arbitrary values as the whole plan or extra arguments (${RUNS} cases)`, async () => {
    await fc.assert(
      fc.asyncProperty(junk, fc.array(junk, { maxLength: 2 }), async (plan, rest) => {
        try {
          (addon.spawn as (...a: unknown[]) => unknown)(plan, ...rest);
          throw new Error('accepted a non-plan');
        } catch (e) {
          expect(e, String(e)).toBeInstanceOf(TypeError);
        }
      }),
      { numRuns: RUNS },
    );
    for (const bad of [undefined, 5, '', '/bin', {}, []]) {
      expect(() => addon.setInit(bad as never)).toThrow();
      expect(() => new addon.PreparedPlan(bad)).toThrow(TypeError);
    }
    addon.setInit(join(BUILD, 'sandcell-init'));
  }, 300_000);
});
