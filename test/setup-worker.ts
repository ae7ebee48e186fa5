// Vitest ends its worker processes with SIGTERM, which skips the process's 'exit' handlers
// (sandcell's end its warm boxes and remove its cgroup parent and the cgroups it made ahead of
// time). A service embedding sandcell decides this for itself, with shutdown(); here each worker
// calls it before the signal takes its default course, so the suite's final leak check
// (global-setup.ts) sees what a clean shutdown leaves: nothing. (process.exit() is not an option:
// vitest replaces it in workers.)
import { shutdown } from '../src/index.js';
import { releaseSync } from '../src/runtime.js';

process.once('SIGTERM', () => {
  void shutdown()
    .catch(() => undefined)
    .finally(() => {
      releaseSync();
      process.kill(process.pid, 'SIGTERM');
    });
});
