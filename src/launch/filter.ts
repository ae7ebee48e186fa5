/**
 * The seccomp filter of a box: a preset or a caller's policy, compiled once per policy for the
 * host's architecture and reused by every run. A policy with rules marked `terminal` is compiled
 * twice: as it is, and without those rules for runs that can reach no terminal (the plan picks).
 */
import { hostArch, type SeccompArch } from '../seccomp/arch.js';
import { compile, presetProgram } from '../seccomp/compile.js';
import { withoutTerminalRules, type SeccompPolicy } from '../seccomp/policy.js';
import { presets, type PresetName } from '../seccomp/presets.js';

export interface CompiledFilter {
  program: Buffer;
  /** The policy has `kill` actions: load it with a listener and report violations by name. */
  listener: boolean;
  execPathLo: number[];
  execPathHi: number[];
}

/** A policy's filter for runs that may hold a terminal, and for runs that cannot (the same one when no rule is marked `terminal`). */
export interface BoxFilter {
  readonly terminal: CompiledFilter;
  readonly noTerminal: CompiledFilter;
}

/**
 * The one without the `terminal` rules is compiled at once: every run with the library's own
 * stdio takes it, and a one-shot process needs no other. The one with them when a run first asks
 * for it (a compile that fails then fails that run, src/launch/launcher.ts undoing its cgroup).
 */
class PolicyFilter implements BoxFilter {
  private withTerminal: CompiledFilter | undefined;

  constructor(
    private readonly policy: SeccompPolicy,
    readonly noTerminal: CompiledFilter,
    private readonly without: SeccompPolicy,
    private readonly preset: PresetName | null,
  ) {}

  get terminal(): CompiledFilter {
    this.withTerminal ??= this.without === this.policy ? this.noTerminal : compiledFilter(this.policy, this.preset, true);
    return this.withTerminal;
  }
}

/**
 * Compiled filters by policy text: a caller's policy is validated anew for every run (a new
 * object each time), so it is recognised by content. Bounded, oldest dropped first.
 */
const compiled = new Map<string, BoxFilter>();
const MAX_COMPILED = 64;

function usesKill(policy: SeccompPolicy): boolean {
  return policy.defaultAction === 'kill' || policy.rules.some((r) => r.action === 'kill');
}

function arch(): SeccompArch {
  const a = hostArch();
  if (!a) throw new Error(`seccomp: this architecture (${process.arch}) has no syscall table`);
  return a;
}

/**
 * `preset`: the name of the built-in policy `policy` is, as it is (`terminal`) or without its
 * rules marked `terminal`; its program is the one the build compiled, with no check by zod.
 */
function compiledFilter(policy: SeccompPolicy, preset: PresetName | null, terminal: boolean): CompiledFilter {
  // The filter is compiled exactly as the policy says: the init hands the listener over from a
  // helper thread the filter does not apply to (native/init/program.cc, ListenerHandoff), so the
  // program's own thread makes no call between loading the filter and its first execve.
  const result = preset ? presetProgram(preset, arch(), terminal) : compile(policy, arch());
  return {
    program: result.program,
    listener: usesKill(policy),
    execPathLo: result.placeholders.filter((p) => p.name === 'execPath' && p.half === 'lo').map((p) => p.index),
    execPathHi: result.placeholders.filter((p) => p.name === 'execPath' && p.half === 'hi').map((p) => p.index),
  };
}

/** null for `none`: no filter at all. */
export function filterFor(choice: PresetName | SeccompPolicy): BoxFilter | null {
  if (choice === 'none') return null;
  const policy = typeof choice === 'string' ? presets[choice] : choice;
  const key = typeof choice === 'string' ? choice : JSON.stringify(policy, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v));
  let f = compiled.get(key);
  if (!f) {
    const without = withoutTerminalRules(policy);
    const preset = typeof choice === 'string' ? choice : null;
    f = new PolicyFilter(policy, compiledFilter(without, preset, false), without, preset);
    if (compiled.size >= MAX_COMPILED) compiled.delete(compiled.keys().next().value!);
    compiled.set(key, f);
  }
  return f;
}
