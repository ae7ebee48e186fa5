/**
 * The seccomp policy model: plain, JSON-serialisable data validated by a zod schema.
 *
 * A policy is a default action plus an ordered list of rules. For a given system call the rules
 * naming it are tried in order; the first one whose argument conditions all hold decides. When
 * none matches, the default action applies.
 */
import { z } from 'zod';

// ---------------------------------------------------------------------------------------------
// Types (the public shape of a policy)
// ---------------------------------------------------------------------------------------------

/** Common errno names accepted in `{ errno: ... }` (Linux numbering, the same on x86_64 and aarch64). */
export const ERRNO = Object.freeze({
  EPERM: 1,
  ENOENT: 2,
  ESRCH: 3,
  EINTR: 4,
  EIO: 5,
  ENXIO: 6,
  E2BIG: 7,
  ENOEXEC: 8,
  EBADF: 9,
  ECHILD: 10,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  EXDEV: 18,
  ENODEV: 19,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  ENFILE: 23,
  EMFILE: 24,
  ENOTTY: 25,
  ETXTBSY: 26,
  EFBIG: 27,
  ENOSPC: 28,
  ESPIPE: 29,
  EROFS: 30,
  EMLINK: 31,
  EPIPE: 32,
  ERANGE: 34,
  EDEADLK: 35,
  ENAMETOOLONG: 36,
  ENOLCK: 37,
  ENOSYS: 38,
  ENOTEMPTY: 39,
  ELOOP: 40,
  ENOTSOCK: 88,
  EPROTONOSUPPORT: 93,
  EOPNOTSUPP: 95,
  ENOTSUP: 95,
  EPFNOSUPPORT: 96,
  EAFNOSUPPORT: 97,
  EADDRINUSE: 98,
  EADDRNOTAVAIL: 99,
  ENETDOWN: 100,
  ENETUNREACH: 101,
  ECONNREFUSED: 111,
  ETIMEDOUT: 110,
  EHOSTUNREACH: 113,
} as const);

export type ErrnoName = keyof typeof ERRNO;

/** The largest errno a filter may return (the kernel's MAX_ERRNO). */
export const MAX_ERRNO = 4095;

/**
 * What happens to a system call.
 * - `'allow'`: it runs.
 * - `{ errno }`: it does not run and fails with that errno (a number 0..4095 or a name like `'EPERM'`).
 * - `'kill'`: the box ends and the run reports `syscall-denied` naming the call. By default this
 *   compiles to SECCOMP_RET_USER_NOTIF so the supervisor sees which call was made, records it and
 *   then kills the box (see {@link CompileOptions.killAction}); with `killAction: 'kill-process'` it
 *   compiles to SECCOMP_RET_KILL_PROCESS (the kernel kills at once; the call is not identified).
 * - `'log'`: it runs and the kernel logs it (audit), for writing policies.
 * - `'notify'`: SECCOMP_RET_USER_NOTIF: the supervisor decides (it needs a listener fd).
 */
export type SeccompAction = 'allow' | 'kill' | 'log' | 'notify' | { errno: number | ErrnoName };

/** Comparison operators of argument conditions; all compare unsigned 64-bit values. */
export type ArgOp = 'eq' | 'ne' | 'lt' | 'le' | 'gt' | 'ge' | 'masked-eq';

/**
 * A value patched in after compilation by whoever loads the filter (see
 * {@link CompileResult.placeholders}). Only `'execPath'` exists: the address of the path string
 * the sandbox passes to its own execve. Allowed as the `value` of `eq`/`ne` conditions only.
 */
export interface ArgPlaceholder {
  placeholder: 'execPath';
}
export type PlaceholderName = ArgPlaceholder['placeholder'];

/**
 * A 64-bit argument value: a non-negative or negative safe integer (negative numbers are taken as
 * two's complement, so `-100` is AT_FDCWD as the kernel sees it in a 64-bit register), a bigint,
 * or a string in decimal or `0x` hex (to keep values above 2^53 JSON-friendly).
 */
