// Judging on the farm: a problem with 20 tests and a checker, fanned out over three workers,
// gives the verdicts of the local judge, test by test; so does an interactive problem.
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { Farm } from '../../src/cluster/index.js';
import { judge, loadProblem, submissionFromFile, type JudgeReport, type Problem, type Progress, type Submission } from '../../src/problems/index.js';
import { example } from '../problems/helpers.js';
import { startFarm, type TestFarm } from './workers.js';

/** a / b, right on most tests; test a=7 loops, a=13 answers wrong, a=17 aborts. */
const MIXED = `#include <stdio.h>
#include <stdlib.h>
int main(void) {
  long long a, b;
  if (scanf("%lld %lld", &a, &b) != 2) return 1;
  if (a == 7) for (;;) ;
  if (a == 13) { puts("42"); return 0; }
  if (a == 17) abort();
  printf("%.9f\\n", (double)a / (double)b);
}
`;

describe('farm.judge', () => {
  let t: TestFarm;
  let farm: Farm;
  let dir: string;
  let problem: Problem;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sandcell-farm-judge-'));
    copyFileSync(example('sandcell.yaml'), join(dir, 'sandcell.yaml'));
    mkdirSync(join(dir, 'p'));
    mkdirSync(join(dir, 'p', 'tests'));
    copyFileSync(example('divide/check.c'), join(dir, 'p', 'check.c'));
    copyFileSync(example('divide/problem.yaml'), join(dir, 'p', 'problem.yaml'));
    for (let i = 1; i <= 20; i++) {
      const n = String(i).padStart(2, '0');
      writeFileSync(join(dir, 'p', 'tests', `${n}.in`), `${i} 3\n`);
      writeFileSync(join(dir, 'p', 'tests', `${n}.ans`), `${(i / 3).toFixed(9)}\n`);
    }
    problem = loadProblem(join(dir, 'p', 'problem.yaml'));
    t = await startFarm(['j1', 'j2', 'j3']);
    farm = t.farm;
  }, 240_000);

  afterAll(async () => {
    await t?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 120_000);

  const verdicts = (r: { verdict: string; tests: { name: string; verdict: string }[] }) => ({ verdict: r.verdict, tests: r.tests.map((t) => `${t.name}:${t.verdict}`) });

  it('20 tests over 3 workers: the local verdicts, test by test', async () => {
    const submission: Submission = { language: 'c', source: MIXED };
    const local = await judge(problem, submission);
    const seen: Progress[] = [];
    const remote = await farm.judge(problem, submission, { onProgress: (p) => seen.push(p) });
    expect(verdicts(remote)).toEqual(verdicts(local));
    expect(remote.verdict).toBe('TLE');
    expect(remote.tests.map((t) => t.verdict).filter((v) => v !== 'AC').sort()).toEqual(['RE', 'TLE', 'WA']);
    expect(remote.compile?.status).toBe('ok');
    // Every worker ran some of the tests.
    for (const w of t.workers) expect(w.events().filter((e) => e.event === 'end' && typeof e.verdict === 'string').length).toBeGreaterThan(0);
    expect(seen[0]).toEqual({ stage: 'compile' });
    expect(seen.filter((p) => p.stage === 'tested')).toHaveLength(20);
  });

  it('an accepted submission and one that does not compile: the local verdicts', async () => {
    for (const submission of [
      { language: 'c', source: (await import('node:fs')).readFileSync(example('divide/solutions/ac.c')) },
      { language: 'c', source: 'int main( { return 0; }' },
    ]) {
      const local = await judge(problem, submission);
      const remote = await farm.judge(problem, submission);
      expect(verdicts(remote)).toEqual(verdicts(local));
    }
  });

  it('an interactive problem: solution and interactor on one worker, the local verdicts and details', async () => {
    const guess = loadProblem(example('guess/problem.yaml'));
    const detailed = (r: JudgeReport) => ({ verdict: r.verdict, tests: r.tests.map((x) => `${x.name}:${x.verdict}:${x.detail ?? ''}:${x.interactor?.exitCode ?? '-'}`) });
    const seen: Record<string, string> = {};
    for (const file of ['guess/solutions/ac.c', 'guess/solutions/wa.c', 'guess/solutions/silent.c', 'common/re.c']) {
      const submission = submissionFromFile(guess, example(file));
      const local = await judge(guess, submission);
      const remote = await farm.judge(guess, submission);
      expect(detailed(remote)).toEqual(detailed(local));
      for (const x of remote.tests) expect(x.interactor?.status).toBeDefined();
      seen[file] = remote.verdict;
    }
    expect(seen).toEqual({ 'guess/solutions/ac.c': 'AC', 'guess/solutions/wa.c': 'WA', 'guess/solutions/silent.c': 'TLE', 'common/re.c': 'RE' });
  });

  it('an interactor that does not build: JE with the reason, as the local judge says it', async () => {
    const p = join(dir, 'broken');
    mkdirSync(join(p, 'tests'), { recursive: true });
    writeFileSync(join(p, 'interact.c'), 'int main( {');
    writeFileSync(join(p, 'tests', '01.in'), '5\n');
    writeFileSync(
      join(p, 'problem.yaml'),
      `sandcell: 1
name: broken
profiles:
  run: { extends: judged }
  build: { extends: compile }
  trusted: { extends: compile }
languages:
  c: { source: main.c, build: [gcc, -O2, -o, main, main.c], run: [./main] }
tests:
  - { glob: tests/*.in }
interactor: { source: interact.c, build: [gcc, -o, interact, interact.c], run: [./interact, input] }
`,
    );
    const broken = loadProblem(join(p, 'problem.yaml'));
    const submission = submissionFromFile(broken, example('guess/solutions/ac.c'));
    const local = await judge(broken, submission);
    const remote = await farm.judge(broken, submission);
    expect(local.verdict).toBe('JE');
    expect(remote).toMatchObject({ verdict: 'JE', tests: [], compile: null });
    expect(remote.error).toMatch(/^the interactor did not build \(nonzero-exit 1\)/);
    expect(remote.error?.replace(/:.*/s, '')).toBe(local.error?.replace(/:.*/s, ''));
  });
});
