/**
 * The daemon's API as zod schemas: request bodies (the library's option schemas with bytes in
 * their JSON forms), replies, the error shape and the WebSocket's frames. The daemon checks
 * every body with these before it decodes it, and the OpenAPI document is generated from them,
 * so what is documented is what is enforced.
 */
import { z } from 'zod';

import { formatOptionPath, optionSchemas, SandboxOptionsError, type OptionIssue } from '../index.js';

export const FILE_ID = /^sha256:[0-9a-f]{64}$/;
const BASE64 = /^[A-Za-z0-9+/\s]*={0,2}\s*$/;

const base64 = z.strictObject({ base64: z.string().regex(BASE64, 'is not valid base64') });

/** Bytes: a UTF-8 string, base64, or a file stored on the daemon (`POST /v1/files`). */
export const bytesJson = z.union([z.string(), base64, z.strictObject({ fileId: z.string().regex(FILE_ID, 'is not a file id (sha256:<64 hex digits>)') })]);

export const filesJson = z.record(z.string(), z.union([bytesJson, z.strictObject({ data: bytesJson, mode: z.number().int().min(0).max(0o777).optional() })]));

export const runRequest = optionSchemas.run.omit({ signal: true }).extend({ stdin: bytesJson.optional(), files: filesJson.optional() });
export const boxRequest = optionSchemas.sandbox.omit({ signal: true }).extend({ files: filesJson.optional() });
export const boxRunRequest = optionSchemas.sandboxRun.omit({ signal: true }).extend({ stdin: bytesJson.optional(), files: filesJson.optional() });
/** A spawn's options: a run's, but its stdin comes in frames and nothing is collected. */
export const spawnRequest = optionSchemas.run.omit({ signal: true, stdin: true, collect: true }).extend({ files: filesJson.optional() });

const enforcement = z.enum(['cgroup', 'rlimit', 'none']);

export const resultJson = z.object({
  status: z.enum(['ok', 'nonzero-exit', 'signaled', 'time-limit', 'wall-time-limit', 'memory-limit', 'output-limit', 'syscall-denied']),
  exitCode: z.number().int().nullable(),
  signal: z.string().nullable(),
  stdout: z.string(),
  stderr: z.string(),
  stdoutTruncated: z.boolean(),
  stderrTruncated: z.boolean(),
  usage: z.object({
    cpuTimeMs: z.number(),
    userTimeMs: z.number(),
    systemTimeMs: z.number(),
    wallTimeMs: z.number(),
    memoryPeakBytes: z.number().nullable(),
    maxRssBytes: z.number(),
  }),
  violation: z.object({ syscall: z.string(), nr: z.number(), arch: z.string() }).nullable(),
  limitsEnforced: z.object({ memory: enforcement, cpuTime: enforcement, processes: enforcement }),
  /** Collected files, base64. */
  files: z.record(z.string(), z.string()).optional(),
  fileErrors: z.record(z.string(), z.string()).optional(),
});

export const errorJson = z.object({
  error: z.object({
    code: z.string(),
    message: z.string(),
    field: z.string().optional(),
    issues: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
    stage: z.string().optional(),
    errno: z.number().int().optional(),
    errnoCode: z.string().optional(),
  }),
});

export const versionJson = z.object({ version: z.string(), api: z.number().int(), features: z.array(z.string()) });
export const healthJson = z.object({ ok: z.boolean(), draining: z.boolean(), running: z.number().int(), queued: z.number().int() });
export const boxIdJson = z.object({ id: z.string() });
export const boxListJson = z.object({ boxes: z.array(z.object({ id: z.string(), ageMs: z.number(), idleMs: z.number(), runs: z.number().int() })) });
export const fileIdJson = z.object({ id: z.string().regex(FILE_ID), size: z.number().int() });

/** What a client names a run on a WebSocket by; the daemon echoes it in the run's answer. */
const runId = z.union([z.string().max(256), z.number().int()]);

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

/**
 * Frames the daemon sends: `started`, output, then `exit` (or `error`), and it closes; or, for
 * `run` frames, a `result` (or an `error` with its `id`) per run, and it stays open.
 */
export const serverFrame = z.discriminatedUnion('type', [
  z.object({ type: z.literal('started'), pid: z.number().int().optional() }),
  z.object({ type: z.literal('stdout'), data: base64 }),
  z.object({ type: z.literal('stderr'), data: base64 }),
  z.object({ type: z.literal('exit'), result: resultJson }),
  z.object({ type: z.literal('result'), id: runId, result: resultJson }),
  z.object({ type: z.literal('error'), id: runId.optional(), status: z.number().int(), ...errorJson.shape }),
]);

export type ClientFrame = z.infer<typeof clientFrameEnvelope>;

export function issuesOf(error: z.ZodError): OptionIssue[] {
  return error.issues.map((i) => ({ path: formatOptionPath(i.path), message: i.message }));
}

/** Checks a decoded JSON value against its schema: a SandboxOptionsError naming every field otherwise. */
export function checkBody(schema: z.ZodType, value: unknown): void {
  const r = schema.safeParse(value);
  if (!r.success) throw new SandboxOptionsError(issuesOf(r.error));
}

