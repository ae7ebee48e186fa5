// A warm box's bind sources are identified (device and inode) by the addon in one call: the
// string must change exactly when a source is replaced, appears or goes, and say what Node's own
// stat says.
import { mkdirSync, mkdtempSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import type { NativePlan } from '../../src/native.js';
import { bindIdentity, stillBound, type WarmBox } from '../../src/launch/warm.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'sandcell-ids-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const planBinding = (sources: string[]): NativePlan =>
  ({ mounts: [...sources.map((source, i) => ({ kind: 'bind', source, target: `/b${i}` })), { kind: 'tmpfs', target: '/tmp', data: '' }] }) as unknown as NativePlan;
const boxOf = (plan: NativePlan): WarmBox => ({ binds: bindIdentity(plan) }) as unknown as WarmBox;

describe('bind identity', () => {
  it("is each source's device and inode as stat sees them, and '-' for a missing one", () => {
    const file = join(dir, 'f');
    writeFileSync(file, 'x');
    const link = join(dir, 'link');
    symlinkSync(file, link);
    const ids = bindIdentity(planBinding([dir, file, link, join(dir, 'missing'), join(file, 'below-a-file')]));
    const id = (p: string): string => `${statSync(p).dev}:${statSync(p).ino}`;
    expect(ids.sources).toHaveLength(5);
    expect(ids.ids).toBe(`${id(dir)} ${id(file)} ${id(file)} - -`);
  });

  it('no longer matches once a source is replaced, made, or removed', () => {
    const work = join(dir, 'work');
    mkdirSync(work);
    const later = join(dir, 'later');
    const box = boxOf(planBinding([work, later]));
    expect(stillBound(box)).toBe(true);
    // Replaced: a new directory under the old name (the old one kept, so its inode is not reused).
    renameSync(work, join(dir, 'old-work'));
    mkdirSync(work);
    expect(stillBound(box)).toBe(false);
    const box2 = boxOf(planBinding([work, later]));
    writeFileSync(later, 'x');
    expect(stillBound(box2)).toBe(false);
    const box3 = boxOf(planBinding([work, later]));
    rmSync(later);
    expect(stillBound(box3)).toBe(false);
  });
});
