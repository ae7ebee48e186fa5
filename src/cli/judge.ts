/**
 * `sandcell judge <problem.yaml> --submission <file>`: builds the submission, runs every test,
 * prints a table (or the whole report as JSON). Exit status: 0 accepted, 1 any other verdict,
 * 2 the judge failed (JE).
 */
import { Judge, loadProblem, submissionFromFile, type JudgeReport, type Problem, type Progress } from '../problems/index.js';
import { DeclarationError } from '../profiles/index.js';
import { readFlags } from './flags.js';
import { UsageError } from './usage.js';

export const JUDGE_HELP = `Usage: sandcell judge <problem.yaml> --submission <file> [options]

  --submission <file>  the code to judge
  --lang <name>        its language (default: the one whose source has the file's extension)
  --config <file>      the sandcell.yaml with the profiles (default: the nearest one at or
                       above the problem's directory, else the current directory's)
  --stop-on-first      stop at the first test that is not accepted
  --json               print the whole report as one JSON object

Verdicts: AC, WA, PE, TLE, MLE, RE, OLE, SV (a denied system call), CE, JE (the judge failed).
Exit status: 0 AC, 1 any other verdict, 2 JE (with --json, a problem file refused too),
125 a bad problem file or bad arguments.
`;

interface JudgeCommand {
  problem: string;
  submission: string;
  lang?: string;
  config?: string;
  stopOnFirst: boolean;
  json: boolean;
}

function parseJudgeArgs(args: readonly string[]): JudgeCommand {
  const read = readFlags(args, { '--submission': 'value', '--lang': 'value', '--config': 'value', '--stop-on-first': 'switch', '--json': 'switch' }, 'judge');
  const [problem, ...more] = [...read.operands, ...read.after];
  if (problem === undefined) throw new UsageError('no problem file given (sandcell judge <problem.yaml> --submission <file>)');
  if (more.length > 0) throw new UsageError(`one problem file at a time (got ${problem} and ${more[0]})`);
  const submission = read.value('--submission');
  if (submission === undefined) throw new UsageError('--submission <file> is required');
  const lang = read.value('--lang');
  const config = read.value('--config');
  return {
    problem,
    submission,
    ...(lang !== undefined ? { lang } : {}),
    ...(config !== undefined ? { config } : {}),
    stopOnFirst: read.has('--stop-on-first'),
    json: read.has('--json'),
  };
}

function ms(n: number): string {
  return n >= 1000 ? `${(n / 1000).toFixed(2)}s` : `${Math.round(n)}ms`;
}

function mib(n: number | null): string {
  return n === null ? '-' : `${(n / 1024 / 1024).toFixed(1)}MiB`;
}

function table(r: JudgeReport): string {
  const lines = [`${r.problem} (${r.language})`];
  if (r.compile) lines.push(`  compile  ${r.compile.status === 'ok' ? 'ok' : 'failed'}  ${ms(r.compile.usage.wallTimeMs)}`);
  if (r.verdict === 'CE' && r.compile) lines.push(r.compile.stderr.trimEnd());
  const width = Math.max(4, ...r.tests.map((t) => t.name.length));
  for (const t of r.tests) {
    const u = t.result.usage;
    lines.push(`  ${t.name.padEnd(width)}  ${t.verdict.padEnd(3)}  ${ms(u.cpuTimeMs).padStart(7)} cpu  ${ms(u.wallTimeMs).padStart(7)} wall  ${mib(u.memoryPeakBytes).padStart(9)}${t.detail ? `  ${t.detail}` : ''}`);
  }
  const first = r.tests.find((t) => t.verdict !== 'AC');
  lines.push(`verdict: ${r.verdict}${first ? ` (test ${first.name})` : ''}${r.error ? `: ${r.error}` : ''}`);
  return lines.join('\n') + '\n';
}

function progressLine(p: Progress): string {
  if (p.stage === 'compile') return 'compiling';
  return `test ${p.index + 1}/${p.total} ${p.name}${p.stage === 'tested' ? ` ${p.verdict}` : ''}`;
}

export async function judgeCommand(args: readonly string[]): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(JUDGE_HELP);
    return 0;
  }
  const cmd = parseJudgeArgs(args);
  let problem: Problem;
  try {
    problem = loadProblem(cmd.problem, cmd.config !== undefined ? { config: cmd.config } : {});
  } catch (e) {
    if (!(e instanceof DeclarationError) || !cmd.json) throw e;
    // A caller reading JSON gets its one object: a problem file that cannot be read is the judge's failure.
    const report: JudgeReport = { problem: cmd.problem, language: cmd.lang ?? null, verdict: 'JE', error: e.message, compile: null, tests: [] };
    process.stdout.write(JSON.stringify(report, null, 2) + '\n');
    return 2;
  }
  const submission = submissionFromFile(problem, cmd.submission, cmd.lang);
  const tty = process.stderr.isTTY === true && !cmd.json;
  const judge = await Judge.open(problem);
  let report: JudgeReport;
  try {
    report = await judge.judge(submission, {
      stopOnFirst: cmd.stopOnFirst,
      ...(tty ? { onProgress: (p: Progress) => process.stderr.write(`\r\x1b[K${progressLine(p)}`) } : {}),
    });
  } finally {
    if (tty) process.stderr.write('\r\x1b[K');
    await judge.close();
  }
  process.stdout.write(cmd.json ? JSON.stringify(report, null, 2) + '\n' : table(report));
  return report.verdict === 'AC' ? 0 : report.verdict === 'JE' ? 2 : 1;
}
