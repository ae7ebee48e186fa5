/** What a problem file may hold, as a zod schema (and, through it, the file's JSON Schema). */
import { z } from 'zod';

import { configSchema } from '../profiles/index.js';

/** A path below the problem file's directory. */
const relativePath = z
  .string()
  .min(1)
  .max(4096)
  .refine((s) => !s.includes('\0'), 'must not contain a NUL byte')
  .refine((s) => !s.startsWith('/'), 'must be relative to the problem file')
  .refine((s) => s.split('/').every((p) => p !== '..'), "must not contain '..' (it would leave the problem's directory)");

const command = z.array(z.string().min(1).refine((s) => !s.includes('\0'), 'must not contain a NUL byte')).min(1, 'must name a program');

const name = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$/, 'must be a name of letters, digits, "_", ".", "+" and "-"');

const language = z.strictObject({
  /** The file the submission is written to, in the box's working directory. */
  source: relativePath,
  /** Compiles it (in the `build` profile); none for an interpreted language. */
  build: command.optional(),
  /** Runs it on one test (in the `run` profile). */
  run: command,
});

/** A checker or interactor: its files (from the problem's directory), how it is built, how it runs. */
const program = z.strictObject({
  source: z.union([relativePath, z.array(relativePath).min(1)]),
  build: command.optional(),
  /** `input`, `output` and `answer` as whole arguments stand for the test's files. */
  run: command,
});

const test = z
  .strictObject({
    input: relativePath.optional(),
    answer: relativePath.optional(),
    /** Every file matching (`*` and `?` within a name), with the answer of the same stem and `.ans`. */
    glob: relativePath.optional(),
  })
  .superRefine((t, ctx) => {
    if ((t.input === undefined) === (t.glob === undefined)) ctx.addIssue({ code: 'custom', message: 'needs either input or glob' });
    if (t.glob !== undefined && t.answer !== undefined) ctx.addIssue({ code: 'custom', message: 'answer goes with input; a glob finds <stem>.ans', path: ['answer'] });
  });

export const problemSchema = z
  .strictObject({
    /** The file format's version. */
    sandcell: z.literal(1),
    name,
    description: z.string().optional(),
    /** The same map as sandcell.yaml's `profiles`, merged over it; the roles are `run`, `build` and `trusted`. */
    profiles: configSchema.shape.profiles.optional(),
    languages: z.record(name, language).refine((l) => Object.keys(l).length > 0, 'must declare at least one language'),
    tests: z.array(test).min(1, 'must list at least one test'),
    checker: program.optional(),
    interactor: program.optional(),
  })
  .superRefine((p, ctx) => {
    if (p.checker && p.interactor) ctx.addIssue({ code: 'custom', message: 'an interactive problem is decided by its interactor: give a checker or an interactor, not both', path: ['checker'] });
  });

export type ProblemFile = z.output<typeof problemSchema>;
export type ProgramDecl = z.output<typeof program>;