export type ArgValue = number | bigint | string;

/** A condition on one scalar argument (`args[index]`, 0..5) of the call. */
export interface ArgCondition {
  index: 0 | 1 | 2 | 3 | 4 | 5;
  op: ArgOp;
  /** For `masked-eq`: the condition holds when `(arg & mask) === value`. */
  value: ArgValue | ArgPlaceholder;
  /** Required for `masked-eq`, refused for the other operators. */
  mask?: ArgValue;
}

export interface SeccompRule {
  /** One system call name or several; names are per architecture (see the syscall tables). */
  syscall: string | string[];
  action: SeccompAction;
  /** All conditions must hold (AND). No conditions: the rule always matches its calls. */
  args?: ArgCondition[];
  /**
   * Names this architecture lacks are skipped instead of being an error (for policies shared by
   * x86_64 and aarch64, e.g. `open` exists only on x86_64).
   */
  optional?: boolean;
  /**
   * The rule can only ever decide a call made on a terminal (ioctl TIOCSTI, TIOCLINUX): when the
   * sandbox proves a run can reach no terminal, it compiles the policy without this rule (see
   * {@link withoutTerminalRules}). Unmarked rules are always compiled.
   */
  terminal?: boolean;
}

export interface SeccompPolicy {
  defaultAction: SeccompAction;
  rules: SeccompRule[];
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

export interface PolicyIssue {
  /** Dotted path of the offending field, e.g. `rules.3.args.0.value`. */
  readonly path: string;
  readonly message: string;
}

/**
 * A policy issue's dotted path as the parts of an option path (`rules.0.syscall` → `['rules', 0,
 * 'syscall']`): where a policy is a field of something larger (run options, a profile), its
 * fields are named the way the rest of that thing's are. A policy's keys are never all digits.
 */
export function policyPathParts(path: string): (string | number)[] {
  return (path.match(/[^.[\]]+/g) ?? []).map((p) => (/^\d+$/.test(p) ? Number(p) : p));
}

/** A policy is malformed (parsePolicy) or cannot be compiled for an architecture (compile). */
export class SeccompPolicyError extends Error {
  override readonly name = 'SeccompPolicyError';
  readonly issues: readonly PolicyIssue[];

  constructor(issues: readonly PolicyIssue[]) {
    super(
      `invalid seccomp policy: ${issues.map((i) => `${i.path || '(root)'}: ${i.message}`).join('; ')}`,
    );
    this.issues = issues;
  }

  /** The first offending field. */
  get path(): string {
    return this.issues[0]?.path ?? '';
  }
}

// ---------------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------------

export const U64_MAX = (1n << 64n) - 1n;

/** Parses an {@link ArgValue} to an unsigned 64-bit bigint, or returns an error message. */
export function parseU64(v: unknown): bigint | string {
  let b: bigint;
  if (typeof v === 'bigint') b = v;
  else if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) return 'must be a safe integer (use a string or bigint for larger values)';
    b = BigInt(v);
  } else if (typeof v === 'string') {
    const s = v.trim();
    if (!/^-?(0x[0-9a-fA-F]+|[0-9]+)$/.test(s)) return 'must be a decimal or 0x-hex integer string';
    const neg = s.startsWith('-');
    b = BigInt(neg ? s.slice(1) : s);
    if (neg) b = -b;
  } else return 'must be a number, bigint or integer string';
  if (b < -(1n << 63n) || b > U64_MAX) return 'does not fit in 64 bits';
  return b < 0n ? b + (1n << 64n) : b;
}

/** `parseU64` for values already validated by the schema. */
export function toU64(v: ArgValue): bigint {
  const r = parseU64(v);
  if (typeof r === 'string') throw new RangeError(`argument value ${String(v)} ${r}`);
  return r;
}

export function isPlaceholder(v: unknown): v is ArgPlaceholder {
  return typeof v === 'object' && v !== null && 'placeholder' in v;
}

