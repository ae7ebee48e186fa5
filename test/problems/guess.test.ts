// Guess the number: solution and interactor in their own boxes, joined by pipes. Which ended
// first decides the verdict; nothing waits forever.
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { GroupBoxResult } from '../../src/group/index.js';
import { judge, Judge, submissionFromFile } from '../../src/problems/index.js';
import { requireRoot } from '../helpers/host.js';
import { example, expectNothingLeft } from './helpers.js';

let j: Judge;
let tmp: string;

beforeAll(async () => {
  requireRoot();
  tmp = mkdtempSync(join(tmpdir(), 'sandcell-guess-'));
  j = await Judge.open(example('guess/problem.yaml'));
});

afterAll(async () => {
  await j.close();
  rmSync(tmp, { recursive: true, force: true });
  await expectNothingLeft();
});

const submit = (file: string) => j.judge(submissionFromFile(j.problem, example(file)), { stopOnFirst: true });

describe('guess: interactive', () => {
  it('AC: binary search, the interactor accepts every test', async () => {
    const r = await j.judge(submissionFromFile(j.problem, example('guess/solutions/ac.c')));
    expect(r.verdict).toBe('AC');
    expect(r.tests.map((t) => t.verdict)).toEqual(['AC', 'AC', 'AC']);
    for (const t of r.tests) {
      expect(t.interactor?.exitCode).toBe(0);
      expect(t.result.status).toBe('ok');
    }
  });

  it('WA: out of questions; the interactor ended first with 1', async () => {
    const r = await submit('guess/solutions/wa.c');
    expect(r.tests.map((t) => t.verdict)).toEqual(['AC', 'WA']);
    expect(r.tests[1]?.interactor?.exitCode).toBe(1);
    expect((r.tests[1]?.interactor as GroupBoxResult).endOrder).toBe(0);
  });

  it('a solution that never asks waits with the interactor until its wall limit: TLE, not a hung judge', async () => {
    const r = await submit('guess/solutions/silent.c');
    expect(r.verdict).toBe('TLE');
    expect(r.tests[0]?.detail).toBe('wall time');
    // The solution ended first; the interactor then read EOF and said WA, which does not count.
    expect((r.tests[0]?.result as GroupBoxResult).endOrder).toBe(0);
    expect(r.tests[0]?.interactor?.exitCode).toBe(1);
  });

  it('TLE, MLE, RE, OLE, CE of the solution stand though the interactor then says WA', async () => {
    const got: Record<string, string> = {};
    for (const v of ['tle', 'mle', 're', 'ole', 'ce']) {
      const r = await submit(`common/${v}.c`);
      got[v] = r.verdict;
      if (v !== 'ce') {
        expect((r.tests[0]?.result as GroupBoxResult).endOrder).toBe(0);
        expect(r.tests[0]?.interactor?.exitCode).toBe(1);
      }
    }
    expect(got).toEqual({ tle: 'TLE', mle: 'MLE', re: 'RE', ole: 'OLE', ce: 'CE' });
  });

  it('a solution flooding the interactor without reading: the first to end decides, the flood is capped', async () => {
    const r = await submit('guess/solutions/flood.c');
    const t = r.tests[0];
    const solution = t?.result as GroupBoxResult;
    // The interactor answers 30 guesses and exits with WA; the flood meanwhile passes through the
    // solution's 1 MiB output limit. Whichever came first is the verdict.
    expect(t?.interactor?.exitCode).toBe(1);
    if (solution.endOrder === 0) {
      expect(r.verdict).toBe('OLE');
      expect(solution.status).toBe('output-limit');
    } else {
      expect(r.verdict).toBe('WA');
    }
  });
});

describe('guess: broken interactors', () => {
  function variant(name: string, script: string): string {
    const dir = join(tmp, name);
    cpSync(example('guess'), dir, { recursive: true });
    writeFileSync(join(dir, 'interact.sh'), script);
    const yaml = join(dir, 'problem.yaml');
    writeFileSync(yaml, `sandcell: 1
name: ${name}
profiles:
  run: { extends: judged, limits: { wallTime: 10s } }
  trusted: { extends: compile }
languages:
  c: { source: main.c, build: [gcc, -O2, -o, main, main.c], run: [./main] }
tests:
  - { input: tests/02.in }
interactor: { source: interact.sh, run: [/bin/sh, interact.sh, input] }
`);
    return yaml;
  }

  it('an interactor that exits at once with WA ends the solution: WA', async () => {
    const r = await judge(variant('quits', 'exit 1\n'), example('guess/solutions/ac.c'), { config: example('sandcell.yaml') });
    expect(r.verdict).toBe('WA');
    expect((r.tests[0]?.interactor as GroupBoxResult).endOrder).toBe(0);
  });

  it('an interactor that exits at once while the solution reads: the solution reads EOF and ends, WA stands', async () => {
    const r = await judge(variant('quits2', 'exit 1\n'), example('guess/solutions/silent.c'), { config: example('sandcell.yaml') });
    expect(r.verdict).toBe('WA');
    expect(r.tests[0]?.result.status).toBe('ok');
  });

  it('a solution that ignores the interactor\'s end is ended by the judge a second later, WA stands', async () => {
    const r = await judge(variant('quits3', 'exit 1\n'), example('guess/solutions/deaf.c'), { config: example('sandcell.yaml') });
    expect(r.verdict).toBe('WA');
    const solution = r.tests[0]?.result as GroupBoxResult;
    expect(solution.endedByGroup).toBe(true);
    expect(solution.signal).toBe('SIGKILL');
  });

  it('an interactor that exits at once with AC and a solution that does not end: TLE, not AC', async () => {
    const r = await judge(variant('accepts', 'exit 0\n'), example('guess/solutions/deaf.c'), { config: example('sandcell.yaml') });
    expect(r.verdict).toBe('TLE');
    expect(r.tests[0]?.detail).toBe('did not end after the interactor did');
  });

  it('an interactor that crashes is JE', async () => {
    const r = await judge(variant('crash', 'read g; kill -SEGV $$\n'), example('guess/solutions/ac.c'), { config: example('sandcell.yaml') });
    expect(r.verdict).toBe('JE');
    expect(r.error).toBe('interactor signal SIGSEGV');
  });
});
