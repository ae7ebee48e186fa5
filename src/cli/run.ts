/**
 * `sandcell run`: one program in a new box (or, with SANDCELL_HOST, on a daemon), its output
 * passed through and its status as the command's.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { dirname, join } from 'node:path';

import type { PublishedAddress, Result, RunOptions, RunResult } from '../index.js';
import { RUN_HELP } from './help.js';
import { parseRunArgs, type RunCommand } from './args.js';

/** The verdicts of a limit: the run ends as `docker run` reports a container its limit killed. */
const LIMITS: ReadonlySet<Result['status']> = new Set(['time-limit', 'wall-time-limit', 'memory-limit', 'output-limit']);

function exitCodeOf(r: Result): number {
  // A program past its output limit may exit by itself before the kill reaches it: its own 0
  // would tell a script the run passed.
  if (LIMITS.has(r.status) && r.signal === null) return 128 + osConstants.signals.SIGKILL;
  if (r.exitCode !== null) return r.exitCode;
  const n = r.signal ? osConstants.signals[r.signal as NodeJS.Signals] : undefined;
  return 128 + (n ?? osConstants.signals.SIGKILL);
}

/** A run whose output comes back as bytes: the library's `run()`, or a daemon's. */
export type BytesRunner = (options: RunOptions<'buffer'> & { encoding: 'buffer' }) => Promise<RunResult<Buffer>>;

/**
 * With --collect: the run happens in a living box so its files can be read after it ended. On a
 * daemon (`runner`) every run goes this way: output comes back with the result.
 */
async function runCollecting(cmd: RunCommand, runner: BytesRunner): Promise<number> {
  if (cmd.options.stdin === undefined && !process.stdin.isTTY) cmd.options.stdin = process.stdin;
  // The output comes back whole: as bytes, so that it passes through as the program wrote it, as
  // the streamed output of a run without --collect does.
  const r = await runner({ ...cmd.options, encoding: 'buffer' });
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
  return finish(cmd, { ...r, stdout: r.stdout.toString('utf8'), stderr: r.stderr.toString('utf8'), files: saved } as unknown as Result);
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
  const { run, setCgroupsAhead, setWarmBoxes, spawn } = await import('../index.js');
  // One run and the process ends: a box or a cgroup made ahead would only be made to be removed.
  await setWarmBoxes(0);
  setCgroupsAhead(0);
  const stopped = abortOnSignals(cmd);
  try {
    const status = cmd.options.collect ? await runCollecting(cmd, (o) => run(o)) : await runInBox(cmd, spawn);
    if (stopped.by === null) return status;
  } catch (e) {
    // The run's abort, or whatever else a run ended by it ended with.
    if (stopped.by === null) throw e;
  }
  process.stderr.write(`sandcell: ${stopped.by}: the run was aborted\n`);
  return 128 + osConstants.signals[stopped.by];
}

/**
 * SIGINT and SIGTERM end the run as its abort does (the box killed, its cgroup removed, this
 * process's cgroup parents with it) and the command with 128 + that signal, as a shell reports
 * it. Their default action would end this process at once and leave its cgroups to the next
 * sandcell process's sweep. A second one ends it at once.
 */
function abortOnSignals(cmd: RunCommand): { by: 'SIGINT' | 'SIGTERM' | null } {
  const stopped: { by: 'SIGINT' | 'SIGTERM' | null } = { by: null };
  const abort = new AbortController();
  cmd.options.signal = abort.signal;
  for (const name of ['SIGINT', 'SIGTERM'] as const) {
    process.once(name, () => {
      stopped.by ??= name;
      abort.abort();
    });
  }
  return stopped;
}

/**
 * A published port asked for as host port 0 listens where the kernel chose: the command says
 * where on stderr before the program's output, since nothing else would tell the user.
 */
function sayChosenPorts(cmd: RunCommand, published: readonly PublishedAddress[]): void {
  const network = cmd.options.network;
  if (typeof network !== 'object' || network === null || !('publish' in network)) return;
  for (const [i, asked] of (network.publish ?? []).entries()) {
    const port = typeof asked.host === 'string' ? Number(asked.host.slice(asked.host.lastIndexOf(':') + 1)) : asked.host;
    const at = published[i];
    if (port === 0 && at) process.stderr.write(`sandcell: box port ${at.box} published on ${at.address.includes(':') ? `[${at.address}]` : at.address}:${at.port}\n`);
  }
}

async function runInBox(cmd: RunCommand, spawn: typeof import('../index.js').spawn): Promise<number> {
  const box = await spawn(cmd.options);
  sayChosenPorts(cmd, box.published);
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

export async function runVerb(rest: readonly string[]): Promise<number> {
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
  // On a daemon the engine is the daemon's, and it checks the options: this process loads only
  // the client.
  if (host) return await runCollecting(cmd, (await import('./remote.js')).remoteRunner(host));
  return await runCommand(cmd);
}
