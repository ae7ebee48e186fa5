/**
 * What a caller may ask for, checked by zod: every field is validated, sizes and durations are
 * parsed, defaults applied. A bad field becomes a SandboxOptionsError naming its path.
 */
import { statSync, type Stats } from 'node:fs';
import { Readable } from 'node:stream';
import { z } from 'zod';

import { formatOptionPath, SandboxOptionsError, type OptionIssue } from './errors.js';
import { AllowList, parseAllowRule, type AllowRule } from './network/allow.js';
import { PROXY_PORT, type EgressLimits } from './network/proxy.js';
import { PUBLISH_HOST_ERROR, publishHost, type ResolvedPublish } from './network/publish.js';
import { ImageConfigError, imageHasDir, imageRunDefaults, resolveImageUser, type ImageRunDefaults } from './images/config.js';
import { defaultStoreRoot, findImage, StorePaths } from './images/store.js';
import { HOSTNAME, NETWORK_NAME } from './network/private.js';
import { DEFAULT_MEMORY_BYTES } from './limits/memory.js';
import { RUN_WALL_TIME_MS } from './limits/wall-time.js';
import { privileged } from './privilege.js';
import { isPresetName, presetNames, type PresetName } from './seccomp/presets.js';
import { parsePolicy, policyPathParts, SeccompPolicyError, type SeccompPolicy } from './seccomp/policy.js';
import { parseDuration, parseSize, type Duration, type Size } from './units.js';

export type { Duration, Size } from './units.js';

/** Network of the box: `none` (its own network namespace with only loopback up, the default), `loopback` (the same, said explicitly) or `host` (the host's network; explicit opt-in, unsafe). */
export type NetworkMode = 'none' | 'loopback' | 'host';

/**
 * A network namespace of the box's own (as `none`) with ways out the caller names: egress to the
 * `allow`ed destinations through a proxy run by sandcell on the host side (reached in the box at
 * `127.0.0.1:3128`, named in `http_proxy`, `https_proxy`, `HTTP_PROXY`, `HTTPS_PROXY` and
 * `ALL_PROXY`), and box ports `publish`ed on the host. See docs/networks.md.
 */
export interface NetworkOptions {
  /**
   * Destinations the box may reach, `host:port`: a name (`api.example.com`), `*.example.com` (its
   * subdomains), an address (`127.0.0.1`, `[::1]`); port a number or `*`. A name reaches only
   * public addresses unless the address it resolves to is on the list too.
   */
  allow?: string[];
  /** Box ports (on the box's 127.0.0.1) the host listens for, 127.0.0.1 unless `host` says where. */
  publish?: PublishedPort[];
  /** Bounds of the egress proxy: `connections` at once (default 64), bytes each way (default 1 GiB each). */
  limits?: { connections?: number; bytesIn?: Size; bytesOut?: Size };
}

/** A box port published on the host: `host` is `address:port`, or a port on 127.0.0.1 (0: any free port); default the box's port number on 127.0.0.1. */
export interface PublishedPort {
  box: number;
  host?: string | number;
}

/**
 * Limits of a run (or of a living box, and the defaults of its runs). A run given none is still
 * bounded: `memory` 512 MiB, `processes` 256, `tmpfs` 64 MiB (and one inode per 4 KiB of it) on
 * every writable filesystem, `output` 64 MiB, and for `run()` and `box.run()` a `wallTime` of 5
 * minutes. `null` lifts a default: `{ memory: null }` is no memory limit at all.
 */
export interface Limits {
  /** Wall-clock time from the program's start; the run ends with `wall-time-limit`. Default for `run()` and `box.run()`: 5 minutes; none for `spawn()`. */
  wallTime?: Duration | null;
  /** CPU time of the program (user + system); the run ends with `time-limit`. */
  cpuTime?: Duration | null;
  /** Memory of the whole box, page cache and tmpfs files included; the run ends with `memory-limit`. Default 512 MiB. */
  memory?: Size | null;
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
  /**
   * Size of each writable tmpfs: /tmp, the working directory, /dev/shm, tmpfs mounts without a
   * size of their own and a writable image's top layer; each also holds at most one inode per
   * 4 KiB of it. Default 64 MiB; `null`: the kernel's default (half of the host's memory).
   */
  tmpfs?: Size | null;
  /** CPU bandwidth as a number of CPUs (0.5, 2), so one box cannot starve the host. */
  cpus?: number | null;
}

/** A host path made visible inside the box; read-only unless `readonly: false`. */
export interface Bind {
  source: string;
  /** Where it appears inside (default: the same path). */
  target?: string;
  readonly?: boolean;
}

/** A volume: a host path bound in (read-only unless `readonly: false`), or a tmpfs of `size`. */
export type Mount =
  | { type?: 'bind'; source: string; target?: string; readonly?: boolean }
  | { type: 'tmpfs'; target: string; size?: Size };

/** A file put in the working directory before the program starts. */
export type FileContent = string | Uint8Array | { data: string | Uint8Array; mode?: number };

/** What the box is: its root, its volumes, its network, its ids, its cgroup. */
export interface BoxShape {
  /**
   * A root filesystem instead of the host's /usr etc.: an absolute path (a directory), or the
   * name or id of an image in the image store (`sandcell image import`; see docs/images.md).
   * Names never start with `/` or `.`. A stored image's config is applied as `docker run`
   * applies it: `Env` under `env`, `WorkingDir` as the default `cwd`, `User` as the default
   * `user`, `Entrypoint` and `Cmd` as the program when no `command` is given (see `args`).
   */
  image?: string;
  /** With `image`: a copy-on-write layer over it (a tmpfs, discarded with the box). */
  writable?: boolean;
  /** A mode, the name of a private network (`createNetwork`; root only), or the ways out of a box of its own. */
  network?: NetworkMode | NetworkOptions | (string & {});
  /** The box's hostname (default `sandcell`); on a private network, the name the other boxes reach it by. */
  hostname?: string;
  /** Host paths bound into the box (shorthand for bind `mounts`). */
  binds?: Bind[];
  mounts?: Mount[];
  /** Ids the program runs as inside the box (default 65534/65534). */
  user?: { uid?: number; gid?: number };
  /** Parent cgroup for the box's cgroups (default: a `sandcell-<pid>` child of this process's own). */
  cgroupParent?: string;
}

/** One program: what it is, what it gets, how it is limited. */
export interface ProgramOptions {
  /**
   * The program and its arguments. A name without '/' is looked up in the box's PATH. Required
   * unless a stored `image` has an `Entrypoint` or `Cmd`; given, it replaces both.
   */
  command?: string[];
  /**
   * Arguments after the program: after `command`, or, with none, after the image's `Entrypoint`
   * in place of its `Cmd` (as `docker run IMAGE args...`).
   */
  args?: string[];
  /** Environment of the program. It is empty otherwise, but for a safe PATH. */
  env?: Record<string, string>;
  /** Working directory inside the box (default /work, a writable tmpfs). */
  cwd?: string;
  limits?: Limits;
  /** Files written into the working directory before the program starts (names relative to it). */
  files?: Record<string, FileContent>;
  /** Ends the run (and rejects) when aborted. */
  signal?: AbortSignal;
  /** System call filter: a preset (`default`, the default; `judge`; `none`) or a policy of your own. */
  seccomp?: PresetName | SeccompPolicy;
}

export interface BoxOptions extends BoxShape, ProgramOptions {}

/**
 * How a run's `stdout` and `stderr` come back: `'utf8'` (the default) as text, bytes that are not
 * UTF-8 replaced by U+FFFD; `'buffer'` as Buffers holding exactly the bytes the program wrote. As
 * `encoding` of Node's `child_process.execFile()`.
 */
export type OutputEncoding = 'utf8' | 'buffer';

/** What `stdout` and `stderr` are for an `encoding`: a Buffer for `'buffer'`, a string for `'utf8'`, either for `OutputEncoding`. */
export type EncodedOutput<Encoding extends OutputEncoding> = Encoding extends 'buffer' ? Buffer : string;

