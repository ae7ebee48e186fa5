// Hostile options: whatever a caller passes, run() resolves with a result or rejects with a typed
// error (SandboxOptionsError, SandboxSetupError, AbortError); it never throws anything else, never
// hangs, never leaks, and never pollutes prototypes. Most cases fail validation at once; valid
// ones are cheap (an already-aborted signal) except for a capped number of real runs.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { AbortError, run, SandboxNetworkError, SandboxOptionsError, SandboxSetupError } from '../../src/index.js';
import { resolveOptions } from '../../src/options.js';
import { childPids, openFds, requireRoot, runCgroupsInUse } from '../helpers/host.js';

const RUNS = Number(process.env.SANDCELL_FUZZ_RUNS ?? 2000);
const STATUSES = ['ok', 'nonzero-exit', 'signaled', 'time-limit', 'wall-time-limit', 'memory-limit', 'output-limit', 'syscall-denied'];

let fdsBefore = 0;
beforeAll(async () => {
  requireRoot();
  await run({ command: ['/bin/true'], limits: { wallTime: '5s' } });
  fdsBefore = await openFds();
});

afterAll(async () => {
  expect(await childPids()).toEqual([]);
  expect(await runCgroupsInUse()).toEqual([]);
  expect(await openFds()).toBe(fdsBefore);
});

const weirdString = fc.oneof(
  fc.string(),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.constantFrom('', '\0', 'a\0b', '/bin/true\0', '..', '../..', '/..', '/proc/self/root', '/', '//', '\u202e', '\ud800', '__proto__', 'constructor', 'prototype', '=', 'A=B', '%s%n', '${x}'),
  fc.nat({ max: 300_000 }).map((n) => 'x'.repeat(n)),
);
const weirdNumber = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.constantFrom(-1, 0, 1, 2 ** 31, 2 ** 32, 2 ** 53, -(2 ** 53), Number.MAX_VALUE, Number.MIN_VALUE, Infinity, -Infinity, NaN, -0),
);
const weirdSize = fc.oneof(weirdNumber, weirdString, fc.constantFrom('1MiB', '1GiB', '64KiB', '1e30B', '-1MiB', '1 MiB', '0x10', '1TiB', '9999999999999999999EiB'));
const weirdDuration = fc.oneof(weirdNumber, weirdString, fc.constantFrom('1s', '1ms', '0s', '-1s', '1e400s', '1h', '2.5s', '1us', 'NaNs'));
const protoKeys = fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf');
/** An object with own `__proto__`/`constructor` keys, as JSON.parse makes them. */
const polluted = fc.dictionary(fc.oneof(protoKeys, fc.string()), fc.anything(), { maxKeys: 4 }).map((d) => JSON.parse(JSON.stringify(d)) as unknown);
const protoJson = fc.constantFrom(
  '{"__proto__":{"polluted":1}}',
  '{"constructor":{"prototype":{"polluted":1}}}',
  '{"command":["/bin/true"],"__proto__":{"polluted":1}}',
  '{"command":["/bin/true"],"env":{"__proto__":"x","constructor":"y"}}',
  '{"command":["/bin/true"],"limits":{"__proto__":{"wallTime":"1s"}}}',
).map((s) => JSON.parse(s) as unknown);

const limits = fc.record(
  {
    wallTime: weirdDuration,
    cpuTime: weirdDuration,
    memory: weirdSize,
    processes: weirdNumber,
    output: weirdSize,
    fileSize: weirdSize,
    stack: weirdSize,
    openFiles: weirdNumber,
    tmpfs: weirdSize,
    cpus: weirdNumber,
  },
  { requiredKeys: [] },
);

/** Option objects close to valid ones, so that many get past validation. */
const plausible = fc.record(
  {
    command: fc.oneof(
      fc.array(weirdString, { maxLength: 4 }),
      fc.tuple(fc.constantFrom('/bin/true', 'true', '/bin/echo', 'echo', '/no/such', 'sh', '/bin/sh'), fc.array(weirdString, { maxLength: 3 })).map(([c, a]) => [c, ...a]),
    ),
    env: fc.oneof(fc.dictionary(weirdString, weirdString, { maxKeys: 4 }), polluted),
    cwd: weirdString,
    limits: fc.oneof(limits, polluted),
    network: fc.oneof(fc.constantFrom('none', 'loopback', 'host', 'bridge'), weirdString),
    binds: fc.array(fc.record({ source: weirdString, target: weirdString, readonly: fc.anything() }, { requiredKeys: ['source'] }), { maxLength: 3 }),
    user: fc.record({ uid: weirdNumber, gid: weirdNumber }, { requiredKeys: [] }),
    cgroupParent: weirdString,
    seccomp: fc.oneof(fc.constantFrom('default', 'judge', 'none', 'strict'), fc.anything(), polluted),
    stdin: fc.oneof(weirdString, fc.uint8Array({ maxLength: 64 }), fc.anything()),
    extra: fc.anything(),
  },
  { requiredKeys: ['command'] },
);

