/**
 * `sandcell run` arguments → RunOptions. Only syntax is checked here; the values go through the
 * same validation as the library's options.
 */
import { closeSync, fstatSync, openSync, readFileSync } from 'node:fs';

import type { Bind, FileContent, Limits, Mount, NetworkMode, PublishedPort, RunOptions } from '../index.js';
// The presets' names from their data module alone: the seccomp compiler and its tables are the
// engine's, loaded only by a run on this host.
import { isPresetName } from '../seccomp/presets.js';
import type { SeccompPolicy } from '../seccomp/index.js';
import { flagsOf, unknownFlag } from './flags.js';
import { UsageError } from './usage.js';

export interface RunCommand {
  options: RunOptions;
  report: string | null;
  json: boolean;
  /** Where collected files are written (default: the current directory). */
  collectTo: string;
  /** A profile the options apply over, from `config` (default: ./sandcell.yaml). */
  profile: string | null;
  config: string | null;
}

const LIMIT_FLAGS: Readonly<Record<string, keyof Limits>> = {
  '--time': 'cpuTime',
  '--wall': 'wallTime',
  '--memory': 'memory',
  '--stack': 'stack',
  '--output': 'output',
  '--file-size': 'fileSize',
  '--tmpfs': 'tmpfs',
};

const NUMBER_LIMIT_FLAGS: Readonly<Record<string, keyof Limits>> = {
  '--pids': 'processes',
  '--open-files': 'openFiles',
  '--cpus': 'cpus',
};

function parseBind(spec: string): Bind {
  const parts = spec.split(':');
  let readonly = true;
  const last = parts[parts.length - 1];
  if (parts.length > 1 && (last === 'ro' || last === 'rw')) {
    readonly = last === 'ro';
    parts.pop();
  }
  if (parts.length > 2 || parts[0] === '') throw new UsageError(`--bind ${spec}: expected <host>[:<inside>][:ro|:rw]`);
  const [source, target] = parts as [string, string | undefined];
  return { source, ...(target !== undefined && target !== '' ? { target } : {}), readonly };
}

function parseMount(spec: string): Mount {
  const [type, target, size, ...rest] = spec.split(':');
  if (type !== 'tmpfs' || !target || rest.length > 0) throw new UsageError(`--mount ${spec}: expected tmpfs:<inside>[:<size>]`);
  return { type: 'tmpfs', target, ...(size ? { size } : {}) };
}

