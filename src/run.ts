/**
 * The two ways in: `spawn()` for long-lived boxes the caller talks to over stdio (plugin hosts),
 * and `run()` for a complete run with input given up front and output collected (judges).
 */
import { Readable } from 'node:stream';

import { resolveOptions, type RunOptions, type SpawnOptions } from './options.js';
import type { Result } from './result.js';
import { SandboxProcess, startBox } from './supervise/box.js';

/**
 * Starts a program in a new box and returns as soon as it runs. Its stdin/stdout/stderr are
 * streams; `wait()` gives the result (with empty stdout/stderr: they were the caller's to read).
 * The output limit still applies to what passes through the streams.
 */
export async function spawn(options: SpawnOptions): Promise<SandboxProcess> {
  const o = resolveOptions(options);
  return startBox({ options: o, seccomp: o.seccomp, stdin: 'pipe' });
}

/** Runs a program in a new box to its end and returns its result with the output it wrote. */
export async function run(options: RunOptions): Promise<Result> {
  const o = resolveOptions(options);
  const box = await startBox({ options: o, seccomp: o.seccomp, stdin: o.stdin === null ? 'null' : 'pipe' });
  feed(box, o.stdin);
  const [result, stdout, stderr] = await Promise.all([box.wait(), collect(box.stdout), collect(box.stderr)]);
  return { ...result, stdout: stdout.toString('utf8'), stderr: stderr.toString('utf8') };
}

function feed(box: SandboxProcess, input: string | Uint8Array | Readable | null): void {
  const sink = box.stdin;
  if (!sink) return;
  if (input instanceof Readable) {
    input.on('error', () => sink.end());
    input.pipe(sink);
  } else if (input !== null) {
    sink.end(input);
  } else {
    sink.end();
  }
}

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
