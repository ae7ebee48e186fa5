/**
 * Small C programs the tests run inside boxes, compiled with the host's gcc into a temp dir that
 * the tests bind into the box at /fixtures.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const SOURCES = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures');

export interface Fixtures {
  dir: string;
  /** Path of a fixture inside the box. */
  inBox(name: string): string;
  bind: { source: string; target: string };
  remove(): void;
}

export function buildFixtures(): Fixtures {
  const dir = mkdtempSync(join(tmpdir(), 'sandcell-fixtures-'));
  // The box's user is an unprivileged host id: it must be able to enter the dir.
  chmodSync(dir, 0o755);
  for (const file of readdirSync(SOURCES).filter((f) => f.endsWith('.c'))) {
    execFileSync('gcc', ['-O1', '-pthread', '-o', join(dir, basename(file, '.c')), join(SOURCES, file)], { stdio: 'inherit' });
  }
  return {
    dir,
    inBox: (name) => `/fixtures/${name}`,
    bind: { source: dir, target: '/fixtures' },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
