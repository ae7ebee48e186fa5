/**
 * The errors sandcell throws. Each one says which field or which setup stage failed, so a caller
 * can tell its own mistakes (options) from the host's refusals (setup) without parsing messages.
 */

/** One problem found in the options: the dotted path of the field and why it was refused. */
export interface OptionIssue {
  readonly path: string;
  readonly message: string;
}

/**
 * The path of an option as sandcell names it in an `OptionIssue`, from the keys and indexes
 * leading to it (a zod issue's `path`): `['limits', 'memory']` → `limits.memory`,
 * `['binds', 0, 'source']` → `binds[0].source`. A front end of one's own checking options with
 * `optionSchemas` names fields the way sandcell's own errors do by formatting paths with it.
 */
export function formatOptionPath(path: readonly PropertyKey[]): string {
  return path.map((p, n) => (typeof p === 'number' ? `[${p}]` : `${n === 0 ? '' : '.'}${String(p)}`)).join('');
}

/** The options given to `run()`/`spawn()` (or the CLI) are invalid; nothing was started. */
export class SandboxOptionsError extends Error {
  override readonly name = 'SandboxOptionsError';
  readonly issues: readonly OptionIssue[];

  constructor(issues: readonly OptionIssue[]) {
    super(
      issues.length === 0
        ? 'invalid sandbox options'
        : `invalid sandbox options: ${issues.map((i) => `${i.path || '(root)'}: ${i.message}`).join('; ')}`,
    );
    this.issues = issues;
  }

  /** The first offending field, e.g. `limits.memory`. */
  get path(): string {
    return this.issues[0]?.path ?? '';
  }
}

/**
 * The box could not be built: the program never ran. `stage` names the step that failed
 * ("mount /usr", "pivot_root", "seccomp", "execve", ...), `errno`/`code` the kernel's reason.
 */
export class SandboxSetupError extends Error {
  override readonly name = 'SandboxSetupError';
  readonly stage: string;
  readonly errno: number;
  readonly code: string;

  constructor(stage: string, errno: number, code: string, detail?: string) {
    super(`sandbox setup failed at ${stage}: ${code}${detail ? ` (${detail})` : ''}`);
    this.stage = stage;
    this.errno = errno;
    this.code = code;
  }
}

/** The run was ended by the caller's `AbortSignal`; its reason is the `cause`. */
export class AbortError extends Error {
  override readonly name = 'AbortError';
  constructor(cause: unknown) {
    super('the sandboxed run was aborted', { cause });
  }
}

/**
 * A private network could not be made, removed or joined. `code` says why: `root-required`,
 * `tool-missing` (iproute2's `ip` or util-linux's `nsenter`/`unshare`/`umount` absent), `exists`,
 * `not-found`, `in-use` (boxes are on it), `hostname-taken`, `subnet-taken`, `full`, `setup`.
 */
export class SandboxNetworkError extends Error {
  override readonly name = 'SandboxNetworkError';
  readonly code: 'root-required' | 'tool-missing' | 'exists' | 'not-found' | 'in-use' | 'hostname-taken' | 'subnet-taken' | 'full' | 'setup';
  readonly network: string;

  constructor(code: SandboxNetworkError['code'], network: string, detail: string) {
    super(`network ${network || '(unnamed)'}: ${code}: ${detail}`);
    this.code = code;
    this.network = network;
  }
}
