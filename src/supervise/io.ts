/**
 * A running program's stdio as the supervisor hands it out: its stdin as a writable socket, its
 * output either streamed to the caller (`spawn()`) or kept in memory for the result (`run()`),
 * both spending from the run's output budget (src/limits/output.ts).
 */
import { Socket } from 'node:net';
import { Readable, Transform, type TransformCallback, type Writable } from 'node:stream';

import type { OutputBudget } from '../limits/output.js';

/** One of the program's output streams, as far as the budget is concerned. */
export interface OutputSink {
  /** The budget ran out while this stream was writing: bytes were dropped. */
  readonly truncated: boolean;
}

/** The output as a stream for the caller to read (`spawn()`). */
export class MeteredStream extends Transform implements OutputSink {
  truncated = false;

  constructor(private readonly budget: OutputBudget) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    done(null, this.budget.admit(chunk, this));
  }
}

/**
 * The output kept in memory (`run()`): the socket's chunks as the budget lets them through, with
 * no stream of our own in between.
 */
export class CollectedOutput implements OutputSink {
  truncated = false;
  /** Resolves at end of file (or when the socket fails or closes). */
  readonly done: Promise<void>;
  private readonly chunks: Buffer[] = [];

  constructor(budget: OutputBudget, socket: Socket | null) {
    if (!socket) {
      this.done = Promise.resolve();
      return;
    }
    socket.on('data', (chunk: Buffer) => {
      const passed = budget.admit(chunk, this);
      if (passed) this.chunks.push(passed);
    });
    this.done = new Promise((resolve) => {
      socket.once('end', resolve);
      socket.once('close', resolve);
      socket.once('error', () => resolve());
    });
  }

  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

/** The program's stdout and stderr, and the sinks the budget marks. */
export interface ProgramOutput {
  stdout: Readable;
  stderr: Readable;
  sinks: [OutputSink, OutputSink];
  /** With `collect`: the output kept for the result. */
  collected: [CollectedOutput, CollectedOutput] | null;
}

/** Our ends of the program's output pipes, streamed or collected. */
export function programOutput(fds: [number | null, number | null], budget: OutputBudget, mode: 'streams' | 'collect'): ProgramOutput {
  if (mode === 'collect') {
    const [out, err] = fds.map((fd) => (fd === null ? null : new Socket({ fd, readable: true, writable: false })));
    const collected: [CollectedOutput, CollectedOutput] = [new CollectedOutput(budget, out ?? null), new CollectedOutput(budget, err ?? null)];
    return { stdout: out ?? Readable.from([]), stderr: err ?? Readable.from([]), sinks: collected, collected };
  }
  const [out, err] = fds.map((fd) => pipeFrom(fd, new MeteredStream(budget))) as [MeteredStream, MeteredStream];
  return { stdout: out, stderr: err, sinks: [out, err], collected: null };
}

function pipeFrom(fd: number | null, meter: MeteredStream): MeteredStream {
  if (fd === null) {
    meter.end();
    return meter;
  }
  const s = new Socket({ fd, readable: true, writable: false });
  s.on('error', (e) => meter.destroy(e));
  s.pipe(meter);
  return meter;
}

/** Our end of the program's stdin pipe. */
export function programInput(fd: number | null): Writable | null {
  if (fd === null) return null;
  const s = new Socket({ fd, readable: false, writable: true });
  // A program that exits without reading its input closes the pipe: not the caller's error.
  s.on('error', () => undefined);
  return s;
}

/** A run's input as `run()` gives it: fed in whole. */
export function feed(sink: Writable | null, input: string | Uint8Array | Readable | null): void {
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
