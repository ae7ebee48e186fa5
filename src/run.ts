/**
 * The two ways in: `spawn()` for long-lived boxes the caller talks to over stdio (plugin hosts),
 * and `run()` for a complete run with input given up front and output collected (judges). Both
 * resolve the options once and hand them to the launcher.
 */
import { Stages } from './debug.js';
import { launch } from './launch/launcher.js';
import { resolveOptions, type EncodedOutput, type OutputEncoding, type RunOptions, type SpawnOptions } from './options.js';
import { Sandbox, type RunResult } from './sandbox.js';
import type { SandboxProcess } from './supervise/process.js';

/**
 * Starts a program in a new box and returns as soon as it runs. Its stdin/stdout/stderr are
 * streams; `wait()` gives the result (with empty stdout/stderr: they were the caller's to read).
 * The output limit still applies to what passes through the streams.
 */
export async function spawn(options: SpawnOptions): Promise<SandboxProcess> {
  const stages = Stages.start();
  const o = resolveOptions(options, 'spawn');
  stages?.mark('options');
  return launch(o, { stdin: 'pipe', output: 'streams', stages });
}

/**
 * Runs a program in a new box to its end and returns its result with the output it wrote (and,
 * with `collect`, the files it left in its working directory). With `encoding: 'buffer'` its
 * `stdout` and `stderr` are Buffers, byte for byte; otherwise strings.
 */
export function run<Encoding extends OutputEncoding>(options: RunOptions<Encoding> & { encoding: Encoding }): Promise<RunResult<EncodedOutput<Encoding>>>;
export function run(options: RunOptions): Promise<RunResult>;
export async function run(options: RunOptions<OutputEncoding>): Promise<RunResult<string | Buffer>> {
  const stages = Stages.start();
  const o = resolveOptions(options);
  stages?.mark('options');
  // Files are read from a box that is still there: a living box for this one run.
  if (o.collect.length > 0) return Sandbox.runOnce(o, stages);
  const proc = await launch(o, { stdin: o.stdin === null ? 'null' : 'pipe', output: 'collect', stages });
  proc.feed(o.stdin);
  return proc.collectOutput(o.encoding);
}