/**
 * `run()`'s options. `Encoding` is what `encoding` may be: `'utf8'` by default, so that options of
 * this type give text. `run()` given `encoding: 'buffer'` gives Buffers, and given an `encoding`
 * of type `OutputEncoding` (known only when it runs), `string | Buffer`.
 */
export interface RunOptions<Encoding extends OutputEncoding = 'utf8'> extends BoxOptions {
  /** What the program reads on stdin (default: nothing, /dev/null). */
  stdin?: string | Uint8Array | Readable;
  /**
   * Files to read back from the working directory after the run: names or patterns with `*` and
   * `?` (not across '/'). Symlinks, special files and files over the limits are refused.
   */
  collect?: string[];
  /**
   * `'buffer'`: the result's `stdout` and `stderr` are Buffers, byte for byte what the program
   * wrote (an empty Buffer when it wrote nothing). `'utf8'` (the default): strings, decoded as
   * UTF-8. Not for `spawn()`, whose output is streams of bytes already.
   */
  encoding?: Encoding;
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
  /** null: the kernel's default size and inode count. */
  tmpfsBytes: number | null;
  cpus: number | null;
}

export type ResolvedMount =
  | { type: 'bind'; source: string; target: string; readonly: boolean }
  | { type: 'tmpfs'; target: string; sizeBytes: number | null };

export interface ResolvedFile {
  /** Relative to the working directory, normalised. */
  name: string;
  data: Buffer;
  mode: number;
}

export interface ResolvedEgress {
  allow: AllowList;
  limits: EgressLimits;
}

/** A stored image's default program. */
export interface ImageProgram {
  entrypoint: string[];
  cmd: string[];
}

export interface ResolvedOptions {
  command: string[];
  /** The box's stored image's `Entrypoint` and `Cmd` (null: no stored image), for runs that name no command. */
  imageProgram: ImageProgram | null;
  /** The working directory is the stored image's own `WorkingDir`: its files are shown, not covered by a fresh tmpfs. */
  cwdInImage: boolean;
  env: Record<string, string>;
  cwd: string;
  limits: ResolvedLimits;
  network: NetworkMode;
  /** The egress proxy of a box with an allow list (null: none). */
  egress: ResolvedEgress | null;
  /** Box ports published on the host. */
  publish: ResolvedPublish[];
  /** The private network the box is on (null: none). */
  privateNetwork: string | null;
  hostname: string | null;
  mounts: ResolvedMount[];
  /** A directory image (the `image` option was a path). */
  image: string | null;
  /** A stored image: its layers' directories, uppermost first (mounted as one overlay). */
  layers: string[] | null;
  writable: boolean;
  files: ResolvedFile[];
  collect: string[];
  uid: number;
  gid: number;
  cgroupParent: string | null;
  signal: AbortSignal | null;
  stdin: string | Uint8Array | Readable | null;
  /** How the output comes back in the result (`run()`, `box.run()`). */
  encoding: OutputEncoding;
  seccomp: PresetName | SeccompPolicy;
  /**
   * Shared by the runs whose options had the same content apart from their own input (null:
   * resolved on their own), so that what is derived from the box alone is derived once.
   */
  shape: object | null;
}

/** The limits a box gets when its options name none (sizes in bytes); `null` in the options lifts one. */
export const DEFAULT_LIMITS = {
  memoryBytes: DEFAULT_MEMORY_BYTES,
  processes: 256,
  outputBytes: 64 * 1024 * 1024,
  fileSizeBytes: 64 * 1024 * 1024,
  stackBytes: 8 * 1024 * 1024,
  openFiles: 256,
  tmpfsBytes: 64 * 1024 * 1024,
} as const;

const MAX_ARG = 128 * 1024;

/**
 * Each schema below is built at its first use, once: building all of them was most of what this
 * module's import cost a fresh process (17-26 ms), and a one-shot run (`sandcell run`) needs those
 * of the two or three fields its options hold (see `Fields`).
 */
function lazy<T>(make: () => T): () => T {
  let built: T | undefined;
  return () => (built ??= make());
}

const text = lazy(() =>
  z
    .string()
    .max(MAX_ARG, `must be at most ${MAX_ARG} bytes`)
    .refine((s) => !s.includes('\0'), 'must not contain a NUL byte'),
);

const absolutePath = lazy(() =>
  z
    .string()
    .max(4096)
    .refine((s) => !s.includes('\0'), 'must not contain a NUL byte')
    .refine((s) => s.startsWith('/'), 'must be an absolute path')
    .refine((s) => s.split('/').every((p) => p !== '..'), "must not contain '..'")
    .transform(normalizePath),
);

function normalizePath(p: string): string {
  const parts = p.split('/').filter((x) => x !== '' && x !== '.');
  return '/' + parts.join('/');
}

const size = lazy(() =>
  z.union([z.number(), z.string()]).transform((v, ctx) => {
    const r = parseSize(v);
    if (typeof r === 'string') {
      ctx.addIssue({ code: 'custom', message: r });
      return z.NEVER;
    }
    return r;
  }),
);

const duration = lazy(() =>
  z.union([z.number(), z.string()]).transform((v, ctx) => {
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
  }),
);

const id = lazy(() => z.number().int().min(0).max(0xfffffffe));

// `null` lifts a default (see Limits).
const limitsSchema = lazy(() =>
  z.strictObject({
    wallTime: duration().nullable().optional(),
    cpuTime: duration().nullable().optional(),
    memory: size().refine((n) => n >= 1024 * 1024, 'must be at least 1MiB').nullable().optional(),
    processes: z.number().int().min(1).max(1 << 22).optional(),
    output: size().optional(),
    fileSize: size().optional(),
    stack: size().refine((n) => n >= 64 * 1024, 'must be at least 64KiB').optional(),
    openFiles: z.number().int().min(4).max(1 << 20).optional(),
    tmpfs: size().refine((n) => n >= 4096, 'must be at least 4KiB').nullable().optional(),
    cpus: z.number().min(0.01).max(4096).nullable().optional(),
  }),
);

const envSchema = lazy(() =>
  z
    .record(
      z.string().regex(/^[^=\0]+$/, 'environment names must be non-empty without "=" or NUL'),
      text(),
    )
    .refine((e) => Object.keys(e).length <= 4096, 'has too many entries'),
);

const bindSchema = lazy(() =>
  z.strictObject({
    source: absolutePath(),
    target: absolutePath().optional(),
    readonly: z.boolean().optional(),
  }),
);

const mountSchema = lazy(() =>
  z.union([
    z.strictObject({ type: z.literal('bind').optional(), source: absolutePath(), target: absolutePath().optional(), readonly: z.boolean().optional() }),
    z.strictObject({ type: z.literal('tmpfs'), target: absolutePath(), size: size().optional() }),
  ]),
);

/** A path below the working directory: relative, no '..', no empty parts. */
const relativePath = lazy(() =>
  z
    .string()
    .min(1)
    .max(4096)
    .refine((s) => !s.includes('\0'), 'must not contain a NUL byte')
    .refine((s) => !s.startsWith('/'), 'must be relative to the working directory')
    .refine((s) => s.split('/').every((p) => p !== '..' && p !== ''), "must not contain '..' or empty parts")
    .transform((s) => s.split('/').filter((p) => p !== '.').join('/')),
);

const filesSchema = lazy(() => {
  const fileData = z.union([z.string(), z.instanceof(Uint8Array)]);
  return z
    .record(z.string(), z.union([fileData, z.strictObject({ data: fileData, mode: z.number().int().min(0).max(0o777).optional() })]))
    .refine((f) => Object.keys(f).length <= 1000, 'has more than 1000 files');
});

