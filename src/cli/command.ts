/**
 * The `sandcell` command. Exit codes follow `docker run`, `env` and `chroot`: the program's own
 * status, 128+signal, 125 when the box could not be built, 126/127 when the command could not be
 * executed / was not found.
 */
// Each command's modules are imported when that command runs: help and a mistyped command line
// answer without loading the engine, and a one-shot run loads none of the daemon (its logger and
// metrics), the farm, judging, images, profiles' YAML or the client.
import { SandboxNetworkError, SandboxOptionsError, SandboxSetupError } from '../errors.js';
import { SandcellRemoteError } from '../client/errors.js';
import { MAIN_HELP } from './help.js';
import { UnreachableDaemonError, UsageError } from './usage.js';

const EXIT_SETUP = 125;
const EXIT_CANNOT_EXECUTE = 126;
const EXIT_NOT_FOUND = 127;

const SECCOMP_HELP = `Usage: sandcell seccomp explain <preset|policy.json>

Prints the decision table of a seccomp policy for this machine's architecture: a preset's name
(none, default, judge) or a policy file in JSON, as --seccomp takes them.
`;

async function seccompCommand(args: readonly string[]): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(SECCOMP_HELP);
    return 0;
  }
  const [sub, what] = args;
  if (sub !== 'explain' || what === undefined || args.length !== 2) throw new UsageError('usage: sandcell seccomp explain <preset|policy.json>');
  const choice = (await import('./args.js')).parseSeccomp(what, 'seccomp explain');
  const { explain, hostArch, parsePolicy, presets } = await import('../seccomp/index.js');
  const policy = typeof choice === 'string' ? presets[choice] : parsePolicy(choice);
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
    if (verb === '--version' || verb === '-V' || verb === 'version') return await (await import('./version.js')).versionCommand(verb, rest);
    if (verb === 'run') return await (await import('./run.js')).runVerb(rest);
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
    if (verb === 'seccomp') return await seccompCommand(rest);
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
    e instanceof UnreachableDaemonError ||
    e instanceof SandboxOptionsError ||
    e instanceof SandboxNetworkError ||
    e instanceof SyntaxError ||
    e instanceof SandcellRemoteError
  ) {
    process.stderr.write(`sandcell: ${e.message}\n`);
    return EXIT_SETUP;
  }
  // Only a command that loaded these modules can fail with their errors: for it the imports are
  // already done, and no other command's failure waits for them.
  const [{ SeccompPolicyError }, { DeclarationError }, { SubmissionError }] = await Promise.all([
    import('../seccomp/index.js'),
    import('../profiles/index.js'),
    import('../problems/index.js'),
  ]);
  if (e instanceof DeclarationError) {
    process.stderr.write(`${e.message.split('\n').map((l) => `sandcell: ${l}`).join('\n')}\n`);
    return EXIT_SETUP;
  }
  if (e instanceof SeccompPolicyError || e instanceof SubmissionError) {
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
