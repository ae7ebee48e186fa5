/**
 * What the client accepts from a daemon: every JSON reply and WebSocket frame is checked against
 * its shape (the daemon's own, from its engine-free half) before it is handed to the caller, since
 * a daemon reached over TCP (or anything that answers in its place) is as untrusted as any
 * network input.
 */
import type { z } from 'zod';

import { formatOptionPath } from '../errors.js';
import { SandcellRemoteError } from './errors.js';

import { BASE64, resultJson, serverFrame } from '../daemon/replies.js';

export { boxIdJson, boxListJson, errorJson, fileIdJson, healthJson, resultJson, serverFrame, versionJson } from '../daemon/replies.js';

/** A reply (`status` its HTTP status, 0 for a frame) that is no JSON of this shape. */
function badJson(status: number, what: string, reason: string): SandcellRemoteError {
  return new SandcellRemoteError(status, 'bad-reply', `the daemon's ${what} is not what the client expects: ${reason}`);
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isNumber = (v: unknown): boolean => typeof v === 'number' && Number.isFinite(v);
const STATUSES = new Set(['ok', 'nonzero-exit', 'signaled', 'time-limit', 'wall-time-limit', 'memory-limit', 'output-limit', 'syscall-denied']);
const ENFORCEMENTS = new Set(['cgroup', 'rlimit', 'none']);

/** Output: text, or `{ base64 }` alone (a run given `encoding: 'buffer'`). */
function isOutput(v: unknown): boolean {
  if (typeof v === 'string') return true;
  if (!isObject(v) || typeof v.base64 !== 'string') return false;
  for (const k in v) if (k !== 'base64') return false;
  return BASE64.test(v.base64);
}

function isStringRecord(v: unknown): boolean {
  if (!isObject(v)) return false;
  for (const k in v) if (typeof v[k] !== 'string') return false;
  return true;
}

/**
 * True only of JSON that `resultJson` accepts, checked in one walk without zod: a run's result is
 * the reply of every run, and zod's walk of it (its generic object parser, issues gathered on the
 * way) was the largest part of the client's own CPU per run after its HTTP. False says nothing:
 * the value is then walked by zod, which refuses it with issues naming the field, or accepts
 * what this check is too strict for (test/daemon/client-replies.unit.test.ts holds the two to
 * the same answers field by field).
 */
export function isResultJson(v: unknown): boolean {
  if (!isObject(v)) return false;
  const { usage: u, violation: x, limitsEnforced: l } = v;
  return (
    STATUSES.has(v.status as string) &&
    (v.exitCode === null || Number.isSafeInteger(v.exitCode)) &&
    (v.signal === null || typeof v.signal === 'string') &&
    isOutput(v.stdout) &&
    isOutput(v.stderr) &&
    typeof v.stdoutTruncated === 'boolean' &&
    typeof v.stderrTruncated === 'boolean' &&
    isObject(u) &&
    isNumber(u.cpuTimeMs) &&
    isNumber(u.userTimeMs) &&
    isNumber(u.systemTimeMs) &&
    isNumber(u.wallTimeMs) &&
    (u.memoryPeakBytes === null || isNumber(u.memoryPeakBytes)) &&
    isNumber(u.maxRssBytes) &&
    (x === null || (isObject(x) && typeof x.syscall === 'string' && isNumber(x.nr) && typeof x.arch === 'string')) &&
    isObject(l) &&
    ENFORCEMENTS.has(l.memory as string) &&
    ENFORCEMENTS.has(l.cpuTime as string) &&
    ENFORCEMENTS.has(l.processes as string) &&
    (v.files === undefined || isStringRecord(v.files)) &&
    (v.fileErrors === undefined || isStringRecord(v.fileErrors))
  );
}

/** True only of a session's `result` frame that `serverFrame` accepts: a run's answer on a WebSocket, checked as isResultJson checks it. */
export function isResultFrame(v: unknown): boolean {
  if (!isObject(v) || v.type !== 'result') return false;
  const id = v.id;
  return (typeof id === 'string' ? id.length <= 256 : Number.isSafeInteger(id)) && isResultJson(v.result);
}

/** The schemas with a quicker check of their own: those of every run's answer. */
const quickChecks = new Map<z.ZodType, (v: unknown) => boolean>([
  [resultJson, isResultJson],
  [serverFrame, isResultFrame],
]);

/**
 * The JSON in `bytes`, checked against `schema`, as it was sent: a check, not a transformation,
 * so that fields a newer daemon adds reach the caller. What a schema's quicker check passes is
 * not walked again.
 */
export function decodeJson<S extends z.ZodType>(schema: S, bytes: Buffer, status: number, what: string): z.input<S> {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw badJson(status, what, `not JSON (${(e as Error).message.slice(0, 120)})`);
  }
  if (quickChecks.get(schema)?.(value) === true) return value as z.input<S>;
  const r = schema.safeParse(value);
  if (!r.success) {
    const issues = r.error.issues.slice(0, 5).map((i) => `${formatOptionPath(i.path) || '(root)'}: ${i.message}`);
    throw badJson(status, what, issues.join('; '));
  }
  return value as z.input<S>;
}
