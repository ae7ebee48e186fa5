/**
 * Admission: at most `parallelism` runs at once and `maxQueue` waiting; past that a request is
 * refused at once (429), never left to time out. Waiting work is served round-robin between
 * clients, so one client's burst delays the others by at most one run each.
 */
import { HttpError } from './http-error.js';

interface Waiter {
  grant: (release: () => void) => void;
}

export class Admission {
  running = 0;
  queued = 0;
  private readonly queues = new Map<string, Waiter[]>();

  constructor(
    readonly parallelism: number,
    readonly maxQueue: number,
  ) {}

  /** Resolves with a release function once the client's turn comes; rejects on abort or a full queue. */
  acquire(client: string, signal: AbortSignal): Promise<() => void> {
    if (signal.aborted) return Promise.reject(signal.reason);
    if (this.running < this.parallelism && this.queued === 0) {
      this.running++;
      return Promise.resolve(this.releaser());
    }
    if (this.queued >= this.maxQueue) {
      return Promise.reject(new HttpError(429, 'queue-full', `${this.running} running and ${this.queued} waiting: try again later`, undefined, { 'retry-after': '1' }));
    }
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        const q = this.queues.get(client);
        const at = q?.indexOf(waiter) ?? -1;
        if (q && at >= 0) {
          q.splice(at, 1);
          this.queued--;
          if (q.length === 0) this.queues.delete(client);
        }
        reject(signal.reason);
      };
      const waiter: Waiter = {
        grant: (release) => {
          signal.removeEventListener('abort', onAbort);
          resolve(release);
        },
      };
      signal.addEventListener('abort', onAbort, { once: true });
      const q = this.queues.get(client);
      if (q) q.push(waiter);
      else this.queues.set(client, [waiter]);
      this.queued++;
    });
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.running--;
      this.next();
    };
  }

  private next(): void {
    while (this.running < this.parallelism && this.queued > 0) {
      // A Map iterates in insertion order: the first client is the one whose turn it is; after
      // its run is granted it moves to the back of the line.
      const [client, q] = this.queues.entries().next().value as [string, Waiter[]];
      const waiter = q.shift() as Waiter;
      this.queues.delete(client);
      if (q.length > 0) this.queues.set(client, q);
      this.queued--;
      this.running++;
      waiter.grant(this.releaser());
    }
  }
}