const anyOptions = fc.oneof(
  { weight: 2, arbitrary: fc.anything({ withNullPrototype: true, withBigInt: true, withMap: true, withSet: true, withTypedArray: true, withSparseArray: true }) },
  { weight: 1, arbitrary: polluted },
  { weight: 1, arbitrary: protoJson },
  { weight: 6, arbitrary: plausible },
);

let realRuns = 0;
const MAX_REAL_RUNS = 60;

async function outcome(input: unknown): Promise<string> {
  // Valid options would start a box: most of them get an aborted signal, which ends the call
  // before any box or cgroup exists; a capped number run for real under a short wall limit.
  let opts = input;
  if (typeof input === 'object' && input !== null && !Array.isArray(input)) {
    let valid = false;
    try {
      resolveOptions(input);
      valid = true;
    } catch {
      /* run() must say the same */
    }
    if (valid) {
      const real = realRuns < MAX_REAL_RUNS;
      if (real) realRuns++;
      const ac = new AbortController();
      if (!real) ac.abort();
      const limits = { ...((input as { limits?: object }).limits ?? {}), wallTime: '2s', memory: '64MiB', processes: 16, output: '64KiB' };
      opts = { ...(input as object), limits, signal: ac.signal };
    }
  }
  try {
    const r = await run(opts as never);
    expect(STATUSES).toContain(r.status);
    expect(typeof r.stdout).toBe('string');
    return 'result';
  } catch (e) {
    if (e instanceof SandboxOptionsError) {
      expect(e.issues.length).toBeGreaterThan(0);
      return 'options';
    }
    if (e instanceof SandboxSetupError) return 'setup';
    if (e instanceof AbortError) return 'abort';
    // A well-formed name of a private network this test never made ('bridge', say).
    if (e instanceof SandboxNetworkError) {
      expect(e.code).toBe('not-found');
      expect(e.network).toBe((opts as { network?: unknown }).network);
      return 'network';
    }
    throw e;
  }
}

describe('run() with hostile options', () => {
  it(`returns a result or a typed error, never anything else (${RUNS} cases)`, async () => {
    const seen = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(anyOptions, async (input) => {
        const k = await outcome(input);
        seen.set(k, (seen.get(k) ?? 0) + 1);
        expect(({} as Record<string, unknown>).polluted).toBeUndefined();
        expect(Object.prototype.hasOwnProperty.call(Object.prototype, 'polluted')).toBe(false);
      }),
      { numRuns: RUNS, interruptAfterTimeLimit: 240_000 },
    );
    // Both sides of validation were exercised.
    expect(seen.get('options') ?? 0).toBeGreaterThan(RUNS / 4);
    // Missing bind sources are refused as options now, so fewer cases reach a real box.
    expect((seen.get('abort') ?? 0) + (seen.get('result') ?? 0) + (seen.get('setup') ?? 0)).toBeGreaterThan(RUNS / 100);
    console.log('outcomes', Object.fromEntries(seen), 'real runs', realRuns);
  }, 300_000);

  it(`NUL bytes anywhere in argv, env or paths are refused by validation (${RUNS} cases)`, async () => {
    const withNul = fc.tuple(fc.string({ maxLength: 20 }), fc.string({ maxLength: 20 })).map(([a, b]) => `${a}\0${b}`);
    const where = fc.constantFrom('argv0', 'argv1', 'envKey', 'envValue', 'cwd', 'bindSource', 'bindTarget');
    await fc.assert(
      fc.asyncProperty(withNul, where, async (s, w) => {
        const o: Record<string, unknown> = { command: ['/bin/true'], limits: { wallTime: '1s' } };
        if (w === 'argv0') o.command = [s];
        if (w === 'argv1') o.command = ['/bin/true', s];
        if (w === 'envKey') o.env = { [s]: 'x' };
        if (w === 'envValue') o.env = { A: s };
        if (w === 'cwd') o.cwd = `/${s}`;
        if (w === 'bindSource') o.binds = [{ source: `/${s}` }];
        if (w === 'bindTarget') o.binds = [{ source: '/usr', target: `/${s}` }];
        await expect(run(o as never)).rejects.toBeInstanceOf(SandboxOptionsError);
      }),
      { numRuns: RUNS },
    );
  }, 300_000);

  it(`negative, fractional and enormous limits: a typed error or a run (${RUNS} cases)`, async () => {
    await fc.assert(
      fc.asyncProperty(limits, async (l) => {
        await outcome({ command: ['/bin/true'], limits: l });
      }),
      { numRuns: RUNS, interruptAfterTimeLimit: 240_000 },
    );
  }, 300_000);
});
