/**
 * The built-in presets' programs as the build compiled them (scripts/prebuild-seccomp.mjs), so
 * that a process running a preset loads its program instead of compiling it: for a one-shot
 * `sandcell run` the compile was milliseconds of a run that does nothing else with the compiler.
 * The sources hold no programs: the build writes dist/'s copy of this module (and the command's
 * bundle takes that copy) from the compiler, tables and presets of the same build, so the two
 * cannot differ; a test compares every shipped program with the compiler's. Without a program
 * here (the sources run as they are) a preset is compiled, as any policy is.
 */
import type { PlaceholderSite } from './compile.js';

/** A compiled preset: its `struct sock_filter[]` bytes in base64, and where to patch them. */
export interface PrebuiltProgram {
  readonly program: string;
  readonly instructions: number;
  readonly placeholders: readonly PlaceholderSite[];
}

/** By `prebuiltKey` (src/seccomp/compile.ts). */
export const PREBUILT: Readonly<Record<string, PrebuiltProgram>> = {};
