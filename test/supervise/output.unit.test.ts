// stdout and stderr share one output budget: bytes past it are dropped (the caller gets exactly
// the limit), the stream that overflowed is flagged, and the run is ended once.
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';

import { describe, expect, it } from 'vitest';

import { OutputBudget } from '../../src/limits/output.js';
import { MeteredStream, outputText } from '../../src/supervise/io.js';

function budget(limit: number) {
  const ends: number[] = [];
  const b = new OutputBudget(limit, () => ends.push(ends.length));
  return { b, ends };
}

describe('OutputBudget.admit', () => {
  it('lets everything through up to the limit, exactly at the limit included', () => {
    const { b, ends } = budget(10);
    const out = { truncated: false };
    const chunk = Buffer.from('12345');
    expect(b.admit(chunk, out)).toBe(chunk);
    expect(b.admit(Buffer.from('67890'), out)?.toString()).toBe('67890');
    expect(out.truncated).toBe(false);
    expect(ends).toEqual([]);
  });

  it('across two streams: the one that crosses the limit keeps its head and is flagged; later bytes of either are dropped', () => {
    const { b, ends } = budget(8);
    const stdout = { truncated: false };
    const stderr = { truncated: false };
    expect(b.admit(Buffer.from('out12'), stdout)?.toString()).toBe('out12');
    expect(b.admit(Buffer.from('err12'), stderr)?.toString()).toBe('err');
    expect([stdout.truncated, stderr.truncated]).toEqual([false, true]);
    expect(b.admit(Buffer.from('more'), stdout)).toBeUndefined();
    expect([stdout.truncated, stderr.truncated]).toEqual([true, true]);
    expect(ends).toEqual([0]);
  });

  it('ends the run once however many chunks are dropped', () => {
    const { b, ends } = budget(1);
    const sink = { truncated: false };
    for (let i = 0; i < 5; i++) b.admit(Buffer.from('ab'), sink);
    expect(ends).toHaveLength(1);
  });

  it('an empty chunk never ends the run, even with the budget spent', () => {
    const { b, ends } = budget(0);
    const sink = { truncated: false };
    expect(b.admit(Buffer.alloc(0), sink)?.length).toBe(0);
    expect(ends).toEqual([]);
    expect(b.admit(Buffer.from('x'), sink)).toBeUndefined();
    expect([sink.truncated, ends]).toEqual([true, [0]]);
  });
});

describe('MeteredStream (the streams spawn() hands out)', () => {
  it('two metered streams together yield exactly the limit, and only the overflowing one is flagged', async () => {
    const { b, ends } = budget(10);
    const stdout = new MeteredStream(b);
    const stderr = new MeteredStream(b);
    const outText = text(stdout);
    stdout.write('aaaaaa');
    stdout.end();
    await outText;
    const errText = text(stderr);
    stderr.write('bbb');
    stderr.write('bbbbbb');
    stderr.end();
    expect([await outText, await errText]).toEqual(['aaaaaa', 'bbbb']);
    expect([stdout.truncated, stderr.truncated]).toEqual([false, true]);
    expect(ends).toEqual([0]);
  });

  it('passes a stream under the limit through unchanged', async () => {
    const { b } = budget(1 << 20);
    const metered = Readable.from([Buffer.from('hello '), Buffer.from('world')]).pipe(new MeteredStream(b));
    expect(await text(metered)).toBe('hello world');
    expect(metered.truncated).toBe(false);
  });
});

describe('outputText (how run() decodes what it kept)', () => {
  it('ASCII output comes back byte for byte', () => {
    const line = 'a+b=3\n'.repeat(1000);
    expect(outputText(Buffer.from(line))).toBe(line);
  });

  it('UTF-8 is decoded, and a byte that is no UTF-8 becomes U+FFFD as before', () => {
    expect(outputText(Buffer.from('café ✓'))).toBe('café ✓');
    expect(outputText(Buffer.from([0x61, 0xff, 0x62]))).toBe('a\ufffdb');
    expect(outputText(undefined)).toBe('');
  });
});
