/**
 * What the server lets its clients ask for. Strict unless the operator's policy file says
 * otherwise: no host path as a bind source or image, no host network, no `seccomp: none` or
 * policy of a client's own, no writable image, and a ceiling for every limit. A limit a request
 * leaves out gets the ceiling (or the library's default when that is lower), so no run is
 * unbounded because a client forgot a field.
 */
import { readFileSync, realpathSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { z } from 'zod';

import { DEFAULT_LIMITS, parseOptions, SandboxOptionsError, type Limits, type ParsedOptions } from '../index.js';
import { forbidden } from './http-error.js';

type GivenLimits = Required<NonNullable<ParsedOptions['limits']>>;
/** A ceiling for every limit: a number (`null`, which lifts a library default, is no ceiling). */
type Ceilings = { [K in keyof GivenLimits]: NonNullable<GivenLimits[K]> };

export interface Policy {
  /** Host directories whose contents may be bound into boxes (real paths), and whether read-write. */
  bindRoots: { path: string; writable: boolean }[];
  /** Root filesystem images clients may name: directories (real paths) and names of stored images. */
  images: string[];
  allowHostNetwork: boolean;
  allowSeccompNone: boolean;
  allowCustomSeccomp: boolean;
  allowWritableImages: boolean;
  /** The largest value of every limit, in bytes / ms / counts. */
  ceilings: Ceilings;
  /** Living boxes one client may hold at once. */
  maxBoxesPerClient: number;
}

const limitShape = z.union([z.number(), z.string()]);

const policyFileSchema = z.strictObject({
  binds: z.array(z.strictObject({ source: z.string().startsWith('/'), writable: z.boolean().optional() })).optional(),
  images: z.array(z.string().min(1).refine((s) => !s.startsWith('.'), "must be an absolute path or a stored image's name")).optional(),
  allowHostNetwork: z.boolean().optional(),
  allowSeccompNone: z.boolean().optional(),
  allowCustomSeccomp: z.boolean().optional(),
  allowWritableImages: z.boolean().optional(),
  limits: z.record(z.string(), limitShape).optional(),
  maxBoxesPerClient: z.number().int().min(0).optional(),
});

export type PolicyFile = z.input<typeof policyFileSchema>;

const DEFAULT_CEILINGS: Limits = {
  wallTime: '60s',
  cpuTime: '30s',
  memory: '1GiB',
  processes: 256,
  output: '64MiB',
  fileSize: '64MiB',
  stack: '1GiB',
  openFiles: 1024,
  tmpfs: '512MiB',
};

/** Reads and checks a policy file (JSON); an error names the file and the field. */
export function loadPolicy(path: string | null): Policy {
  let raw: unknown = {};
  if (path !== null) {
    try {
      raw = JSON.parse(readFileSync(path, 'utf8'));
    } catch (e) {
      throw new Error(`policy ${path}: ${(e as Error).message}`);
    }
  }
  const parsed = policyFileSchema.safeParse(raw);
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    throw new Error(`policy ${path}: ${i?.path.join('.') ?? ''}: ${i?.message ?? 'invalid'}`);
  }
  return makePolicy(parsed.data, path ?? '(defaults)');
}

export function makePolicy(file: PolicyFile, name = '(policy)'): Policy {
  let limits: ParsedOptions['limits'];
  try {
    limits = parseOptions('sandboxRun', { command: ['-'], limits: { ...DEFAULT_CEILINGS, cpus: availableParallelism(), ...file.limits } }).limits;
  } catch (e) {
    if (e instanceof SandboxOptionsError) throw new Error(`policy ${name}: ${e.message}`);
    throw e;
  }
  for (const [key, value] of Object.entries(limits ?? {})) {
    if (value === null) throw new Error(`policy ${name}: limits.${key}: a ceiling must be a value, not null`);
  }
  const real = (p: string): string => {
    try {
      return realpathSync(p);
    } catch (e) {
      throw new Error(`policy ${name}: ${p}: ${(e as Error).message}`);
    }
  };
  return {
    bindRoots: (file.binds ?? []).map((b) => ({ path: real(b.source), writable: b.writable ?? false })),
    images: (file.images ?? []).map((i) => (i.startsWith('/') ? real(i) : i)),
    allowHostNetwork: file.allowHostNetwork ?? false,
    allowSeccompNone: file.allowSeccompNone ?? false,
    allowCustomSeccomp: file.allowCustomSeccomp ?? false,
    allowWritableImages: file.allowWritableImages ?? false,
    ceilings: limits as Ceilings,
    maxBoxesPerClient: file.maxBoxesPerClient ?? 16,
  };
}

const LIBRARY_DEFAULTS: Partial<Record<keyof Ceilings, number>> = {
  processes: DEFAULT_LIMITS.processes,
  output: DEFAULT_LIMITS.outputBytes,
  fileSize: DEFAULT_LIMITS.fileSizeBytes,
  stack: DEFAULT_LIMITS.stackBytes,
  openFiles: DEFAULT_LIMITS.openFiles,
  tmpfs: DEFAULT_LIMITS.tmpfsBytes,
};

function under(path: string, root: string): boolean {
  return path === root || path.startsWith(root === '/' ? '/' : `${root}/`);
}

function realOrNull(p: string): string | null {
  try {
    return realpathSync(p);
  } catch {
    return null;
  }
}

/**
 * The ceilings a request's options leave out, as the limits of a request that has not been
 * checked yet: the options with them set, so that one check covers the limits the run gets too.
 * Limits that are not an object are left as they are, for the check to refuse.
 */
