#!/usr/bin/env node
/**
 * The `sandcell` command. Exit codes follow `docker run`, `env` and `chroot`: the program's own
 * status, 128+signal, 125 when the box could not be built, 126/127 when the command could not be
 * executed / was not found.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { dirname, join } from 'node:path';

// Only what `sandcell run` needs is loaded up front: a command's own modules (the daemon with its
// logger and metrics, the farm, judging, images, profiles' YAML, the client) are imported when
// that command runs, so a one-shot run does not pay for loading them.
import { run, SandboxNetworkError, SandboxOptionsError, SandboxSetupError, setWarmBoxes, spawn, type Result } from '../index.js';
import { explain, hostArch, isPresetName, parsePolicy, presets, SeccompPolicyError } from '../seccomp/index.js';
import { SandcellRemoteError } from '../client/errors.js';
import { MAIN_HELP, RUN_HELP } from './help.js';
import { parseRunArgs, UsageError, type RunCommand } from './args.js';

const EXIT_SETUP = 125;
const EXIT_CANNOT_EXECUTE = 126;
const EXIT_NOT_FOUND = 127;

function exitCodeOf(r: Result): number {
  if (r.exitCode !== null) return r.exitCode;
  const n = r.signal ? osConstants.signals[r.signal as NodeJS.Signals] : undefined;
  return 128 + (n ?? osConstants.signals.SIGKILL);
}

/**
 * With --collect: the run happens in a living box so its files can be read after it ended. On a
 * daemon (`runner`) every run goes this way: output comes back with the result.
 */
async function runCollecting(cmd: RunCommand, runner = run): Promise<number> {
  if (cmd.options.stdin === undefined && !process.stdin.isTTY) cmd.options.stdin = process.stdin;
  const r = await runner(cmd.options);
  if (!cmd.json) {
    process.stdout.write(r.stdout);
    process.stderr.write(r.stderr);
  }
  const saved: Record<string, { bytes: number; savedTo: string }> = {};
  for (const [name, data] of Object.entries(r.files ?? {})) {
    const to = join(cmd.collectTo, name);
    mkdirSync(dirname(to), { recursive: true });
    writeFileSync(to, data);
    saved[name] = { bytes: data.length, savedTo: to };
  }
  for (const [name, why] of Object.entries(r.fileErrors ?? {})) process.stderr.write(`sandcell: collect ${name}: ${why}\n`);
  return finish(cmd, { ...r, files: saved } as unknown as Result);
}

function finish(cmd: RunCommand, result: Result): number {
  const json = JSON.stringify(result, null, 2) + '\n';
  if (cmd.report !== null) writeFileSync(cmd.report, json);
  if (cmd.json) process.stdout.write(json);
  else if (result.status !== 'ok' && result.status !== 'nonzero-exit' && result.status !== 'signaled') {
    process.stderr.write(`sandcell: ${result.status}${result.violation ? ` (${result.violation.syscall})` : ''}\n`);
  }
  return exitCodeOf(result);
}

async function runCommand(cmd: RunCommand): Promise<number> {
  if (cmd.options.collect) return runCollecting(cmd);
  const box = await spawn(cmd.options);
  // The program's output passes through as it comes (or is only collected with --json) and is
  // also kept for the report, within the output limit the box already enforces.
  const keep = cmd.json || cmd.report !== null;
  const captured: { stdout: Buffer[]; stderr: Buffer[] } = { stdout: [], stderr: [] };
  const done = Promise.all(
    (['stdout', 'stderr'] as const).map(
      (name) =>
        new Promise<void>((resolve) => {
          const target = name === 'stdout' ? process.stdout : process.stderr;
          box[name].on('data', (chunk: Buffer) => {
            if (keep) captured[name].push(chunk);
            if (!cmd.json) target.write(chunk);
          });
          box[name].on('end', resolve);
          box[name].on('error', () => resolve());
        }),
    ),
  );
  if (box.stdin) {
    process.stdin.on('error', () => undefined);
    process.stdin.pipe(box.stdin);
  }
  let waited: Awaited<ReturnType<typeof box.wait>>;
  try {
    waited = await box.wait();
    await done;
  } finally {
    // However the run ended, stdin is let go: a terminal still piped keeps this process alive.
    process.stdin.unpipe();
    process.stdin.destroy();
  }
  const result: Result = {
    ...waited,
    stdout: Buffer.concat(captured.stdout).toString('utf8'),
    stderr: Buffer.concat(captured.stderr).toString('utf8'),
  };
  return finish(cmd, result);
}

