/**
 * Content-addressed blobs in Redis: files, large stdin and large outputs travel as `sha256:<hex>`
 * references instead of inside job payloads, so a 20 MB input shared by 100 runs crosses the
 * network to Redis once, and to each worker once (its cache).
 *
 * Redis is shared infrastructure, not a trusted party: what a worker reads back is hashed and
 * must match the name it was asked for.
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

export const BLOB_REF = /^sha256:[0-9a-f]{64}$/;

/** A blob reference as it appears in job data and results. */
export interface BlobRef {
  blob: string;
}

export interface BlobLimits {
  /** Largest blob accepted (default 64 MiB). */
  maxBytes: number;
  /** How long an unused blob stays in Redis (default 24 h); every upload of the same content renews it. */
  ttlMs: number;
  /** Bytes at or below this travel inline in the job (default 16 KiB): a blob costs an extra round trip. */
  inlineBytes: number;
}

export const DEFAULT_BLOB_LIMITS: BlobLimits = {
  maxBytes: 64 * 1024 * 1024,
  ttlMs: 24 * 3600_000,
  inlineBytes: 16 * 1024,
};

/** A blob is missing (expired, evicted, or Redis lost it) or not what its name says. */
export class BlobError extends Error {
  override readonly name = 'BlobError';
}

export function blobName(data: Uint8Array): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export class BlobStore {
  /** Blobs this store sent to Redis (not those Redis had already). */
  uploads = 0;
  /** Uploads under way: concurrent runs with the same input wait for one upload, not each their own. */
  private readonly putting = new Map<string, Promise<string>>();

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    readonly limits: BlobLimits = DEFAULT_BLOB_LIMITS,
  ) {}

  private key(ref: string): string {
    return `${this.prefix}:blob:${ref}`;
  }

  /**
   * Stores `data` unless Redis has it already (PEXPIRE both answers that and renews its TTL in
   * one round trip, so a blob in use does not expire under a long queue), and returns its name.
   */
  async put(data: Uint8Array): Promise<string> {
    if (data.byteLength > this.limits.maxBytes) {
      throw new BlobError(`a blob of ${data.byteLength} bytes is over the limit of ${this.limits.maxBytes} bytes`);
    }
    const ref = blobName(data);
    const pending = this.putting.get(ref);
    if (pending) return pending;
    const key = this.key(ref);
    const putting = (async () => {
      if ((await this.redis.pexpire(key, this.limits.ttlMs)) === 1) return ref;
      await this.redis.set(key, Buffer.from(data.buffer, data.byteOffset, data.byteLength), 'PX', this.limits.ttlMs);
      this.uploads++;
      return ref;
    })();
    this.putting.set(ref, putting);
    try {
      return await putting;
    } finally {
      this.putting.delete(ref);
    }
  }

  /** The blob's bytes, checked against its name. */
  async get(ref: string): Promise<Buffer> {
    if (!BLOB_REF.test(ref)) throw new BlobError(`${JSON.stringify(ref)} is not a blob reference (sha256:<64 hex digits>)`);
    const data = await this.redis.getBuffer(this.key(ref));
    if (data === null) throw new BlobError(`blob ${ref} is not in Redis (expired or lost)`);
    if (data.length > this.limits.maxBytes) throw new BlobError(`blob ${ref} holds ${data.length} bytes, over the limit of ${this.limits.maxBytes}`);
    if (blobName(data) !== ref) throw new BlobError(`blob ${ref} does not hold what its name says`);
    return data;
  }
}

/**
 * A worker's cache of blobs it fetched, bounded in bytes, least recently used first out. Fetches
 * of one blob by concurrent jobs share one request.
 */
export class BlobCache {
  private readonly entries = new Map<string, Buffer>();
  private readonly inFlight = new Map<string, Promise<Buffer>>();
  private bytes = 0;

  constructor(
    private readonly store: BlobStore,
    private readonly maxBytes: number,
    /** Told of every blob fetched from Redis (not served from the cache). */
    private readonly onFetch: (ref: string, bytes: number) => void = () => undefined,
  ) {}

  async get(ref: string): Promise<Buffer> {
    const hit = this.entries.get(ref);
    if (hit) {
      this.entries.delete(ref);
      this.entries.set(ref, hit);
      return hit;
    }
    const pending = this.inFlight.get(ref);
    if (pending) return pending;
    const fetching = this.store.get(ref).then((data) => {
      this.onFetch(ref, data.length);
      this.keep(ref, data);
      return data;
    });
    this.inFlight.set(ref, fetching);
    try {
      return await fetching;
    } finally {
      this.inFlight.delete(ref);
    }
  }

  private keep(ref: string, data: Buffer): void {
    if (data.length > this.maxBytes) return;
    this.entries.set(ref, data);
    this.bytes += data.length;
    for (const [old, d] of this.entries) {
      if (this.bytes <= this.maxBytes) break;
      this.entries.delete(old);
      this.bytes -= d.length;
    }
  }
}
