// A failed job's reason as it travels through Redis: what a worker writes is read back whole;
// anything else Redis may hold (BullMQ's own reasons, another client's writes) is the
// infrastructure's, and nothing read back is larger than its bounds.
import { UnrecoverableError } from 'bullmq';
import { describe, expect, it } from 'vitest';

import { FarmJobError } from '../../src/cluster/index.js';
import { failure, readFailure } from '../../src/cluster/wire.js';

describe('failed jobs', () => {
  it('a refusal is final and a setup error is retried; both are read back with their fields', () => {
    const refused = failure({ v: 1, kind: 'options', code: 'invalid-options', message: 'invalid job: options.limits.memory: bad', issues: [{ path: 'limits.memory', message: 'bad' }] }, false);
    expect(refused).toBeInstanceOf(UnrecoverableError);
    const e = FarmJobError.fromReason('j1', refused.message);
    expect(e).toMatchObject({ jobId: 'j1', kind: 'options', code: 'invalid-options', field: 'limits.memory', message: 'invalid job: options.limits.memory: bad' });
    const setup = failure({ v: 1, kind: 'setup', code: 'setup-failed', message: 'sandbox setup failed at execve: ENOENT', stage: 'execve', errno: 2, errnoCode: 'ENOENT' }, true);
    expect(setup).not.toBeInstanceOf(UnrecoverableError);
    expect(FarmJobError.fromReason('j2', setup.message)).toMatchObject({ kind: 'setup', stage: 'execve', errno: 2, errnoCode: 'ENOENT', field: undefined });
  });

  it('what a worker says past the bounds is clipped, so it still reads back', () => {
    const issues = Array.from({ length: 500 }, (_, i) => ({ path: `files.${'x'.repeat(5000)}${i}`, message: 'y'.repeat(10_000) }));
    const r = readFailure(failure({ v: 1, kind: 'options', code: 'invalid-options', message: 'z'.repeat(100_000), issues }, false).message);
    expect(r.kind).toBe('options');
    expect(r.message.length).toBeLessThanOrEqual(8192);
    expect(r.issues?.length).toBe(64);
    expect(r.issues?.every((i) => i.path.length <= 1024 && i.message.length <= 2048)).toBe(true);
  });

  it("anything else in a job's reason is the infrastructure's, its text the message", () => {
    const forged = [
      'job stalled more than allowable limit',
      '{"v":1,"kind":"options"',
      JSON.stringify({ v: 1, kind: 'root', code: 'x', message: 'y' }),
      JSON.stringify({ v: 1, kind: 'options', code: 'x', message: 'y', extra: 1 }),
      JSON.stringify({ v: 1, kind: 'options', code: 'x', message: 'y', issues: [{ path: 'a'.repeat(2000), message: 'b' }] }),
      JSON.stringify({ v: 1, kind: 'setup', code: 'x', message: 'y', errno: -1 }),
      `{"v":1,"kind":"options","code":"x","message":"${'m'.repeat(300_000)}"}`,
    ];
    for (const reason of forged) {
      const r = readFailure(reason);
      expect(r.kind).toBe('infrastructure');
      expect(r.message.length).toBeLessThanOrEqual(8192);
      expect(reason.startsWith(r.message.replace(/…$/, ''))).toBe(true);
    }
    expect(readFailure(undefined)).toMatchObject({ kind: 'infrastructure', message: 'the job failed without a reason' });
    expect(new FarmJobError('j', 'closed')).toMatchObject({ kind: 'infrastructure', code: 'infrastructure', field: undefined, issues: [] });
  });
});
