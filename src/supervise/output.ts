/**
 * The output limit: stdout and stderr share one budget. Bytes past it are dropped (the caller
 * gets exactly the limit), the stream is flagged truncated and the run is ended.
 */
import type { Socket } from 'node:net';
import { Transform, type TransformCallback } from 'node:stream';

export class OutputBudget {
  private used = 0;
  private exceeded = false;

  constructor(
    readonly limitBytes: number,
    private readonly onExceeded: () => void,
  ) {}

  /** A pass-through stream that spends from this budget. */
  meter(): MeteredStream {
    return new MeteredStream(this);
  }

  /**
   * What of `chunk` may pass: all of it, its head, or nothing (undefined). When bytes are dropped
   * `sink` is marked truncated, and the first time the run is ended.
   */
  admit(chunk: Buffer, sink: { truncated: boolean }): Buffer | undefined {
    const allowed = Math.min(chunk.length, this.limitBytes - this.used);
    this.used += allowed;
    if (allowed < chunk.length) {
      sink.truncated = true;
      if (!this.exceeded) {
        this.exceeded = true;
        this.onExceeded();
      }
    }
    return allowed === chunk.length ? chunk : allowed > 0 ? chunk.subarray(0, allowed) : undefined;
  }
}

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