function parseFile(spec: string): [string, FileContent] {
  const at = spec.indexOf('=@');
  if (at <= 0) throw new UsageError(`--file ${spec}: expected <name>=@<host path>`);
  const path = spec.slice(at + 2);
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    // The host file's permission bits go with it, as cp keeps them: a program copied in stays
    // executable. Read from the one descriptor, so the mode is the bytes' own.
    const mode = fstatSync(fd).mode & 0o777;
    return [spec.slice(0, at), { data: readFileSync(fd), mode }];
  } catch (e) {
    throw new UsageError(`--file ${spec}: cannot read ${path} (${(e as Error).message})`);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * A seccomp choice as the command line gives it: a preset's name, or a policy file's JSON (which
 * the library's options check, or `parsePolicy`). `flag` names where it was given.
 */
export function parseSeccomp(value: string, flag = '--seccomp'): RunOptions['seccomp'] {
  if (isPresetName(value)) return value;
  let text: string;
  try {
    text = readFileSync(value, 'utf8');
  } catch (e) {
    throw new UsageError(`${flag} ${value}: not a preset (none, default, judge) and not a readable file (${(e as Error).message})`);
  }
  try {
    return JSON.parse(text) as SeccompPolicy;
  } catch (e) {
    throw new UsageError(`${flag} ${value}: not valid JSON (${(e as Error).message})`);
  }
}

/** `--publish [address:]hostPort:boxPort` (an IPv6 address in brackets). */
function parsePublish(spec: string): PublishedPort {
  const m = /^(?:(\[[0-9a-fA-F:.]+\]|[0-9.]+):)?(\d{1,5}):(\d{1,5})$/.exec(spec);
  if (!m) throw new UsageError(`--publish ${spec}: expected [<host address>:]<host port>:<box port>, e.g. 127.0.0.1:18000:8000`);
  const box = Number(m[3]);
  return { box, host: m[1] !== undefined ? `${m[1]}:${m[2]}` : Number(m[2]) };
}

/** Parses the arguments after `run`. */
export function parseRunArgs(args: readonly string[]): RunCommand {
  const limits: Limits = {};
  const binds: Bind[] = [];
  const mounts: Mount[] = [];
  const files: Record<string, FileContent> = {};
  const collect: string[] = [];
  const allow: string[] = [];
  const publish: PublishedPort[] = [];
  let collectTo = '.';
  const env: Record<string, string> = {};
  const options: RunOptions = {};
  let report: string | null = null;
  let json = false;
  let profile: string | null = null;
  let config: string | null = null;
  let entrypoint: string | null = null;
  let operands: string[] = [];
  for (const f of flagsOf(args)) {
    const { raw, flag, value: take } = f;
    if (raw === '--' || !f.isFlag) {
      operands = raw === '--' ? f.rest() : [raw, ...f.rest()];
      break;
    }
    const limit = LIMIT_FLAGS[flag];
    const numberLimit = NUMBER_LIMIT_FLAGS[flag];
    if (limit) {
      (limits as Record<string, unknown>)[limit] = take();
    } else if (numberLimit) {
      const v = take();
      const n = Number(v);
      if (v.trim() === '' || !Number.isFinite(n)) throw new UsageError(`${flag} needs a number, got ${JSON.stringify(v)}`);
      (limits as Record<string, unknown>)[numberLimit] = n;
    } else if (flag === '--bind') {
      binds.push(parseBind(take()));
    } else if (flag === '--mount') {
      mounts.push(parseMount(take()));
    } else if (flag === '--image') {
      options.image = take();
    } else if (flag === '--entrypoint') {
      entrypoint = take();
    } else if (flag === '--writable') {
      options.writable = true;
    } else if (flag === '--file') {
      const [name, data] = parseFile(take());
      files[name] = data;
    } else if (flag === '--collect') {
      collect.push(take());
    } else if (flag === '--collect-to') {
      collectTo = take();
    } else if (flag === '--env') {
      const kv = take();
      const at = kv.indexOf('=');
      if (at <= 0) throw new UsageError(`--env ${kv}: expected NAME=value`);
      env[kv.slice(0, at)] = kv.slice(at + 1);
    } else if (flag === '--cwd') {
      options.cwd = take();
    } else if (flag === '--network') {
      options.network = take();
    } else if (flag === '--hostname') {
      options.hostname = take();
    } else if (flag === '--allow') {
      allow.push(take());
    } else if (flag === '--publish') {
      publish.push(parsePublish(take()));
    } else if (flag === '--seccomp') {
      options.seccomp = parseSeccomp(take());
    } else if (flag === '--cgroup-parent') {
      options.cgroupParent = take();
    } else if (flag === '--report') {
      report = take();
    } else if (flag === '--json') {
      json = true;
    } else if (flag === '--profile') {
      profile = take();
    } else if (flag === '--config') {
      config = take();
    } else {
      unknownFlag(raw, 'run');
    }
  }
  // As `docker run IMAGE args...`: the operands replace the image's Cmd and follow its
  // Entrypoint; without an image (or one with neither) they are the command.
  if (entrypoint !== null && entrypoint !== '') options.command = [entrypoint];
  if (entrypoint === '') {
    if (operands.length === 0) throw new UsageError("--entrypoint '' clears the image's Entrypoint: give the command after --");
    options.command = operands;
  } else if (operands.length > 0) options.args = operands;
  if (options.command === undefined && operands.length === 0 && options.image === undefined && profile === null) {
    throw new UsageError('no command given (sandcell run [options] -- <command> [args...])');
  }
  if (Object.keys(limits).length > 0) options.limits = limits;
  if (binds.length > 0) options.binds = binds;
  if (mounts.length > 0) options.mounts = mounts;
  if (Object.keys(files).length > 0) options.files = files;
  if (collect.length > 0) options.collect = collect;
  if (Object.keys(env).length > 0) options.env = env;
  if (allow.length > 0 || publish.length > 0) {
    if (typeof options.network === 'string' && options.network !== 'none' && options.network !== 'loopback') {
      throw new UsageError(`--network ${options.network} and --allow/--publish: a box with an allow list or published ports has a network namespace of its own`);
    }
    options.network = { ...(allow.length > 0 ? { allow } : {}), ...(publish.length > 0 ? { publish } : {}) };
  }
  if (config !== null && profile === null) throw new UsageError('--config names the file of a --profile: give the profile too');
  return { options, report, json, collectTo, profile, config };
}