export function withCeilings<T extends object>(policy: Policy, options: T): T {
  const limits = (options as { limits?: unknown }).limits;
  if (limits !== undefined && (typeof limits !== 'object' || limits === null || Array.isArray(limits))) return options;
  const given = (limits ?? {}) as Record<string, unknown>;
  const filled = missingCeilings(policy, (key) => Object.hasOwn(given, key) && given[key] !== undefined);
  return filled === null ? options : { ...options, limits: { ...given, ...filled } };
}

/** The ceiling of every limit not given, where that is lower than what the library would take (cpus: the host bounds it). */
function missingCeilings(policy: Policy, given: (key: string) => boolean): Record<string, number> | null {
  let filled: Record<string, number> | null = null;
  for (const [key, ceiling] of Object.entries(policy.ceilings) as [keyof Ceilings, number][]) {
    if (key === 'cpus' || given(key)) continue;
    const dflt = LIBRARY_DEFAULTS[key];
    if (dflt === undefined || dflt > ceiling) (filled ??= {})[key] = ceiling;
  }
  return filled;
}

/**
 * Checks a request parsed by its schema against the policy and returns the options to pass on:
 * the client's own, with every missing limit set (unless `fill` is false: a run in a living box
 * inherits the box's limits, and options from `withCeilings` have them already) and bind sources
 * replaced by their real paths (targets kept). The options themselves are returned when nothing
 * of them changes. Throws a 403 HttpError naming the field.
 */
export function applyPolicy<T extends object>(policy: Policy, parsed: ParsedOptions, options: T, fill: boolean): T {
  let out: Record<string, unknown> | null = null;
  const edited = (): Record<string, unknown> => (out ??= { ...options } as Record<string, unknown>);
  const given = parsed.limits ?? {};
  for (const [key, ceiling] of Object.entries(policy.ceilings) as [keyof Ceilings, number][]) {
    const value = given[key];
    if (value === null) {
      throw forbidden(`limits.${key}`, `null (no limit) is over the server's ceiling of ${ceiling}`);
    } else if (value !== undefined && value > ceiling) {
      throw forbidden(`limits.${key}`, `${value} is over the server's ceiling of ${ceiling}`);
    }
  }
  const filled = fill ? missingCeilings(policy, (key) => given[key as keyof Ceilings] !== undefined) : null;
  if (filled !== null) edited().limits = { ...((options as { limits?: object }).limits ?? {}), ...filled };

  if (parsed.cgroupParent !== undefined) throw forbidden('cgroupParent', 'the server chooses the cgroups of its boxes');
  if (parsed.network === 'host' && !policy.allowHostNetwork) throw forbidden('network', "'host' is not allowed by the server");
  // An allow list (which may name the server's own loopback) or a published port (a listener on
  // the server's host) is a part of the host's network: the same operator's choice.
  if (typeof parsed.network === 'object' && !policy.allowHostNetwork) {
    throw forbidden('network', 'an allow list or published ports reach the server\'s host network, which the server does not allow');
  }
  // A private network is named by the server host's own processes: a client may not join their boxes.
  if (typeof parsed.network === 'string' && !['none', 'loopback', 'host'].includes(parsed.network)) {
    throw forbidden('network', 'private networks of the server\'s host are not offered to clients');
  }
  if (parsed.seccomp === 'none' && !policy.allowSeccompNone) throw forbidden('seccomp', "'none' is not allowed by the server");
  if (typeof parsed.seccomp === 'object' && parsed.seccomp !== null && !policy.allowCustomSeccomp) {
    throw forbidden('seccomp', 'only the presets default and judge are allowed by the server');
  }
  if (parsed.writable && !policy.allowWritableImages) throw forbidden('writable', 'writable images are not allowed by the server');
  if (parsed.image !== undefined && !parsed.image.startsWith('/')) {
    if (!policy.images.includes(parsed.image)) throw forbidden('image', `${parsed.image} is not an image the server offers`);
  } else if (parsed.image !== undefined) {
    const real = realOrNull(parsed.image);
    if (!policy.images.includes(parsed.image) && (real === null || !policy.images.includes(real))) {
      throw forbidden('image', `${parsed.image} is not an image the server offers`);
    }
  }
  const bind = (source: string, readonly: boolean, field: string): string => {
    // The lexical check comes first, so a client learns nothing about paths it may not name.
    const lexical = policy.bindRoots.filter((r) => under(source, r.path));
    if (lexical.length === 0) throw forbidden(field, `${source} is not under a host path the server allows`);
    const real = realOrNull(source);
    if (real === null) return source;
    const roots = policy.bindRoots.filter((r) => under(real, r.path));
    if (roots.length === 0) throw forbidden(field, `${source} resolves outside the host paths the server allows`);
    if (!readonly && !roots.some((r) => r.writable)) throw forbidden(field, `${source} may only be bound read-only`);
    return real;
  };
  if (parsed.binds) {
    edited().binds = parsed.binds.map((b, i) => ({
      source: bind(b.source, b.readonly ?? true, `binds[${i}].source`),
      target: b.target ?? b.source,
      ...(b.readonly !== undefined ? { readonly: b.readonly } : {}),
    }));
  }
  if (parsed.mounts) {
    const mounts = (options as { mounts?: unknown[] }).mounts;
    edited().mounts = parsed.mounts.map((m, i) => {
      if (m.type === 'tmpfs') {
        if (m.size !== undefined && m.size > policy.ceilings.tmpfs) {
          throw forbidden(`mounts[${i}].size`, `${m.size} is over the server's ceiling of ${policy.ceilings.tmpfs}`);
        }
        // Without a size it is the run's tmpfs limit, already within the ceiling.
        return mounts?.[i];
      }
      return {
        type: 'bind',
        source: bind(m.source, m.readonly ?? true, `mounts[${i}].source`),
        target: m.target ?? m.source,
        ...(m.readonly !== undefined ? { readonly: m.readonly } : {}),
      };
    });
  }
  return (out ?? options) as T;
}
