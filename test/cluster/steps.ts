/**
 * The steps of a farm test, with times, printed when it fails. A step that can wait has a bound of
 * its own and fails naming itself and what it saw, instead of waiting out the test's timeout with
 * nothing to say which step never came.
 */
import { onTestFailed } from 'vitest';

import type { Farm } from '../../src/cluster/index.js';
import type { TestWorker } from './workers.js';

export interface Steps {
  /** Adds a line to the log. */
  note(line: string): void;
  /** Waits for `p`; past `ms` it fails naming `what`, with what `seen()` tells of the farm then. */
  wait<T>(what: string, p: Promise<T>, ms: number, seen?: () => Promise<string> | string): Promise<T>;
}

/**
 * A step log for the running test, printed (with `also()`, the workers' own lines) if it fails.
 * What is printed is read from memory only: by then the test's farm and Redis may be gone.
 */
export function steps(also: () => string = () => ''): Steps {
  const t0 = Date.now();
  const lines: string[] = [];
  const note = (line: string): void => {
    lines.push(`${new Date().toISOString()} +${((Date.now() - t0) / 1000).toFixed(3)}s ${line}`);
  };
  onTestFailed(() => console.error(`the test's steps:\n${lines.join('\n')}\n${also()}`));
  return {
    note,
    async wait<T>(what: string, p: Promise<T>, ms: number, seen?: () => Promise<string> | string): Promise<T> {
      note(`waiting for ${what}`);
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          void (async () => {
            let saw = '';
            try {
              // Read from Redis, which may be what hangs: bounded too.
              saw = seen ? await Promise.race([seen(), new Promise<string>((r) => setTimeout(() => r('(what it saw could not be read within 5 s)'), 5000))]) : '';
            } catch (e) {
              saw = `(what it saw could not be read: ${String(e)})`;
            }
            note(`gave up on ${what}`);
            reject(new Error(`${what}: not within ${ms / 1000} s${saw ? `; ${saw}` : ''}`));
          })();
        }, ms);
      });
      try {
        const v = await Promise.race([p, late]);
        note(`done: ${what}`);
        return v;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

/** A job as Redis holds it: its state, attempts and stall count, and its entries in the queue's event stream with their times. */
export async function jobTrace(farm: Farm, jobId: string): Promise<string> {
  const job = await farm.queue().getJob(jobId);
  const state = job ? await job.getState() : 'absent';
  const head = `job ${jobId}: ${state}${job ? `, attemptsStarted ${job.attemptsStarted}, stalledCounter ${job.stalledCounter}, finishedOn ${job.finishedOn ?? '-'}` : ''}`;
  const entries = (await farm.redis.xrange(farm.queue().toKey('events'), '-', '+')) as [string, string[]][];
  const mine = entries.filter(([, f]) => f.includes(jobId));
  const lines = mine.map(([id, f]) => `  ${new Date(Number(id.split('-')[0])).toISOString()} ${f.filter((_, i) => i % 2 === 0).map((k, i) => `${k}=${String(f[2 * i + 1]).slice(0, 80)}`).join(' ')}`);
  return `${head}\n${lines.join('\n')}`;
}

/** Every worker's own log lines, by name. */
export function workerLogs(workers: readonly TestWorker[]): string {
  return workers.map((w) => `worker ${w.name} (pid ${w.pid}):\n${w.events().map((e) => `  ${JSON.stringify(e)}`).join('\n')}`).join('\n');
}
