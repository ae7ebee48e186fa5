// Problem files: what loads, what is refused (at its line), and `sandcell judge` as a user runs it.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { DeclarationError, judge as judgeProblem, loadProblem, sameTokens } from '../../src/problems/index.js';
import { runVerdict } from '../../src/problems/verdict.js';
import type { Result } from '../../src/index.js';
import { requireRoot } from '../helpers/host.js';
import { example, expectNothingLeft } from './helpers.js';

const CLI = join(example('..'), 'dist', 'cli', 'main.js');
let tmp: string;

beforeAll(() => {
  requireRoot();
  tmp = mkdtempSync(join(tmpdir(), 'sandcell-problem-'));
  cpSync(example('aplusb'), join(tmp, 'aplusb'), { recursive: true });
  cpSync(example('sandcell.yaml'), join(tmp, 'sandcell.yaml'));
});
afterAll(async () => {
  rmSync(tmp, { recursive: true, force: true });
  await expectNothingLeft();
});

const APLUSB = `sandcell: 1
name: aplusb
profiles:
  run: { extends: cpp, limits: { memory: 64MiB } }
languages:
  c: { source: main.c, build: [gcc, -o, main, main.c], run: [./main] }
tests:
  - { input: samples/sample.in, answer: samples/sample.ans }
  - { glob: tests/*.in }
`;

function load(text: string): ReturnType<typeof loadProblem> {
  const file = join(tmp, 'aplusb', 'p.yaml');
  writeFileSync(file, text);
  return loadProblem(file);
}

function error(text: string): string {
  try {
    load(text);
  } catch (e) {
    if (e instanceof DeclarationError) return e.message;
    throw e;
  }
  throw new Error('loaded');
}

describe('problem files', () => {
  it('loads: tests expanded in order with their answers, role profiles over their defaults, sandcell.yaml found above', () => {
    const p = load(APLUSB);
    expect(p.tests.map((t) => [t.name, t.answer?.endsWith('.ans')])).toEqual([
      ['sample', true],
      ['01', true],
      ['02', true],
      ['03', true],
    ]);
    expect(p.profiles.run).toMatchObject({ seccomp: 'judge', network: 'none', limits: { cpuTime: '1s', wallTime: '3s', memory: '64MiB', stack: '256MiB' } });
    expect(p.profiles.build.limits).toMatchObject({ cpuTime: '30s', memory: '1GiB' });
    expect(p.checker).toBeNull();
  });

  it('a typo is an error naming its line', () => {
    expect(error(APLUSB.replace('languages:', 'languges:'))).toBe(
      ['p.yaml:1: languages: is missing', 'p.yaml:5: languges: is not a known field'].join('\n'),
    );
    expect(error(APLUSB.replace('run: [./main]', 'run: ./main'))).toBe('p.yaml:6: languages.c.run: Invalid input: expected array, received string');
    expect(error(APLUSB.replace('memory: 64MiB', 'memory: 64MB!'))).toMatch(/^p\.yaml:4: profiles\.run\.limits\.memory: must be a size/);
    expect(error(APLUSB.replace('extends: cpp', 'extends: cxx'))).toBe('p.yaml:4: profiles.run.extends: no profile named "cxx" to extend');
  });

  it('paths stay in the problem\'s directory; tests must exist and have answers', () => {
    expect(error(APLUSB.replace('samples/sample.in', '../sandcell.yaml'))).toBe(
      "p.yaml:8: tests[0].input: must not contain '..' (it would leave the problem's directory)",
    );
    symlinkSync('/etc/passwd', join(tmp, 'aplusb', 'samples', 'escape.in'));
    expect(error(APLUSB.replace('samples/sample.in', 'samples/escape.in'))).toBe('p.yaml:8: tests[0].input: leaves the problem\'s directory (samples/escape.in is /etc/passwd)');
    expect(error(APLUSB.replace('samples/sample.in', 'samples/none.in'))).toBe('p.yaml:8: tests[0].input: does not exist (samples/none.in)');
    expect(error(APLUSB.replace('tests/*.in', 'tests/*.txt'))).toBe('p.yaml:9: tests[1].glob: matches no file (tests/*.txt)');
    mkdirSync(join(tmp, 'aplusb', 'more'));
    writeFileSync(join(tmp, 'aplusb', 'more', '09.in'), '1 1\n');
    expect(error(APLUSB.replace('tests/*.in', 'more/*.in'))).toBe('p.yaml:9: tests[1].glob: has no answer for more/09.in (expected more/09.ans)');
    expect(error(APLUSB.replace(', answer: samples/sample.ans', ''))).toBe('p.yaml:8: tests[0]: needs an answer (only an interactive problem may do without)');
  });

  it('a build profile may not reshape the box the tests run in; checker and interactor do not go together', () => {
    expect(error(APLUSB.replace('profiles:\n', 'profiles:\n  build: { network: host }\n'))).toMatch(
      /^p\.yaml:4: profiles\.build\.network: differs from the run profile's/,
    );
    const both = `${APLUSB}checker: { source: samples/sample.in, run: [./x] }\ninteractor: { source: samples/sample.in, run: [./y] }\n`;
    expect(error(both)).toMatch(/^p\.yaml:10: checker: an interactive problem is decided by its interactor/);
  });
});

