/**
 * The programs the seccomp-box suites run inside real boxes (sources in ./programs), built with
 * the host's toolchains into a temp dir that the tests bind read-only at /progs. Java is built
 * only when javac is present (and then its tests run; they are not silently skipped: they say so
 * in their name).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdtempSync, readdirSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const SOURCES = join(dirname(fileURLToPath(import.meta.url)), 'programs');
export const IN_BOX = '/progs';

export interface Programs {
  dir: string;
  bind: { source: string; target: string; readonly: true };
  /** Path inside the box of a built program or a copied script. */
  path(name: string): string;
  /** The real java binary (not the /etc/alternatives symlink: /etc inside the box is generated), or null. */
  java: string | null;
  remove(): void;
}

export function javaHome(): string | null {
  if (spawnSync('javac', ['-version'], { stdio: 'ignore' }).status !== 0) return null;
  try {
    const java = realpathSync('/usr/bin/java');
    return java.startsWith('/usr/') ? java : null;
  } catch {
    return null;
  }
}

export function buildPrograms(): Programs {
  const dir = mkdtempSync(join(tmpdir(), 'sandcell-seccomp-box-'));
  // The box's user is an unprivileged host id: it must be able to enter the dir.
  chmodSync(dir, 0o755);
  for (const file of readdirSync(SOURCES)) {
    const src = join(SOURCES, file);
    const out = join(dir, basename(file).replace(/\.(c|cc)$/, ''));
    if (file.endsWith('.c')) {
      execFileSync('gcc', ['-O2', '-Wall', '-pthread', '-o', out, src], { stdio: 'inherit' });
    } else if (file.endsWith('.cc')) {
      execFileSync('g++', ['-O2', '-Wall', '-pthread', '-o', `${out}_cc`, src], { stdio: 'inherit' });
    } else {
      copyFileSync(src, join(dir, file));
      chmodSync(join(dir, file), 0o644);
    }
  }
  const java = javaHome();
  if (java && existsSync(join(SOURCES, 'Workload.java'))) {
    execFileSync('javac', ['-d', dir, join(SOURCES, 'Workload.java')], { stdio: 'inherit' });
    for (const f of readdirSync(dir).filter((f) => f.endsWith('.class'))) chmodSync(join(dir, f), 0o644);
  }
  return {
    dir,
    bind: { source: dir, target: IN_BOX, readonly: true },
    path: (name) => `${IN_BOX}/${name}`,
    java,
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