const networkObjectSchema = lazy(() =>
  z.strictObject({
    allow: z
      .array(
        z.string().superRefine((v, ctx) => {
          const r = parseAllowRule(v);
          if (typeof r === 'string') ctx.addIssue({ code: 'custom', message: `${JSON.stringify(v)} ${r}` });
        }),
      )
      .max(1024)
      .optional(),
    publish: z
      .array(
        z.strictObject({
          box: z.number().int().min(1).max(65535).refine((p) => p !== PROXY_PORT, `${PROXY_PORT} is the egress proxy's port in the box`),
          host: z
            .union([z.number().int().min(0).max(65535), z.string().max(64)])
            .refine((h) => typeof publishHost(h, 1) !== 'string', PUBLISH_HOST_ERROR)
            .optional(),
        }),
      )
      .max(64)
      .optional(),
    limits: z
      .strictObject({
        connections: z.number().int().min(1).max(4096).optional(),
        bytesIn: size().optional(),
        bytesOut: size().optional(),
      })
      .optional(),
  }).refine((n) => n.limits === undefined || n.allow !== undefined, { path: ['limits'], message: 'bound the egress proxy: give network.allow too' }),
);

/** A path (starts with `/`) or the name of a stored image (never starts with `/` or `.`). */
const imageRef = lazy(() =>
  z
    .string()
    .min(1)
    .max(4096)
    .refine((s) => !s.includes('\0'), 'must not contain a NUL byte')
    .refine((s) => !s.startsWith('.'), "must be an absolute path or the name of a stored image (names never start with '.' or '/')")
    .refine((s) => !s.startsWith('/') || s.split('/').every((p) => p !== '..'), "must not contain '..'")
    .transform((s) => (s.startsWith('/') ? normalizePath(s) : s)),
);

const NETWORK_ERROR = "must be 'none', 'loopback', 'host', the name of a private network (1-32 of a-z 0-9 _ -) or { allow, publish, limits }";

const shapeFields = {
  image: lazy(() => imageRef().optional()),
  writable: lazy(() => z.boolean().optional()),
  network: lazy(() =>
    z
      .union([z.enum(['none', 'loopback', 'host']), z.string().regex(NETWORK_NAME, NETWORK_ERROR), networkObjectSchema()], { error: NETWORK_ERROR })
      .optional(),
  ),
  hostname: lazy(() => z.string().regex(HOSTNAME, 'must be a hostname label: 1-63 of a-z 0-9 - (not at either end)').optional()),
  binds: lazy(() => z.array(bindSchema()).max(256).optional()),
  mounts: lazy(() => z.array(mountSchema()).max(256).optional()),
  user: lazy(() => z.strictObject({ uid: id().optional(), gid: id().optional() }).optional()),
  cgroupParent: lazy(() => z.string().min(1).max(4096).optional()),
};

const programFields = {
  command: lazy(() => z.array(text()).min(1, 'must name a program').max(65536).optional()),
  args: lazy(() => z.array(text()).max(65536).optional()),
  env: lazy(() => envSchema().optional()),
  cwd: lazy(() => absolutePath().optional()),
  limits: lazy(() => limitsSchema().optional()),
  files: lazy(() => filesSchema().optional()),
  signal: lazy(() => z.instanceof(AbortSignal).optional()),
  seccomp: lazy(() => z.unknown().optional()),
};

/**
 * The box and program fields a declared profile may set (sandcell.yaml, problem files), with the
 * very checks `run()` applies to them. `seccomp` is checked by `resolveSeccomp` here, so a
 * declaration checks it with the seccomp module's own parser. Built when asked for.
 */
export function profileFieldSchemas() {
  const { image, writable, network, hostname, binds, mounts } = shapeFields;
  const { env, cwd, limits } = programFields;
  const makers = { image, writable, network, hostname, binds, mounts, env, cwd, limits };
  return buildFields(makers, Object.keys(makers) as (keyof typeof makers)[]);
}

const collectField = lazy(() => z.array(relativePath()).max(1000).optional());

const encodingField = lazy(() => z.enum(['utf8', 'buffer'] satisfies OutputEncoding[], { error: "must be one of 'utf8', 'buffer'" }).optional());

/** A spawned program's output is streams of bytes: there is nothing to encode. */
const SPAWN_ENCODING: OptionIssue = { path: 'encoding', message: "is for run() and box.run(): a spawned program's stdout and stderr are streams of bytes" };

const stdinField = lazy(() =>
  z
    .union([
      z.string(),
      z.instanceof(Uint8Array),
      z.custom<Readable>((v) => v instanceof Readable, 'must be a string, Buffer or readable stream'),
    ])
    .optional(),
);

/** The field schemas of a kind's options, each built at its first use. */
type FieldMakers = Record<string, () => z.ZodType>;
type Built<F extends FieldMakers> = { [K in keyof F]: ReturnType<F[K]> };
type Whole<F extends FieldMakers> = z.ZodObject<Built<F>, z.core.$strict>;

/**
 * Sets of fields a kind keeps a schema for. Options holding more sets than this come from a
 * long-lived process: it builds the whole schema once, rather than one more schema per set.
 */
const MAX_SUBSETS = 16;

/**
 * A kind's options schema: the strict object of every field (`whole`, for the layers that speak or
 * describe the options: the daemon, its OpenAPI document), or, until that is built, the strict
 * object of the fields a given input holds (`of`). An object schema walks each of its fields, so
 * a parse by `whole` would build every field's schema, where a one-shot run's options hold two or
 * three. The two parse alike: every field is optional, so a field the input does not hold adds
 * nothing to the output nor an issue; the fields it holds are checked by the same schemas in the
 * same order, and a key that is no field is refused by both, in the same words. Once `whole` is
 * built, every parse walks it: there is nothing left to save, and a layer that speaks the
 * options through `optionSchemas` sees each walk of the schema it holds (the daemon's tests count
 * them to show it checks a request's options once).
 */
class Fields<F extends FieldMakers> {
  private wholeSchema: Whole<F> | undefined;
  private readonly names: readonly (keyof F & string)[];
  private readonly subsets = new Map<number, z.ZodType>();

  constructor(private readonly makers: F) {
    this.names = Object.keys(makers);
  }

  // Whole<F> spelled out: declarations of optionSchemas then show each field's schema, not the makers.
  whole(): z.ZodObject<{ [K in keyof F]: ReturnType<F[K]> }, z.core.$strict> {
    if (this.wholeSchema === undefined) {
      this.wholeSchema = z.strictObject(buildFields(this.makers, this.names));
      this.subsets.clear();
    }
    return this.wholeSchema;
  }

  /**
   * The schema a parse of `input` walks: `whole` once built, or that of the fields `input` holds
   * (as zod's object schema sees them: `key in input`).
   */
  of(input: object): z.ZodType<z.output<Whole<F>>> {
    if (this.wholeSchema !== undefined) return this.wholeSchema as z.ZodType<z.output<Whole<F>>>;
    // One bit a field: a kind has at most 19.
    let held = 0;
    for (let i = 0; i < this.names.length; i++) if (this.names[i]! in input) held |= 1 << i;
    let schema = this.subsets.get(held);
    if (schema === undefined) {
      if (this.subsets.size >= MAX_SUBSETS) return this.whole() as z.ZodType<z.output<Whole<F>>>;
      schema = z.strictObject(buildFields(this.makers, this.names.filter((_, i) => (held & (1 << i)) !== 0)));
      this.subsets.set(held, schema);
    }
    return schema as z.ZodType<z.output<Whole<F>>>;
  }
}

/** The schemas of `names` among `makers`' fields, in that order. */
function buildFields<F extends FieldMakers>(makers: F, names: readonly (keyof F & string)[]): Built<F> {
  const shape: Partial<Built<F>> = {};
  for (const n of names) shape[n] = makers[n]!() as ReturnType<F[typeof n]>;
  return shape as Built<F>;
}

const runFields = new Fields({ ...shapeFields, ...programFields, stdin: stdinField, collect: collectField, encoding: encodingField });
const shapeOnlyFields = new Fields({ ...shapeFields, ...programFields, command: lazy(() => z.unknown().optional()) });
const programOnlyFields = new Fields({ ...programFields, stdin: stdinField, collect: collectField, encoding: encodingField });

