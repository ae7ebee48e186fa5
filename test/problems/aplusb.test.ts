// A+B judged with the exact (token) comparison: every verdict a submission can earn, real boxes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { Judge, submissionFromFile } from '../../src/problems/index.js';
import { requireRoot } from '../helpers/host.js';
import { example, expectNothingLeft } from './helpers.js';

let judge: Judge;

beforeAll(async () => {
  requireRoot();
  judge = await Judge.open(example('aplusb/problem.yaml'));
});

afterAll(async () => {
  await judge.close();
  await expectNothingLeft();
});

const submit = (file: string, stopOnFirst = true) => judge.judge(submissionFromFile(judge.problem, example(file)), { stopOnFirst });

describe('A+B, exact comparison', () => {
  it('accepts a correct C++ solution on every test, in the order the file lists them', async () => {
    const progress: string[] = [];
    const r = await judge.judge(submissionFromFile(judge.problem, example('aplusb/solutions/ac.cpp')), {
      onProgress: (p) => progress.push(p.stage === 'tested' ? `${p.name}:${p.verdict}` : p.stage),
    });
    expect(r.verdict).toBe('AC');
    expect(r.language).toBe('cpp');
    expect(r.compile?.status).toBe('ok');
    expect(r.tests.map((t) => [t.name, t.verdict])).toEqual([
      ['sample', 'AC'],
      ['01', 'AC'],
      ['02', 'AC'],
      ['03', 'AC'],
    ]);
    expect(r.tests[3]?.result.stdout).toBe('1\n');
    expect(progress.filter((p) => p !== 'test')).toEqual(['compile', 'sample:AC', '01:AC', '02:AC', '03:AC']);
  });

  it('accepts an interpreted solution (no build step)', async () => {
    const r = await submit('aplusb/solutions/ac.py');
    expect(r.compile).toBeNull();
    expect(r.verdict).toBe('AC');
    expect(r.tests).toHaveLength(4);
  });

  it('WA: the first wrong test decides, earlier ones stay AC', async () => {
    const r = await submit('aplusb/solutions/wa.c', false);
    expect(r.verdict).toBe('WA');
    expect(r.tests.map((t) => t.verdict)).toEqual(['AC', 'WA', 'AC', 'AC']);
    expect(r.tests[1]?.result.stdout).toBe('1\n');
  });

  it('TLE, the detail saying which limit ended it', async () => {
    const r = await submit('common/tle.c');
    expect(r.verdict).toBe('TLE');
    expect(r.tests).toHaveLength(1);
    // 1 s of CPU within 3 s of wall clock, unless the machine is loaded past 3 programs per core.
    const { status } = r.tests[0]?.result ?? {};
    expect(status === 'time-limit' || status === 'wall-time-limit').toBe(true);
    expect(r.tests[0]?.detail).toBe(status === 'time-limit' ? 'cpu time' : 'wall time');
  });

  it('MLE', async () => {
    const r = await submit('common/mle.c');
    expect(r.verdict).toBe('MLE');
    expect(r.tests[0]?.result.status).toBe('memory-limit');
  });

  it('RE with the signal', async () => {
    const r = await submit('common/re.c');
    expect(r.verdict).toBe('RE');
    expect(r.tests[0]?.detail).toBe('signal SIGSEGV');
  });

  it('OLE', async () => {
    const r = await submit('common/ole.c');
    expect(r.verdict).toBe('OLE');
    expect(r.tests[0]?.result.status).toBe('output-limit');
    // The report keeps the first KiB of the output, not the 16 MiB written.
    expect(r.tests[0]?.result.stdout.length).toBe(1024);
  });

  it('SV names the denied system call', async () => {
    const r = await submit('common/sv.c');
    expect(r.verdict).toBe('SV');
    expect(r.tests[0]?.detail).toBe('syscall socket');
    expect(r.tests[0]?.result.violation?.syscall).toBe('socket');
  });

  it('CE with the compiler\'s message, and no test run', async () => {
    const r = await submit('common/ce.c');
    expect(r.verdict).toBe('CE');
    expect(r.tests).toEqual([]);
    expect(r.compile?.status).toBe('nonzero-exit');
    expect(r.compile?.stderr).toContain('missing_name');
  });

  it('a language the problem does not have is refused before anything runs', async () => {
    const r = await judge.judge({ language: 'rust', source: 'fn main() {}' });
    expect(r.verdict).toBe('CE');
    expect(r.error).toMatch(/no language "rust" \(it has cpp, c, python\)/);
    expect(() => submissionFromFile(judge.problem, example('aplusb/problem.yaml'))).toThrow(/no language of aplusb takes \.yaml/);
  });
});
