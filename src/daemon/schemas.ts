/**
 * The daemon's API as zod schemas: request bodies (the library's option schemas with bytes in
 * their JSON forms), replies, the error shape and the WebSocket's frames. The daemon checks
 * every body with these before it decodes it, and the OpenAPI document is generated from them,
 * so what is documented is what is enforced.
 */
import { z } from 'zod';

import { formatOptionPath, optionSchemas, SandboxOptionsError, type OptionIssue } from '../index.js';
import { base64, FILE_ID, runId } from './replies.js';

export { boxIdJson, boxListJson, errorJson, FILE_ID, fileIdJson, healthJson, resultJson, serverFrame, versionJson } from './replies.js';

/** Bytes: a UTF-8 string, base64, or a file stored on the daemon (`POST /v1/files`). */
export const bytesJson = z.union([z.string(), base64, z.strictObject({ fileId: z.string().regex(FILE_ID, 'is not a file id (sha256:<64 hex digits>)') })]);

export const filesJson = z.record(z.string(), z.union([bytesJson, z.strictObject({ data: bytesJson, mode: z.number().int().min(0).max(0o777).optional() })]));

export const runRequest = optionSchemas.run.omit({ signal: true }).extend({ stdin: bytesJson.optional(), files: filesJson.optional() });
export const boxRequest = optionSchemas.sandbox.omit({ signal: true }).extend({ files: filesJson.optional() });
export const boxRunRequest = optionSchemas.sandboxRun.omit({ signal: true }).extend({ stdin: bytesJson.optional(), files: filesJson.optional() });
/** A spawn's options: a run's, but its stdin comes in frames, its output goes out in frames as bytes, and nothing is collected. */
export const spawnRequest = optionSchemas.run.omit({ signal: true, stdin: true, collect: true, encoding: true }).extend({ files: filesJson.optional() });

/**
 * Frames a WebSocket client sends: `spawn`, then stdin and kills; or any number of `run`s, and
 * `cancel`s of runs in flight. With the options' schema.
 */
function clientFrameOf<S extends z.ZodType, R extends z.ZodType>(spawnOptions: S, runOptions: R) {
  return z.discriminatedUnion('type', [
    z.strictObject({ type: z.literal('spawn'), options: spawnOptions }),
    z.strictObject({ type: z.literal('run'), id: runId, options: runOptions }),
    z.strictObject({ type: z.literal('cancel'), id: runId }),
    z.strictObject({ type: z.literal('stdin'), data: z.union([z.string(), base64]) }),
    z.strictObject({ type: z.literal('stdin-end') }),
    z.strictObject({ type: z.literal('kill'), signal: z.union([z.string().regex(/^SIG[A-Z0-9]+$/), z.number().int().min(1).max(64)]).optional() }),
  ]);
}

/** As documented: a `spawn` frame's options are a spawn's request, a `run` frame's a /v1/run body. */
export const clientFrame = clientFrameOf(spawnRequest, runRequest);
/**
 * As a frame is first checked: its options are checked apart with `spawnRequest`, so their
 * errors name the option as /v1/run's do (`limits.memory`, not `options.limits.memory`).
 */
export const clientFrameEnvelope = clientFrameOf(z.unknown(), z.unknown());

export type ClientFrame = z.infer<typeof clientFrameEnvelope>;

export function issuesOf(error: z.ZodError): OptionIssue[] {
  return error.issues.map((i) => ({ path: formatOptionPath(i.path), message: i.message }));
}

/** Checks a decoded JSON value against its schema: a SandboxOptionsError naming every field otherwise. */
export function checkBody(schema: z.ZodType, value: unknown): void {
  const r = schema.safeParse(value);
  if (!r.success) throw new SandboxOptionsError(issuesOf(r.error));
}

