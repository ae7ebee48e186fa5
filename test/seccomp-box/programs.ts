/**
 * The programs the seccomp-box suites run inside real boxes (sources and scripts in ./programs),
 * bound read-only at /progs. Java is built only when javac is present (and then its tests run;
 * they are not silently skipped: they say so in their name).
 */
import { spawnSync, execFileSync } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { buildFixtureSet, type Fixtures } from '../helpers/fixtures.js';

export const SOURCES = join(dirname(fileURLToPath(import.meta.url)), 'programs');

export interface Programs extends Fixtures {
  /** The real java binary (not the /etc/alternatives symlink: /etc inside the box is generated), or null. */
  java: string | null;
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
  const built = buildFixtureSet({ sources: [SOURCES], target: '/progs', copyOthers: true });
  const java = javaHome();
  if (java && existsSync(join(SOURCES, 'Workload.java'))) {
    execFileSync('javac', ['-d', built.dir, join(SOURCES, 'Workload.java')], { stdio: 'inherit' });
    for (const f of readdirSync(built.dir).filter((f) => f.endsWith('.class'))) chmodSync(join(built.dir, f), 0o644);
  }
  return { ...built, java };
}
