/** The `--flag value` / `--flag=value` reading shared by the verbs with options of their own. */
import { parseDuration, parseSize } from '../units.js';
import { UsageError } from './args.js';

export interface Flag {
  /** The argument as given (`--x=1`). */
  readonly raw: string;
  /** The flag's name (`--x`). */
  readonly flag: string;
  /** Its value: after `=`, else the next argument (taken, so it is not read as a flag). */
  value(): string;
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
    };
    i++;
  }
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
