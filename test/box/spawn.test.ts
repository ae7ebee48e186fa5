// Long-lived boxes a host talks to over stdio, and the caller's AbortSignal.
import { Readable } from 'node:stream';
import { beforeAll, describe, expect, it } from 'vitest';

import { AbortError, run, spawn } from '../../src/index.js';
import { childPids, requireRoot } from '../helpers/host.js';

beforeAll(() => requireRoot());

function lines(stream: Readable): AsyncIterator<string> {
  let buf = '';
  const queue: string[] = [];
  let wake: (() => void) | null = null;
  stream.on('data', (c: Buffer) => {
    buf += c.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      queue.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
    wake?.();
  });
  return {
    async next() {
      while (queue.length === 0) await new Promise<void>((r) => (wake = r));
      return { value: queue.shift()!, done: false };
    },
  };
}

describe('spawn', () => {
  it('talks to a running program over stdin/stdout', async () => {
    const box = await spawn({ command: ['/usr/bin/python3', '-u', '-c', 'import sys\nfor l in sys.stdin: print(l.strip().upper())'] });
    expect(box.pid).toBeGreaterThan(0);
    const out = lines(box.stdout);
    box.stdin!.write('hello\n');
    expect((await out.next()).value).toBe('HELLO');
    box.stdin!.write('plugin\n');
    expect((await out.next()).value).toBe('PLUGIN');
    box.stdin!.end();
    const r = await box.wait();
    expect(r.status).toBe('ok');
  });

  it('an AbortSignal ends the run, rejects with AbortError and leaves nothing', async () => {
    const ac = new AbortController();
    const pending = run({ command: ['/bin/sleep', '100'], signal: ac.signal });
    setTimeout(() => ac.abort(), 100);
    const e = await pending.catch((x: unknown) => x);
    expect(e).toBeInstanceOf(AbortError);
    expect(await childPids()).toEqual([]);
  });

  it('await using: leaving the scope ends the box, and nothing of it is left', async () => {
    let pid = 0;
    let held: Awaited<ReturnType<typeof spawn>> | null = null;
    {
      await using box = await spawn({ command: ['/bin/sleep', '100'] });
      pid = box.pid;
      held = box;
      expect(() => process.kill(pid, 0)).not.toThrow();
    }
    expect(() => process.kill(pid, 0)).toThrow();
    expect((await held!.wait()).signal).toBe('SIGKILL');
    expect(await childPids()).toEqual([]);
  });

  it('an already aborted signal starts nothing', async () => {
    const e = await run({ command: ['/bin/true'], signal: AbortSignal.abort() }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(AbortError);
  });

  it('stdin from a stream', async () => {
    const r = await run({ command: ['/usr/bin/wc', '-c'], stdin: Readable.from([Buffer.alloc(100000, 1), Buffer.alloc(5, 2)]) });
    expect(r.stdout.trim()).toBe('100005');
  });

  it('many boxes run at once while the host runs child_process children of its own', async () => {
    const { execFile } = await import('node:child_process');
    const host = Array.from(
      { length: 10 },
      () => new Promise<string>((resolve, reject) => execFile('/bin/echo', ['host'], (err, out) => (err ? reject(err) : resolve(out)))),
    );
    const boxes = Array.from({ length: 10 }, (_, i) => run({ command: ['/bin/echo', `box${i}`] }));
    const [h, b] = await Promise.all([Promise.all(host), Promise.all(boxes)]);
    expect(h).toEqual(Array(10).fill('host\n'));
    expect(b.map((r) => r.stdout)).toEqual(Array.from({ length: 10 }, (_, i) => `box${i}\n`));
  });
});
