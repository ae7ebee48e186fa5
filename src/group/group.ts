/**
 * A few boxes started together and wired by pipes: one box's stdout (or stderr) becomes another's
 * stdin. An interactive judge is two boxes and two pipes; a pipeline is a chain.
 *
 * The bytes are copied through this process (each box's streams, as `spawn()` gives them), not
 * passed by a kernel pipe between the boxes: a box's stdio is made by the library for that box
 * alone. The copy honours backpressure (a reader that does not read stops the writer, as a full
 * pipe would), and what passes is counted against the sender's own output limit, so a flood ends
 * the sender with `output-limit`. When the receiver is gone, what is sent to it is read and
 * dropped (the sender sees no SIGPIPE); when the sender is done, the receiver reads EOF.
 */
import type { Readable, Writable } from 'node:stream';

import { SandboxOptionsError, spawn, type OptionIssue, type Result, type Sandbox, type SandboxProcess, type SandboxRunOptions, type SpawnOptions } from '../index.js';

/** One box of a group: options for `spawn()`, or a run in a living `sandbox`. */
export type GroupBox =
  | (SpawnOptions & { sandbox?: undefined; stdin?: string | Uint8Array })
  | (Omit<SandboxRunOptions, 'stdin' | 'collect'> & { sandbox: Sandbox; stdin?: string | Uint8Array });

export interface GroupPipe {
  /** `box.stdout` or `box.stderr`. */
  from: string;
  /** `box.stdin`. */
  to: string;
}

export interface GroupOptions {
  boxes: Record<string, GroupBox>;
  pipes?: GroupPipe[];
  /**
   * Boxes whose end ends the group: every other box still running then gets `graceMs` to end
   * on its own (it has read EOF by then) and is killed after that.
   */
  endOn?: string[];
  /** Default 1000. */
  graceMs?: number;
}

export interface GroupBoxResult extends Result {
  /** 0 for the box that ended first, 1 for the next, ... (by `SandboxProcess.endedAt`). */
  endOrder: number;
  /** Killed by the group after a box of `endOn` ended, not by its own limits. */
  endedByGroup: boolean;
}

export interface GroupResult {
  boxes: Record<string, GroupBoxResult>;
  /** Names in the order the boxes ended. */
  order: string[];
  pipes: { from: string; to: string; bytes: number }[];
}

const DEFAULT_GRACE_MS = 1000;

interface Endpoint {
  box: string;
  stream: 'stdin' | 'stdout' | 'stderr';
}

interface Source extends Endpoint {
  stream: 'stdout' | 'stderr';
}

function endpoint(spec: unknown, want: readonly Endpoint['stream'][], names: Set<string>, path: string, issues: OptionIssue[]): Endpoint | null {
  const m = typeof spec === 'string' ? /^(.+)\.(stdin|stdout|stderr)$/.exec(spec) : null;
  const stream = m?.[2] as Endpoint['stream'] | undefined;
  if (!m || stream === undefined || !want.includes(stream)) {
    issues.push({ path, message: `must be "<box>.${want.join('" or "<box>.')}"` });
    return null;
  }
  if (!names.has(m[1] as string)) {
    issues.push({ path, message: `names no box of the group (${JSON.stringify(m[1])})` });
    return null;
  }
  return { box: m[1] as string, stream };
}

function checkOptions(o: GroupOptions): { from: Source; to: Endpoint }[] {
  const issues: OptionIssue[] = [];
  const names = new Set(Object.keys(o.boxes ?? {}));
  if (names.size === 0) issues.push({ path: 'boxes', message: 'must name at least one box' });
  const pipes: { from: Source; to: Endpoint }[] = [];
  const fed = new Set<string>();
  const read = new Set<string>();
  (o.pipes ?? []).forEach((p, i) => {
    const from = endpoint(p.from, ['stdout', 'stderr'], names, `pipes[${i}].from`, issues);
    const to = endpoint(p.to, ['stdin'], names, `pipes[${i}].to`, issues);
    if (!from || !to) return;
    if (fed.has(to.box)) issues.push({ path: `pipes[${i}].to`, message: `${p.to} is fed by another pipe already` });
    if (read.has(p.from)) issues.push({ path: `pipes[${i}].from`, message: `${p.from} feeds another pipe already` });
    if (o.boxes[to.box]?.stdin !== undefined) issues.push({ path: `pipes[${i}].to`, message: `box ${to.box} is given stdin already` });
    fed.add(to.box);
    read.add(p.from);
    pipes.push({ from: from as Source, to });
  });
  // A hostname is unique on a private network: the second box would be refused after the first started.
  const named = new Map<string, string>();
  for (const [name, box] of Object.entries(o.boxes ?? {})) {
    if (box.sandbox) continue;
    const { network: on, hostname } = box;
    if (typeof on !== 'string' || ['none', 'loopback', 'host'].includes(on) || hostname === undefined) continue;
    const other = named.get(`${on}/${hostname}`);
    if (other !== undefined) issues.push({ path: `boxes.${name}.hostname`, message: `box ${other} of the group is ${hostname} on network ${on} already` });
    else named.set(`${on}/${hostname}`, name);
  }
  (o.endOn ?? []).forEach((n, i) => {
    if (!names.has(n)) issues.push({ path: `endOn[${i}]`, message: `names no box of the group (${JSON.stringify(n)})` });
  });
  if (o.graceMs !== undefined && !(Number.isFinite(o.graceMs) && o.graceMs >= 0)) issues.push({ path: 'graceMs', message: 'must be a number of ms, 0 or more' });
  if (issues.length > 0) throw new SandboxOptionsError(issues);
  return pipes;
}

