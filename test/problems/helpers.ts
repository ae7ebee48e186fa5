/**
 * The example problems (examples/) judged by the tests, and what every judging test checks after
 * itself: no box, cgroup or judge directory left behind.
 */
import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';

import { childPids, runCgroupsInUse } from '../helpers/host.js';

export const EXAMPLES = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'examples');

export function example(path: string): string {
  return join(EXAMPLES, path);
}

/** The test files' directories of this process's judges. */
export function judgeDirs(): string[] {
  return readdirSync(tmpdir()).filter((n) => n.startsWith(`sandcell-judge-${process.pid}-`));
}

export async function expectNothingLeft(): Promise<void> {
  expect(await childPids()).toEqual([]);
  expect(await runCgroupsInUse()).toEqual([]);
  expect(judgeDirs()).toEqual([]);
}
