/**
 * What travels through the queue: run options and results as JSON, bytes inline or as blobs.
 * Job data comes out of Redis, which any of its clients may write: a worker checks it with zod
 * before anything else, and an error names the field.
 */
import { isUtf8 } from 'node:buffer';

import { UnrecoverableError } from 'bullmq';
import { z } from 'zod';

import type { FileContent, OutputEncoding, Result, RunOptions } from '../index.js';
import { BLOB_REF, BlobError, type BlobCache, type BlobStore } from './blobs.js';

/** Bytes: a UTF-8 string, base64, or a blob in Redis. */
export type BytesWire = string | { base64: string } | { blob: string };

/** Where a run was placed: which worker ran it to the end, on which attempt, after how many stalls. */
export interface Placement {
  worker: string;
  /** 1 on the first try; a retried infrastructure error or a stalled job counts one more. */
  attempt: number;
  /** How many times a worker lost the job (died, stopped, partitioned) before this one finished it. */
  stalled: number;
}

/** run()'s result, plus where it ran; `Output` as in `Result` (Buffers for a run given `encoding: 'buffer'`). */
export type FarmResult<Output extends string | Buffer = string> = Result<Output> & { files?: Record<string, Buffer>; fileErrors?: Record<string, string>; placement: Placement };

/** A result in the queue: output as bytes (text, base64 or a blob), whichever `encoding` the run asked for. */
export type ResultWire = Omit<Result, 'stdout' | 'stderr'> & {
  stdout: BytesWire;
  stderr: BytesWire;
  files?: Record<string, BytesWire>;
  fileErrors?: Record<string, string>;
  placement: Placement;
};

export const bytesSchema = z.union([
  z.string(),
  z.strictObject({ base64: z.base64() }),
  z.strictObject({ blob: z.string().regex(BLOB_REF, 'must be sha256:<64 hex digits>') }),
]);

const fileSchema = z.union([bytesSchema, z.strictObject({ data: bytesSchema, mode: z.number().int().min(0).max(0o777).optional() })]);

/**
 * Options as JSON. Only the byte-carrying fields are checked here; every other field is checked
 * by run() itself, whose SandboxOptionsError names the field.
 */
const optionsSchema = z.looseObject({
  stdin: bytesSchema.optional(),
  files: z.record(z.string(), fileSchema).optional(),
});

export const runJobSchema = z.strictObject({
  v: z.literal(1),
  kind: z.literal('run'),
  options: optionsSchema,
});

export type RunJob = z.output<typeof runJobSchema>;

/** zod issues as "field: reason" lines, the field dotted from the job's root. */
export function describeIssues(error: z.ZodError, root = ''): string {
  return error.issues
    .map((i) => {
      const path = [root, ...i.path.map(String)].filter((p) => p !== '').join('.');
      return `${path || '(job)'}: ${i.message}`;
    })
    .join('; ');
}

