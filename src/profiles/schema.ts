/**
 * What a profile and a sandcell.yaml may hold, as zod schemas built from the API's own field
 * schemas, and the file's JSON Schema (for editors and CI) generated from them.
 */
import { z } from 'zod';

import { profileFieldSchemas } from '../options.js';
import { parsePolicy, presetNames, SeccompPolicyError } from '../seccomp/index.js';
import { policyPathParts } from '../seccomp/policy.js';

export const PROFILE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

const profileName = z.string().regex(PROFILE_NAME, 'must be a name of letters, digits, "_", "." and "-"');

/** A preset's name or a policy object, checked by the seccomp module's parser. */
const seccompField = z.union([z.enum(presetNames), z.looseObject({})]).superRefine((value, ctx) => {
  if (typeof value === 'string') return;
  try {
    parsePolicy(value);
  } catch (e) {
    if (!(e instanceof SeccompPolicyError)) throw e;
    for (const i of e.issues) ctx.addIssue({ code: 'custom', message: i.message, path: policyPathParts(i.path) });
  }
});

export const profileSchema = z.strictObject({
  description: z.string().optional(),
  /** Another profile this one starts from: its values, then this one's over them. */
  extends: profileName.optional(),
  ...profileFieldSchemas(),
  seccomp: seccompField.optional(),
});

export const profilesMapSchema = z.record(profileName, profileSchema);

export const configSchema = z.strictObject({
  /** The file format's version. */
  sandcell: z.literal(1).optional(),
  profiles: profilesMapSchema,
});

/** The JSON Schema of `schema` as a file holds it (sizes and durations as written, before parsing). */
export function jsonSchemaOf(schema: z.ZodType, title: string): Record<string, unknown> {
  return { ...z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }), title };
}
