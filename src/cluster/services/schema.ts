/**
 * The shapes services keep in Redis and send through it. Anything read back is untrusted (any
 * client of the Redis can write it): it is parsed with these schemas, and a value that does not
 * fit is refused with an error naming the field.
 */
import { z } from 'zod';

import { profileSchema } from '../../profiles/index.js';

export const SERVICE_NAME = /^[a-z0-9][a-z0-9_.-]{0,62}$/;
/** Replicas one service may ask for: a typo of 1000000 must not have every worker start boxes. */
export const MAX_REPLICAS = 256;

export const serviceName = z.string().regex(SERVICE_NAME, 'must be 1-63 of a-z, 0-9, "_", "." and "-", starting with a letter or digit');
const workerName = z.string().min(1).max(128);
const replicaId = z.string().regex(/^[A-Za-z0-9_-]{8,64}$/, 'must be a replica id');
export const labelsSchema = z.record(z.string().min(1).max(128), z.string().max(256));

/**
 * What a replica is started with: a profile's fields (the library's own schemas, through its
 * public profile schema) plus the command and files given as text, since they travel as JSON.
 * Fields that reach the worker's machine (host paths, its network) are not taken from Redis:
 * whoever can write there must not reach past the box on every worker. A worker's own profile
 * may still give them.
 */
export const serviceOptionsSchema = profileSchema
  .omit({ description: true, extends: true, binds: true })
  .extend({
    command: z.array(z.string()).min(1, 'must name a program'),
    files: z.record(z.string(), z.union([z.string(), z.strictObject({ data: z.string(), mode: z.number().int().min(0).max(0o7777).optional() })])).optional(),
  })
  .superRefine((o, ctx) => {
    if (o.network !== undefined && o.network !== 'none' && o.network !== 'loopback') {
      ctx.addIssue({ code: 'custom', path: ['network'], message: "only 'none' or 'loopback' is accepted for a service: host, allow lists, published ports and named networks reach the worker's machine (give them in a worker's profile)" });
    }
    (o.mounts ?? []).forEach((m, i) => {
      if (m.type !== 'tmpfs') ctx.addIssue({ code: 'custom', path: ['mounts', i], message: "only tmpfs mounts are accepted for a service (host paths come from a worker's profile)" });
    });
  });
export type ServiceOptions = z.input<typeof serviceOptionsSchema>;

export const specSchema = z.strictObject({
  v: z.literal(1),
  name: serviceName,
  /** A profile of the worker's sandcell.yaml the options go over. */
  profile: z.string().min(1).max(64).optional(),
  /** Labels a worker must have to run a replica. */
  constraints: labelsSchema.optional(),
  options: serviceOptionsSchema,
  /** Longest line a call or a reply may be, in bytes. */
  maxLine: z.number().int().min(64).max(64 * 1024 * 1024),
});
export type ServiceSpec = z.output<typeof specSchema>;

export const replicasSchema = z.number().int().min(0).max(MAX_REPLICAS);

export const crashSchema = z.strictObject({
  /** Redis time (ms). */
  at: z.number(),
  worker: workerName,
  replica: replicaId,
  /** What ended it: a result status ("exited", "killed", "output-limit"...), "start-failed" or "worker-lost". */
  reason: z.string().max(64),
  exitCode: z.number().int().nullable().optional(),
  signal: z.string().max(32).nullable().optional(),
  /** The end of what it wrote on stderr, or the error it could not start with. */
  detail: z.string().max(4096).optional(),
});
export type Crash = z.output<typeof crashSchema>;

export const slotSchema = z.strictObject({
  worker: workerName,
  id: replicaId,
  state: z.enum(['starting', 'running', 'backoff']),
  /** Redis time (ms) it entered this state. */
  since: z.number(),
  /** Host pid of the replica's box while it runs. */
  pid: z.number().int().positive().optional(),
  /** Restarts after crashes in a row. */
  restarts: z.number().int().min(0),
  lastCrash: crashSchema.optional(),
});
export type Slot = z.output<typeof slotSchema>;

/** A call as it waits in a service's queue. `line` is the caller's value already as one JSON line. */
export const envelopeSchema = z.strictObject({
  v: z.literal(1),
  id: z.string().regex(/^[A-Za-z0-9_-]{8,64}$/),
  reply: z.string().min(1).max(512),
  /** 0 the first time; 1 once re-queued after its replica was lost. */
  attempt: z.number().int().min(0).max(1),
  /** Caller's clock (ms): past it nobody waits for the reply. */
  deadline: z.number(),
  line: z.string(),
});
export type Envelope = z.output<typeof envelopeSchema>;

export const replySchema = z.discriminatedUnion('ok', [
  z.strictObject({ id: z.string(), ok: z.literal(true), line: z.string(), replica: replicaId, worker: workerName }),
  z.strictObject({ id: z.string(), ok: z.literal(false), code: z.string().max(32), message: z.string().max(8192) }),
]);
export type Reply = z.output<typeof replySchema>;

/** `what`'s JSON text parsed and checked; the error names `what` and the field. */
export function parseStored<T extends z.ZodType>(schema: T, text: string, what: string): z.output<T> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new Error(`${what} in Redis is not JSON`);
  }
  const r = schema.safeParse(value);
  if (!r.success) throw new Error(`${what} in Redis is invalid: ${issuesText(r.error)}`);
  return r.data;
}

export function issuesText(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
}
