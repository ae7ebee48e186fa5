/**
 * What a caller may ask for, checked by zod: every field is validated, sizes and durations are
 * parsed, defaults applied. A bad field becomes a SandboxOptionsError naming its path.
 */
import { Readable } from 'node:stream';
import { z } from 'zod';

import { SandboxOptionsError, type OptionIssue } from './errors.js';
import { isPresetName, parsePolicy, presetNames, SeccompPolicyError, type PresetName, type SeccompPolicy } from './seccomp/index.js';
import { parseDuration, parseSize, type Duration, type Size } from './units.js';

export type { Duration, Size } from './units.js';

/** Network of the box: `none` (its own network namespace with only loopback up, the default), `loopback` (the same, said explicitly) or `host` (the host's network; explicit opt-in, unsafe). */
export type NetworkMode = 'none' | 'loopback' | 'host';

export interface Limits {
  /** Wall-clock time from the program's start; the run ends with `wall-time-limit`. */
  wallTime?: Duration;
  /** CPU time of the program (user + system); the run ends with `time-limit`. */
  cpuTime?: Duration;
  /** Memory of the whole box, page cache and tmpfs files included; the run ends with `memory-limit`. */
  memory?: Size;
  /** Tasks (processes and threads) alive at once; fork/clone fail with EAGAIN past it. */
  processes?: number;
  /** What the program may write to stdout and stderr together; the run ends with `output-limit`. */
  output?: Size;
  /** Largest file the program may write (RLIMIT_FSIZE). */
  fileSize?: Size;
  /** Stack of the main thread (RLIMIT_STACK). Judges set it equal to `memory`. */
  stack?: Size;
  /** Open file descriptors per process (RLIMIT_NOFILE). */
  openFiles?: number;
  /** Size of the writable /tmp (and of the working directory). */
  tmpfs?: Size;
  /** CPU bandwidth as a number of CPUs (0.5, 2), so one box cannot starve the host. */
  cpus?: number;
}

/** A host path made visible inside the box; read-only unless `readonly: false`. */
export interface Bind {
  source: string;
  /** Where it appears inside (default: the same path). */
  target?: string;
  readonly?: boolean;
}

export interface BoxOptions {
  /** The program and its arguments. A name without '/' is looked up in the box's PATH. */
  command: string[];
  /** Environment of the program. It is empty otherwise, but for a safe PATH. */
  env?: Record<string, string>;
  /** Working directory inside the box (default /work, a writable tmpfs). */
  cwd?: string;
  limits?: Limits;
  network?: NetworkMode;
  binds?: Bind[];
  /** Ids the program runs as inside the box (default 65534/65534). */
  user?: { uid?: number; gid?: number };
  /** Parent cgroup for the box's cgroups (default: a `sandcell-<pid>` child of this process's own). */
  cgroupParent?: string;
  /** Ends the run (and rejects) when aborted. */
  signal?: AbortSignal;
  /** System call filter: a preset (`default`, the default; `judge`; `none`) or a policy of your own. */
  seccomp?: PresetName | SeccompPolicy;
}

export interface RunOptions extends BoxOptions {
  /** What the program reads on stdin (default: nothing, /dev/null). */
  stdin?: string | Uint8Array | Readable;
}

export type SpawnOptions = BoxOptions;

/** Options after validation: every default applied, sizes in bytes, durations in ms. */
export interface ResolvedLimits {
  wallTimeMs: number | null;
  cpuTimeMs: number | null;
  memoryBytes: number | null;
  processes: number;
  outputBytes: number;
  fileSizeBytes: number;
  stackBytes: number;
  openFiles: number;
  tmpfsBytes: number;
  cpus: number | null;
}

export interface ResolvedOptions {
  command: string[];
  env: Record<string, string>;
  cwd: string;
  limits: ResolvedLimits;
  network: NetworkMode;
  binds: { source: string; target: string; readonly: boolean }[];
  uid: number;
  gid: number;
  cgroupParent: string | null;
  signal: AbortSignal | null;
  stdin: string | Uint8Array | Readable | null;
  seccomp: PresetName | SeccompPolicy;
}

export const DEFAULT_LIMITS = {
  processes: 256,
  outputBytes: 64 * 1024 * 1024,
  fileSizeBytes: 64 * 1024 * 1024,
  stackBytes: 8 * 1024 * 1024,
  openFiles: 256,
  tmpfsBytes: 64 * 1024 * 1024,
} as const;

const MAX_ARG = 128 * 1024;

const text = z
  .string()
  .max(MAX_ARG, `must be at most ${MAX_ARG} bytes`)
  .refine((s) => !s.includes('\0'), 'must not contain a NUL byte');

const absolutePath = z
  .string()
  .max(4096)
  .refine((s) => !s.includes('\0'), 'must not contain a NUL byte')
  .refine((s) => s.startsWith('/'), 'must be an absolute path')
  .refine((s) => s.split('/').every((p) => p !== '..'), "must not contain '..'")
  .transform(normalizePath);

function normalizePath(p: string): string {
  const parts = p.split('/').filter((x) => x !== '' && x !== '.');
  return '/' + parts.join('/');
}

const size = z.union([z.number(), z.string()]).transform((v, ctx) => {
  const r = parseSize(v);
  if (typeof r === 'string') {
    ctx.addIssue({ code: 'custom', message: r });
    return z.NEVER;
  }
  return r;
});

