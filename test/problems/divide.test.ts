// A floating-point answer decided by a checker in a box of its own; broken checkers are JE.
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { judge, Judge, submissionFromFile } from '../../src/problems/index.js';
import { requireRoot } from '../helpers/host.js';
import { example, expectNothingLeft } from './helpers.js';

let j: Judge;
let tmp: string;

beforeAll(async () => {
  requireRoot();
  tmp = mkdtempSync(join(tmpdir(), 'sandcell-divide-'));
  j = await Judge.open(example('divide/problem.yaml'));
});

afterAll(async () => {
  await j.close();
  rmSync(tmp, { recursive: true, force: true });
  await expectNothingLeft();
});

const submit = (file: string) => j.judge(submissionFromFile(j.problem, example(file)), { stopOnFirst: true });

/** The divide problem with its checker replaced. */
function withChecker(name: string, checker: string, files: Record<string, string>): string {
  const dir = join(tmp, name);
  cpSync(example('divide'), dir, { recursive: true });
  for (const [f, text] of Object.entries(files)) writeFileSync(join(dir, f), text);
  const yaml = join(dir, 'problem.yaml');
  writeFileSync(yaml, `sandcell: 1
name: ${name}
profiles:
  run: { extends: cpp, limits: { memory: 64MiB } }
  trusted: { extends: compile }
languages:
  c: { source: main.c, build: [gcc, -O2, -o, main, main.c], run: [./main] }
tests:
  - { glob: tests/*.in }
checker:
${checker}
`);
  return yaml;
}

describe('divide: a checker decides', () => {
  it('AC within the tolerance; the checker ran once per test', async () => {
    const r = await j.judge(submissionFromFile(j.problem, example('divide/solutions/ac.c')));
    expect(r.verdict).toBe('AC');
    expect(r.tests.map((t) => t.verdict)).toEqual(['AC', 'AC', 'AC']);
    for (const t of r.tests) expect(t.checker?.status).toBe('ok');
  });

  it('WA (checker exit 1) and PE (checker exit 2)', async () => {
    const wa = await submit('divide/solutions/wa.c');
    expect(wa.verdict).toBe('WA');
    expect(wa.tests[0]?.checker?.exitCode).toBe(1);
    const pe = await submit('divide/solutions/pe.c');
    expect(pe.verdict).toBe('PE');
    expect(pe.tests[0]?.checker?.exitCode).toBe(2);
  });

  it('TLE, MLE, RE, OLE, CE: the submission\'s own end decides and the checker is not asked', async () => {
    const verdicts: Record<string, string> = {};
    for (const v of ['tle', 'mle', 're', 'ole', 'ce']) {
      const r = await submit(`common/${v}.c`);
      verdicts[v] = r.verdict + (r.tests[0]?.detail ? ` ${r.tests[0].detail}` : '');
      expect(r.tests[0]?.checker).toBeUndefined();
    }
    expect(verdicts).toEqual({ tle: expect.stringMatching(/^TLE (cpu|wall) time$/), mle: 'MLE', re: 'RE signal SIGSEGV', ole: 'OLE', ce: 'CE' });
  });

  it('a submission that writes a `check` of its own and tries the judge\'s files cannot accept itself', async () => {
    const r = await submit('divide/solutions/tamper.c');
    expect(r.verdict).toBe('WA');
    expect(r.tests[0]?.checker?.exitCode).toBe(1);
    // The checker is intact for the next submission.
    expect((await submit('divide/solutions/ac.c')).verdict).toBe('AC');
  });

  it('a crashing checker is JE, not the submission\'s fault', async () => {
    const yaml = withChecker('crash', '  source: check.sh\n  run: [/bin/sh, check.sh, input, output, answer]', { 'check.sh': 'kill -SEGV $$\n' });
    const r = await judge(yaml, example('divide/solutions/ac.c'), { config: example('sandcell.yaml') });
    expect(r.verdict).toBe('JE');
    expect(r.tests[0]?.verdict).toBe('JE');
    expect(r.error).toBe('checker signal SIGSEGV');
  });

  it('a checker that exits 3 is JE; one that does not build makes every submission JE', async () => {
    const odd = withChecker('odd', '  source: check.sh\n  run: [/bin/sh, check.sh, input, output, answer]', { 'check.sh': 'exit 3\n' });
    const r = await judge(odd, example('divide/solutions/ac.c'), { config: example('sandcell.yaml') });
    expect(r.verdict).toBe('JE');
    expect(r.error).toBe('checker exit code 3');
    const broken = withChecker('broken', '  source: check.c\n  build: [gcc, -o, check, check.c]\n  run: [./check, input, output, answer]', { 'check.c': 'int main( {' });
    const b = await judge(broken, example('divide/solutions/ac.c'), { config: example('sandcell.yaml') });
    expect(b.verdict).toBe('JE');
    expect(b.tests).toEqual([]);
    expect(b.error).toMatch(/^the checker did not build \(nonzero-exit 1\)/);
  });
});
