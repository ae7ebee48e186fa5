/**
 * One cgroup driver per parent for the whole process, opened on first use. The first open also
 * removes cgroups orphaned by sandcell processes that died; process exit removes our own parent
 * directories (run cgroups are removed by each run as it ends).
 */
import { rmdirSync } from 'node:fs';

import { cleanupOrphans, openCgroupDriver, type CgroupDriver } from '../cgroup/index.js';

export interface CgroupAvailability {
  driver: CgroupDriver | null;
  /** Why there is no driver (not root, no delegation, no controllers). */
  reason: string | null;
}

const drivers = new Map<string, Promise<CgroupAvailability>>();
let orphansSwept = false;
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const dir of openedParents) {
      try {
        rmdirSync(dir);
      } catch {
        // Still in use by a run that outlives us: its box dies with us (PDEATHSIG), and the next
        // sandcell process sweeps the empty directory as an orphan.
      }
    }
  });
}

const openedParents = new Set<string>();

async function open(parent: string | null): Promise<CgroupAvailability> {
  if (!orphansSwept) {
    orphansSwept = true;
    try {
      await cleanupOrphans(parent === null ? {} : { parent });
    } catch {
      // Best effort: an unreadable layout shows up again, with a reason, in the open below.
    }
  }
  const opened = await openCgroupDriver(parent === null ? {} : { parent });
  if (opened.driver === null) return { driver: null, reason: opened.reason };
  for (const dir of Object.values(opened.driver.parents)) openedParents.add(dir);
  installExitHook();
  return { driver: opened.driver, reason: null };
}

/** The driver for a parent (null: the default below this process's own cgroup). */
export function cgroupsFor(parent: string | null): Promise<CgroupAvailability> {
  const key = parent ?? '';
  let pending = drivers.get(key);
  if (!pending) {
    pending = open(parent);
    drivers.set(key, pending);
  }
  return pending;
}
