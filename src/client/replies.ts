/**
 * What the client accepts from a daemon: every JSON reply and WebSocket frame is checked against
 * its shape before it is handed to the caller, since a daemon reached over TCP (or anything that
 * answers in its place) is as untrusted as any network input. The shapes are the daemon's own
 * (`test/daemon/client-replies.unit.test.ts` holds them equal), written again here because the daemon's
 * schemas module loads the engine, which a client must not.
 */
import { z } from 'zod';

import { formatOptionPath } from '../errors.js';
import { SandcellRemoteError } from './errors.js';

const FILE_ID = /^sha256:[0-9a-f]{64}$/;
const BASE64 = /^[A-Za-z0-9+/\s]*={0,2}\s*$/;

const base64 = z.strictObject({ base64: z.string().regex(BASE64, 'is not valid base64') });

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

const runId = z.union([z.string().max(256), z.number().int()]);

/** The daemon's frames; a `started` frame must carry the pid a RemoteProcess reports. */
export const serverFrame = z.discriminatedUnion('type', [
  z.object({ type: z.literal('started'), pid: z.number().int() }),
  z.object({ type: z.literal('stdout'), data: base64 }),
  z.object({ type: z.literal('stderr'), data: base64 }),
  z.object({ type: z.literal('exit'), result: resultJson }),
  z.object({ type: z.literal('result'), id: runId, result: resultJson }),
  z.object({ type: z.literal('error'), id: runId.optional(), status: z.number().int(), ...errorJson.shape }),
]);

/** A reply (`status` its HTTP status, 0 for a frame) that is no JSON of this shape. */
function badJson(status: number, what: string, reason: string): SandcellRemoteError {
  return new SandcellRemoteError(status, 'bad-reply', `the daemon's ${what} is not what the client expects: ${reason}`);
}

/**
 * The JSON in `bytes`, checked against `schema`, as it was sent: a check, not a transformation,
 * so that fields a newer daemon adds reach the caller.
 */
export function decodeJson<S extends z.ZodType>(schema: S, bytes: Buffer, status: number, what: string): z.input<S> {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw badJson(status, what, `not JSON (${(e as Error).message.slice(0, 120)})`);
  }
  const r = schema.safeParse(value);
  if (!r.success) {
    const issues = r.error.issues.slice(0, 5).map((i) => `${formatOptionPath(i.path) || '(root)'}: ${i.message}`);
    throw badJson(status, what, issues.join('; '));
  }
  return value as z.input<S>;
}