describe('a working directory of the run profile', () => {
  it('holds the submission and is where it runs', async () => {
    const file = join(tmp, 'aplusb', 'cwd.yaml');
    writeFileSync(file, APLUSB.replace('limits: { memory: 64MiB } }', 'cwd: /tmp, limits: { memory: 64MiB } }').replace('languages:\n', 'languages:\n  py: { source: main.py, run: [/usr/bin/python3, main.py] }\n'));
    const source = 'import os, sys\nprint(os.getcwd(), file=sys.stderr)\nprint(sum(map(int, input().split())))\n';
    const r = await judgeProblem(file, { language: 'py', source });
    expect(r.verdict).toBe('AC');
    expect(r.tests.map((t) => t.result.stderr)).toEqual(['/tmp\n', '/tmp\n', '/tmp\n', '/tmp\n']);
  });
});

describe('verdicts', () => {
  const result = (status: Result['status'], extra: Partial<Result> = {}) => ({ status, exitCode: null, signal: null, violation: null, ...extra }) as Result;

  it('each way a run ends maps to its verdict', () => {
    expect(runVerdict(result('ok'))).toBeNull();
    expect(runVerdict(result('time-limit'))).toEqual({ verdict: 'TLE', detail: 'cpu time' });
    expect(runVerdict(result('wall-time-limit'))).toEqual({ verdict: 'TLE', detail: 'wall time' });
    expect(runVerdict(result('memory-limit'))).toEqual({ verdict: 'MLE' });
    expect(runVerdict(result('output-limit'))).toEqual({ verdict: 'OLE' });
    expect(runVerdict(result('nonzero-exit', { exitCode: 3 }))).toEqual({ verdict: 'RE', detail: 'exit code 3' });
    expect(runVerdict(result('signaled', { signal: 'SIGABRT' }))).toEqual({ verdict: 'RE', detail: 'signal SIGABRT' });
    expect(runVerdict(result('syscall-denied', { violation: { syscall: 'fork', nr: 57, arch: 'x86_64' } }))).toEqual({ verdict: 'SV', detail: 'syscall fork' });
  });

  it('the default comparison: tokens, whitespace-insensitive, nothing more', () => {
    expect(sameTokens('1  2\n3\n', '1 2 3')).toBe(true);
    expect(sameTokens('1 2', '1 2 3')).toBe(false);
    expect(sameTokens('1.0', '1')).toBe(false);
  });
});

describe('sandcell judge', () => {
  const judge = (args: string[]) => spawnSync(process.execPath, [CLI, 'judge', ...args], { encoding: 'utf8', cwd: tmp });

  it('--json prints one report; the exit status says accepted or not', () => {
    const r = judge([example('aplusb/problem.yaml'), '--submission', example('aplusb/solutions/wa.c'), '--json']);
    expect(r.status).toBe(1);
    const report = JSON.parse(r.stdout);
    expect(report.verdict).toBe('WA');
    expect(report.compile.status).toBe('ok');
    expect(report.tests.map((t: { name: string; verdict: string }) => `${t.name}:${t.verdict}`)).toEqual(['sample:AC', '01:WA', '02:AC', '03:AC']);
    expect(report.tests[1].result.stdout).toBe('1\n');
  });

  it('a table, --stop-on-first, --lang; a problem file with a typo exits 125 naming the line', () => {
    const r = judge([example('aplusb/problem.yaml'), '--submission', example('aplusb/solutions/wa.c'), '--stop-on-first', '--lang', 'c']);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/^aplusb \(c\)\n  compile  ok .*\n  sample  AC .*\n  01 +WA .*\nverdict: WA \(test 01\)\n$/);
    writeFileSync(join(tmp, 'aplusb', 'typo.yaml'), APLUSB.replace('  - { glob', '  - { blob'));
    const typo = judge([join(tmp, 'aplusb', 'typo.yaml'), '--submission', example('aplusb/solutions/wa.c')]);
    expect(typo.status).toBe(125);
    expect(typo.stderr).toContain('sandcell: typo.yaml:9: tests[1].blob: is not a known field');
    const json = judge([join(tmp, 'aplusb', 'typo.yaml'), '--submission', example('aplusb/solutions/wa.c'), '--json']);
    expect(json.status).toBe(2);
    expect(JSON.parse(json.stdout)).toMatchObject({ verdict: 'JE', error: expect.stringContaining('typo.yaml:9: tests[1].blob: is not a known field'), tests: [] });
  });
});