async function start(box: GroupBox): Promise<SandboxProcess> {
  const { sandbox, stdin: _stdin, ...options } = box;
  return sandbox ? sandbox.spawn(options as SandboxRunOptions) : spawn(options as SpawnOptions);
}

/** Copies `from` into `to` until `from` ends; counts the bytes. */
function connect(from: Readable, to: Writable, counted: { bytes: number }): void {
  let receiverGone = false;
  const gone = (): void => {
    receiverGone = true;
    from.resume();
  };
  to.on('close', gone);
  to.on('error', gone);
  from.on('data', (chunk: Buffer) => {
    if (receiverGone) return;
    counted.bytes += chunk.length;
    if (!to.write(chunk)) {
      from.pause();
      to.once('drain', () => from.resume());
    }
  });
  from.on('end', () => {
    if (!receiverGone) to.end();
  });
  from.on('error', () => {
    if (!receiverGone) to.end();
  });
}

/** Reads a stream no pipe takes into text (the box's output limit bounds it). */
function collect(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  return new Promise((resolve) => {
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    stream.on('error', () => resolve(Buffer.concat(chunks).toString('utf8')));
  });
}

/**
 * Starts every box, connects the pipes, and resolves when every box has ended with each box's
 * result. If a box cannot be started, those started are ended and the error is thrown.
 */
export async function runGroup(options: GroupOptions): Promise<GroupResult> {
  const pipes = checkOptions(options);
  const names = Object.keys(options.boxes);
  const procs = new Map<string, SandboxProcess>();
  try {
    for (const name of names) procs.set(name, await start(options.boxes[name] as GroupBox));
  } catch (e) {
    for (const p of procs.values()) p.kill();
    await Promise.all([...procs.values()].map((p) => p.wait().catch(() => undefined)));
    throw e;
  }
  const proc = (name: string): SandboxProcess => procs.get(name) as SandboxProcess;

  const counts = pipes.map(() => ({ bytes: 0 }));
  const piped = new Set<string>();
  pipes.forEach(({ from, to }, i) => {
    const stdin = proc(to.box).stdin;
    piped.add(`${from.box}.${from.stream}`);
    if (stdin) connect(proc(from.box)[from.stream], stdin, counts[i] as { bytes: number });
  });
  for (const name of names) {
    const stdin = proc(name).stdin;
    if (!stdin || pipes.some((p) => p.to.box === name)) continue;
    const given = options.boxes[name]?.stdin;
    stdin.end(given ?? undefined);
  }
  const output = new Map<string, Promise<string>>();
  for (const name of names) {
    for (const stream of ['stdout', 'stderr'] as const) {
      const key = `${name}.${stream}`;
      output.set(key, piped.has(key) ? Promise.resolve('') : collect(proc(name)[stream]));
    }
  }

  const done = new Set<string>();
  const byGroup = new Set<string>();
  const endOn = new Set(options.endOn ?? []);
  const grace = options.graceMs ?? DEFAULT_GRACE_MS;
  let ending: NodeJS.Timeout | null = null;
  const results = await Promise.all(
    names.map(async (name) => {
      const r = await proc(name).wait();
      done.add(name);
      if (endOn.has(name) && ending === null) {
        ending = setTimeout(() => {
          for (const other of names) if (!done.has(other) && proc(other).kill()) byGroup.add(other);
        }, grace);
      }
      return r;
    }),
  );
  if (ending !== null) clearTimeout(ending);
  const order = [...names].sort((a, b) => (proc(a).endedAt ?? Infinity) - (proc(b).endedAt ?? Infinity));

  const boxes: Record<string, GroupBoxResult> = {};
  for (const [i, name] of names.entries()) {
    const [stdout, stderr] = await Promise.all([output.get(`${name}.stdout`), output.get(`${name}.stderr`)]);
    boxes[name] = {
      ...(results[i] as Result),
      stdout: stdout ?? '',
      stderr: stderr ?? '',
      endOrder: order.indexOf(name),
      endedByGroup: byGroup.has(name),
    };
  }
  return {
    boxes,
    order,
    pipes: pipes.map((p, i) => ({ from: `${p.from.box}.${p.from.stream}`, to: `${p.to.box}.${p.to.stream}`, bytes: counts[i]?.bytes ?? 0 })),
  };
}