// ---------------------------------------------------------------------------------------------
// Action encoding
// ---------------------------------------------------------------------------------------------

/** The return values of a seccomp filter (from <linux/seccomp.h>). */
export const SECCOMP_RET = Object.freeze({
  KILL_PROCESS: 0x80000000,
  KILL_THREAD: 0x00000000,
  TRAP: 0x00030000,
  ERRNO: 0x00050000,
  USER_NOTIF: 0x7fc00000,
  TRACE: 0x7ff00000,
  LOG: 0x7ffc0000,
  ALLOW: 0x7fff0000,
  ACTION_FULL: 0xffff0000,
  DATA: 0x0000ffff,
} as const);

export interface ActionOptions {
  /**
   * How `'kill'` is compiled. `'notify'` (the default): SECCOMP_RET_USER_NOTIF, so the sandbox
   * supervisor (which must install the filter with SECCOMP_FILTER_FLAG_NEW_LISTENER and watch the
   * listener fd) learns which call was made, reports `syscall-denied` naming it and kills the box;
   * the call never runs. Without a listener the kernel makes such calls fail with ENOSYS instead,
   * so use `'kill-process'` when no supervisor listens: SECCOMP_RET_KILL_PROCESS, immediate, the
   * process dies with SIGSYS and the call is not identified.
   */
  killAction?: 'kill-process' | 'notify';
}

export function errnoNumber(e: number | ErrnoName): number {
  return typeof e === 'number' ? e : ERRNO[e];
}

/** The 32-bit filter return value of an action. */
export function actionValue(action: SeccompAction, opts: ActionOptions = {}): number {
  if (typeof action === 'object') return (SECCOMP_RET.ERRNO | errnoNumber(action.errno)) >>> 0;
  switch (action) {
    case 'allow':
      return SECCOMP_RET.ALLOW;
    case 'log':
      return SECCOMP_RET.LOG;
    case 'notify':
      return SECCOMP_RET.USER_NOTIF;
    case 'kill':
      return (opts.killAction ?? 'notify') === 'notify' ? SECCOMP_RET.USER_NOTIF : SECCOMP_RET.KILL_PROCESS;
  }
}

/**
 * What a compiled filter returns for a foreign architecture (i386 via `int 0x80`, arm32) or an
 * x32 call: `kill` when that is the policy's default action (so the supervisor reports the call),
 * otherwise KILL_PROCESS. A foreign ABI is never allowed, logged or handed to a notifier, and
 * never answered with an errno: a policy's errno for unnamed calls was chosen for the native
 * numbering, and the same number means another call in another ABI.
 */
export function foreignAction(policy: SeccompPolicy, opts: ActionOptions = {}): number {
  return policy.defaultAction === 'kill' ? actionValue('kill', opts) : SECCOMP_RET.KILL_PROCESS;
}

/** Human-readable form of an action ("allow", "errno EPERM", "kill", ...). */
export function describeAction(action: SeccompAction): string {
  if (typeof action === 'object') {
    const n = errnoNumber(action.errno);
    const name = typeof action.errno === 'string' ? action.errno : errnoName(n);
    return name ? `errno ${name} (${n})` : `errno ${n}`;
  }
  return action;
}

