/**
 * A problem file read and checked: every path found below the problem's directory, every test
 * expanded, the three role profiles (`run`, `build`, `trusted`) resolved. Anything wrong is a
 * DeclarationError naming the line.
 */
import { existsSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { basename, dirname, extname, join, resolve, sep } from 'node:path';

import { DeclarationError, mergeOptions, Profiles, Source, type DeclarationIssue, type PathPart, type Profile } from '../profiles/index.js';
import { problemSchema, type ProblemFile, type ProgramDecl } from './schema.js';

export interface Language {
  source: string;
  build: string[] | null;
  run: string[];
}

export interface Test {
  name: string;
  /** Host paths. */
  input: string;
  answer: string | null;
}

/** A checker or interactor: its files by their name in the box, and host path. */
export interface TrustedProgram {
  files: { name: string; path: string }[];
  build: string[] | null;
  run: string[];
}

export type Role = 'run' | 'build' | 'trusted';

export interface Problem {
  file: string;
  dir: string;
  name: string;
  languages: Record<string, Language>;
  tests: Test[];
  checker: TrustedProgram | null;
  interactor: TrustedProgram | null;
  /** Each role's options: the role's defaults with the profile of the role's name over them. */
  profiles: Record<Role, Profile>;
}

/**
 * What a role gets when no profile says otherwise. The submission's build gets generous limits
 * and no network (the library's default); a test run gets the limits of a typical problem.
 */
export const ROLE_DEFAULTS: Readonly<Record<Role, Profile>> = {
  build: { limits: { cpuTime: '30s', wallTime: '60s', memory: '1GiB', processes: 64, output: '1MiB' } },
  run: { limits: { cpuTime: '1s', wallTime: '3s', memory: '256MiB' } },
  trusted: { limits: { cpuTime: '10s', wallTime: '30s', memory: '1GiB', processes: 64 } },
};

/**
 * Fields that make the box rather than a run in it (the working directory too: the box puts the
 * sources there). The build happens in the box its tests run in.
 */
export const SHAPE_FIELDS = ['image', 'writable', 'binds', 'mounts', 'network', 'hostname', 'cwd'] as const;

export interface LoadOptions {
  /** A sandcell.yaml; by default the nearest one at or above the problem's directory, else the current directory's, if any. */
  config?: string;
}

export function loadProblem(file: string, options: LoadOptions = {}): Problem {
  const source = Source.read(file);
  const checked = problemSchema.safeParse(source.value);
  if (!checked.success) throw new DeclarationError(source.zodIssues(checked.error));
  const p = checked.data;
  const dir = realpathSync(dirname(resolve(file)));
  const issues: DeclarationIssue[] = [];
  const inDir = (rel: string, at: readonly PathPart[]): string | null => {
    const full = join(dir, rel);
    let real: string;
    try {
      real = realpathSync(full);
    } catch {
      issues.push(source.issue(at, `does not exist (${rel})`));
      return null;
    }
    if (!real.startsWith(dir + sep)) {
      issues.push(source.issue(at, `leaves the problem's directory (${rel} is ${real})`));
      return null;
    }
    if (!statSync(real).isFile()) {
      issues.push(source.issue(at, `is not a file (${rel})`));
      return null;
    }
    return real;
  };

  const tests = expandTests(p, dir, source, inDir, issues);
  const program = (decl: ProgramDecl | undefined, key: string): TrustedProgram | null => {
    if (!decl) return null;
    const names = typeof decl.source === 'string' ? [decl.source] : decl.source;
    const files = names.flatMap((name, i) => {
      const path = inDir(name, typeof decl.source === 'string' ? [key, 'source'] : [key, 'source', i]);
      return path ? [{ name, path }] : [];
    });
    return { files, build: decl.build ?? null, run: decl.run };
  };
  const checker = program(p.checker, 'checker');
  const interactor = program(p.interactor, 'interactor');

  // The profiles as written (sizes and durations unparsed), as sandcell.yaml's are kept.
  const profiles = configFor(file, options).with(source, ['profiles'], (source.value as { profiles?: unknown }).profiles);
  const roles = {} as Record<Role, Profile>;
  for (const role of ['run', 'build', 'trusted'] as const) {
    roles[role] = mergeOptions(ROLE_DEFAULTS[role], profiles.has(role) ? profiles.resolve(role) : {});
  }
  for (const f of SHAPE_FIELDS) {
    const b = roles.build[f];
    if (b !== undefined && JSON.stringify(b) !== JSON.stringify(roles.run[f])) {
      issues.push(source.issue(['profiles', 'build', f], `differs from the run profile's: the submission is built in the box its tests run in, so ${f} is the run profile's to set`));
    }
  }
  if (issues.length > 0) throw new DeclarationError(issues);

  const languages: Record<string, Language> = {};
  for (const [name, l] of Object.entries(p.languages)) languages[name] = { source: l.source, build: l.build ?? null, run: l.run };
  return { file: resolve(file), dir, name: p.name, languages, tests, checker, interactor, profiles: roles };
}

function configFor(problemFile: string, options: LoadOptions): Profiles {
  if (options.config !== undefined) return Profiles.fromSource(Source.read(options.config), options.config);
  const found = nearestConfig(dirname(resolve(problemFile))) ?? (existsSync('sandcell.yaml') ? 'sandcell.yaml' : null);
  return found ? Profiles.fromSource(Source.read(found), found) : Profiles.empty();
}

/** The sandcell.yaml in `dir` or the nearest directory above it. */
function nearestConfig(dir: string): string | null {
  for (let d = dir; ; d = dirname(d)) {
    const candidate = join(d, 'sandcell.yaml');
    if (existsSync(candidate)) return candidate;
    if (dirname(d) === d) return null;
  }
}

function expandTests(
  p: ProblemFile,
  dir: string,
  source: Source,
  inDir: (rel: string, at: readonly PathPart[]) => string | null,
  issues: DeclarationIssue[],
): Test[] {
  const tests: Test[] = [];
  const interactive = p.interactor !== undefined;
  p.tests.forEach((t, i) => {
    if (t.input !== undefined) {
      const input = inDir(t.input, ['tests', i, 'input']);
      let answer: string | null = null;
      if (t.answer !== undefined) answer = inDir(t.answer, ['tests', i, 'answer']);
      else if (!interactive) issues.push(source.issue(['tests', i], 'needs an answer (only an interactive problem may do without)'));
      if (input) tests.push({ name: stem(t.input), input, answer });
      return;
    }
    const pattern = t.glob as string;
    const matches = glob(dir, pattern);
    if (matches.length === 0) issues.push(source.issue(['tests', i, 'glob'], `matches no file (${pattern})`));
    for (const rel of matches) {
      const input = inDir(rel, ['tests', i, 'glob']);
      const answerRel = rel.slice(0, rel.length - extname(rel).length) + '.ans';
      let answer: string | null = null;
      if (existsSync(join(dir, answerRel))) answer = inDir(answerRel, ['tests', i, 'glob']);
      else if (!interactive) issues.push(source.issue(['tests', i, 'glob'], `has no answer for ${rel} (expected ${answerRel})`));
      if (input) tests.push({ name: stem(rel), input, answer });
    }
  });
  const seen = new Set<string>();
  for (const t of tests) {
    if (seen.has(t.name)) issues.push(source.issue(['tests'], `name ${t.name} is given to two tests (names are the inputs' stems)`));
    seen.add(t.name);
  }
  return tests;
}

function stem(path: string): string {
  const b = basename(path);
  return b.slice(0, b.length - extname(b).length) || b;
}

/** Files below `dir` matching `pattern` (`*` and `?` within one name), sorted. */
function glob(dir: string, pattern: string): string[] {
  let found = [''];
  for (const part of pattern.split('/').filter((p) => p !== '' && p !== '.')) {
    const next: string[] = [];
    if (!/[*?]/.test(part)) {
      for (const f of found) if (existsSync(join(dir, f, part))) next.push(f ? `${f}/${part}` : part);
    } else {
      const re = new RegExp(`^${part.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]')}$`);
      for (const f of found) {
        let entries: string[];
        try {
          entries = readdirSync(join(dir, f));
        } catch {
          continue;
        }
        for (const e of entries.sort()) if (re.test(e) && !e.startsWith('.')) next.push(f ? `${f}/${e}` : e);
      }
    }
    found = next;
  }
  return found.sort();
}
