/**
 * `sandcell/seccomp`: the seccomp policy compiler.
 *
 * Policies are plain data (`SeccompPolicy`), validated by `parsePolicy`, compiled per
 * architecture by `compile` into classic BPF bytes (`struct sock_filter[]`) that the native side
 * installs as is. `emulate` runs such a program without a kernel, `decide` evaluates a policy's
 * intent directly, `explain` prints a decision table.
 *
 * Notes for whoever installs the program:
 * - `kill` compiles to SECCOMP_RET_USER_NOTIF unless `killAction: 'kill-process'` is given: the
 *   filter must be installed with SECCOMP_FILTER_FLAG_NEW_LISTENER and the supervisor must answer
 *   each notification by recording the call (nr, arch → `syscall-denied` violation) and killing
 *   the box. Without a listener such calls fail with ENOSYS instead.
 * - `CompileResult.placeholders` lists instructions whose 32-bit constant must be patched (e.g.
 *   the address of the execve path for the `judge` preset) before the filter is installed.
 *
 * @module sandcell/seccomp
 */
import type { z } from 'zod';

import { policySchema, type SeccompPolicy } from './policy.js';

export {
  type SeccompArch,
  ARCHES,
  AUDIT_ARCH,
  X32_SYSCALL_BIT,
  hostArch,
  isSeccompArch,
  syscallName,
  syscallNumber,
  syscallTable,
} from './arch.js';
export {
  type ActionOptions,
  type ArgCondition,
  type ArgOp,
  type ArgPlaceholder,
  type ArgValue,
  type ErrnoName,
  type PlaceholderName,
  type PolicyIssue,
  type SeccompAction,
  type SeccompPolicy,
  type SeccompRule,
  ERRNO,
  SECCOMP_RET,
  SeccompPolicyError,
  actionValue,
  parsePolicy,
  validatePolicy,
  withoutTerminalRules,
} from './policy.js';
export {
  type CompileOptions,
  type CompileResult,
  type PlaceholderSite,
  SeccompCompileError,
  compile,
  patchPlaceholders,
  planPolicy,
} from './compile.js';
/** The zod schema of {@link SeccompPolicy}. */
export const seccompPolicySchema: z.ZodType<SeccompPolicy> = policySchema();
export { BPF_MAXINSNS, BpfProgramError, type BpfInsn, decodeProgram, disassemble } from './bpf.js';
export {
  type DecideOptions,
  type EmulationTrace,
  type SeccompCall,
  decide,
  emulate,
  emulateTrace,
} from './emulator.js';
export { describeReturn, explain, instructionCounts } from './explain.js';
export { CLONE_NS_FLAGS, type PresetName, isPresetName, presetNames, presets } from './presets.js';
