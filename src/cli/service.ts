/**
 * `sandcell service`: a farm's services from the shell (create, scale, rm, ls, call), through
 * the same ServicesClient a program uses.
 */
import { parseRedisUrl, RedisUrlError } from '../cluster/connection.js';
import { LabelError, parseLabels } from '../cluster/queues.js';
import type { CreateServiceOptions, ServicesClient, ServiceStatus } from '../cluster/services/index.js';
import { parseDuration, parseSize } from '../units.js';
import { parseRunArgs, UsageError } from './args.js';
import { loadFarm } from './worker.js';

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
`;

interface Common {
  redis: string;
  prefix: string;
  /** The arguments left for the verb. */
  rest: string[];
}

/** Takes --redis and --prefix out of the arguments before `--`. */
function common(args: readonly string[]): Common {
  let redis: string | undefined;
  let prefix = 'sandcell';
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const raw = args[i] as string;
    if (raw === '--') {
      rest.push(...args.slice(i));
      break;
    }
    const eq = raw.indexOf('=');
    const flag = raw.startsWith('--') && eq > 0 ? raw.slice(0, eq) : raw;
    if (flag !== '--redis' && flag !== '--prefix') {
      rest.push(raw);
      continue;
    }
    const value = flag !== raw ? raw.slice(eq + 1) : args[++i];
    if (value === undefined) throw new UsageError(`${flag} needs a value`);
    if (flag === '--prefix') prefix = value;
    else {
      try {
        parseRedisUrl(value);
      } catch (e) {
        if (e instanceof RedisUrlError) throw new UsageError(`--redis: ${e.message}`);
        throw e;
      }
      redis = value;
    }
  }
  if (redis === undefined) throw new UsageError('--redis is required (see sandcell service --help)');
  return { redis, prefix, rest };
}

/** Takes `--flag value` (or `--flag=value`) out of `args` before `--`; the last one given wins. */
function takeFlag(args: string[], flag: string): string | undefined {
  let found: string | undefined;
  for (let i = 0; i < args.length && args[i] !== '--'; ) {
    const raw = args[i] as string;
    if (raw === flag) {
      if (args[i + 1] === undefined) throw new UsageError(`${flag} needs a value`);
      found = args.splice(i, 2)[1];
    } else if (raw.startsWith(`${flag}=`)) {
      found = (args.splice(i, 1)[0] as string).slice(flag.length + 1);
    } else i++;
  }
  return found;
}

function createOptions(name: string, args: string[]): CreateServiceOptions {
  const replicas = takeFlag(args, '--replicas');
  if (replicas === undefined) throw new UsageError('--replicas is required');
  const constraint = takeFlag(args, '--constraint');
  const maxLine = takeFlag(args, '--max-line');
  const cmd = parseRunArgs(args);
  if (cmd.options.collect || cmd.report !== null || cmd.config !== null) throw new UsageError('--collect, --report and --config are not for services');
  const { files, stdin: _stdin, collect: _collect, args: operands, ...box } = cmd.options;
  // A service's replicas run its command as given: the operands after `--` are all of it.
  const out: CreateServiceOptions = { ...box, command: [...(box.command ?? []), ...(operands ?? [])], name, replicas: Number(replicas) } as CreateServiceOptions;
  if (files) out.files = Object.fromEntries(Object.entries(files).map(([k, v]) => [k, Buffer.from(v as Uint8Array).toString('utf8')]));
  if (cmd.profile !== null) out.profile = cmd.profile;
  if (constraint !== undefined) {
    try {
      out.constraints = parseLabels(constraint);
    } catch (e) {
      if (e instanceof LabelError) throw new UsageError(`--constraint: ${e.message}`);
      throw e;
    }
  }
  if (maxLine !== undefined) {
    const n = parseSize(maxLine);
    if (typeof n === 'string') throw new UsageError(`--max-line: ${n}`);
    out.maxLine = n;
  }
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
  const rest = c.rest;
  const arity = (n: number, usage: string): void => {
    if (rest.length !== n) throw new UsageError(`usage: sandcell service ${usage}`);
  };
  // A bad invocation is refused before anything connects.
  let action: (client: ServicesClient) => Promise<void>;
  if (verb === 'create') {
    const name = rest.shift();
    if (name === undefined || name.startsWith('-')) throw new UsageError('usage: sandcell service create <name> --replicas <n> [options] -- <command> [args...]');
    const options = createOptions(name, rest);
    action = async (client) => {
      await client.create(options);
      process.stdout.write(`created ${name}\n`);
    };
  } else if (verb === 'scale') {
    arity(2, 'scale <name> <n>');
    const [name, n] = rest as [string, string];
    action = async (client) => {
      await client.scale(name, Number(n));
      process.stdout.write(`${name} scaled to ${n}\n`);
    };
  } else if (verb === 'rm') {
    arity(1, 'rm <name>');
    const name = rest[0] as string;
    action = async (client) => {
      await client.rm(name);
      process.stdout.write(`removed ${name}\n`);
    };
  } else if (verb === 'ls') {
    const json = rest.includes('--json');
    arity(json ? 1 : 0, 'ls [--json]');
    action = async (client) => {
      const services = await client.ls();
      process.stdout.write(json ? `${JSON.stringify(services, null, 2)}\n` : formatLs(services, Date.now()));
    };
  } else if (verb === 'call') {
    const timeoutFlag = takeFlag(rest, '--timeout');
    arity(2, 'call <name> <json> [--timeout <dur>]');
    const [name, text] = rest as [string, string];
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw new UsageError(`call: the value is not JSON: ${JSON.stringify(text.slice(0, 100))}`);
    }
    const timeout = timeoutFlag === undefined ? undefined : parseDuration(timeoutFlag);
    if (typeof timeout === 'string') throw new UsageError(`--timeout: ${timeout}`);
    action = async (client) => {
      const reply = await client.call(name, value, timeout === undefined ? {} : { timeout });
      process.stdout.write(`${JSON.stringify(reply)}\n`);
    };
  } else {
    throw new UsageError(`unknown service verb ${JSON.stringify(verb)} (see sandcell service --help)`);
  }
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
