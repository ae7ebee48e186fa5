/**
 * The one reader of the command line's flags, shared by every verb: `--flag value` and
 * `--flag=value` alike, values checked here with errors naming the flag.
 */
import { parseRedisUrl, RedisUrlError } from '../cluster/connection.js';
import { LabelError, parseLabels, type Labels } from '../cluster/queues.js';
// From their own module, not the library's entry: a command that only talks to a daemon then
// loads none of the engine.
import { parseDuration, parseSize } from '../units.js';
import { UsageError } from './usage.js';

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

/** What a verb's flags are: `value` takes one (the last given wins), `list` one each time (all kept), `switch` none. */
export type FlagSpec = Readonly<Record<string, 'value' | 'list' | 'switch'>>;

export interface ReadFlags {
  /** The value of a `value` flag, or undefined when not given. */
  value(flag: string): string | undefined;
  /** Every value of a `list` flag, in order. */
  list(flag: string): string[];
  /** Whether a `switch` (or any flag) was given. */
  has(flag: string): boolean;
  /** The arguments not read as flags, in order (before `--`). */
  operands: string[];
  /** The arguments after `--` (empty without one). */
  after: string[];
}

/**
 * Reads a verb's flags from `args` up to `--`. A flag not in `spec` is refused naming it, unless
 * `passOn` is set: then it stays among the operands (in order, with `--` and what follows it) for
 * a reader further on, as `sandcell service create` hands the box's flags to the run parser.
 */
export function readFlags(args: readonly string[], spec: FlagSpec, verb: string, passOn = false): ReadFlags {
  const values = new Map<string, string[]>();
  const operands: string[] = [];
  let after: string[] = [];
  for (const f of flagsOf(args)) {
    if (f.raw === '--') {
      if (passOn) operands.push('--', ...f.rest());
      else after = f.rest();
      break;
    }
    const kind = spec[f.flag];
    if (kind === undefined) {
      if (f.isFlag && !passOn) unknownFlag(f.raw, verb);
      operands.push(f.raw);
      continue;
    }
    if (kind === 'switch' && f.flag !== f.raw) throw new UsageError(`${f.flag} takes no value`);
    const v = kind === 'switch' ? '' : f.value();
    values.set(f.flag, kind === 'list' ? [...(values.get(f.flag) ?? []), v] : [v]);
  }
  return {
    value: (flag) => values.get(flag)?.at(-1),
    list: (flag) => values.get(flag) ?? [],
    has: (flag) => values.has(flag),
    operands,
    after,
  };
}

/** A farm's Redis URL or socket path, checked as the farm reads it (the URL itself is what is passed on). */
export function redisUrlOf(flag: string, v: string): string {
  try {
    parseRedisUrl(v);
  } catch (e) {
    if (e instanceof RedisUrlError) throw new UsageError(`${flag}: ${e.message}`);
    throw e;
  }
  return v;
}

/** Farm labels (`key=value,...`). */
export function labelsOf(flag: string, v: string): Labels {
  try {
    return parseLabels(v);
  } catch (e) {
    if (e instanceof LabelError) throw new UsageError(`${flag}: ${e.message}`);
    throw e;
  }
}
