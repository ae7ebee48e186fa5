// Vitest ends its worker processes with SIGTERM, which would skip the process's 'exit' handlers
// (sandcell's removes its cgroup parent and the cgroups it made ahead of time). A service
// embedding sandcell decides this for itself; here each worker exits in an orderly way, so the
// suite's final leak check (global-setup.ts) sees what a clean shutdown leaves: nothing.
process.once('SIGTERM', () => process.exit(0));