/** Inside paths the box's own filesystems occupy; a volume may not cover them. */
const RESERVED_TARGETS = ['/', '/proc', '/dev'];

function toIssues(error: z.ZodError): OptionIssue[] {
  return error.issues.map((i) => ({ path: formatOptionPath(i.path), message: i.message }));
}

function parse<F extends FieldMakers>(fields: Fields<F>, input: unknown): z.output<Whole<F>> {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new SandboxOptionsError([{ path: '', message: 'options must be an object' }]);
  }
  const parsed = fields.of(input).safeParse(input);
  if (!parsed.success) throw new SandboxOptionsError(toIssues(parsed.error));
  return parsed.data;
}

type ParsedLimits = z.output<ReturnType<typeof limitsSchema>>;

/**
 * What a caller gave over `base` (a living box's limits) or the defaults: `undefined` keeps what
 * is there, `null` lifts it. `kind`: a `run` (run(), box.run()) is bounded in wall time too when
 * nothing else bounds it; a `spawn`ed program is the caller's to end.
 */
function resolveLimits(l: ParsedLimits, base: ResolvedLimits | null, kind: Kind): ResolvedLimits {
  const d = base ?? {
    wallTimeMs: null,
    cpuTimeMs: null,
    memoryBytes: DEFAULT_LIMITS.memoryBytes,
    processes: DEFAULT_LIMITS.processes,
    outputBytes: DEFAULT_LIMITS.outputBytes,
    fileSizeBytes: DEFAULT_LIMITS.fileSizeBytes,
    stackBytes: DEFAULT_LIMITS.stackBytes,
    openFiles: DEFAULT_LIMITS.openFiles,
    tmpfsBytes: DEFAULT_LIMITS.tmpfsBytes,
    cpus: null,
  };
  const given = <T>(v: T | undefined, fallback: T): T => (v !== undefined ? v : fallback);
  return {
    wallTimeMs: l.wallTime !== undefined ? l.wallTime : (d.wallTimeMs ?? (kind === 'run' ? RUN_WALL_TIME_MS : null)),
    cpuTimeMs: given(l.cpuTime, d.cpuTimeMs),
    memoryBytes: given(l.memory, d.memoryBytes),
    processes: l.processes ?? d.processes,
    outputBytes: l.output ?? d.outputBytes,
    fileSizeBytes: l.fileSize ?? d.fileSizeBytes,
    stackBytes: l.stack ?? d.stackBytes,
    openFiles: l.openFiles ?? d.openFiles,
    tmpfsBytes: given(l.tmpfs, d.tmpfsBytes),
    cpus: given(l.cpus, d.cpus),
  };
}

/** A program that runs to its end and is waited for (`run`), or one the caller talks to (`spawn`), or a living box (`box`: its limits are its runs' defaults). */
type Kind = 'run' | 'spawn' | 'box';

function resolveSeccomp(value: unknown, issues: OptionIssue[]): PresetName | SeccompPolicy | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'string') {
    if (isPresetName(value)) return value;
    issues.push({ path: 'seccomp', message: `must be one of ${presetNames.join(', ')} or a policy object` });
    return undefined;
  }
  try {
    return parsePolicy(value);
  } catch (e) {
    if (!(e instanceof SeccompPolicyError)) throw e;
    for (const i of e.issues) issues.push({ path: formatOptionPath(['seccomp', ...policyPathParts(i.path)]), message: i.message });
    return undefined;
  }
}

type ParsedShape = Pick<SandboxParsed, keyof typeof shapeFields>;

/** Volumes and image, checked against the host: sources must exist, targets must not cover the box's own filesystems. */
function resolveShape(o: ParsedShape, tmpfsBytes: number | null, issues: OptionIssue[]) {
  const mounts: ResolvedMount[] = [];
  const add = (m: ResolvedMount, path: string): void => {
    if (RESERVED_TARGETS.some((r) => m.target === r || (r !== '/' && m.target.startsWith(`${r}/`)))) {
      issues.push({ path: `${path}.target`, message: `must not be / or lie under /proc or /dev (got ${m.target})` });
      return;
    }
    if (m.type === 'bind' && sourceKind(m.source) === null) {
      issues.push({ path: `${path}.source`, message: `does not exist on the host (${m.source})` });
      return;
    }
    mounts.push(m);
  };
  (o.binds ?? []).forEach((b, i) =>
    add({ type: 'bind', source: b.source, target: b.target ?? b.source, readonly: b.readonly ?? true }, `binds[${i}]`),
  );
  (o.mounts ?? []).forEach((m, i) =>
    add(
      m.type === 'tmpfs'
        ? { type: 'tmpfs', target: m.target, sizeBytes: m.size ?? tmpfsBytes }
        : { type: 'bind', source: m.source, target: m.target ?? m.source, readonly: m.readonly ?? true },
      `mounts[${i}]`,
    ),
  );
  const ref = o.image ?? null;
  let image: string | null = null;
  let stored: ImageRunDefaults | null = null;
  if (ref !== null && ref.startsWith('/')) {
    image = ref;
    if (!statOrNull(image)?.isDirectory()) issues.push({ path: 'image', message: `is not a directory (${image})` });
  } else if (ref !== null) {
    stored = storedImage(ref);
    if (stored === null) issues.push({ path: 'image', message: `no image ${JSON.stringify(ref)} in the image store at ${defaultStoreRoot()} (sandcell image ls)` });
    else if (stored.layers.length > MAX_IMAGE_LAYERS) issues.push({ path: 'image', message: `has ${stored.layers.length} layers, more than the ${MAX_IMAGE_LAYERS} a box mounts` });
  }
  if (o.writable && ref === null) issues.push({ path: 'writable', message: 'needs an image' });
  return {
    ...resolveNetwork(o.network, issues),
    hostname: o.hostname ?? null,
    mounts,
    image,
    layers: stored?.layers ?? null,
    imageDefaults: stored,
    writable: o.writable ?? false,
    ...ids(o.user ?? imageUser(ref, stored, issues), issues),
    cgroupParent: o.cgroupParent ?? null,
  };
}

/** Lower directories of one overlay root: their names fit the page of mount options the kernel takes. */
const MAX_IMAGE_LAYERS = 128;

/** A stored image's layer dirs and run defaults, read from the store (a few small files). */
function storedImage(ref: string): ImageRunDefaults | null {
  const paths = new StorePaths(defaultStoreRoot());
  const found = findImage(paths, ref);
  return found ? imageRunDefaults(paths, found) : null;
}

/** The image's `User` when the caller gave no `user` (read from the image's own account files); without root only 0 can be mapped. */
function imageUser(ref: string | null, stored: ImageRunDefaults | null, issues: OptionIssue[]): { uid: number; gid: number } | undefined {
  if (ref === null || stored?.user == null) return undefined;
  let user: { uid: number; gid: number };
  try {
    user = resolveImageUser(ref, stored.user, stored.layers);
  } catch (e) {
    if (!(e instanceof ImageConfigError)) throw e;
    issues.push({ path: 'image', message: e.message });
    return undefined;
  }
  if (!privileged() && (user.uid !== 0 || user.gid !== 0)) {
    issues.push({
      path: 'image',
      message: `image ${JSON.stringify(ref)}: config User ${JSON.stringify(stored.user)} is ${user.uid}:${user.gid}, and a box without root maps only 0 (give user: { uid: 0, gid: 0 })`,
    });
    return undefined;
  }
  return user;
}

const DEFAULT_EGRESS_LIMITS: EgressLimits = { connections: 64, bytesIn: 1024 ** 3, bytesOut: 1024 ** 3 };