function seccompExplain(args: readonly string[]): number {
  const what = args[0];
  if (what === undefined || args.length !== 1) throw new UsageError('usage: sandcell seccomp explain <preset|policy.json>');
  const policy = isPresetName(what) ? presets[what] : parsePolicy(JSON.parse(readFileSync(what, 'utf8')));
  const arch = hostArch() ?? 'x86_64';
  process.stdout.write(explain(policy, arch) + '\n');
  return 0;
}

export async function main(argv: readonly string[]): Promise<number> {
  const [verb, ...rest] = argv;
  try {
    if (verb === undefined || verb === '--help' || verb === '-h' || verb === 'help') {
      process.stdout.write(MAIN_HELP);
      return verb === undefined ? 2 : 0;
    }
    if (verb === 'run') {
      // One run and the process ends: a box built ahead would only be built to be thrown away.
      await setWarmBoxes(0);
      const dash = rest.indexOf('--');
      const flags = dash === -1 ? rest : rest.slice(0, dash);
      if (flags.includes('--help') || flags.includes('-h')) {
        process.stdout.write(RUN_HELP);
        return 0;
      }
      const cmd = parseRunArgs(rest);
      if (cmd.profile !== null) {
        const { loadProfiles, withProfile } = await import('../profiles/index.js');
        cmd.options = withProfile(loadProfiles(cmd.config ?? undefined), cmd.profile, cmd.options);
      }
      const host = process.env.SANDCELL_HOST;
      if (host) return await runCollecting(cmd, (await import('./remote.js')).remoteRunner(host));
      return await runCommand(cmd);
    }
    if (verb === 'serve') {
      const { serve, SERVE_HELP } = await import('./serve.js');
      if (rest.includes('--help') || rest.includes('-h')) {
        process.stdout.write(SERVE_HELP);
        return 0;
      }
      return await serve(rest);
    }
    if (verb === 'worker') {
      const { WORKER_HELP, workerCommand } = await import('./worker.js');
      if (rest.includes('--help') || rest.includes('-h')) {
        process.stdout.write(WORKER_HELP);
        return 0;
      }
      return await workerCommand(rest);
    }
    if (verb === 'service') return await (await import('./service.js')).serviceCommand(rest);
    if (verb === 'judge') return await (await import('./judge.js')).judgeCommand(rest);
    if (verb === 'network') return await (await import('./network.js')).networkCommand(rest);
    if (verb === 'schema') return (await import('./schema.js')).schemaCommand(rest);
    if (verb === 'image') return await (await import('./image.js')).imageCommand(rest);
    if (verb === 'seccomp' && rest[0] === 'explain') return seccompExplain(rest.slice(1));
    throw new UsageError(`unknown command ${JSON.stringify(verb)} (see sandcell --help)`);
  } catch (e) {
    return await failure(e);
  }
}

/** The exit status of a command that failed, its reason written to stderr; an internal error is thrown on. */
async function failure(e: unknown): Promise<number> {
  if (e instanceof SandboxSetupError) {
    process.stderr.write(`sandcell: ${e.message}\n`);
    if (e.stage === 'execve') return e.code === 'ENOENT' ? EXIT_NOT_FOUND : EXIT_CANNOT_EXECUTE;
    return EXIT_SETUP;
  }
  if (
    e instanceof UsageError ||
    e instanceof SandboxOptionsError ||
    e instanceof SandboxNetworkError ||
    e instanceof SeccompPolicyError ||
    e instanceof SyntaxError ||
    e instanceof SandcellRemoteError
  ) {
    process.stderr.write(`sandcell: ${e.message}\n`);
    return EXIT_SETUP;
  }
  // Only a command that loaded profiles or problems can fail with their errors: for it these
  // imports are already done, and no other command waits for them.
  const [{ DeclarationError }, { SubmissionError }] = await Promise.all([import('../profiles/index.js'), import('../problems/index.js')]);
  if (e instanceof DeclarationError) {
    process.stderr.write(`${e.message.split('\n').map((l) => `sandcell: ${l}`).join('\n')}\n`);
    return EXIT_SETUP;
  }
  if (e instanceof SubmissionError) {
    process.stderr.write(`sandcell: ${e.message}\n`);
    return EXIT_SETUP;
  }
  throw e;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`sandcell: internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = EXIT_SETUP;
  },
);
