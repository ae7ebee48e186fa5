/**
 * The two ways in: `spawn()` for long-lived boxes the caller talks to over stdio (plugin hosts),
 * and `run()` for a complete run with input given up front and output collected (judges).
 */

import { resolveOptions, type RunOptions, type SpawnOptions } from './options.js';
import { Sandbox, type RunResult } from './sandbox.js';
import { SandboxProcess, startBox } from './supervise/box.js';
import { feed } from './supervise/io.js';

/**
 * Starts a program in a new box and returns as soon as it runs. Its stdin/stdout/stderr are
 * streams; `wait()` gives the result (with empty stdout/stderr: they were the caller's to read).
 * The output limit still applies to what passes through the streams.
 */
export async function spawn(options: SpawnOptions): Promise<SandboxProcess> {
  const o = resolveOptions(options);
  return startBox({ options: o, seccomp: o.seccomp, stdin: 'pipe', output: 'streams' });
}

/**
 * Runs a program in a new box to its end and returns its result with the output it wrote (and,
 * with `collect`, the files it left in its working directory).
 */
export async function run(options: RunOptions): Promise<RunResult> {
  const o = resolveOptions(options);
  if (o.collect.length > 0) {
    // Files are read from a box that is still there: a living box for this one run.
    const { command, stdin, collect, signal, seccomp, files, env, cwd, limits, ...shape } = options;
    const box = await Sandbox.create({ ...shape, ...(env ? { env } : {}), ...(cwd ? { cwd } : {}), ...(limits ? { limits } : {}) });
    try {
      return await box.run({ command, collect: collect ?? [], ...(stdin !== undefined ? { stdin } : {}), ...(signal ? { signal } : {}), ...(seccomp ? { seccomp } : {}), ...(files ? { files } : {}) });
    } finally {
      await box.destroy();
    }
  }
  const box = await startBox({ options: o, seccomp: o.seccomp, stdin: o.stdin === null ? 'null' : 'pipe', output: 'collect' });
  feed(box, o.stdin);
  return box.collectOutput();
}

