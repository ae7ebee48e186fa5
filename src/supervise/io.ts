/**
 * A running program's stdio as the supervisor hands it out: for `spawn()` its stdin as a writable
 * socket and its output as streams for the caller; for `run()` its input written and its output
 * kept in memory by the addon. Both spend from the run's output budget (src/limits/output.ts).
 */
import { isAscii } from 'node:buffer';
import { Socket } from 'node:net';
import { Readable, Transform, type TransformCallback } from 'node:stream';

import type { OutputBudget } from '../limits/output.js';
import { runPipes, type NativeRunPipes } from '../native.js';

/** One of the program's output streams, as far as the budget is concerned. */
export interface OutputSink {
  /** The budget ran out while this stream was writing: bytes were dropped. */
  readonly truncated: boolean;
}

/** The output as a stream for the caller to read (`spawn()`). */
export class MeteredStream extends Transform implements OutputSink {
  truncated = false;
  /**
   * The pipe it reads from. A stream nobody reads stops reading it, so the pipe never reaches EOF:
   * it is destroyed with this stream, which closes once the descriptor is closed.
   */
  source: Socket | null = null;

  constructor(private readonly budget: OutputBudget) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    done(null, this.budget.admit(chunk, this));
  }

  override _destroy(error: Error | null, done: (error?: Error | null) => void): void {
    const source = this.source;
    if (source === null || source.closed) {
      done(error);
      return;
    }
    source.once('close', () => done(error));
    source.destroy();
  }
}

/** After the run has ended: how long output may pause before the stream is given up, and how long it may keep coming. */
const QUIET_MS = 100;
const DRAIN_MAX_MS = 1000;

const NO_INPUT = new Uint8Array(0);

/** The output `run()` keeps: the bytes of each stream and whether the budget cut it. */
export interface KeptOutput {
  stdout: Buffer | undefined;
  stderr: Buffer | undefined;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
}

/**
 * The output kept in memory (`run()`), read by the addon: no socket or stream per pipe and no
 * JavaScript per chunk, one Buffer per stream at the end. Given bytes as input, the addon writes
 * them too; a stream as input goes through a socket of our own.
 */
export class CollectedOutput {
  /** Resolves once the run has ended and its output is read. */
  readonly done: Promise<KeptOutput>;
  private readonly pipes: NativeRunPipes;
  private resolve!: (o: KeptOutput) => void;
  private input: Socket | null = null;

  constructor(fds: [number | null, number | null], limitBytes: number, onExceeded: () => void) {
    this.pipes = runPipes(fds[0], fds[1], limitBytes, onExceeded);
    this.done = new Promise((resolve) => {
      this.resolve = resolve;
    });
  }

  /** The run's input into its stdin pipe (`fd`, ours from here on). */
  feed(fd: number, input: string | Uint8Array | Readable | null): void {
    if (!(input instanceof Readable)) {
      this.pipes.feed(fd, input === null ? NO_INPUT : typeof input === 'string' ? Buffer.from(input) : input);
      return;
    }
    const sink = programInput(fd)!;
    this.input = sink;
    input.on('error', () => sink.end());
    input.pipe(sink);
  }

  /**
   * The run has ended. EOF normally follows at once: every process that held the pipe's write
   * end is gone. Not always: in a living box a process of the run may have passed its stdout
   * (SCM_RIGHTS over a socket in the box) to a process of another run, which this run's init does
   * not end and which may hold it for as long as the box lives. So what is in the pipe is read
   * while it keeps coming (for a second at most), and once it pauses the stream is given up.
   */
  runEnded(): void {
    // Nothing reads the program's stdin any more: our end is closed.
    this.input?.destroy();
    this.pipes.end(QUIET_MS, DRAIN_MAX_MS, (stdout, stderr, truncated) => {
      this.resolve({ stdout, stderr, stdoutTruncated: (truncated & 1) !== 0, stderrTruncated: (truncated & 2) !== 0 });
    });
  }
}

/**
 * A stream's output as UTF-8 text. Most output (a judge's answers, logs) is ASCII, for which
 * Latin-1 is the same text and a plain copy, where V8's UTF-8 decoder costs ~10 ms of CPU per MiB;
 * the check is one vectorised pass.
 */
export function outputText(bytes: Buffer | undefined): string {
  if (bytes === undefined) return '';
  return isAscii(bytes) ? bytes.toString('latin1') : bytes.toString('utf8');
}

/** The program's stdout and stderr as streams, and the sinks the budget marks. */
export interface ProgramOutput {
  stdout: Readable;
  stderr: Readable;
  sinks: [OutputSink, OutputSink];
}

/** Our ends of the program's output pipes, streamed through the budget. */
export function programOutput(fds: [number | null, number | null], budget: OutputBudget): ProgramOutput {
  const [out, err] = fds.map((fd) => pipeFrom(fd, new MeteredStream(budget))) as [MeteredStream, MeteredStream];
  return { stdout: out, stderr: err, sinks: [out, err] };
}

function pipeFrom(fd: number | null, meter: MeteredStream): MeteredStream {
  if (fd === null) {
    meter.end();
    return meter;
  }
  const s = new Socket({ fd, readable: true, writable: false });
  meter.source = s;
  s.on('error', (e) => meter.destroy(e));
  s.pipe(meter);
  return meter;
}

/** Our end of the program's stdin pipe. */
export function programInput(fd: number | null): Socket | null {
  if (fd === null) return null;
  const s = new Socket({ fd, readable: false, writable: true });
  // A program that exits without reading its input closes the pipe: not the caller's error.
  s.on('error', () => undefined);
  return s;
}
