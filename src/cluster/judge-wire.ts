/**
 * A judge problem as it travels to workers: its tests' inputs and answers and its checker's files
 * as blobs (uploaded once, cached by each worker), its languages and role profiles as JSON.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';

import type { Problem, Submission, TrustedProgram } from '../problems/index.js';
import type { BlobStore } from './blobs.js';
import { bytesSchema, encodeBytes } from './wire.js';

const command = z.array(z.string().max(4096)).min(1).max(1024);
const profile = z.record(z.string(), z.unknown());
/** A checker or an interactor: its files, built once per worker. */
const trustedProgram = z.strictObject({ files: z.array(z.strictObject({ name: z.string().min(1).max(4096), data: bytesSchema })).max(100), build: command.nullable(), run: command });

export const packedProblemSchema = z.strictObject({
  name: z.string().min(1).max(64),
  languages: z.record(z.string(), z.strictObject({ source: z.string().min(1).max(4096), build: command.nullable(), run: command })),
  tests: z.array(z.strictObject({ name: z.string().min(1).max(256), input: bytesSchema, answer: bytesSchema.nullable() })).min(1).max(100_000),
  checker: trustedProgram.nullable(),
  interactor: trustedProgram.nullable(),
  profiles: z.strictObject({ run: profile, build: profile, trusted: profile }),
});

export type PackedProblem = z.output<typeof packedProblemSchema>;

const built = z.record(z.string(), bytesSchema);

export const judgeBuildJobSchema = z.strictObject({
  v: z.literal(1),
  kind: z.literal('judge-build'),
  problem: packedProblemSchema,
  submission: z.strictObject({ language: z.string(), source: bytesSchema }),
});

export const judgeTestJobSchema = z.strictObject({
  v: z.literal(1),
  kind: z.literal('judge-test'),
  problem: packedProblemSchema,
  language: z.string(),
  built,
  test: z.number().int().min(0),
});

export const judgeVerdictJobSchema = z.strictObject({
  v: z.literal(1),
  kind: z.literal('judge-verdict'),
  problem: z.string(),
  language: z.string(),
  compile: z.unknown(),
  tests: z.array(z.string()),
});

export type JudgeBuildJob = z.output<typeof judgeBuildJobSchema>;
export type JudgeTestJob = z.output<typeof judgeTestJobSchema>;

/** What a build job returns: the compile's result, or the verdict that ends judging (CE, or JE when the checker or interactor does not build), and the built files. */
export interface BuildOutcome {
  compile: unknown;
  verdict: 'CE' | 'JE' | null;
  error?: string;
  built: Record<string, z.output<typeof bytesSchema>>;
}

/** A loaded problem to its wire form; its files are read here and uploaded as blobs. */
export async function packProblem(p: Problem, blobs: BlobStore): Promise<PackedProblem> {
  const bytes = (path: string) => encodeBytes(readFileSync(path), blobs);
  const trusted = async (t: TrustedProgram | null) =>
    t ? { files: await Promise.all(t.files.map(async (f) => ({ name: f.name, data: await bytes(f.path) }))), build: t.build, run: t.run } : null;
  return {
    name: p.name,
    languages: p.languages,
    tests: await Promise.all(p.tests.map(async (t) => ({ name: t.name, input: await bytes(t.input), answer: t.answer === null ? null : await bytes(t.answer) }))),
    checker: await trusted(p.checker),
    interactor: await trusted(p.interactor),
    profiles: p.profiles as unknown as PackedProblem['profiles'],
  };
}

export async function packSubmission(s: Submission, blobs: BlobStore): Promise<{ language: string; source: z.output<typeof bytesSchema> }> {
  return { language: s.language, source: await encodeBytes(s.source, blobs) };
}