/** The network mode, and the allow list and published ports of a network given as an object. */
function resolveNetwork(n: ParsedShape['network'], issues: OptionIssue[]): Pick<ResolvedOptions, 'network' | 'egress' | 'publish' | 'privateNetwork'> {
  if (n === undefined || n === 'none' || n === 'loopback' || n === 'host') return { network: n ?? 'none', egress: null, publish: [], privateNetwork: null };
  if (typeof n === 'string') {
    if (!privileged()) issues.push({ path: 'network', message: `${JSON.stringify(n)} is a private network, which needs root (without root: published ports and allow lists)` });
    return { network: 'none', egress: null, publish: [], privateNetwork: n };
  }
  // The schema has checked every host.
  const publish: ResolvedPublish[] = (n.publish ?? []).map((p) => ({ box: p.box, ...(publishHost(p.host, p.box) as Exclude<ReturnType<typeof publishHost>, string>) }));
  const egress =
    n.allow !== undefined
      ? { allow: new AllowList(n.allow.map((r) => parseAllowRule(r) as AllowRule)), limits: { ...DEFAULT_EGRESS_LIMITS, ...stripUndefined(n.limits ?? {}) } }
      : null;
  return { network: 'none', egress, publish, privateNetwork: null };
}

function stripUndefined<T extends object>(o: T): { [K in keyof T]: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as { [K in keyof T]: Exclude<T[K], undefined> };
}

/** What the program finds in its environment when the box has an egress proxy. */
function proxyEnv(egress: ResolvedEgress | null): Record<string, string> {
  if (!egress) return {};
  const http = `http://127.0.0.1:${PROXY_PORT}`;
  return { http_proxy: http, https_proxy: http, HTTP_PROXY: http, HTTPS_PROXY: http, ALL_PROXY: `socks5h://127.0.0.1:${PROXY_PORT}` };
}

/**
 * The program's ids inside: 65534 by default. Without root only the caller's own id can be
 * mapped into the box, as its root: the program runs as uid 0 there, with no capabilities.
 */
function ids(user: { uid?: number; gid?: number } | undefined, issues: OptionIssue[]): { uid: number; gid: number } {
  if (privileged()) return { uid: user?.uid ?? 65534, gid: user?.gid ?? 65534 };
  for (const key of ['uid', 'gid'] as const) {
    if (user?.[key] !== undefined && user[key] !== 0) {
      issues.push({ path: `user.${key}`, message: 'only 0 is available without root (the box maps just the caller\'s own id)' });
    }
  }
  return { uid: 0, gid: 0 };
}

function statOrNull(path: string): Stats | null {
  try {
    return statSync(path);
  } catch {
    return null;
  }
}

/**
 * A bind source as the host has it now (a symlink followed, as the mount follows it): a
 * directory, something else (mounted on a file), or null when it does not exist. The one check of
 * a bind source, made by a full resolution and by every run of a shape.
 */
function sourceKind(path: string): 'directory' | 'file' | null {
  const st = statOrNull(path);
  return st === null ? null : st.isDirectory() ? 'directory' : 'file';
}

function resolveFiles(files: z.output<ReturnType<typeof filesSchema>> | undefined, issues: OptionIssue[]): ResolvedFile[] {
  const out: ResolvedFile[] = [];
  let total = 0;
  for (const [name, content] of Object.entries(files ?? {})) {
    const checked = relativePath().safeParse(name);
    if (!checked.success) {
      issues.push({ path: `files.${name}`, message: checked.error.issues[0]?.message ?? 'bad name' });
      continue;
    }
    const c = typeof content === 'string' || content instanceof Uint8Array ? { data: content } : content;
    const data = Buffer.from(c.data);
    total += data.length;
    out.push({ name: checked.data, data, mode: c.mode ?? 0o644 });
  }
  if (total > MAX_FILES_BYTES) issues.push({ path: 'files', message: `hold more than ${MAX_FILES_BYTES} bytes in all` });
  return out;
}

const MAX_FILES_BYTES = 8 * 1024 * 1024;

/** What a one-shot box and a living box resolve alike: the box, and the program's defaults. */
function resolveBox(o: SandboxParsed | RunParsed, kind: Kind, issues: OptionIssue[]) {
  const limits = resolveLimits(o.limits ?? {}, null, kind);
  const { imageDefaults, ...shape } = resolveShape(o, limits.tmpfsBytes, issues);
  return {
    ...shape,
    imageProgram: imageDefaults ? { entrypoint: imageDefaults.entrypoint, cmd: imageDefaults.cmd } : null,
    // As in `docker run`, the image's WorkingDir shows the files the image has there.
    cwdInImage: o.cwd === undefined && imageDefaults?.workingDir != null && imageHasDir(imageDefaults.layers, imageDefaults.workingDir),
    env: { ...(imageDefaults?.env ?? {}), ...proxyEnv(shape.egress), ...(o.env ?? {}) },
    cwd: o.cwd ?? imageDefaults?.workingDir ?? '/work',
    limits,
    files: resolveFiles(o.files, issues),
    signal: o.signal ?? null,
    seccomp: resolveSeccomp(o.seccomp, issues) ?? 'default',
  };
}

/** Validates and resolves options for `run()` / `spawn()`; throws SandboxOptionsError. */
export function resolveOptions(input: unknown, kind: 'run' | 'spawn' = 'run'): ResolvedOptions {
  if (!isPlainObject(input)) return resolveFresh(input, kind);
  const record = checked.get(input);
  if (record) return fromChecked(record, kind);
  return fromShape(input, kind) ?? resolveFresh(input, kind);
}

function resolveFresh(input: unknown, kind: 'run' | 'spawn'): ResolvedOptions {
  return resolveParsed(parse(runFields, input), kind);
}

function resolveParsed(o: RunParsed, kind: 'run' | 'spawn'): ResolvedOptions {
  const issues: OptionIssue[] = [];
  const box = resolveBox(o, kind, issues);
  const command = programOf(o, box.imageProgram, o.image ?? null, issues);
  if (kind === 'spawn' && o.encoding !== undefined) issues.push(SPAWN_ENCODING);
  if (issues.length > 0) throw new SandboxOptionsError(issues);
  return { ...box, command, collect: o.collect ?? [], stdin: o.stdin ?? null, encoding: o.encoding ?? 'utf8', shape: null };
}

/** @inline */
type RunParsed = z.output<ReturnType<typeof runFields.whole>>;
type SandboxParsed = z.output<ReturnType<typeof shapeOnlyFields.whole>>;
type SandboxRunParsed = z.output<ReturnType<typeof programOnlyFields.whole>>;

/**
 * Options are made fresh for every run, mostly of a few shapes: a judge's or a plugin host's
 * runs differ in their input, not in what the box is. So what the options resolve to, apart from
 * a run's own input (`stdin`, `signal`, `files`), is kept by their content: a run whose options
 * read the same as a resolved run's skips the schema and takes that resolution, frozen and shared,
 * with its own input checked and filled in. Keys are exact (see `contentOf`); options with
 * anything else (a class instance, a non-finite number, a sparse array) are resolved afresh, and
 * so are options naming an image or a network object, whose resolution reads the image store or
 * makes objects of their own. Bind sources are checked against the host on every run, as a fresh
 * resolution checks them, and must still be what they were (a directory, or not).
 */
const shapes = new Map<string, Shape>();
const MAX_SHAPES = 64;

interface Shape {
  /**
   * The resolution, spread into each run's options with the run's own input in place of the
   * empty one it holds. Its fields are frozen, shared by every run of the shape; the object
   * itself is not, and is never handed out. V8 spreads a frozen object by its slow path, one
   * property at a time; a plain one is copied whole, but a property added to the copy would make
   * it a V8 shape of its own on every run: the run's own input is only written over.
   */
  readonly base: ResolvedOptions;
  /** What the schema made of the options without a run's own input (frozen): `checkOptions` takes it instead of parsing again. */
  readonly parsed: Readonly<Omit<RunParsed, 'files' | 'signal' | 'stdin'>>;
  /** Each bind source and what it was when the shape was resolved. */
  readonly bindSources: readonly { readonly path: string; readonly kind: 'directory' | 'file' }[];
  /**
   * The options' content as data (a run's own input apart), whose `contentOf` is this shape's
   * key: options equal to it are of this shape without a key made (see `sameContent`). Set by the
   * shape's first run through its key; null where the data read back differed from the key.
   */
  content?: { readonly keys: readonly string[]; readonly data: Readonly<Record<string, unknown>> } | null;
}

