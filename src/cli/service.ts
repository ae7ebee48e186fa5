/**
 * `sandcell service`: a farm's services from the shell (create, scale, rm, ls, call), through
 * the same ServicesClient a program uses.
 */
import type { CreateServiceOptions, ServicesClient, ServiceStatus } from '../cluster/services/index.js';
import { parseRunArgs } from './args.js';
import { integerOf, labelsOf, positiveDuration, readFlags, redisUrlOf, sizeOf, type FlagSpec } from './flags.js';
import { UsageError } from './usage.js';
import { DEFAULT_CONNECT_TIMEOUT_MS, loadFarm, unreachable } from './farm.js';

export const SERVICE_HELP = `Usage: sandcell service <verb> --redis <url> [options]

Services are long-lived programs kept at a replica count across the workers of a farm (each
worker started with sandcell worker). A call is one JSON line to a replica's stdin, answered by
one JSON line on its stdout.

  create <name> --replicas <n> [--profile <p>] [--constraint k=v,...] [--max-line <size>]
         [sandcell run's options for the box] -- <command> [args...]
                          declare a service; --profile names a profile of each worker's
                          sandcell.yaml, --constraint the labels a worker must have
  scale <name> <n>        set the desired replica count
  rm <name>               remove it: its replicas stop, queued calls fail
  ls [--json]             desired and running replicas per service, where each runs, last crash
  call <name> <json> [--timeout <dur>]
                          send one value, print the reply

  --redis <url>           the farm's Redis (as for sandcell worker; required)
  --prefix <p>            key prefix in Redis (default sandcell)
  --connect-timeout <dur> how long Redis may take to answer (default 10s); one that does not
                          is exit 125, naming it
`;

interface Common {
  redis: string;
  prefix: string;
  connectTimeoutMs: number;
  /** The arguments left for the verb. */
  rest: string[];
}

/** Takes --redis, --prefix and --connect-timeout out of the arguments before `--`; the rest is the verb's. */
function common(args: readonly string[]): Common {
  const read = readFlags(args, { '--redis': 'value', '--prefix': 'value', '--connect-timeout': 'value' }, 'service', true);
  const redis = read.value('--redis');
  if (redis === undefined) throw new UsageError('--redis is required (see sandcell service --help)');
  const timeout = read.value('--connect-timeout');
  return {
    redis: redisUrlOf('--redis', redis),
    prefix: read.value('--prefix') ?? 'sandcell',
    connectTimeoutMs: timeout === undefined ? DEFAULT_CONNECT_TIMEOUT_MS : positiveDuration('--connect-timeout', timeout),
    rest: read.operands,
  };
}

function createOptions(name: string, args: string[]): CreateServiceOptions {
  const own = readFlags(args, { '--replicas': 'value', '--constraint': 'value', '--max-line': 'value' }, 'service', true);
  const replicas = own.value('--replicas');
  if (replicas === undefined) throw new UsageError('--replicas is required');
  const constraint = own.value('--constraint');
  const maxLine = own.value('--max-line');
  const cmd = parseRunArgs(own.operands);
  if (cmd.options.collect || cmd.report !== null || cmd.config !== null) throw new UsageError('--collect, --report and --config are not for services');
  const { files, stdin: _stdin, collect: _collect, args: operands, ...box } = cmd.options;
  // A service's replicas run its command as given: the operands after `--` are all of it.
  const out: CreateServiceOptions = { ...box, command: [...(box.command ?? []), ...(operands ?? [])], name, replicas: integerOf('--replicas', replicas, 0) } as CreateServiceOptions;
  if (files) out.files = Object.fromEntries(Object.entries(files).map(([k, v]) => [k, Buffer.from(v as Uint8Array).toString('utf8')]));
  if (cmd.profile !== null) out.profile = cmd.profile;
  if (constraint !== undefined) out.constraints = labelsOf('--constraint', constraint);
  if (maxLine !== undefined) out.maxLine = sizeOf('--max-line', maxLine);
  return out;
}

function age(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  return s < 120 ? `${s}s` : s < 7200 ? `${Math.round(s / 60)}m` : `${Math.round(s / 3600)}h`;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows.map((r) => r.map((v, c) => v.padEnd(widths[c] as number)).join('  ').trimEnd()).join('\n');
}

