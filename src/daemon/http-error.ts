/** A refusal with its HTTP status, as the daemon answers it. */
import type { ErrorJson } from './wire.js';

export class HttpError extends Error {
  readonly status: number;
  readonly code: string;
  readonly field: string | undefined;
  readonly headers: Record<string, string>;

  constructor(status: number, code: string, message: string, field?: string, headers: Record<string, string> = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
    this.headers = headers;
  }

  toJson(): ErrorJson {
    return { error: { code: this.code, message: this.message, ...(this.field !== undefined ? { field: this.field } : {}) } };
  }
}

/** A request asked for something the server's policy does not allow. */
export function forbidden(field: string, why: string): HttpError {
  return new HttpError(403, 'forbidden', `${field}: ${why}`, field);
}

export function badRequest(code: string, message: string, field?: string): HttpError {
  return new HttpError(400, code, field !== undefined ? `${field}: ${message}` : message, field);
}
