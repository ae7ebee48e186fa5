/**
 * A running program's stdio as the supervisor hands it out: its stdin as a writable socket, its
 * output either streamed to the caller (`spawn()`) or kept in memory for the result (`run()`),
 * both spending from the run's output budget (src/limits/output.ts).
 */
import { isAscii } from 'node:buffer';
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

/** After the run has ended: how long output may pause before the stream is given up, and how long it may keep coming. */
const QUIET_MS = 100;
const DRAIN_MAX_MS = 1000;

/**
 * The output kept in memory (`run()`): the socket's chunks as the budget lets them through, with
 * no stream of our own in between.
 */
export class CollectedOutput implements OutputSink {
  truncated = false;
  /** Resolves at end of file (or when the socket fails or closes). */
  readonly done: Promise<void>;
  private readonly chunks: Buffer[] = [];
  private readonly socket: Socket | null;
  private lastData = 0;
  private finished = false;

  constructor(budget: OutputBudget, socket: Socket | null) {
    this.socket = socket;
    if (!socket) {
      this.done = Promise.resolve();
      return;
    }
    socket.on('data', (chunk: Buffer) => {
      this.lastData = performance.now();
      const passed = budget.admit(chunk, this);
      if (passed) this.chunks.push(passed);
    });
    this.done = new Promise<void>((resolve) => {
      socket.once('end', resolve);
      socket.once('close', resolve);
      socket.once('error', () => resolve());
    }).then(() => {
      this.finished = true;
    });
  }

  /**
   * The run has ended. EOF normally follows at once: every process that held the pipe's write
   * end is gone. Not always: in a living box a process of the run may have passed its stdout
   * (SCM_RIGHTS over a socket in the box) to a process of another run, which this run's init does
   * not end and which may hold it for as long as the box lives. So what is in the pipe is read
   * while it keeps coming (for a second at most), and once it pauses the stream is given up.
   */
  runEnded(): void {
    const socket = this.socket;
    if (!socket || this.finished) return;
    const began = performance.now();
    this.lastData = Math.max(this.lastData, began);
    const check = (): void => {
      if (this.finished) return;
      const now = performance.now();
      if (now - this.lastData >= QUIET_MS || now - began >= DRAIN_MAX_MS) socket.destroy();
      else setTimeout(check, QUIET_MS);
    };
    setTimeout(check, QUIET_MS);
  }

  /**
   * The output as UTF-8 text. Most output (a judge's answers, logs) is ASCII, for which Latin-1 is
   * the same text and a plain copy, where V8's UTF-8 decoder costs ~10 ms of CPU per MiB; the
   * check is one vectorised pass.
   */
  text(): string {
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    return isAscii(all) ? all.toString('latin1') : all.toString('utf8');
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
