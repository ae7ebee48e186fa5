// The farm's Redis addresses and label sets: what each form means, and errors that say what is wrong.
import { describe, expect, it } from 'vitest';

import { DEFAULT_PREFIX, parseRedisUrl, ReconnectGate, redisOptions, RedisUrlError } from '../../src/cluster/connection.js';
import { LabelError, parseLabels, queueName } from '../../src/cluster/queues.js';

describe('parseRedisUrl', () => {
  it('reads every form', () => {
    expect(parseRedisUrl('redis://queue:6380/2')).toEqual({ host: 'queue', port: 6380, db: 2 });
    expect(parseRedisUrl('redis://queue')).toEqual({ host: 'queue', port: 6379 });
    expect(parseRedisUrl('redis://us%40r:p%3Ass@[::1]:7000')).toEqual({ username: 'us@r', password: 'p:ss', host: '::1', port: 7000 });
    expect(parseRedisUrl('rediss://r.example:6380')).toEqual({ host: 'r.example', port: 6380, tls: { servername: 'r.example' } });
    expect(parseRedisUrl('unix:///run/redis/redis.sock?db=3')).toEqual({ path: '/run/redis/redis.sock', db: 3 });
    expect(parseRedisUrl('/tmp/r.sock')).toEqual({ path: '/tmp/r.sock' });
    expect(DEFAULT_PREFIX).toBe('sandcell');
  });

  it('refuses what it cannot mean, saying why', () => {
    for (const [url, why] of [
      ['', /non-empty/],
      ['queue:6379', /scheme must be redis:/],
      ['http://queue', /scheme must be redis:, rediss: or unix:/],
      ['redis://queue/x', /database must be a number/],
      ['not a url', /not a URL nor an absolute socket path/],
    ] as const) {
      expect(() => parseRedisUrl(url)).toThrow(RedisUrlError);
      expect(() => parseRedisUrl(url)).toThrow(why);
    }
  });

  it('every connection waits through a reconnect instead of failing its commands', () => {
    expect(redisOptions('redis://q', new ReconnectGate()).maxRetriesPerRequest).toBeNull();
    expect(redisOptions({ host: 'q', maxRetriesPerRequest: 3 }, new ReconnectGate()).maxRetriesPerRequest).toBeNull();
  });

  it('reconnects within 2 s while its part is open, never once it is closed', () => {
    const gate = new ReconnectGate();
    const retry = redisOptions('redis://q', gate).retryStrategy as (n: number) => number | null;
    expect([1, 2, 3, 5, 6, 50].map(retry)).toEqual([100, 200, 400, 1600, 2000, 2000]);
    const own = redisOptions({ host: 'q', retryStrategy: (n) => n * 7 }, gate).retryStrategy as (n: number) => number | null;
    expect(own(3)).toBe(21);
    gate.close();
    expect(retry(1)).toBeNull();
    expect(own(3)).toBeNull();
  });
});

describe('labels and queues', () => {
  it('one queue per label set, whatever the order', () => {
    expect(queueName()).toBe('runs');
    expect(queueName(parseLabels('images=debian,gpu=none'))).toBe('runs[gpu=none,images=debian]');
    expect(queueName({ images: 'debian', gpu: 'none' })).toBe(queueName({ gpu: 'none', images: 'debian' }));
  });

  it('refuses labels that would not make a queue name', () => {
    expect(() => parseLabels('images')).toThrow(LabelError);
    expect(() => parseLabels('a=1,a=2')).toThrow(/given twice/);
    expect(() => parseLabels('a:b=1')).toThrow(/label key/);
    expect(() => queueName({ a: 'x]' })).toThrow(/value/);
  });
});
