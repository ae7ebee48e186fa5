/**
 * The worker's side of judging on the farm, with the same decisions as the local judge (its
 * exported verdict functions): the build job compiles the submission once and returns the files
 * it left as blobs; each test job runs them on one test and decides it (comparing tokens, or with
 * the checker, built once per worker and problem); the verdict job puts the tests in order.
 */
import { createHash } from 'node:crypto';

import { run, type Limits, type Result, type RunOptions } from '../index.js';
import { playInteractive, runVerdict, sameTokens, SHAPE_FIELDS, trustedVerdict, type JudgeReport, type TestReport, type Verdict } from '../problems/index.js';
import type { BlobCache, BlobStore } from './blobs.js';
import type { BuildOutcome, JudgeBuildJob, JudgeTestJob, PackedProblem } from './judge-wire.js';
import { decodeBytes, encodeBytes } from './wire.js';

type Profile = Record<string, unknown>;

/** How much of a run's output a report keeps (as the local judge). */
const REPORT_OUTPUT_BYTES = 1024;

function brief(r: Result): Result {
  const cut = (s: string): string => (Buffer.byteLength(s) > REPORT_OUTPUT_BYTES ? Buffer.from(s).subarray(0, REPORT_OUTPUT_BYTES).toString('utf8') : s);
  return { ...r, stdout: cut(r.stdout), stderr: cut(r.stderr) };
}

/** A role's profile as options of one run: its box fields and program fields together, tmpfs from `tmpfsFrom` (the box's, as the local judge sizes it). */
function optionsOf(p: Profile, ...tmpfsFrom: Profile[]): Omit<RunOptions, 'command' | 'stdin'> {
  const shape: Profile = {};
  const program: Profile = {};
  for (const [k, v] of Object.entries(p)) ((SHAPE_FIELDS as readonly string[]).includes(k) ? shape : program)[k] = v;
  const { tmpfs: _t, ...limits } = (program.limits ?? {}) as Limits;
  const sizes = tmpfsFrom.map((x) => (x.limits as Limits | undefined)?.tmpfs).filter((t) => t !== undefined);
  const tmpfs = sizes.length > 0 ? { tmpfs: sizes[sizes.length - 1] } : {};
  return { ...shape, ...program, limits: { ...limits, ...tmpfs } } as Omit<RunOptions, 'command' | 'stdin'>;
}

async function filesOf(built: JudgeTestJob['built'], blobs: BlobCache): Promise<Record<string, { data: Buffer; mode: number }>> {
  const out: Record<string, { data: Buffer; mode: number }> = {};
  // Collected files come back without their modes: what a build left is made executable, as a binary among them must be.
  for (const [name, b] of Object.entries(built)) out[name] = { data: await decodeBytes(b, blobs), mode: 0o755 };
  return out;
}

export async function judgeBuild(job: JudgeBuildJob, blobs: BlobCache, store: BlobStore): Promise<BuildOutcome> {
  const p = job.problem;
  const lang = p.languages[job.submission.language];
  if (!lang) {
    return { compile: null, verdict: 'CE', error: `the problem has no language ${JSON.stringify(job.submission.language)} (it has ${Object.keys(p.languages).join(', ')})`, built: {} };
  }
  // As the local judge, which builds the checker or interactor before any submission: one that
  // does not build makes every submission JE.
  const trusted = p.interactor ? 'interactor' : p.checker ? 'checker' : null;
  if (trusted) {
    const t = await trustedBuild(p, trusted, blobs);
    if (t.broken) return { compile: null, verdict: 'JE', error: t.broken, built: {} };
  }
  const source = await decodeBytes(job.submission.source, blobs);
  if (!lang.build) return { compile: null, verdict: null, built: { [lang.source]: await encodeBytes(source, store) } };
  const r = await run({
    ...optionsOf(p.profiles.build, p.profiles.build, p.profiles.run),
    ...shapeOf(p.profiles.run),
    command: lang.build,
    files: { [lang.source]: source },
    collect: ['*'],
  });
  const compile = brief(r);
  if (r.status !== 'ok') return { compile, verdict: 'CE', built: {} };
  const built: BuildOutcome['built'] = {};
  for (const [name, data] of Object.entries(r.files ?? {})) built[name] = await encodeBytes(data, store);
  return { compile, verdict: null, built };
}

/** The run profile's box fields: the build happens in the box its tests run in. */
function shapeOf(p: Profile): Profile {
  return Object.fromEntries(Object.entries(p).filter(([k]) => (SHAPE_FIELDS as readonly string[]).includes(k)));
}

type Built = { files: Record<string, { data: Buffer; mode: number }>; broken: string | null };

/**
 * A checker or interactor built for a test: the build job built it already, so one that does not
 * build here fails on this worker's account and the job is tried again.
 */
async function trustedFiles(p: PackedProblem, what: 'checker' | 'interactor', blobs: BlobCache): Promise<Built['files']> {
  const t = await trustedBuild(p, what, blobs);
  if (t.broken) throw new Error(`${t.broken} (it built for the submission's build job)`);
  return t.files;
}