export function errnoName(n: number): string | undefined {
  for (const [k, v] of Object.entries(ERRNO)) if (v === n && k !== 'ENOTSUP') return k;
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Schema
// ---------------------------------------------------------------------------------------------

const errnoNames = Object.keys(ERRNO) as [ErrnoName, ...ErrnoName[]];

const ACTION_HELP = 'an action is "allow", "kill", "log", "notify" or { errno: 0..4095 or a name like "EPERM" }';

function u64Problem(v: unknown): string | undefined {
  if (typeof v !== 'number' && typeof v !== 'bigint' && typeof v !== 'string')
    return 'must be a 64-bit integer: a number, a bigint or a decimal/0x-hex string';
  const r = parseU64(v);
  return typeof r === 'string' ? `${JSON.stringify(String(v))} ${r}` : undefined;
}

function valueProblem(v: unknown): string | undefined {
  if (typeof v === 'object' && v !== null && !(typeof v === 'bigint')) {
    const keys = Object.keys(v);
    if (keys.length === 1 && keys[0] === 'placeholder') {
      const name = (v as { placeholder: unknown }).placeholder;
      return name === 'execPath' ? undefined : `unknown placeholder ${JSON.stringify(name)} (only "execPath")`;
    }
    return 'must be a 64-bit integer or { placeholder: "execPath" }';
  }
  return u64Problem(v);
}

let policySchemaBuilt: z.ZodType<SeccompPolicy> | undefined;

/**
 * The zod schema of {@link SeccompPolicy}, built when a policy is first checked (a caller's
 * policy in run options, `parsePolicy`, `compile`) rather than at import: building zod schemas
 * is a measurable part of a cold import, the engine imports the compiler's modules rather than
 * `sandcell/seccomp`'s entry, and a run with a built-in preset checks nothing.
 */
export function policySchema(): z.ZodType<SeccompPolicy> {
  policySchemaBuilt ??= build();
  return policySchemaBuilt;
}

function build(): z.ZodType<SeccompPolicy> {
  const actionSchema: z.ZodType<SeccompAction> = z.union(
    [
      z.enum(['allow', 'kill', 'log', 'notify']),
      z.strictObject({
        errno: z.union([z.number().int().min(0).max(MAX_ERRNO), z.enum(errnoNames)], {
          error: (iss) => `unknown errno ${JSON.stringify(iss.input)} (a number 0..${MAX_ERRNO} or one of ${errnoNames.join(', ')})`,
        }),
      }),
    ],
    { error: ACTION_HELP },
  );

  const u64Schema = z.custom<ArgValue>((v) => u64Problem(v) === undefined, {
    error: (iss) => u64Problem(iss.input) ?? 'invalid value',
  });

  const valueSchema = z.custom<ArgValue | ArgPlaceholder>((v) => valueProblem(v) === undefined, {
    error: (iss) => valueProblem(iss.input) ?? 'invalid value',
  });

  const argSchema = z
    .strictObject({
      index: z.union([z.literal(0), z.literal(1), z.literal(2), z.literal(3), z.literal(4), z.literal(5)], {
        error: 'argument index must be an integer 0..5',
      }),
      op: z.enum(['eq', 'ne', 'lt', 'le', 'gt', 'ge', 'masked-eq']),
      value: valueSchema,
      mask: u64Schema.optional(),
    })
    .superRefine((c, ctx) => {
      if (c.op === 'masked-eq' && c.mask === undefined)
        ctx.addIssue({ code: 'custom', path: ['mask'], message: 'masked-eq needs a mask' });
      if (c.op !== 'masked-eq' && c.mask !== undefined)
        ctx.addIssue({ code: 'custom', path: ['mask'], message: `mask is only valid with masked-eq, not ${c.op}` });
      if (isPlaceholder(c.value) && c.op !== 'eq' && c.op !== 'ne')
        ctx.addIssue({ code: 'custom', path: ['value'], message: 'placeholders are only valid with eq and ne' });
    });

  const syscallNameSchema = z
    .string()
    .regex(/^[a-z_][a-z0-9_]*$/, 'system call names are lower-case identifiers like "openat"');

  const ruleSchema = z.strictObject({
    syscall: z.union([syscallNameSchema, z.array(syscallNameSchema).min(1, 'at least one system call name')]),
    action: actionSchema,
    args: z.array(argSchema).max(32, 'at most 32 conditions per rule').optional(),
    optional: z.boolean().optional(),
    terminal: z.boolean().optional(),
  });

  return z.strictObject({
    defaultAction: actionSchema,
    rules: z.array(ruleSchema),
  }) as unknown as z.ZodType<SeccompPolicy>;
}

/**
 * Validates untrusted input (e.g. parsed JSON) as a policy. Throws {@link SeccompPolicyError}
 * naming the offending field path (`rules.2.args.0.op`). The result is the input's data, with no
 * architecture-specific checks yet: unknown syscall names are reported by `compile`.
 */
export function parsePolicy(json: unknown): SeccompPolicy {
  const r = policySchema().safeParse(json);
  if (!r.success) {
    throw new SeccompPolicyError(
      r.error.issues.map((i) => ({ path: i.path.map(String).join('.'), message: i.message })),
    );
  }
  return r.data;
}

/**
 * Checks that a policy given as a typed value (not parsed from JSON) is well-formed; returns it
 * unchanged. `compile`, `decide` and `explain` call this, so a malformed object fails with a
 * {@link SeccompPolicyError} naming the field instead of compiling to something unintended.
 */
export function validatePolicy(policy: SeccompPolicy): SeccompPolicy {
  parsePolicy(policy);
  return policy;
}

/**
 * The policy a run that can reach no terminal gets: its rules marked `terminal` left out, the
 * others in their order. A rule on terminal requests decides nothing where no descriptor is a
 * terminal, and an argument rule keeps the kernel's action cache from answering its call (ioctl)
 * without running the filter. Returns `policy` itself when no rule is marked.
 */
export function withoutTerminalRules(policy: SeccompPolicy): SeccompPolicy {
  if (!policy.rules.some((r) => r.terminal === true)) return policy;
  return { defaultAction: policy.defaultAction, rules: policy.rules.filter((r) => r.terminal !== true) };
}

// ---------------------------------------------------------------------------------------------
// Resolution against an architecture (shared by compile, decide and explain)
// ---------------------------------------------------------------------------------------------

/** A condition with its values resolved to unsigned 64-bit numbers. */
export interface ResolvedCondition {
  index: number;
  op: ArgOp;
  /** Resolved value, or the name of a placeholder patched in later. */
  value: bigint | PlaceholderName;
  mask: bigint;
}

export interface ResolvedRule {
  /** Position of the rule in `policy.rules`. */
  rule: number;
  action: SeccompAction;
  conditions: ResolvedCondition[];
}

export function resolveConditions(args: readonly ArgCondition[] | undefined): ResolvedCondition[] {
  return (args ?? []).map((c) => ({
    index: c.index,
    op: c.op,
    value: isPlaceholder(c.value) ? c.value.placeholder : toU64(c.value),
    mask: c.op === 'masked-eq' && c.mask !== undefined ? toU64(c.mask) : U64_MAX,
  }));
}

/**
 * Maps each system call number to the rules that name it, in policy order. Throws
 * {@link SeccompPolicyError} for names `table` lacks in non-optional rules.
 */
export function resolvePolicy(
  policy: SeccompPolicy,
  arch: string,
  table: Readonly<Record<string, number>>,
): Map<number, ResolvedRule[]> {
  const byNr = new Map<number, ResolvedRule[]>();
  const issues: PolicyIssue[] = [];
  policy.rules.forEach((rule, ri) => {
    const names = typeof rule.syscall === 'string' ? [rule.syscall] : rule.syscall;
    const conditions = resolveConditions(rule.args);
    names.forEach((name, ni) => {
      const nr = Object.prototype.hasOwnProperty.call(table, name) ? table[name] : undefined;
      if (nr === undefined) {
        if (!rule.optional)
          issues.push({
            path: typeof rule.syscall === 'string' ? `rules.${ri}.syscall` : `rules.${ri}.syscall.${ni}`,
            message: `system call "${name}" does not exist on ${arch} (mark the rule optional: true to skip it there)`,
          });
        return;
      }
      let list = byNr.get(nr);
      if (!list) byNr.set(nr, (list = []));
      list.push({ rule: ri, action: rule.action, conditions });
    });
  });
  if (issues.length > 0) throw new SeccompPolicyError(issues);
  return byNr;
}
