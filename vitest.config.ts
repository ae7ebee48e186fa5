import { defineConfig } from 'vitest/config';

const PRECISION = ['test/cgroup-box/cpu.test.ts'];

export default defineConfig({
  test: {
    // Real boxes take a few milliseconds each but suites run many of them; the machine has 2 cores.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    maxWorkers: 2,
    globalSetup: ['test/global-setup.ts'],
    setupFiles: ['test/setup-worker.ts'],
    projects: [
      { extends: true, test: { name: 'sandcell', include: ['test/**/*.test.ts'], exclude: PRECISION, sequence: { groupOrder: 0 } } },
      // What measures CPU-time precision runs after everything else, alone: a machine saturated by
      // the suite's own bombs and fuzzers is not what those figures are about.
      { extends: true, test: { name: 'precision', include: PRECISION, sequence: { groupOrder: 1 } } },
    ],
  },
});