/** Checkers and interactors built on this worker, by problem: each is built once, then used by every test. */
const trustedBuilds = new Map<string, Promise<Built>>();
const MAX_TRUSTED_BUILDS = 16;

function trustedBuild(p: PackedProblem, what: 'checker' | 'interactor', blobs: BlobCache): Promise<Built> {
  const c = p[what] as NonNullable<PackedProblem['checker']>;
  const key = createHash('sha256').update(JSON.stringify([what, c, p.profiles.trusted])).digest('hex');
  let built = trustedBuilds.get(key);
  if (!built) {
    built = (async () => {
      const sources: Record<string, Buffer> = {};
      for (const f of c.files) sources[f.name] = await decodeBytes(f.data, blobs);
      if (!c.build) return { files: Object.fromEntries(Object.entries(sources).map(([n, d]) => [n, { data: d, mode: 0o755 }])), broken: null };
      const r = await run({ ...optionsOf(p.profiles.trusted, p.profiles.trusted), command: c.build, files: sources, collect: ['*'] });
      if (r.status !== 'ok') return { files: {}, broken: `the ${what} did not build (${r.status}${r.exitCode !== null ? ` ${r.exitCode}` : ''}): ${r.stderr.slice(0, 2000)}` };
      return { files: Object.fromEntries(Object.entries(r.files ?? {}).map(([n, d]) => [n, { data: d, mode: 0o755 }])), broken: null };
    })();
    // A build that failed for the machine's reasons (not the program's) is tried again next time.
    built.catch(() => trustedBuilds.delete(key));
    trustedBuilds.set(key, built);
    if (trustedBuilds.size > MAX_TRUSTED_BUILDS) trustedBuilds.delete(trustedBuilds.keys().next().value as string);
  }
  return built;
}

export async function judgeTest(job: JudgeTestJob, blobs: BlobCache): Promise<TestReport> {
  const p = job.problem;
  const lang = p.languages[job.language];
  const test = p.tests[job.test];
  if (!lang || !test) throw new TypeError(`no language ${job.language} or test ${job.test} in problem ${p.name}`);
  const input = await decodeBytes(test.input, blobs);
  const answer = test.answer === null ? Buffer.alloc(0) : await decodeBytes(test.answer, blobs);
  if (p.interactor) return interact(job, p.interactor, await filesOf(job.built, blobs), input, answer, blobs);
  const r = await run({
    ...optionsOf(p.profiles.run, p.profiles.build, p.profiles.run),
    command: lang.run,
    files: await filesOf(job.built, blobs),
    stdin: input,
  });
  const ended = runVerdict(r);
  if (ended) return { name: test.name, ...ended, result: brief(r) };
  if (!p.checker) return { name: test.name, verdict: sameTokens(r.stdout, answer.toString('utf8')) ? 'AC' : 'WA', result: brief(r) };
  const checker = await trustedFiles(p, 'checker', blobs);
  const checked = await run({
    ...optionsOf(p.profiles.trusted, p.profiles.trusted),
    command: p.checker.run,
    // `input`, `output` and `answer` as arguments name the test's files, here in the working directory.
    files: { ...checker, input, output: Buffer.from(r.stdout), answer },
  });
  return { name: test.name, ...trustedVerdict(checked, 'checker'), result: brief(r), checker: brief(checked) };
}

/**
 * The solution and the interactor in boxes of their own on this worker, joined by pipes, decided
 * as the local judge decides. The interactor finds the test's `input` and `answer` in its
 * working directory, as a checker does here.
 */
async function interact(job: JudgeTestJob, interactor: NonNullable<PackedProblem['interactor']>, built: Record<string, { data: Buffer; mode: number }>, input: Buffer, answer: Buffer, blobs: BlobCache): Promise<TestReport> {
  const p = job.problem;
  const lang = p.languages[job.language] as PackedProblem['languages'][string];
  const name = (p.tests[job.test] as PackedProblem['tests'][number]).name;
  const programs = await trustedFiles(p, 'interactor', blobs);
  const solution = optionsOf(p.profiles.run, p.profiles.build, p.profiles.run);
  const trusted = optionsOf(p.profiles.trusted, p.profiles.trusted);
  const played = await playInteractive(
    { ...solution, command: lang.run, files: built },
    { ...trusted, command: interactor.run, files: { ...programs, input, answer } },
  );
  return { name, ...played.judged, result: brief(played.solution), interactor: brief(played.interactor) };
}

/** The verdict from the tests' reports in test order: the first other than AC, else AC. */
export function judgeVerdict(problem: string, language: string, compile: unknown, reports: TestReport[]): JudgeReport {
  const report: JudgeReport = { problem, language, verdict: 'AC', compile: (compile ?? null) as Result | null, tests: reports };
  const first = reports.find((t) => t.verdict !== 'AC');
  if (first) {
    report.verdict = first.verdict as Verdict;
    if (first.verdict === 'JE' && first.detail !== undefined) report.error = first.detail;
  }
  return report;
}