function asBuffer(data: string | Uint8Array): Buffer {
  return typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/** Bytes to their wire form: small ones inline (text as text), large ones uploaded as blobs. */
export async function encodeBytes(data: string | Uint8Array, blobs: BlobStore): Promise<BytesWire> {
  const buf = asBuffer(data);
  if (buf.length > blobs.limits.inlineBytes) return { blob: await blobs.put(buf) };
  if (typeof data === 'string') return data;
  return isUtf8(buf) ? buf.toString('utf8') : { base64: buf.toString('base64') };
}

export async function decodeBytes(b: BytesWire, blobs: BlobCache | BlobStore): Promise<Buffer> {
  if (typeof b === 'string') return Buffer.from(b, 'utf8');
  if ('base64' in b) return Buffer.from(b.base64, 'base64');
  return blobs.get(b.blob);
}

/** Fields of run() that only mean something in the caller's process. */
const LOCAL_ONLY = ['signal'] as const;

/**
 * Run options to a job's `options`: files and stdin as bytes (a stream is read to its end, up
 * to the blob limit), everything else as it is.
 */
export async function encodeOptions(options: RunOptions<OutputEncoding>, blobs: BlobStore): Promise<Record<string, unknown>> {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new TypeError('options must be an object');
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(options)) {
    if ((LOCAL_ONLY as readonly string[]).includes(k) || v === undefined) continue;
    out[k] = v;
  }
  if (options.stdin !== undefined) {
    const s = options.stdin;
    out.stdin = await encodeBytes(typeof s === 'string' || s instanceof Uint8Array ? s : await readAll(s, blobs.limits.maxBytes), blobs);
  }
  if (options.files !== undefined && options.files !== null && typeof options.files === 'object') {
    const files: Record<string, unknown> = {};
    for (const [name, f] of Object.entries(options.files as Record<string, FileContent>)) {
      if (typeof f === 'string' || f instanceof Uint8Array) files[name] = await encodeBytes(f, blobs);
      // Anything else goes as given: run() on the worker names the field if it is wrong.
      else if (f && typeof f === 'object' && 'data' in f && (typeof f.data === 'string' || f.data instanceof Uint8Array)) {
        files[name] = { data: await encodeBytes(f.data, blobs), ...(f.mode !== undefined ? { mode: f.mode } : {}) };
      } else files[name] = f;
    }
    out.files = files;
  }
  return out;
}

async function readAll(stream: AsyncIterable<unknown>, max: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of stream) {
    const b = typeof c === 'string' ? Buffer.from(c) : Buffer.from(c as Uint8Array);
    n += b.length;
    if (n > max) throw new BlobError(`stdin is over the blob limit of ${max} bytes`);
    chunks.push(b);
  }
  return Buffer.concat(chunks);
}

/** A checked job's options back to run()'s: bytes fetched (through the worker's cache). */
export async function decodeOptions(o: RunJob['options'], blobs: BlobCache): Promise<RunOptions> {
  const out: Record<string, unknown> = { ...o };
  if (o.stdin !== undefined) out.stdin = await decodeBytes(o.stdin, blobs);
  if (o.files !== undefined) {
    const files: Record<string, FileContent> = {};
    for (const [name, f] of Object.entries(o.files)) {
      files[name] = typeof f === 'object' && 'data' in f ? { data: await decodeBytes(f.data, blobs), ...(f.mode !== undefined ? { mode: f.mode } : {}) } : await decodeBytes(f, blobs);
    }
    out.files = files;
  }
  return out as unknown as RunOptions;
}

/** A result to its wire form: large outputs and collected files as blobs, output kept as Buffers as the bytes they are. */
export async function encodeResult(r: Result<string | Buffer> & { files?: Record<string, Buffer>; fileErrors?: Record<string, string> }, placement: Placement, blobs: BlobStore): Promise<ResultWire> {
  const out: ResultWire = { ...r, stdout: await encodeBytes(r.stdout, blobs), stderr: await encodeBytes(r.stderr, blobs), files: undefined, placement };
  if (r.files !== undefined) {
    out.files = {};
    for (const [name, data] of Object.entries(r.files)) out.files[name] = await encodeBytes(data, blobs);
  } else delete out.files;
  return out;
}

const resultWireSchema = z.looseObject({
  status: z.string(),
  stdout: bytesSchema,
  stderr: bytesSchema,
  files: z.record(z.string(), bytesSchema).optional(),
  placement: z.strictObject({ worker: z.string(), attempt: z.number().int(), stalled: z.number().int() }),
});

/**
 * A job's return value (written by a worker, read back from Redis: checked too) to the caller's
 * result, its output as the run's `encoding` asked for it: Buffers of the bytes the worker sent,
 * or their text.
 */
