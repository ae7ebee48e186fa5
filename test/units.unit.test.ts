// Sizes and durations as callers write them: each unit means what it says, and anything else is
// refused with a message saying what was expected (never thrown, never NaN).
import { describe, expect, it } from 'vitest';

import { parseDuration, parseSize } from '../src/units.js';

describe('parseSize', () => {
  it.each([
    [65536, 65536],
    ['512', 512],
    ['10b', 10],
    ['64k', 64 * 1024],
    ['64KiB', 64 * 1024],
    ['64kB', 64_000],
    ['256MiB', 256 * 1024 ** 2],
    ['256 mb', 256_000_000],
    ['1.5GiB', 1.5 * 1024 ** 3],
    ['2GB', 2_000_000_000],
    ['1TiB', 1024 ** 4],
    [' 3 M ', 3 * 1024 ** 2],
  ])('%j is %d bytes', (input, bytes) => {
    expect(parseSize(input)).toBe(bytes);
  });

  it('rounds a fraction of a byte up to whole bytes', () => {
    expect(parseSize(1.2)).toBe(2);
    expect(parseSize('1.5b')).toBe(2);
  });

  it.each(['', 'MiB', '1 MiBs', '1PiB', '-1MiB', '0x10', '1e3', '1,5MiB'])('refuses %j, naming what was given', (input) => {
    expect(parseSize(input)).toBe(`must be a size such as 65536, "64KiB", "256MiB" or "1GB", got ${JSON.stringify(input)}`);
  });

  it('refuses negative, infinite and unsafe numbers and other types', () => {
    expect(parseSize(-1)).toMatch(/not negative or infinite/);
    expect(parseSize(Infinity)).toMatch(/not negative or infinite/);
    expect(parseSize(NaN)).toMatch(/not negative or infinite/);
    expect(parseSize('9999999999TiB')).toBe('is too large');
    expect(parseSize(true as unknown as number)).toBe('must be a size such as 65536, "64KiB", "256MiB" or "1GB"');
  });
});

describe('parseDuration', () => {
  it.each([
    [1500, 1500],
    ['1500', 1500],
    ['250us', 0.25],
    ['250µs', 0.25],
    ['1500ms', 1500],
    ['2s', 2000],
    ['1.5s', 1500],
    ['1m', 60_000],
    ['2min', 120_000],
    ['1h', 3_600_000],
  ])('%j is %d ms', (input, ms) => {
    expect(parseDuration(input)).toBe(ms);
  });

  it('keeps fractions of a millisecond (no rounding to whole units)', () => {
    expect(parseDuration(0.5)).toBe(0.5);
  });

  it.each(['1d', '1 sec', 's', '-1s', '1e3ms'])('refuses %j, naming what was given', (input) => {
    expect(parseDuration(input)).toBe(`must be a duration such as 1500, "1500ms", "2s" or "1m", got ${JSON.stringify(input)}`);
  });

  it('refuses negative and infinite numbers', () => {
    expect(parseDuration(-5)).toMatch(/not negative or infinite/);
    expect(parseDuration(-Infinity)).toMatch(/not negative or infinite/);
  });
});
