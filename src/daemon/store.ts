/**
 * Files uploaded once and named by their SHA-256 in later requests (a test's input used by a
 * thousand runs). Kept in memory, bounded in bytes and in count; the oldest go first.
 */
import { createHash } from 'node:crypto';

import { HttpError } from './http-error.js';

export class FileStore {
  private readonly files = new Map<string, Buffer>();
  bytes = 0;

  constructor(
    readonly maxBytes: number,
    readonly maxCount: number,
  ) {}

  get count(): number {
    return this.files.size;
  }

  put(data: Buffer): string {
    if (data.length > this.maxBytes) throw new HttpError(413, 'too-large', `the file store holds at most ${this.maxBytes} bytes`);
    const id = `sha256:${createHash('sha256').update(data).digest('hex')}`;
    // Stored again, it counts as new: the Map's order is the age order eviction follows.
    this.delete(id);
    while (this.files.size > 0 && (this.bytes + data.length > this.maxBytes || this.files.size >= this.maxCount)) {
      this.delete(this.files.keys().next().value as string);
    }
    this.files.set(id, data);
    this.bytes += data.length;
    return id;
  }

  get(id: string): Buffer | undefined {
    return this.files.get(id);
  }

  delete(id: string): boolean {
    const data = this.files.get(id);
    if (data === undefined) return false;
    this.files.delete(id);
    this.bytes -= data.length;
    return true;
  }
}