const duration = z.union([z.number(), z.string()]).transform((v, ctx) => {
  const r = parseDuration(v);
  if (typeof r === 'string') {
    ctx.addIssue({ code: 'custom', message: r });
    return z.NEVER;
  }
  if (r === 0) {
    ctx.addIssue({ code: 'custom', message: 'must be greater than zero' });
    return z.NEVER;
  }
  return r;
});

const id = z.number().int().min(0).max(0xfffffffe);

const limitsSchema = z.strictObject({
  wallTime: duration.optional(),
  cpuTime: duration.optional(),
  memory: size.refine((n) => n >= 1024 * 1024, 'must be at least 1MiB').optional(),
  processes: z.number().int().min(1).max(1 << 22).optional(),
  output: size.optional(),
  fileSize: size.optional(),
  stack: size.refine((n) => n >= 64 * 1024, 'must be at least 64KiB').optional(),
  openFiles: z.number().int().min(4).max(1 << 20).optional(),
  tmpfs: size.refine((n) => n >= 4096, 'must be at least 4KiB').optional(),
  cpus: z.number().min(0.01).max(4096).optional(),
});

const envSchema = z
  .record(
    z.string().regex(/^[^=\0]+$/, 'environment names must be non-empty without "=" or NUL'),
    text,
  )
  .refine((e) => Object.keys(e).length <= 4096, 'has too many entries');

const bindSchema = z.strictObject({
  source: absolutePath,
  target: absolutePath.optional(),
  readonly: z.boolean().optional(),
});

const boxShape = {
  command: z.array(text).min(1, 'must name a program').max(65536),
  env: envSchema.optional(),
  cwd: absolutePath.optional(),
  limits: limitsSchema.optional(),
  network: z.enum(['none', 'loopback', 'host']).optional(),
  binds: z.array(bindSchema).max(256).optional(),
  user: z.strictObject({ uid: id.optional(), gid: id.optional() }).optional(),
  cgroupParent: z.string().min(1).max(4096).optional(),
  signal: z.instanceof(AbortSignal).optional(),
  seccomp: z.unknown().optional(),
};

const stdinSchema = z.union([
  z.string(),
  z.instanceof(Uint8Array),
  z.custom<Readable>((v) => v instanceof Readable, 'must be a string, Buffer or readable stream'),
]);

const runSchema = z.strictObject({ ...boxShape, stdin: stdinSchema.optional() });

/** Inside paths the box's own filesystems occupy; a bind may not cover them. */
const RESERVED_TARGETS = ['/', '/proc', '/dev'];

function toIssues(error: z.ZodError): OptionIssue[] {
  return error.issues.map((i) => ({
    path: i.path.map((p, n) => (typeof p === 'number' ? `[${p}]` : `${n === 0 ? '' : '.'}${String(p)}`)).join(''),
    message: i.message,
  }));
}

/** Validates and resolves options for `run()` / `spawn()`; throws SandboxOptionsError. */
export function resolveOptions(input: unknown): ResolvedOptions {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new SandboxOptionsError([{ path: '', message: 'options must be an object' }]);
  }
  const parsed = runSchema.safeParse(input);
  if (!parsed.success) throw new SandboxOptionsError(toIssues(parsed.error));
  const o = parsed.data;
  const l = o.limits ?? {};
  const binds = (o.binds ?? []).map((b) => ({ source: b.source, target: b.target ?? b.source, readonly: b.readonly ?? true }));
  const issues: OptionIssue[] = [];
  binds.forEach((b, i) => {
    if (RESERVED_TARGETS.some((r) => b.target === r || (r !== '/' && b.target.startsWith(`${r}/`)))) {
      issues.push({ path: `binds[${i}].target`, message: `must not be / or lie under /proc or /dev (got ${b.target})` });
    }
  });
  let seccomp: PresetName | SeccompPolicy = 'default';
  if (typeof o.seccomp === 'string') {
    if (isPresetName(o.seccomp)) seccomp = o.seccomp;
    else issues.push({ path: 'seccomp', message: `must be one of ${presetNames.join(', ')} or a policy object` });
  } else if (o.seccomp !== undefined) {
    try {
      seccomp = parsePolicy(o.seccomp);
    } catch (e) {
      if (!(e instanceof SeccompPolicyError)) throw e;
      for (const i of e.issues) issues.push({ path: i.path ? `seccomp.${i.path}` : 'seccomp', message: i.message });
    }
  }
  if (issues.length > 0) throw new SandboxOptionsError(issues);
  return {
    command: o.command,
    env: { ...(o.env ?? {}) },
    cwd: o.cwd ?? '/work',
    limits: {
      wallTimeMs: l.wallTime ?? null,
      cpuTimeMs: l.cpuTime ?? null,
      memoryBytes: l.memory ?? null,
      processes: l.processes ?? DEFAULT_LIMITS.processes,
      outputBytes: l.output ?? DEFAULT_LIMITS.outputBytes,
      fileSizeBytes: l.fileSize ?? DEFAULT_LIMITS.fileSizeBytes,
      stackBytes: l.stack ?? DEFAULT_LIMITS.stackBytes,
      openFiles: l.openFiles ?? DEFAULT_LIMITS.openFiles,
      tmpfsBytes: l.tmpfs ?? DEFAULT_LIMITS.tmpfsBytes,
      cpus: l.cpus ?? null,
    },
    network: o.network ?? 'none',
    binds,
    uid: o.user?.uid ?? 65534,
    gid: o.user?.gid ?? 65534,
    cgroupParent: o.cgroupParent ?? null,
    signal: o.signal ?? null,
    stdin: o.stdin ?? null,
    seccomp,
  };
}
