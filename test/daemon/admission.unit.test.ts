// Admission on its own: round-robin between clients, a full queue refused at once, an aborted
// waiter leaves the queue.
import { describe, expect, it } from 'vitest';

import { Admission } from '../../src/daemon/admission.js';
import { HttpError } from '../../src/daemon/http-error.js';

describe('Admission', () => {
  it('serves waiting clients in turn, not in arrival order', async () => {
    const a = new Admission(1, 10);
    const never = new AbortController().signal;
    const first = await a.acquire('alice', never);
    const order: string[] = [];
    const wait = (client: string, n: number) =>
      a.acquire(client, never).then((release) => {
        order.push(`${client}${n}`);
        release();
      });
    const all = [wait('alice', 2), wait('alice', 3), wait('alice', 4), wait('bob', 1), wait('carol', 1)];
    expect(a.queued).toBe(5);
    first();
    await Promise.all(all);
    expect(order).toEqual(['alice2', 'bob1', 'carol1', 'alice3', 'alice4']);
    expect([a.running, a.queued]).toEqual([0, 0]);
  });

  it('refuses at once with 429 and Retry-After when the queue is full', async () => {
    const a = new Admission(1, 1);
    const never = new AbortController().signal;
    const release = await a.acquire('x', never);
    const waiting = a.acquire('x', never);
    const refused = await a.acquire('y', never).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(HttpError);
    expect(refused).toMatchObject({ status: 429, code: 'queue-full', headers: { 'retry-after': '1' } });
    release();
    (await waiting)();
    expect([a.running, a.queued]).toEqual([0, 0]);
  });

  it('an aborted waiter gives up its place and rejects with the reason', async () => {
    const a = new Admission(1, 5);
    const never = new AbortController().signal;
    const release = await a.acquire('x', never);
    const ac = new AbortController();
    const gone = a.acquire('y', ac.signal).catch((e: unknown) => e);
    const next = a.acquire('z', never);
    ac.abort(new Error('client gone'));
    expect(await gone).toMatchObject({ message: 'client gone' });
    expect(a.queued).toBe(1);
    release();
    (await next)();
    expect([a.running, a.queued]).toEqual([0, 0]);
  });
});
