/**
 * Sizes and durations as people write them ("256MiB", "1.5s") turned into bytes and
 * milliseconds. Binary (KiB, MiB, GiB) and decimal (kB, MB, GB) units mean what they say.
 */

/** A size: bytes as a number, or a string such as "64k", "256MiB", "1.5GB". */
export type Size = number | string;
/** A duration: milliseconds as a number, or a string such as "1500ms", "2s", "1m". */
export type Duration = number | string;

const SIZE_UNITS: Readonly<Record<string, number>> = {
  '': 1,
  b: 1,
  k: 1024,
  kb: 1000,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1000 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1000 ** 3,
  gib: 1024 ** 3,
  t: 1024 ** 4,
  tb: 1000 ** 4,
  tib: 1024 ** 4,
};

const DURATION_UNITS: Readonly<Record<string, number>> = {
  '': 1,
  us: 0.001,
  µs: 0.001,
  ms: 1,
  s: 1000,
  m: 60_000,
  min: 60_000,
  h: 3_600_000,
};

const NUMBER_WITH_UNIT = /^\s*(\d+(?:\.\d+)?)\s*([a-zµ]*)\s*$/i;

/**
 * A size as the options take it (`limits.memory`, `tmpfsSize`, …) in whole bytes, rounded up:
 * `parseSize("256MiB")` is 268435456, `parseSize("1.5k")` 1536, `parseSize(4096)` 4096. For a
 * front end of one's own (flags, a config file) that should accept exactly what the options do.
 *
 * @returns the bytes, or, for anything else, a message saying what is expected (`must be a size
 *   such as …, got "12 parsecs"`), to be put after the name of the field or flag it came from.
 *   It never throws.
 */
export function parseSize(value: Size): number | string {
  return parseWith(value, SIZE_UNITS, 'a size such as 65536, "64KiB", "256MiB" or "1GB"', true);
}

/**
 * A duration as the options take it (`limits.wallTime`, `limits.cpuTime`, …) in milliseconds,
 * fractions kept: `parseDuration("2s")` is 2000, `parseDuration("250us")` 0.25,
 * `parseDuration(1500)` 1500.
 *
 * @returns the milliseconds, or, for anything else, a message saying what is expected, to be
 *   put after the name of the field or flag it came from. It never throws.
 */
export function parseDuration(value: Duration): number | string {
  return parseWith(value, DURATION_UNITS, 'a duration such as 1500, "1500ms", "2s" or "1m"', false);
}

function parseWith(value: Size, units: Readonly<Record<string, number>>, expected: string, whole: boolean): number | string {
  let amount: number;
  let factor = 1;
  if (typeof value === 'number') {
    amount = value;
  } else if (typeof value === 'string') {
    const m = NUMBER_WITH_UNIT.exec(value);
    const unit = m?.[2]?.toLowerCase();
    const f = unit === undefined ? undefined : units[unit];
    if (!m || f === undefined) return `must be ${expected}, got ${JSON.stringify(value)}`;
    amount = Number(m[1]);
    factor = f;
  } else {
    return `must be ${expected}`;
  }
  if (!Number.isFinite(amount) || amount < 0) return `must be ${expected} (not negative or infinite)`;
  const result = amount * factor;
  if (!Number.isSafeInteger(Math.ceil(result))) return 'is too large';
  return whole ? Math.ceil(result) : result;
}
