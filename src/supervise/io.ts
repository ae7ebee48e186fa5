/**
 * A run's input as `run()` gives it: fed in whole (its output is kept by the box itself, see
 * `SandboxProcess.collectOutput()`).
 */
import { Readable } from 'node:stream';

import type { SandboxProcess } from './box.js';

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

