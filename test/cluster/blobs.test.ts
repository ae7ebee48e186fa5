// Inputs as content-addressed blobs: a 20 MB input shared by many runs is uploaded once and
// fetched at most once per worker; limits and TTL hold; a blob that is not what its name says is
// refused.
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { connectCluster, BlobError, FarmJobError, type Farm } from '../../src/cluster/index.js';
import { startFarm, type TestFarm } from './workers.js';

describe('blobs', () => {
  let t: TestFarm;
  let farm: Farm;

  beforeAll(async () => {
    t = await startFarm(['b1', 'b2', 'b3'], { concurrency: 2 });
    farm = t.farm;
  }, 240_000);

  afterAll(async () => {
    await t?.stop();
  }, 120_000);

  it('a 20 MB input used by 100 runs: uploaded once, fetched at most once per worker', async () => {
    const input = Buffer.alloc(20 * 1024 * 1024, 'a');
    input.write('the end', input.length - 7);
    const sum = createHash('sha256').update(input).digest('hex');
    const results = await Promise.all(
      Array.from({ length: 100 }, () => farm.run({ command: ['/usr/bin/sha256sum'], stdin: input })),
    );
    for (const r of results) expect(r.stdout).toBe(`${sum}  -\n`);
    expect(farm.blobs.uploads).toBe(1);
    const ref = `sha256:${sum}`;
    for (const w of t.workers) {
      const fetched = w.events().filter((e) => e.event === 'blob-fetch' && e.blob === ref).length;
      expect(fetched).toBeLessThanOrEqual(1);
    }
    expect(new Set(results.map((r) => r.placement.worker)).size).toBeGreaterThan(1);
    const ttl = await farm.redis.pttl(`sandcell:blob:${ref}`);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(24 * 3600_000);
    // 100 boxes each given 20 MB on a loaded 2-core machine.
  }, 300_000);

  it('a blob over the size limit is refused before anything is queued', async () => {
    const small = connectCluster({ redis: t.redis.url, blobs: { maxBytes: 1024 * 1024 } });
    try {
      const e = await small.run({ command: ['/bin/true'], stdin: Buffer.alloc(2 * 1024 * 1024) }).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(BlobError);
      expect((e as Error).message).toMatch(/over the limit of 1048576 bytes/);
    } finally {
      await small.close();
    }
  });

  it('a blob that is not what its name says, or is gone, fails the job after bounded retries', async () => {
    const data = Buffer.alloc(64 * 1024, 'b');
    const ref = await farm.blobs.put(data);
    await farm.redis.set(`sandcell:blob:${ref}`, Buffer.alloc(64 * 1024, 'c'));
    const e = await farm.run({ command: ['/bin/true'], stdin: data }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(FarmJobError);
    expect((e as Error).message).toMatch(/does not hold what its name says/);
    expect(e).toMatchObject({ kind: 'infrastructure', code: 'infrastructure', field: undefined });
    const job = await farm.queue().getJob((e as FarmJobError).jobId);
    expect(job?.attemptsMade).toBe(3);
  }, 30_000);
});
