/**
 * The programs tests run, built from their C and C++ sources with the host's toolchain: the one
 * place the tests call gcc and g++. A set of programs is built into a temp dir that tests bind
 * read-only into boxes.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const TEST = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Builds one program: gcc for `.c`, g++ for `.cc`/`.cpp`. `static` for boxes without the host's libraries. */
export function compileProgram(source: string, output: string, opts: { static?: boolean } = {}): void {
  const cxx = /\.(cc|cpp)$/.test(source);
  const flags = ['-O1', '-Wall', '-pthread', ...(opts.static ? ['-static'] : [])];
  execFileSync(cxx ? 'g++' : 'gcc', [...flags, '-o', output, source], { stdio: ['ignore', 'inherit', 'inherit'] });
}

export interface Fixtures {
  dir: string;
  /** Path of a program or file inside the box. */
  inBox(name: string): string;
  bind: { source: string; target: string; readonly: true };
  remove(): void;
}

export interface FixtureSet {
  /** Directories of sources: `x.c` is built as `x`, `x.cc` as `x_cc`. */
  sources: string[];
  /** Where boxes see the built programs. */
  target: string;
  static?: boolean;
  /** Files that are neither sources nor headers (scripts) are copied along. */
  copyOthers?: boolean;
}

export function buildFixtureSet(set: FixtureSet): Fixtures {
  const dir = mkdtempSync(join(tmpdir(), 'sandcell-fixtures-'));
  // The box's user is an unprivileged host id: it must be able to enter the dir and read its files.
  chmodSync(dir, 0o755);
  for (const from of set.sources) {
    for (const file of readdirSync(from)) {
      const src = join(from, file);
      if (file.endsWith('.c')) compileProgram(src, join(dir, basename(file, '.c')), set);
      else if (file.endsWith('.cc')) compileProgram(src, join(dir, `${basename(file, '.cc')}_cc`), set);
      else if (set.copyOthers && !file.endsWith('.h')) {
        copyFileSync(src, join(dir, file));
        chmodSync(join(dir, file), 0o644);
      }
    }
  }
  return {
    dir,
    inBox: (name) => `${set.target}/${name}`,
    bind: { source: dir, target: set.target, readonly: true },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** test/fixtures/*.c, at /fixtures. */
export function buildFixtures(): Fixtures {
  return buildFixtureSet({ sources: [join(TEST, 'fixtures')], target: '/fixtures' });
}
