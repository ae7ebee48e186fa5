/**
 * The JSON form of options and results on the daemon's API, shared by the daemon and its
 * clients. Bytes travel as UTF-8 strings, `{ base64 }`, or `{ fileId }` (content stored on the
 * daemon beforehand); collected files come back as base64. Types only and pure functions: a
 * client imports this without loading the sandbox engine.
 */
import type { Result } from '../index.js';

/** Bytes: a UTF-8 string, base64, or a file stored on the daemon (`POST /v1/files`). */
export type BytesJson = string | { base64: string } | { fileId: string };

/** A file placed in the box: its bytes, or its bytes and a mode. */
export type FileContentJson = BytesJson | { data: BytesJson; mode?: number };

/** A result as the daemon sends it: run()'s result with collected files in base64. */
export interface ResultJson extends Result {
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
  const text = buf.toString('utf8');
  return Buffer.byteLength(text) === buf.length && Buffer.from(text, 'utf8').equals(buf) ? text : { base64: buf.toString('base64') };
}

/** A result as JSON: collected files (Buffers) in base64, everything else unchanged. */
export function resultToJson<R extends Result & { files?: Record<string, Buffer> }>(r: R): ResultJson {
  if (r.files === undefined) return r as ResultJson;
  const files: Record<string, string> = {};
  for (const [name, data] of Object.entries(r.files)) files[name] = data.toString('base64');
  return { ...r, files };
}

/** The reverse of resultToJson. */
export function resultFromJson(j: ResultJson): Result & { files?: Record<string, Buffer>; fileErrors?: Record<string, string> } {
  if (j.files === undefined) return j as Result;
  const files: Record<string, Buffer> = {};
  for (const [name, data] of Object.entries(j.files)) files[name] = Buffer.from(data, 'base64');
  return { ...j, files };
}
