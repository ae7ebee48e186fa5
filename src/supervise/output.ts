/**
 * The output limit: stdout and stderr share one budget. Bytes past it are dropped (the caller
 * gets exactly the limit), the stream is flagged truncated and the run is ended.
 */
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

  /** How many of `n` bytes may still pass; ends the run the first time the budget runs out. */
  take(n: number): number {
    const allowed = Math.min(n, this.limitBytes - this.used);
    this.used += allowed;
    if (allowed < n && !this.exceeded) {
      this.exceeded = true;
      this.onExceeded();
    }
    return allowed;
  }
}

export class MeteredStream extends Transform {
  truncated = false;

  constructor(private readonly budget: OutputBudget) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    const allowed = this.budget.take(chunk.length);
    if (allowed < chunk.length) this.truncated = true;
    done(null, allowed === chunk.length ? chunk : allowed > 0 ? chunk.subarray(0, allowed) : undefined);
  }
}
