/**
 * Judging a submission: build it once in a living box, run every test in a fresh run of that box,
 * decide each test by its result and the checker (or play it against the interactor).
 *
 * The checker and interactor live in a box of their own (the `trusted` profile), built once per
 * problem: a submission's box holds nothing of theirs and cannot reach their files. The test's
 * files reach the trusted box through a read-only bind of a directory of this process's.
 */
import { chmodSync, copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { extname, join } from 'node:path';

import { Sandbox, type Limits, type Result, type SandboxRunOptions } from '../index.js';
import type { Profile } from '../profiles/index.js';
import { loadProblem, SHAPE_FIELDS, type Language, type LoadOptions, type Problem, type Test, type TrustedProgram } from './load.js';
import { playInteractive } from './interact.js';
import { runVerdict, sameTokens, trustedVerdict, type Judged, type Verdict } from './verdict.js';

export interface Submission {
  /** The submission's code. */
  source: string | Uint8Array;
  /** A language the problem declares. */
  language: string;
}

export interface TestReport {
  name: string;
  verdict: Verdict;
  detail?: string;
  /** The submission's run (its output cut to the first KiB). */
  result: Result;
  checker?: Result;
  interactor?: Result;
}

export interface JudgeReport {
  problem: string;
  language: string | null;
  /** The first verdict other than AC in test order, else AC. */
  verdict: Verdict;
  /** Why the judge failed (JE) or the submission could not be judged. */
  error?: string;
  /** The submission's build (null: an interpreted language, or never reached). */
  compile: Result | null;
  tests: TestReport[];
}

export type Progress =
  | { stage: 'compile' }
  | { stage: 'test'; index: number; total: number; name: string }
  | { stage: 'tested'; index: number; total: number; name: string; verdict: Verdict };

export interface JudgeOptions {
  onProgress?: (p: Progress) => void;
  /** Stop at the first test whose verdict is not AC. */
  stopOnFirst?: boolean;
}

/** How much of a run's output a report keeps. */
const REPORT_OUTPUT_BYTES = 1024;

/** What a profile sets for each program run in a box. */
type Program = Omit<SandboxRunOptions, 'command' | 'stdin' | 'collect'>;

/** Box fields of a profile; the rest are the program's. */
function split(p: Profile): { shape: Record<string, unknown>; program: Program } {
  const shape: Record<string, unknown> = {};
  const program: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(p)) {
    if ((SHAPE_FIELDS as readonly string[]).includes(k)) shape[k] = v;
    else program[k] = v;
  }
  const { tmpfs: _t, ...limits } = (program.limits ?? {}) as Limits;
  return { shape, program: { ...program, limits } as Program };
}

function tmpfsOf(...profiles: Profile[]): Limits {
  const sizes = profiles.map((p) => p.limits?.tmpfs).filter((t) => t !== undefined);
  return sizes.length > 0 ? { tmpfs: sizes[sizes.length - 1] as NonNullable<Limits['tmpfs']> } : {};
}

function brief(r: Result): Result {
  const cut = (s: string): string => (Buffer.byteLength(s) > REPORT_OUTPUT_BYTES ? Buffer.from(s).subarray(0, REPORT_OUTPUT_BYTES).toString('utf8') : s);
  return { ...r, stdout: cut(r.stdout), stderr: cut(r.stderr) };
}

/** `input`, `output` and `answer` as whole arguments name the test's files in the trusted box. */
function withFiles(command: readonly string[]): string[] {
  return command.map((a) => (a === 'input' || a === 'output' || a === 'answer' ? `${TRUSTED_FILES}/${a}` : a));
}

const TRUSTED_FILES = '/judge';

/**
 * A problem ready to judge submissions: its checker or interactor built once in the trusted box.
 * `close()` ends that box and removes the test files' directory.
 */
export class Judge {
  readonly problem: Problem;
  private readonly trusted: Sandbox | null;
  private readonly files: string;
  /** Why the problem cannot judge (its checker or interactor did not build). */
  private readonly broken: string | null;

  private constructor(problem: Problem, trusted: Sandbox | null, files: string, broken: string | null) {
    this.problem = problem;
    this.trusted = trusted;
    this.files = files;
    this.broken = broken;
  }

  static async open(problem: Problem | string, options: LoadOptions = {}): Promise<Judge> {
    const p = typeof problem === 'string' ? loadProblem(problem, options) : problem;
    const files = mkdtempSync(join(tmpdir(), `sandcell-judge-${process.pid}-`));
    // The trusted box runs as an unprivileged id: it must read what is put here.
    chmodSync(files, 0o755);
    const program = p.interactor ?? p.checker;
    if (!program) return new Judge(p, null, files, null);
    let box: Sandbox | null = null;
    try {
      const { shape, program: defaults } = split(p.profiles.trusted);
      box = await Sandbox.create({
        ...shape,
        binds: [...((shape.binds as []) ?? []), { source: files, target: TRUSTED_FILES, readonly: true }],
        limits: tmpfsOf(p.profiles.trusted),
        files: Object.fromEntries(program.files.map((f) => [f.name, { data: readFileSync(f.path), mode: 0o755 }])),
      });
      let broken: string | null = null;
      if (program.build) {
        const r = await box.run({ ...defaults, command: program.build });
        if (r.status !== 'ok') broken = `the ${p.interactor ? 'interactor' : 'checker'} did not build (${r.status}${r.exitCode !== null ? ` ${r.exitCode}` : ''}): ${r.stderr.slice(0, 2000)}`;
      }
      return new Judge(p, box, files, broken);
    } catch (e) {
      await box?.destroy();
      rmSync(files, { recursive: true, force: true });
      throw e;
    }
  }

