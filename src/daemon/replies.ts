/**
 * The daemon's replies and the frames it sends, as zod schemas: the API's half that a client
 * checks what it is given against. Only zod here: a client imports this without loading the
 * sandbox engine, and the daemon's own schemas (and the OpenAPI document made from them) take
 * these, so what a client accepts is what the daemon documents.
 */
import { z } from 'zod';

export const FILE_ID = /^sha256:[0-9a-f]{64}$/;
export const BASE64 = /^[A-Za-z0-9+/\s]*={0,2}\s*$/;

export const base64 = z.strictObject({ base64: z.string().regex(BASE64, 'is not valid base64') });

/** A run's output: text, or, for a run given `encoding: 'buffer'`, bytes that are not UTF-8 in base64. */
const outputJson = z.union([z.string(), base64]);

const enforcement = z.enum(['cgroup', 'rlimit', 'none']);

export const resultJson = z.object({
  status: z.enum(['ok', 'nonzero-exit', 'signaled', 'time-limit', 'wall-time-limit', 'memory-limit', 'output-limit', 'syscall-denied']),
  exitCode: z.number().int().nullable(),
  signal: z.string().nullable(),
  stdout: outputJson,
  stderr: outputJson,
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
export const runId = z.union([z.string().max(256), z.number().int()]);

/**
 * Frames the daemon sends: `started`, output, then `exit` (or `error`), and it closes; or, for
 * `run` frames, a `result` (or an `error` with its `id`) per run, and it stays open.
 */
export const serverFrame = z.discriminatedUnion('type', [
  z.object({ type: z.literal('started'), pid: z.number().int() }),
  z.object({ type: z.literal('stdout'), data: base64 }),
  z.object({ type: z.literal('stderr'), data: base64 }),
  z.object({ type: z.literal('exit'), result: resultJson }),
  z.object({ type: z.literal('result'), id: runId, result: resultJson }),
  z.object({ type: z.literal('error'), id: runId.optional(), status: z.number().int(), ...errorJson.shape }),
]);
