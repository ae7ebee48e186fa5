/**
 * Where the daemon's JSON lines go: a buffer in front of a file descriptor (stdout, as a service
 * manager takes it), written in blocks rather than a system call per line. A write of a line was
 * a wake-up of the log's reader (a journal's socket, a pipe) twice per run; a block holds a few
 * dozen lines.
 *
 * No line is lost by the buffering: a line waits at most `idleMs` (the daemon going quiet does
 * not leave it in the buffer), and whatever is buffered is written before the process exits,
 * whichever way it exits but SIGKILL (an uncaught error, a drain after SIGTERM, process.exit).
 * The writes themselves are synchronous, so nothing is ever in flight in another thread when the
 * process ends. A block is written, not synced to disk: pino's destination (sonic-boom) ends every
 * flush with an fsync, which on a log file stalled the event loop on the disk five times a second
 * while the daemon was busy; a line written is the kernel's, as any line a service prints.
 */
import { writeSync } from 'node:fs';

export interface LogSinkOptions {
  fd: number;
  /** Characters (bytes, for the ASCII of JSON lines) buffered before they are written. */
  blockBytes: number;
  /** The longest a line waits in the buffer. */
  idleMs: number;
}

/** How long a write that would block (a full pipe or socket set non-blocking) waits before it is tried again. */
const BUSY_WAIT_MS = 10;

export class LogSink {
  private readonly fd: number;
  private readonly blockBytes: number;
  private readonly idleMs: number;
  private lines: string[] = [];
  private length = 0;
  private timer: NodeJS.Timeout | null = null;
  private readonly onExit = (): void => this.flushSync();

  constructor(o: LogSinkOptions) {
    this.fd = o.fd;
    this.blockBytes = o.blockBytes;
    this.idleMs = o.idleMs;
    process.on('exit', this.onExit);
  }

  /** pino's stream interface: one JSON line. */
  write(line: string): void {
    this.lines.push(line);
    this.length += line.length;
    if (this.length >= this.blockBytes) {
      this.flushSync();
      return;
    }
    // Armed once per quiet spell, not per line: the lines of a busy daemon share one timer.
    if (this.timer === null) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.flushSync();
      }, this.idleMs);
      this.timer.unref();
    }
  }

  /** Writes what is buffered now. */
  flushSync(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.lines.length === 0) return;
    const block = Buffer.from(this.lines.length === 1 ? (this.lines[0] as string) : this.lines.join(''), 'utf8');
    this.lines = [];
    this.length = 0;
    let at = 0;
    while (at < block.length) {
      try {
        at += writeSync(this.fd, block, at);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, BUSY_WAIT_MS);
      }
    }
  }

  /** pino's `logger.flush(cb)`. */
  flush(cb?: (err?: Error) => void): void {
    try {
      this.flushSync();
      cb?.();
    } catch (e) {
      if (cb) cb(e as Error);
      else throw e;
    }
  }
}