/**
 * The shape the last run through `fromShape` took, with the kind and ids its key was made with: a
 * run of the same options (a judge's tests, a plugin host's calls) compares its options with the
 * shape's content instead of making a key string and looking it up.
 */
let lastShape: { readonly shape: Shape; readonly kind: 'run' | 'spawn'; readonly euid: number | undefined; readonly egid: number | undefined } | null = null;

/** A run's own input: checked and resolved per run, never part of a shape. */
const PER_RUN = new Set(['stdin', 'signal', 'files']);

/**
 * The shape of a key: the one kept, or one made by resolving `parsed` (and kept, when it can be).
 * A resolution that cannot be kept is returned as it is.
 */
function shapeOf(key: string, parsed: () => RunParsed, kind: 'run' | 'spawn'): Shape | ResolvedOptions {
  let shape = shapes.get(key);
  // A bind source gone, or no longer what it was (a directory become a file): the shape is
  // resolved again, and a source gone is refused as a full resolution refuses it, in its words.
  if (shape && !sourcesAsResolved(shape)) {
    shapes.delete(key);
    shape = undefined;
  }
  if (shape) return shape;
  const o = parsed();
  const resolved = resolveParsed(o, kind);
  if (resolved.image !== null || resolved.layers !== null || resolved.egress !== null || resolved.publish.length > 0) return resolved;
  const bindSources = resolved.mounts.flatMap((m) => (m.type === 'bind' ? [{ path: m.source, kind: sourceKind(m.source) }] : []));
  // A source that went away while this resolution was made is not kept as it was seen.
  if (bindSources.some((b) => b.kind === null)) return resolved;
  const { files: _files, signal: _signal, stdin: _stdin, ...rest } = resolved;
  const { files: _f, signal: _s, stdin: _i, ...parsedRest } = o;
  shape = {
    base: frozenFields({ ...rest, shape: {}, files: [], signal: null, stdin: null }),
    parsed: freezeData(parsedRest),
    bindSources: bindSources as Shape['bindSources'],
  };
  if (shapes.size >= MAX_SHAPES) shapes.delete(shapes.keys().next().value!);
  shapes.set(key, shape);
  return shape;
}

function isShape(s: Shape | ResolvedOptions): s is Shape {
  return 'bindSources' in s;
}

function sourcesAsResolved(shape: Shape): boolean {
  return shape.bindSources.every((s) => sourceKind(s.path) === s.kind);
}

function fromShape(input: Record<string, unknown>, kind: 'run' | 'spawn'): ResolvedOptions | null {
  const euid = process.geteuid?.();
  const egid = process.getegid?.();
  const last = lastShape;
  let shape: Shape;
  if (last !== null && last.kind === kind && last.euid === euid && last.egid === egid && last.shape.content && sameContent(input, last.shape.content) && sourcesAsResolved(last.shape)) {
    shape = last.shape;
  } else {
    const content = contentOf(input);
    if (content === null) return null;
    // Resolved from a copy of the data the key describes: what is kept is what the key says.
    const found = shapeOf(keyWith(kind, content, euid, egid), () => parse(runFields, plainCopy(input)), kind);
    if (!isShape(found)) return found;
    shape = found;
    if (shape.content === undefined) {
      const data = contentCopy(input);
      shape.content = contentOf(data) === content ? { keys: Object.keys(data), data } : null;
    }
    lastShape = { shape, kind, euid, egid };
  }
  const own = ownInput(input);
  if (own === null) return null;
  const issues: OptionIssue[] = [];
  const files = own.files === undefined ? [] : resolveFiles(own.files, issues);
  // A run's own input in error: a full resolution reports it, in its words.
  if (issues.length > 0) return null;
  return { ...shape.base, files, signal: own.signal ?? null, stdin: own.stdin ?? null };
}

/** A run's own input as the schema takes it, or null when the schema would refuse it. */
function ownInput(input: Record<string, unknown>): Pick<RunParsed, 'files' | 'signal' | 'stdin'> | null {
  const { stdin, signal, files } = input;
  if (stdin !== undefined && typeof stdin !== 'string' && !(stdin instanceof Uint8Array) && !(stdin instanceof Readable)) return null;
  if (signal !== undefined && !(signal instanceof AbortSignal)) return null;
  let parsedFiles: RunParsed['files'];
  if (files !== undefined) {
    const parsed = filesSchema().safeParse(files);
    if (!parsed.success) return null;
    parsedFiles = parsed.data;
  }
  return { stdin: stdin as RunParsed['stdin'], signal: signal as RunParsed['signal'], files: parsedFiles };
}

/**
 * Options `checkOptions` made: what the schema made of them, and their content key (without the
 * kind and ids, which are the run's), so that a run of them neither parses nor reads them again.
 * Only the frozen copies `checkOptions` returns are keys here: a caller can neither make one nor
 * change one after its check.
 */
interface Checked {
  readonly parsed: RunParsed;
  readonly content: string | null;
  /** The key of a run of them, as it was when they were checked (one string: its hash is computed once). */
  readonly runKey: string | null;
  readonly euid: number | undefined;
  readonly egid: number | undefined;
}

const checked = new WeakMap<object, Checked>();

function fromChecked(record: Checked, kind: 'run' | 'spawn'): ResolvedOptions {
  if (record.content === null) return resolveParsed(record.parsed, kind);
  const sameKey = kind === 'run' && record.runKey !== null && record.euid === process.geteuid?.() && record.egid === process.getegid?.();
  const shape = shapeOf(sameKey ? (record.runKey as string) : keyWith(kind, record.content), () => record.parsed, kind);
  if (!isShape(shape)) return shape;
  const issues: OptionIssue[] = [];
  // Resolved per run, as their bytes are the caller's (a Uint8Array it may still write to).
  const files = resolveFiles(record.parsed.files, issues);
  if (issues.length > 0) throw new SandboxOptionsError(issues);
  return { ...shape.base, files, signal: record.parsed.signal ?? null, stdin: record.parsed.stdin ?? null };
}

/**
 * Checks `run()`/`spawn()` options against their schema once, for runs that take them as they are
 * many times (their input included) or a layer that judges them before it hands them on (a
 * service checking a request's options against its own rules). Returns a deep-frozen copy, which
 * `run()` and `spawn()` take without parsing or reading it again; `parseOptions('run', checked)`
 * returns what the schema made of it, also without parsing it again. Options that differ from run
 * to run only in their input (each test's stdin) gain nothing from it: `run()` already resolves
 * options of a shape it has seen without the schema, and a check per run costs a copy.
 *
 * The copy is made first and is what is checked, so what was checked is what runs: a getter, or a
 * later change to the caller's object, cannot slip past the check, and the copy cannot be changed.
 * Bytes (`stdin`, file contents), a stdin stream and the signal are not copied: they are the run's
 * input, taken as they are at the run (file contents are counted then). What reads the host or the
 * image store (bind sources, images, private networks), and what follows from it (the program an
 * image names), is checked by each run, as for any options, after a service's own judgement of
 * the options (a client learns nothing of host paths it may not name). An object spread from the
 * copy (`{ ...checked, stdin }`) is plain options again, which `run()` checks as any other.
 *
 * Throws SandboxOptionsError for options the schema refuses, as `run()` would.
 */
