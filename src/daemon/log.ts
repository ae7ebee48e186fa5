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
 * process ends.
 */
import { destination } from 'pino';

export interface LogSinkOptions {
  fd: number;
  /** Bytes buffered before they are written. */
  blockBytes: number;
  /** The longest a line waits in the buffer. */
  idleMs: number;
}

export class LogSink {
  private readonly out: ReturnType<typeof destination>;
  private timer: NodeJS.Timeout | null = null;
  private readonly idleMs: number;
  private readonly onExit = (): void => this.flushSync();

  constructor(o: LogSinkOptions) {
    this.out = destination({ fd: o.fd, sync: true, minLength: o.blockBytes });
    this.idleMs = o.idleMs;
    process.on('exit', this.onExit);
  }

  /** pino's stream interface: one JSON line. */
  write(line: string): void {
    this.out.write(line);
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
    this.out.flushSync();
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