/** Like docker service ls followed by docker service ps of each. */
function formatLs(services: ServiceStatus[], now: number): string {
  if (services.length === 0) return 'no services\n';
  const out: string[] = [];
  for (const s of services) {
    const crash = s.lastCrash ? `last crash ${age(now - s.lastCrash.at)} ago on ${s.lastCrash.worker}: ${s.lastCrash.reason}${s.lastCrash.exitCode != null ? ` (exit ${s.lastCrash.exitCode})` : ''}` : 'no crash';
    out.push(`${s.name}  ${s.running}/${s.desired} running  ${crash}`);
    const rows = [['  SLOT', 'REPLICA', 'WORKER', 'STATE', 'PID', 'RESTARTS', 'SINCE']];
    for (const r of s.replicas) {
      rows.push([`  ${r.slot}`, r.id, r.workerAlive ? r.worker : `${r.worker} (silent)`, r.state, r.pid ? String(r.pid) : '-', String(r.restarts), `${age(now - r.since)} ago`]);
    }
    if (s.replicas.length > 0) out.push(table(rows));
    for (const p of s.problems) out.push(`  problem: ${p}`);
  }
  return `${out.join('\n')}\n`;
}

export async function serviceCommand(args: readonly string[]): Promise<number> {
  const [verb, ...tail] = args;
  if (verb === undefined || verb === '--help' || verb === '-h' || tail.includes('--help')) {
    process.stdout.write(SERVICE_HELP);
    return verb === undefined ? 2 : 0;
  }
  const c = common(tail);
  const usage = (text: string): never => {
    throw new UsageError(`usage: sandcell service ${text}`);
  };
  /** The verb's operands, after its own flags (any other flag refused, naming it). */
  const operands = (n: number, text: string, spec: FlagSpec = {}): { args: string[]; read: ReturnType<typeof readFlags> } => {
    const read = readFlags(c.rest, spec, 'service');
    if (read.operands.length !== n || read.after.length > 0) usage(text);
    return { args: read.operands, read };
  };
  // A bad invocation is refused before anything connects.
  let action: (client: ServicesClient) => Promise<void>;
  if (verb === 'create') {
    const [name, ...rest] = c.rest;
    if (name === undefined || name.startsWith('-')) usage('create <name> --replicas <n> [options] -- <command> [args...]');
    const options = createOptions(name!, rest);
    action = async (client) => {
      await client.create(options);
      process.stdout.write(`created ${name}\n`);
    };
  } else if (verb === 'scale') {
    const [name, text] = operands(2, 'scale <name> <n>').args as [string, string];
    const n = integerOf('scale <n>', text, 0);
    action = async (client) => {
      await client.scale(name, n);
      process.stdout.write(`${name} scaled to ${n}\n`);
    };
  } else if (verb === 'rm') {
    const [name] = operands(1, 'rm <name>').args as [string];
    action = async (client) => {
      await client.rm(name);
      process.stdout.write(`removed ${name}\n`);
    };
  } else if (verb === 'ls') {
    const { read } = operands(0, 'ls [--json]', { '--json': 'switch' });
    const json = read.has('--json');
    action = async (client) => {
      const services = await client.ls();
      process.stdout.write(json ? `${JSON.stringify(services, null, 2)}\n` : formatLs(services, Date.now()));
    };
  } else if (verb === 'call') {
    const { args, read } = operands(2, 'call <name> <json> [--timeout <dur>]', { '--timeout': 'value' });
    const [name, text] = args as [string, string];
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw new UsageError(`call: the value is not JSON: ${JSON.stringify(text.slice(0, 100))}`);
    }
    const timeoutFlag = read.value('--timeout');
    const timeout = timeoutFlag === undefined ? undefined : positiveDuration('--timeout', timeoutFlag);
    action = async (client) => {
      const reply = await client.call(name, value, timeout === undefined ? {} : { timeout });
      process.stdout.write(`${JSON.stringify(reply)}\n`);
    };
  } else {
    throw new UsageError(`unknown service verb ${JSON.stringify(verb)} (see sandcell service --help)`);
  }
  const refused = await unreachable('sandcell service', c.redis, c.connectTimeoutMs);
  if (refused !== null) return refused;
  const services = await loadFarm('sandcell service', () => import('../cluster/services/client.js'));
  const client = new services.ServicesClient({ connection: c.redis, prefix: c.prefix });
  try {
    await action(client);
  } catch (e) {
    // The service's own answer (no such service, a failed call): exit 1, as a failed command.
    if (!(e instanceof services.ServiceError)) throw e;
    process.stderr.write(`sandcell: ${e.message}\n`);
    return 1;
  } finally {
    await client.close();
  }
  return 0;
}
