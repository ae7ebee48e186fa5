/**
 * The output limit (`limits.output`): stdout and stderr share one budget. Bytes past it are
 * dropped (the caller gets exactly the limit), the stream that was writing is flagged truncated
 * and the run is ended with `output-limit`. The streams that spend from it are in
 * src/supervise/io.ts.
 */
import type { Outcome, Status } from '../result.js';

export class OutputBudget {
  private used = 0;
  private exceeded = false;

  constructor(
    readonly limitBytes: number,
    private readonly onExceeded: () => void,
  ) {}

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

export function outputVerdict(o: Outcome): Status | null {
  return o.killReason === 'output-limit' ? 'output-limit' : null;
}
