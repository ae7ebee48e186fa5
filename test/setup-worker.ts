// Vitest ends its worker processes with SIGTERM, which skips the process's 'exit' handlers
// (sandcell's removes its cgroup parent and the cgroups it made ahead of time). A service
// embedding sandcell decides this for itself; here each worker releases them before the signal
// takes its default course, so the suite's final leak check (global-setup.ts) sees what a clean
// shutdown leaves: nothing. (process.exit() is not an option: vitest replaces it in workers.)
import { releaseCgroupsSync } from '../src/supervise/cgroups.js';

process.once('SIGTERM', () => {
  releaseCgroupsSync();
  process.kill(process.pid, 'SIGTERM');
});
