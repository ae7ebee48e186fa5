/**
 * A run's stdio as `run()` uses it: the input fed in whole, the output collected whole.
 */
import { Readable } from 'node:stream';

import type { Result } from '../result.js';
import type { SandboxProcess } from './box.js';

/** Waits for the end of a box's program, with everything it wrote. */
export async function collectOutput(box: SandboxProcess): Promise<Result> {
  const [result, stdout, stderr] = await Promise.all([box.wait(), collect(box.stdout), collect(box.stderr)]);
  return { ...result, stdout: stdout.toString('utf8'), stderr: stderr.toString('utf8') };
}

export function feed(box: SandboxProcess, input: string | Uint8Array | Readable | null): void {
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
