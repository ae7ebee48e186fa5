/**
 * Named profiles: a box shape and program defaults declared once (sandcell.yaml) and applied to
 * runs by name. A profile may `extends` another: the other's values first, then its own over them
 * (maps such as `limits` and `env` merge key by key; lists such as `binds` are replaced).
 */
import { existsSync } from 'node:fs';

import type { BoxOptions } from '../index.js';
import { configSchema, profilesMapSchema } from './schema.js';
import { DeclarationError, Source, type DeclarationIssue, type PathPart } from './source.js';

/** A resolved profile: options `run()`, `spawn()` and `Sandbox.create()` take, without a command. */
export type Profile = Omit<BoxOptions, 'command' | 'signal' | 'files' | 'user' | 'cgroupParent'>;

type Raw = Record<string, unknown>;

interface Entry {
  readonly raw: Raw;
  /** Where it was written, for errors about its `extends`. */
  readonly source: Source;
  readonly path: readonly PathPart[];
}

/** Keys whose values merge key by key; every other value is replaced as a whole. */
const MAP_KEYS = new Set(['limits', 'env']);

function isPlainObject(v: unknown): v is Raw {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && Object.getPrototypeOf(v) === Object.prototype;
}

/** `over`'s values over `base`'s: maps in MAP_KEYS merge, anything else is replaced. */
export function mergeOptions<T extends object>(base: object, over: T): T {
  const out: Raw = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) continue;
    const b = out[k];
    out[k] = MAP_KEYS.has(k) && isPlainObject(b) && isPlainObject(v) ? { ...b, ...v } : v;
  }
  return out as T;
}

export class Profiles {
  /** The file they were read from (null: none). */
  readonly file: string | null;
  private readonly entries: ReadonlyMap<string, Entry>;

  private constructor(file: string | null, entries: ReadonlyMap<string, Entry>) {
    this.file = file;
    this.entries = entries;
  }

  static empty(): Profiles {
    return new Profiles(null, new Map());
  }

  /** Parses a sandcell.yaml; throws DeclarationError naming the line of anything wrong. */
  static fromSource(source: Source, file: string | null = source.file): Profiles {
    const checked = configSchema.safeParse(source.value ?? {});
    if (!checked.success) throw new DeclarationError(source.zodIssues(checked.error));
    const profiles = new Profiles(file, entriesOf(source, ['profiles'], (source.value as Raw).profiles as Record<string, Raw>));
    profiles.check();
    return profiles;
  }

  /** Names of the profiles, in the order they were written. */
  names(): string[] {
    return [...this.entries.keys()];
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  description(name: string): string | undefined {
    return this.entries.get(name)?.raw.description as string | undefined;
  }

  /**
   * These profiles with `map` (the `profiles` of another file, at `path` in `source`) merged over
   * them: a name both declare gets the other's values over these ones'.
   */
  with(source: Source, path: readonly PathPart[], map: unknown): Profiles {
    const checked = profilesMapSchema.safeParse(map ?? {});
    if (!checked.success) throw new DeclarationError(source.zodIssues(checked.error, path));
    const entries = new Map(this.entries);
    for (const [name, e] of entriesOf(source, path, map as Record<string, Raw>)) {
      const base = entries.get(name);
      entries.set(name, base ? { ...e, raw: mergeOptions(base.raw, e.raw) } : e);
    }
    const merged = new Profiles(this.file, entries);
    merged.check();
    return merged;
  }

  /** A profile with its `extends` chain applied. */
  resolve(name: string): Profile {
    if (!this.entries.has(name)) throw this.unknown(name);
    const { description: _d, extends: _e, ...values } = this.chain(name).reduce<Raw>((acc, e) => mergeOptions(acc, e.raw), {});
    return values as Profile;
  }

  private unknown(name: string): DeclarationError {
    const known = this.names();
    return new DeclarationError([
      {
        file: this.file ?? 'profiles',
        line: 0,
        path: '',
        message: `no profile named ${JSON.stringify(name)} (${known.length > 0 ? `known: ${known.join(', ')}` : 'none declared'})`,
      },
    ]);
  }

  /** The profiles from the root of `name`'s chain down to `name`. */
  private chain(name: string): Entry[] {
    const out: Entry[] = [];
    // check() made sure every chain ends.
    for (let at: string | undefined = name; at !== undefined; ) {
      const e = this.entries.get(at) as Entry;
      out.unshift(e);
      at = e.raw.extends as string | undefined;
    }
    return out;
  }

  /** Every `extends` names a profile, and no chain comes back to where it started. */
  private check(): void {
    const issues: DeclarationIssue[] = [];
    for (const [name, e] of this.entries) {
      const seen = [name];
      // Each profile answers for its own `extends`; one leading into a broken chain is not told twice.
      for (let at = e.raw.extends as string | undefined; at !== undefined; ) {
        const next = this.entries.get(at);
        if (!next) {
          if (seen.length === 1) issues.push(e.source.issue([...e.path, 'extends'], `no profile named ${JSON.stringify(at)} to extend`));
          break;
        }
        if (seen.includes(at)) {
          if (at === name) issues.push(e.source.issue([...e.path, 'extends'], `extends itself: ${[...seen, at].join(' → ')}`));
          break;
        }
        seen.push(at);
        at = next.raw.extends as string | undefined;
      }
    }
    if (issues.length > 0) throw new DeclarationError(issues);
  }
}

function entriesOf(source: Source, path: readonly PathPart[], map: Record<string, Raw> | undefined): Map<string, Entry> {
  return new Map(Object.entries(map ?? {}).map(([name, raw]) => [name, { raw, source, path: [...path, name] }]));
}

/**
 * Reads profiles from `file`. Without a file given, `sandcell.yaml` in the current directory is
 * read when there is one; otherwise there are no profiles.
 */
export function loadProfiles(file?: string): Profiles {
  if (file === undefined) return existsSync('sandcell.yaml') ? Profiles.fromSource(Source.read('sandcell.yaml')) : Profiles.empty();
  return Profiles.fromSource(Source.read(file), file);
}

/**
 * `options` over the profile `name`: what a run asks for itself wins; `limits` and `env` merge
 * key by key. The result is validated by `run()` as any options are.
 */
export function withProfile<T extends object>(profiles: Profiles, name: string, options: T): Profile & T {
  return mergeOptions(profiles.resolve(name), options) as Profile & T;
}
