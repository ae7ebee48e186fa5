/**
 * The one reader of the command line's flags, shared by every verb: `--flag value` and
 * `--flag=value` alike, values checked here with errors naming the flag.
 */
import { parseDuration, parseSize } from '../units.js';

/** A command line that cannot be read: the message names the flag and what is wrong. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export interface Flag {
  /** The argument as given (`--x=1`). */
  readonly raw: string;
  /** The flag's name (`--x`). */
  readonly flag: string;
  /** Its value: after `=`, else the next argument (taken, so it is not read as a flag). */
  value(): string;
  /** Whether it is a flag at all (`-x`, `--x`), not an operand, `-` or `--`. */
  readonly isFlag: boolean;
  /** The arguments after this one (or after its value, once taken). */
  rest(): string[];
}

export function* flagsOf(args: readonly string[]): Generator<Flag> {
  let i = 0;
  while (i < args.length) {
    const raw = args[i] as string;
    const eq = raw.indexOf('=');
    const flag = raw.startsWith('--') && eq > 0 ? raw.slice(0, eq) : raw;
    yield {
      raw,
      flag,
      value: () => {
        if (flag !== raw) return raw.slice(eq + 1);
        const next = args[++i];
        if (next === undefined) throw new UsageError(`${flag} needs a value`);
        return next;
      },
      isFlag: raw.startsWith('-') && raw !== '-' && raw !== '--',
      rest: () => args.slice(i + 1),
    };
    i++;
  }
}

/** The error for a flag the verb does not take. */
export function unknownFlag(raw: string, verb: string): never {
  throw new UsageError(`unknown option ${raw} (see sandcell ${verb} --help)`);
}

/** An integer from `min` to `max`. */
export function integerOf(flag: string, v: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isInteger(n) || n < min || n > max) {
    throw new UsageError(`${flag} needs an integer ${max === Number.MAX_SAFE_INTEGER ? `of at least ${min}` : `from ${min} to ${max}`}, got ${JSON.stringify(v)}`);
  }
  return n;
}

export function positiveDuration(flag: string, v: string): number {
  const n = parseDuration(v);
  if (typeof n === 'string' || n <= 0) throw new UsageError(`${flag}: ${typeof n === 'string' ? n : 'must be greater than zero'}`);
  return n;
}

export function sizeOf(flag: string, v: string): number {
  const n = parseSize(v);
  if (typeof n === 'string') throw new UsageError(`${flag}: ${n}`);
  return n;
}