export function checkOptions<T extends RunOptions<OutputEncoding>>(options: T): Readonly<T> {
  // Not an object: refused as run() refuses it.
  if (typeof options !== 'object' || options === null || Array.isArray(options)) parse(runFields, options);
  const { copy, content } = snapshot(options);
  const runKey = content === null ? null : keyWith('run', content);
  // A shape's options were parsed when it was resolved, and a parse is a function of the content.
  const shape = runKey !== null ? shapes.get(runKey) : undefined;
  const own = shape ? ownInput(copy) : null;
  let parsed: RunParsed;
  if (shape && own !== null) {
    const p: Record<string, unknown> = { ...shape.parsed };
    if (own.stdin !== undefined) p.stdin = own.stdin;
    if (own.signal !== undefined) p.signal = own.signal;
    if (own.files !== undefined) p.files = own.files;
    parsed = freezeData(p as RunParsed);
  } else parsed = freezeData(parse(runFields, copy));
  checked.set(copy, { parsed, content, runKey, euid: process.geteuid?.(), egid: process.getegid?.() });
  return copy as Readonly<T>;
}

/** Where `copyOf` writes a content key: `parts` is null once the content has none (see `keyOf`). */
interface KeyParts {
  parts: string[] | null;
}

/** Options copied by `copyOf`, with their content as `contentOf` writes it (the key without the kind and ids). */
function snapshot(input: object): { copy: Record<string, unknown>; content: string | null } {
  const key: KeyParts = { parts: [] };
  const copy: Record<string, unknown> = {};
  for (const k of Object.keys(input)) {
    const v = (input as Record<string, unknown>)[k];
    if (PER_RUN.has(k)) copy[k] = copyOf(v, null, 0);
    else {
      key.parts?.push(JSON.stringify(k));
      copy[k] = copyOf(v, key, 0);
    }
  }
  return { copy: Object.freeze(copy), content: key.parts === null ? null : key.parts.join('\u0001') };
}

/**
 * A frozen copy of a value's data, its key written as `keyOf` writes it, in one walk: objects and
 * arrays are copied (an object of any prototype as a plain one, its own enumerable keys), bytes,
 * streams and signals are taken as they are (and have no key).
 */
function copyOf(v: unknown, key: KeyParts | null, depth: number): unknown {
  switch (typeof v) {
    case 'string':
      key?.parts?.push(JSON.stringify(v));
      return v;
    case 'number':
      if (key?.parts) {
        if (Number.isFinite(v)) key.parts.push(Object.is(v, -0) ? '-0' : String(v));
        else key.parts = null;
      }
      return v;
    case 'boolean':
      key?.parts?.push(v ? 't' : 'f');
      return v;
    case 'undefined':
      key?.parts?.push('u');
      return v;
    case 'object': {
      if (v === null) {
        key?.parts?.push('n');
        return v;
      }
      if (ArrayBuffer.isView(v) || v instanceof Readable || v instanceof AbortSignal) {
        if (key) key.parts = null;
        return v;
      }
      if (key && depth >= MAX_DEPTH) key.parts = null;
      if (Array.isArray(v)) {
        key?.parts?.push('[');
        const copy = Array.from(v, (x) => copyOf(x, key, depth + 1));
        key?.parts?.push(']');
        return Object.freeze(copy);
      }
      key?.parts?.push('{');
      const copy: Record<string, unknown> = {};
      for (const k of Object.keys(v)) {
        key?.parts?.push(JSON.stringify(k));
        copy[k] = copyOf((v as Record<string, unknown>)[k], key, depth + 1);
      }
      key?.parts?.push('}');
      return Object.freeze(copy);
    }
    default:
      if (key) key.parts = null;
      return v;
  }
}

/** Freezes the plain objects and arrays of what the schema made (bytes, streams and signals are the caller's). */
function freezeData<T>(v: T): T {
  if (Array.isArray(v)) {
    if (!Object.isFrozen(v)) {
      Object.freeze(v);
      for (const x of v) freezeData(x);
    }
  } else if (isPlainObject(v) && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const k of Object.keys(v)) freezeData(v[k]);
  }
  return v;
}

/** A shape's key: the options' content (`contentOf`), the kind of run, and the ids this process runs as (they decide the box's ids). */
function keyWith(kind: string, content: string, euid = process.geteuid?.(), egid = process.getegid?.()): string {
  return `${kind}\u0001${String(euid)}\u0001${String(egid)}\u0001${content}`;
}

/**
 * The options' content but a run's own input, as a string two option objects share exactly when
 * the schema sees the same data in them: strings quoted, numbers exact (-0 apart), `undefined` kept
 * apart from a missing key, keys in their order (which orders the environment). Null for what is
 * not plain data.
 */
function contentOf(input: Record<string, unknown>): string | null {
  const out: string[] = [];
  for (const k of Object.keys(input)) {
    if (PER_RUN.has(k)) continue;
    out.push(JSON.stringify(k));
    if (!keyOf(input[k], out, 0)) return null;
  }
  return out.join('\u0001');
}

const MAX_DEPTH = 8;

function keyOf(v: unknown, out: string[], depth: number): boolean {
  switch (typeof v) {
    case 'string':
      out.push(JSON.stringify(v));
      return true;
    case 'number':
      if (!Number.isFinite(v)) return false;
      out.push(Object.is(v, -0) ? '-0' : String(v));
      return true;
    case 'boolean':
      out.push(v ? 't' : 'f');
      return true;
    case 'undefined':
      out.push('u');
      return true;
    case 'object': {
      if (v === null) {
        out.push('n');
        return true;
      }
      if (depth >= MAX_DEPTH) return false;
      if (Array.isArray(v)) {
        if (Object.getPrototypeOf(v) !== Array.prototype) return false;
        out.push('[');
        for (let i = 0; i < v.length; i++) if (!(i in v) || !keyOf(v[i], out, depth + 1)) return false;
        out.push(']');
        return true;
      }
      if (!isPlainObject(v)) return false;
      out.push('{');
      for (const k of Object.keys(v)) {
        out.push(JSON.stringify(k));
        if (!keyOf(v[k], out, depth + 1)) return false;
      }
      out.push('}');
      return true;
    }
    default:
      return false;
  }
}

/**
 * Whether options hold exactly the data of a shape's content, a run's own input apart: then
 * `contentOf` gives them the shape's key (the same keys in the same order, strings and booleans
 * equal, numbers the same finite number, -0 apart, `undefined` kept apart from a missing key),
 * and anything `keyOf` refuses is unequal, as the content holds none of it.
 */
function sameContent(input: Record<string, unknown>, content: NonNullable<Shape['content']>): boolean {
  let i = 0;
  for (const k of Object.keys(input)) {
    if (PER_RUN.has(k)) continue;
    if (k !== content.keys[i++] || !sameData(input[k], content.data[k], 0)) return false;
  }
  return i === content.keys.length;
}

function sameData(v: unknown, d: unknown, depth: number): boolean {
  // The content holds no non-finite number, function, symbol or bigint, so none of these is equal.
  if (typeof v !== 'object' || v === null) return Object.is(v, d);
  if (typeof d !== 'object' || d === null || depth >= MAX_DEPTH) return false;
  if (Array.isArray(v)) {
    if (!Array.isArray(d) || Object.getPrototypeOf(v) !== Array.prototype || v.length !== d.length) return false;
    for (let i = 0; i < v.length; i++) if (!(i in v) || !sameData(v[i], d[i], depth + 1)) return false;
    return true;
  }
  if (Array.isArray(d) || !isPlainObject(v)) return false;
  const keys = Object.keys(v);
  const dKeys = Object.keys(d);
  if (keys.length !== dKeys.length) return false;
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i]!;
    if (k !== dKeys[i] || !sameData(v[k], (d as Record<string, unknown>)[k], depth + 1)) return false;
  }
  return true;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null) return false;
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** A copy of plain data (what `contentOf` accepts), a run's own input passed as it is. */
function plainCopy(input: Record<string, unknown>): Record<string, unknown> {
  const copy = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(copy);
    if (typeof v === 'object' && v !== null) return Object.fromEntries(Object.keys(v).map((k) => [k, copy((v as Record<string, unknown>)[k])]));
    return v;
  };
  return Object.fromEntries(Object.keys(input).map((k) => [k, PER_RUN.has(k) ? input[k] : copy(input[k])]));
}

