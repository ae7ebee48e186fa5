import { defineConfig } from 'vitest/config';

/** Root-free tests of pure modules (named *.unit.test.ts, beside the suites of their module). */
const UNIT = ['test/**/*.unit.test.ts'];
const PRECISION = ['test/cgroup-box/cpu.test.ts'];
/** Suites for the pure cgroup v2 guest of `npm run test:vm` (scripts/vm/guest.sh sets SANDCELL_IN_VM): they need what it sets up. */
const VM = ['test/vm/**/*.test.ts'];
const inVm = process.env.SANDCELL_IN_VM === '1';
/**
 * A guest of `npm run test:vm` under software emulation (no KVM) is many times slower: compiling
 * the fixtures alone takes longer than a hook's minute. Only the time allowed grows, never a bound.
 */
const emulated = inVm && process.env.SANDCELL_VM_ACCEL === 'tcg';

/** What the suites that run real sandboxes need: a leak check at the end, and workers that shut sandcell down. */
const ROOT_SUITE = { globalSetup: ['test/global-setup.ts'], setupFiles: ['test/setup-worker.ts'] };

export default defineConfig({
  test: {
    // Real boxes take a few milliseconds each but suites run many of them; the machine has 2 cores.
    testTimeout: emulated ? 600_000 : 60_000,
    hookTimeout: emulated ? 600_000 : 60_000,
    pool: 'forks',
    maxWorkers: 2,
    projects: [
      { extends: true, test: { name: 'unit', include: UNIT, sequence: { groupOrder: 0 } } },
      { extends: true, test: { name: 'sandcell', include: ['test/**/*.test.ts'], exclude: [...UNIT, ...PRECISION, ...VM], ...ROOT_SUITE, sequence: { groupOrder: 0 } } },
      ...(inVm ? [{ extends: true, test: { name: 'vm', include: VM, ...ROOT_SUITE, sequence: { groupOrder: 0 } } }] : []),
      // What measures CPU-time precision runs after everything else, alone: a machine saturated by
      // the suite's own bombs and fuzzers is not what those figures are about.
      { extends: true, test: { name: 'precision', include: PRECISION, ...ROOT_SUITE, sequence: { groupOrder: 1 } } },
    ],
  },
});