  async close(): Promise<void> {
    await this.trusted?.destroy();
    rmSync(this.files, { recursive: true, force: true });
  }

  /** Judges one submission. */
  async judge(submission: Submission, options: JudgeOptions = {}): Promise<JudgeReport> {
    const p = this.problem;
    const lang = p.languages[submission.language];
    const report: JudgeReport = { problem: p.name, language: submission.language, verdict: 'AC', compile: null, tests: [] };
    if (!lang) {
      return { ...report, verdict: 'CE', error: `the problem has no language ${JSON.stringify(submission.language)} (it has ${Object.keys(p.languages).join(', ')})` };
    }
    if (this.broken) return { ...report, verdict: 'JE', error: this.broken };

    const run = split(p.profiles.run);
    const build = split(p.profiles.build);
    const box = await Sandbox.create({
      ...run.shape,
      limits: tmpfsOf(p.profiles.build, p.profiles.run),
      files: { [lang.source]: Buffer.from(submission.source) },
    });
    try {
      if (lang.build) {
        options.onProgress?.({ stage: 'compile' });
        const r = await box.run({ ...build.program, command: lang.build });
        report.compile = brief(r);
        if (r.status !== 'ok') return { ...report, verdict: 'CE' };
      }
      for (const [index, test] of p.tests.entries()) {
        const total = p.tests.length;
        options.onProgress?.({ stage: 'test', index, total, name: test.name });
        const t = await this.test(box, run.program, lang, test);
        report.tests.push(t);
        options.onProgress?.({ stage: 'tested', index, total, name: test.name, verdict: t.verdict });
        if (t.verdict !== 'AC' && report.verdict === 'AC') {
          report.verdict = t.verdict;
          if (t.verdict === 'JE') report.error = t.detail;
        }
        if (options.stopOnFirst && t.verdict !== 'AC') break;
      }
      return report;
    } finally {
      await box.destroy();
    }
  }

  private async test(box: Sandbox, program: Program, lang: Language, test: Test): Promise<TestReport> {
    copyFileSync(test.input, join(this.files, 'input'));
    chmodSync(join(this.files, 'input'), 0o644);
    writeFileSync(join(this.files, 'answer'), test.answer ? readFileSync(test.answer) : '', { mode: 0o644 });
    if (this.problem.interactor) return this.interact(box, program, lang, test, this.problem.interactor);

    const r = await box.run({ ...program, command: lang.run, stdin: readFileSync(test.input) });
    const done = (j: Judged, checker?: Result): TestReport => ({
      name: test.name,
      ...j,
      result: brief(r),
      ...(checker ? { checker: brief(checker) } : {}),
    });
    const ended = runVerdict(r);
    if (ended) return done(ended);
    if (!this.problem.checker) {
      return done({ verdict: sameTokens(r.stdout, readFileSync(test.answer as string, 'utf8')) ? 'AC' : 'WA' });
    }
    writeFileSync(join(this.files, 'output'), r.stdout, { mode: 0o644 });
    const checked = await (this.trusted as Sandbox).run({
      ...split(this.problem.profiles.trusted).program,
      command: withFiles(this.problem.checker.run),
    });
    return done(trustedVerdict(checked, 'checker'), checked);
  }

  /** The solution and the interactor, each in its own box, joined by pipes. */
  private async interact(box: Sandbox, program: Program, lang: Language, test: Test, interactor: TrustedProgram): Promise<TestReport> {
    const trusted = split(this.problem.profiles.trusted).program;
    const played = await playInteractive(
      { sandbox: box, ...program, command: lang.run },
      { sandbox: this.trusted as Sandbox, ...trusted, command: withFiles(interactor.run) },
    );
    return { name: test.name, ...played.judged, result: brief(played.solution), interactor: brief(played.interactor) };
  }
}

/** Judges one submission against a problem (a loaded Problem or a problem file's path). */
export async function judge(problem: Problem | string, submission: Submission | string, options: JudgeOptions & LoadOptions = {}): Promise<JudgeReport> {
  const j = await Judge.open(problem, options);
  try {
    return await j.judge(typeof submission === 'string' ? submissionFromFile(j.problem, submission) : submission, options);
  } finally {
    await j.close();
  }
}

/** A submission read from a file; its language is `language`, or the one whose source has the file's extension. */
export function submissionFromFile(problem: Problem, file: string, language?: string): Submission {
  const source = readFileSync(file);
  if (language !== undefined) return { source, language };
  const ext = extname(file);
  const matching = Object.entries(problem.languages).filter(([, l]) => ext !== '' && extname(l.source) === ext);
  if (matching.length !== 1) {
    throw new SubmissionError(
      matching.length === 0
        ? `no language of ${problem.name} takes ${ext || 'files without an extension'}: give one (${Object.keys(problem.languages).join(', ')})`
        : `${ext} could be ${matching.map(([n]) => n).join(' or ')}: give the language`,
    );
  }
  return { source, language: (matching[0] as [string, Language])[0] };
}

/** A submission that cannot be judged as given (no language fits). */
export class SubmissionError extends Error {
  override readonly name = 'SubmissionError';
}