/** A frozen copy of the options' data without a run's own input (what `contentOf` reads). */
function contentCopy(input: Record<string, unknown>): Record<string, unknown> {
  const copy: Record<string, unknown> = {};
  for (const k of Object.keys(input)) if (!PER_RUN.has(k)) copy[k] = input[k];
  return deepFreeze(plainCopy(copy));
}

/** `o` with every field deep-frozen, `o` itself left as it is. */
function frozenFields<T extends object>(o: T): T {
  for (const v of Object.values(o)) deepFreeze(v);
  return o;
}

function deepFreeze<T>(v: T): T {
  // Bytes stay as they are: a typed array cannot be frozen.
  if (typeof v === 'object' && v !== null && !ArrayBuffer.isView(v) && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const k of Object.keys(v)) deepFreeze((v as Record<string, unknown>)[k]);
  }
  return v;
}

/** `Sandbox.create()` options: the box, and defaults for the programs run in it. */
export function resolveSandboxOptions(input: unknown): ResolvedOptions {
  const o = parseBox('sandbox', input);
  const issues: OptionIssue[] = [];
  const box = resolveBox(o, 'box', issues);
  if (o.command !== undefined) issues.push({ path: 'command', message: 'is given per run: box.run({ command })' });
  if (o.args !== undefined) issues.push({ path: 'args', message: 'are given per run: box.run({ args })' });
  if (issues.length > 0) throw new SandboxOptionsError(issues);
  return { ...box, command: [], collect: [], stdin: null, encoding: 'utf8', shape: null };
}

/** One run in a living box: its own program and limits over the box's defaults. */
export function resolveSandboxRun(input: unknown, box: ResolvedOptions, kind: 'run' | 'spawn'): ResolvedOptions {
  const o = parseBox('sandboxRun', input);
  const issues: OptionIssue[] = [];
  const seccomp = resolveSeccomp(o.seccomp, issues) ?? box.seccomp;
  const files = resolveFiles(o.files, issues);
  const command = programOf(o, box.imageProgram, null, issues);
  if (o.limits?.tmpfs !== undefined) issues.push({ path: 'limits.tmpfs', message: 'is the box\'s: give it to Sandbox.create()' });
  if (kind === 'spawn' && o.encoding !== undefined) issues.push(SPAWN_ENCODING);
  if (issues.length > 0) throw new SandboxOptionsError(issues);
  return {
    ...box,
    command,
    env: { ...box.env, ...(o.env ?? {}) },
    cwd: o.cwd ?? box.cwd,
    limits: resolveLimits(o.limits ?? {}, box.limits, kind),
    files,
    collect: o.collect ?? [],
    signal: o.signal ?? null,
    stdin: o.stdin ?? null,
    encoding: o.encoding ?? 'utf8',
    seccomp,
    shape: null,
  };
}

/**
 * The program a run runs, as `docker run` and a Kubernetes container make it: `command` replaces
 * the image's `Entrypoint` and `Cmd`, `args` replace its `Cmd`.
 */
function programOf(o: { command?: string[]; args?: string[] }, image: ImageProgram | null, ref: string | null, issues: OptionIssue[]): string[] {
  const program = o.command !== undefined ? [...o.command, ...(o.args ?? [])] : [...(image?.entrypoint ?? []), ...(o.args ?? image?.cmd ?? [])];
  if (program.length === 0) {
    const why = image ? `: image ${ref !== null ? `${JSON.stringify(ref)} ` : ''}has no Entrypoint or Cmd` : '';
    issues.push({ path: 'command', message: `must name a program${why}` });
  } else if (program[0] === '') {
    // execve("") fails with ENOENT inside the box, after it was built: say so before anything is.
    const fromImage = o.command === undefined && ((image?.entrypoint.length ?? 0) > 0 || o.args === undefined);
    const path = o.command !== undefined ? 'command[0]' : fromImage ? 'image' : 'args[0]';
    issues.push({ path, message: `must name a program, not be empty${fromImage ? ': the image\'s program is ""' : ''}` });
  }
  return program;
}

/**
 * The schemas of run()'s, Sandbox.create()'s and box.run()'s options, for a layer that speaks
 * them in another form (the daemon's JSON, where bytes are strings or base64) and describes them.
 */
export const optionSchemas = {
  get run() {
    return runFields.whole();
  },
  get sandbox() {
    return shapeOnlyFields.whole();
  },
  get sandboxRun() {
    return programOnlyFields.whole();
  },
};

/** Options as their schema parsed them: sizes in bytes, durations in ms, paths normalised, nothing checked against the host yet. */
export type ParsedOptions = Partial<RunParsed>;

/**
 * Parses options with the schema `run()` (`'run'`), `Sandbox.create()` (`'sandbox'`) or
 * `box.run()` (`'sandboxRun'`) uses, for a layer that judges a request before it passes it on
 * unchanged (the daemon's policy). Throws SandboxOptionsError naming the field. Options from
 * `checkOptions` (`'run'`), `checkSandboxOptions` (`'sandbox'`) and `checkSandboxRunOptions`
 * (`'sandboxRun'`) are not parsed again: their parse is returned, frozen.
 */
export function parseOptions(kind: 'run' | 'sandbox' | 'sandboxRun', input: unknown): ParsedOptions {
  const record = kind === 'run' && isPlainObject(input) ? checked.get(input) : undefined;
  if (record) return record.parsed as ParsedOptions;
  return (kind === 'run' ? parse(runFields, input) : parseBox(kind, input)) as ParsedOptions;
}

/**
 * What `checkBoxOptions` made: the schema's parse of a frozen copy, for the kind it was checked as.
 * As with `checked`, only the copies it returns are keys.
 */
const boxChecked = new WeakMap<object, { readonly kind: 'sandbox' | 'sandboxRun'; readonly parsed: ParsedOptions }>();

/** The schema's parse of `Sandbox.create()`'s or `box.run()`'s options: the one recorded by `checkBoxOptions`, or a walk. */
function parseBox(kind: 'sandbox', input: unknown): SandboxParsed;
function parseBox(kind: 'sandboxRun', input: unknown): SandboxRunParsed;
function parseBox(kind: 'sandbox' | 'sandboxRun', input: unknown): unknown;
function parseBox(kind: 'sandbox' | 'sandboxRun', input: unknown): unknown {
  const record = isPlainObject(input) ? boxChecked.get(input) : undefined;
  if (record?.kind === kind) return record.parsed;
  return kind === 'sandbox' ? parse(shapeOnlyFields, input) : parse(programOnlyFields, input);
}

/**
 * `Sandbox.create()`'s (`'sandbox'`) or a box's run's (`'sandboxRun'`) options checked once, as
 * `checkOptions` checks `run()`'s: a deep-frozen copy, checked after it was made, whose parse
 * `Sandbox.create()`, `box.run()`, `box.spawn()` and `parseOptions(kind, …)` take without walking
 * the schema again. Bytes, a stdin stream and the signal are taken as they are; what reads the
 * host (bind sources, images) is checked when the box is made. Public as `checkSandboxOptions`
 * and `checkSandboxRunOptions` (src/sandbox.ts). Throws SandboxOptionsError as the schema refuses.
 */
export function checkBoxOptions<T extends object>(kind: 'sandbox' | 'sandboxRun', options: T): Readonly<T> {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) parseBox(kind, options);
  const copy: Record<string, unknown> = {};
  for (const k of Object.keys(options)) copy[k] = copyOf((options as Record<string, unknown>)[k], null, 0);
  Object.freeze(copy);
  const parsed = freezeData(kind === 'sandbox' ? parse(shapeOnlyFields, copy) : parse(programOnlyFields, copy)) as ParsedOptions;
  boxChecked.set(copy, { kind, parsed });
  return copy as Readonly<T>;
}
