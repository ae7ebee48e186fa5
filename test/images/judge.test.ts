// The judge flow on an image imported from a docker-archive (made by buildah): the problem's
// profiles name the image; the submission is judged in boxes on it.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { Judge, submissionFromFile } from '../../src/problems/index.js';
import { requireRoot } from '../helpers/host.js';
import { buildahTwoLayer, tempStore, type TempStore, type ToolImages } from './helpers.js';

let images: ToolImages;
let t: TempStore;
let dir: string;
let judge: Judge;

beforeAll(async () => {
  requireRoot();
  images = buildahTwoLayer();
  t = tempStore();
  await t.store.import(images.dockerArchive, { names: ['judge-image'] });
  dir = mkdtempSync(join(tmpdir(), 'sandcell-image-judge-'));
  mkdirSync(join(dir, 'tests'));
  writeFileSync(
    join(dir, 'problem.yaml'),
    `sandcell: 1
name: aplusb-sh
profiles:
  run: { image: judge-image, cwd: /work, limits: { cpuTime: 2s, wallTime: 10s } }
languages:
  sh: { source: main.sh, run: [/bin/sh, main.sh] }
tests:
  - { glob: tests/*.in }
`,
  );
  for (const [name, input, answer] of [
    ['01', '1 2\n', '3\n'],
    ['02', '40 2\n', '42\n'],
  ]) {
    writeFileSync(join(dir, 'tests', `${name}.in`), input!);
    writeFileSync(join(dir, 'tests', `${name}.ans`), answer!);
  }
  // Right only on the image: /opq/c.txt is what its second layer put there.
  writeFileSync(join(dir, 'ac.sh'), 'read a b; test -e /opq/c.txt && test ! -e /data/gone.txt && echo $((a + b))\n');
  writeFileSync(join(dir, 'wa.sh'), 'read a b; echo $((a - b))\n');
  judge = await Judge.open(join(dir, 'problem.yaml'));
}, 120_000);

afterAll(async () => {
  await judge?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
  t?.remove();
  images?.remove();
});

describe('judging on a stored image', () => {
  it('AC for a solution that only the image makes right, WA for a wrong one', async () => {
    const ac = await judge.judge(submissionFromFile(judge.problem, join(dir, 'ac.sh')));
    expect(ac.tests.map((x) => [x.name, x.verdict])).toEqual([
      ['01', 'AC'],
      ['02', 'AC'],
    ]);
    expect(ac.verdict).toBe('AC');
    const wa = await judge.judge(submissionFromFile(judge.problem, join(dir, 'wa.sh')));
    expect(wa.verdict).toBe('WA');
  });
});