export async function decodeResult(value: unknown, blobs: BlobStore, encoding: OutputEncoding = 'utf8'): Promise<FarmResult<string | Buffer>> {
  const parsed = resultWireSchema.safeParse(typeof value === 'string' ? JSON.parse(value) : value);
  if (!parsed.success) throw new BlobError(`the worker's result is malformed: ${describeIssues(parsed.error, 'result')}`);
  const w = parsed.data as unknown as ResultWire;
  const output = async (b: BytesWire): Promise<string | Buffer> => {
    if (encoding === 'buffer') return decodeBytes(b, blobs);
    return typeof b === 'string' ? b : (await decodeBytes(b, blobs)).toString('utf8');
  };
  const result: Record<string, unknown> = { ...w, stdout: await output(w.stdout), stderr: await output(w.stderr) };
  if (w.files !== undefined) {
    const files: Record<string, Buffer> = {};
    for (const [name, b] of Object.entries(w.files)) files[name] = await decodeBytes(b, blobs);
    result.files = files;
  }
  return result as unknown as FarmResult<string | Buffer>;
}

/**
 * Why a job ended without a result, as its worker says it: `options` (run() or the job's schema
 * refused the options), `policy` (the worker refuses what would reach its machine), `setup` (a
 * box could not be built there), or `infrastructure` (anything else: a lost blob, a lost worker,
 * a job stalled too often, Redis). Options and policy name their fields.
 */
export type FarmErrorKind = 'options' | 'policy' | 'setup' | 'infrastructure';

/** What a failed job's reason carries: every string bounded, so a reason read back is small whatever wrote it. */
const BOUND = { code: 64, message: 8192, path: 1024, issue: 2048, issues: 64, stage: 256 } as const;

const jobErrorSchema = z.strictObject({
  v: z.literal(1),
  kind: z.enum(['options', 'policy', 'setup', 'infrastructure']),
  code: z.string().min(1).max(BOUND.code),
  message: z.string().max(BOUND.message),
  issues: z.array(z.strictObject({ path: z.string().max(BOUND.path), message: z.string().max(BOUND.issue) })).max(BOUND.issues).optional(),
  stage: z.string().max(BOUND.stage).optional(),
  errno: z.number().int().min(0).max(4095).optional(),
  errnoCode: z.string().max(BOUND.code).optional(),
});

export type JobErrorWire = z.output<typeof jobErrorSchema>;

/** The longest reason worth parsing: a well-formed one at its bounds is smaller. */
const MAX_REASON_CHARS = 256 * 1024;

function clip(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}

/**
 * A job's failure as the worker throws it: BullMQ keeps only an error's message (the job's
 * `failedReason`), so the message is the JSON of `e`, clipped to the bounds the caller checks.
 * Refused options and policy are final (BullMQ's UnrecoverableError); a setup error, like the
 * infrastructure, is tried again.
 */
export function failure(e: JobErrorWire, recoverable: boolean): Error {
  const wire: JobErrorWire = {
    ...e,
    code: clip(e.code, BOUND.code),
    message: clip(e.message, BOUND.message),
    ...(e.issues ? { issues: e.issues.slice(0, BOUND.issues).map((i) => ({ path: clip(i.path, BOUND.path), message: clip(i.message, BOUND.issue) })) } : {}),
    ...(e.stage !== undefined ? { stage: clip(e.stage, BOUND.stage) } : {}),
    ...(e.errnoCode !== undefined ? { errnoCode: clip(e.errnoCode, BOUND.code) } : {}),
  };
  return recoverable ? new Error(JSON.stringify(wire)) : new UnrecoverableError(JSON.stringify(wire));
}

/**
 * A failed job's reason, read back from Redis, as the worker said it; a reason that is not one a
 * worker wrote (BullMQ's own, such as a job stalled too often, or anything else in Redis) is the
 * infrastructure's, its text kept as the message.
 */
export function readFailure(reason: unknown): JobErrorWire {
  const text = typeof reason === 'string' ? reason : '';
  if (text.startsWith('{') && text.length <= MAX_REASON_CHARS) {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      value = undefined;
    }
    const parsed = jobErrorSchema.safeParse(value);
    if (parsed.success) return parsed.data;
  }
  return { v: 1, kind: 'infrastructure', code: 'infrastructure', message: clip(text || 'the job failed without a reason', BOUND.message) };
}
