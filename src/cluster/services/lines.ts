/**
 * Reading a program's replies: one line at a time, never more than `max` bytes buffered, so a
 * replica that writes without end cannot grow the worker's memory. A line nobody waits for (a
 * banner, a second line for one call) is dropped: it answers no call, and keeping it would make
 * it the reply to the next one.
 */
import type { Readable } from 'node:stream';

export class LineTooLongError extends Error {
  override readonly name = 'LineTooLongError';
}

export class LineReader {
  private buffered: Buffer[] = [];
  private size = 0;
  private waiter: { resolve: (line: string) => void; reject: (e: Error) => void } | null = null;
  private failure: Error | null = null;
  private readonly stream: Readable;
  private readonly max: number;

  constructor(stream: Readable, max: number) {
    this.stream = stream;
    this.max = max;
    stream.on('data', (chunk: Buffer) => this.push(chunk));
    stream.on('end', () => this.fail(new Error('the program closed its stdout')));
    stream.on('error', (e: Error) => this.fail(e));
  }

  /** The next whole line, without its newline. */
  next(): Promise<string> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  private push(chunk: Buffer): void {
    let start = 0;
    for (let nl = chunk.indexOf(10); nl !== -1; nl = chunk.indexOf(10, start)) {
      this.add(chunk.subarray(start, nl));
      if (this.failure) return;
      const line = Buffer.concat(this.buffered).toString('utf8');
      this.buffered = [];
      this.size = 0;
      this.deliver(line);
      start = nl + 1;
    }
    this.add(chunk.subarray(start));
  }

  private add(part: Buffer): void {
    if (part.length === 0) return;
    this.size += part.length;
    if (this.size > this.max) {
      this.fail(new LineTooLongError(`a reply line is longer than ${this.max} bytes`));
      return;
    }
    this.buffered.push(Buffer.from(part));
  }

  private deliver(line: string): void {
    const w = this.waiter;
    this.waiter = null;
    w?.resolve(line);
  }

  private fail(e: Error): void {
    if (this.failure) return;
    this.failure = e;
    this.buffered = [];
    this.stream.pause();
    const w = this.waiter;
    this.waiter = null;
    w?.reject(e);
  }
}
