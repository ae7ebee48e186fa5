/**
 * What the client accepts from a daemon: every JSON reply and WebSocket frame is checked against
 * its shape (the daemon's own, from its engine-free half) before it is handed to the caller, since
 * a daemon reached over TCP (or anything that answers in its place) is as untrusted as any
 * network input.
 */
import type { z } from 'zod';

import { formatOptionPath } from '../errors.js';
import { SandcellRemoteError } from './errors.js';

export { boxIdJson, boxListJson, errorJson, fileIdJson, healthJson, resultJson, serverFrame, versionJson } from '../daemon/replies.js';

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
