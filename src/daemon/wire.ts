/**
 * The JSON form of options and results on the daemon's API, shared by the daemon and its
 * clients. Bytes travel as UTF-8 strings, `{ base64 }`, or `{ fileId }` (content stored on the
 * daemon beforehand); collected files come back as base64, and the output of a run given
 * `encoding: 'buffer'` as a string where its bytes are UTF-8, `{ base64 }` otherwise. Types only
 * and pure functions: a client imports this without loading the sandbox engine.
 */
import { isUtf8 } from 'node:buffer';

import type { OutputEncoding, Result } from '../index.js';

/** Bytes: a UTF-8 string, base64, or a file stored on the daemon (`POST /v1/files`). */
export type BytesJson = string | { base64: string } | { fileId: string };

/** A file placed in the box: its bytes, or its bytes and a mode. */
export type FileContentJson = BytesJson | { data: BytesJson; mode?: number };

/** Output as the daemon sends it: text, or for a run given `encoding: 'buffer'`, bytes that are not UTF-8 in base64. */
export type OutputJson = string | { base64: string };

/** A result as the daemon sends it: run()'s result with collected files in base64. */
export interface ResultJson extends Omit<Result, 'stdout' | 'stderr'> {
  stdout: OutputJson;
  stderr: OutputJson;
  files?: Record<string, string>;
  fileErrors?: Record<string, string>;
}

/** The body of every error reply. */
export interface ErrorJson {
  error: {
    code: string;
    message: string;
    /** The offending option, dotted (`limits.memory`, `binds[0].source`). */
    field?: string;
    /** Every offending option, for `invalid-options`. */
    issues?: { path: string; message: string }[];
    /** For `setup-failed`: the stage that failed, the kernel's errno and its name. */
    stage?: string;
    errno?: number;
    errnoCode?: string;
  };
}

export const API_VERSION = 1;

/** Bytes as JSON: text that survives a UTF-8 round trip as a string, anything else as base64. */
export function bytesToJson(data: string | Uint8Array): BytesJson {
  if (typeof data === 'string') return data;
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return isUtf8(buf) ? buf.toString('utf8') : { base64: buf.toString('base64') };
}

/**
 * A result as JSON: output kept as Buffers (`encoding: 'buffer'`) as `bytesToJson` writes bytes,
 * collected files (Buffers) in base64, everything else unchanged: a run's text output is sent as
 * it is.
 */
export function resultToJson<R extends Result<string | Buffer> & { files?: Record<string, Buffer> }>(r: R): ResultJson {
  const bytes = typeof r.stdout !== 'string' || typeof r.stderr !== 'string';
  if (r.files === undefined && !bytes) return r as ResultJson;
  const out = { ...r } as Record<string, unknown>;
  if (bytes) {
    out.stdout = outputToJson(r.stdout);
    out.stderr = outputToJson(r.stderr);
  }
  if (r.files !== undefined) {
    const files: Record<string, string> = {};
    for (const [name, data] of Object.entries(r.files)) files[name] = data.toString('base64');
    out.files = files;
  }
  return out as unknown as ResultJson;
}

function outputToJson(o: string | Buffer): OutputJson {
  return typeof o === 'string' ? o : (bytesToJson(o) as OutputJson);
}

/** Output from JSON as the run asked for it: Buffers for `'buffer'`, text otherwise. */
function outputFromJson(o: OutputJson, encoding: OutputEncoding): string | Buffer {
  if (typeof o === 'string') return encoding === 'buffer' ? Buffer.from(o, 'utf8') : o;
  const bytes = Buffer.from(o.base64, 'base64');
  // Only a daemon answering a run that asked for bytes sends base64; text asked for is text.
  return encoding === 'buffer' ? bytes : bytes.toString('utf8');
}

/** A result read back, collected files as Buffers. */
export type ResultFromJson<Output extends string | Buffer = string> = Result<Output> & { files?: Record<string, Buffer>; fileErrors?: Record<string, string> };

/** The reverse of resultToJson, with the output as the run's `encoding` asked for it. */
export function resultFromJson(j: ResultJson): ResultFromJson;
export function resultFromJson(j: ResultJson, encoding: OutputEncoding): ResultFromJson<string | Buffer>;
export function resultFromJson(j: ResultJson, encoding: OutputEncoding = 'utf8'): ResultFromJson<string | Buffer> {
  if (j.files === undefined && typeof j.stdout === 'string' && typeof j.stderr === 'string' && encoding === 'utf8') return j as Result;
  const out: Record<string, unknown> = { ...j, stdout: outputFromJson(j.stdout, encoding), stderr: outputFromJson(j.stderr, encoding) };
  if (j.files !== undefined) {
    const files: Record<string, Buffer> = {};
    for (const [name, data] of Object.entries(j.files)) files[name] = Buffer.from(data, 'base64');
    out.files = files;
  }
  return out as unknown as Result<string | Buffer>;
}
