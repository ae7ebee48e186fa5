/**
 * What sandcell keeps between runs (boxes built ahead, cgroups made ahead) and how an embedding
 * service tunes it or gives it back. A normal process exit releases it all by itself; a service
 * that ends on a signal of its own calls `shutdown()` first.
 */
import { SandboxOptionsError } from './errors.js';
import { releaseCgroups } from './supervise/cgroups.js';
import { warmBoxes } from './supervise/warm.js';

/** The most warm boxes a caller may ask for. */
const MAX_WARM_BOXES = 64;

/**
 * How many boxes sandcell keeps built ahead, waiting for a run of their shape (default 4, at most
 * 2 per shape). A run that finds one skips building its box: namespaces, root filesystem and
 * cgroup are ready. Each serves one run. 0 turns this off and ends those there are.
 */
export async function setWarmBoxes(count: number): Promise<void> {
  if (!Number.isInteger(count) || count < 0 || count > MAX_WARM_BOXES) {
    throw new SandboxOptionsError([{ path: 'warmBoxes', message: `must be an integer from 0 to ${MAX_WARM_BOXES}, got ${String(count)}` }]);
  }
  await warmBoxes.setLimit(count);
}

/**
 * Ends the warm boxes (and builds no more: runs after this build their own box), waits for
 * finished runs' cgroups to be removed, and removes the cgroups sandcell made ahead of time. Boxes
 * still running are the caller's to end first.
 */
export async function shutdown(): Promise<void> {
  await warmBoxes.setLimit(0);
  await releaseCgroups();
}
