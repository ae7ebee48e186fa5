/**
 * The client's HTTP/1.1: a request written by hand on a kept connection, the reply read by hand.
 * On a VM of 2 cores node:http's client (a ClientRequest, an Agent handing out the socket a tick
 * later, an IncomingMessage stream) cost ~0.5 ms of wall time per request over this, which is
 * most of what a run through the daemon adds to a local run beyond the two processes' wake-ups.
 * The daemon is the only server it has to understand, but a proxy may stand in front of a TCP
 * daemon, so every reply framing HTTP/1.1 allows is read: content-length, chunked, and to the
 * end of the connection. Whatever answers on TCP may not be the daemon, so nothing in a reply is
 * trusted: its head, header count and body are bounded, a reply that has begun must end in time,
 * and anything it cannot read closes the connection with an error saying what was wrong.
 */
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

import { SandcellRemoteError } from './errors.js';

export interface Reply {
  status: number;
  /** Header names lowercased; a repeated header's values joined with `, `. */
  headers: Record<string, string>;
  body: Buffer;
}

/** What a client trusts of a TLS server: the CA that signed its certificate, the name it must bear. */
export interface TlsOptions {
  /** PEM certificates trusted in place of Node's bundled CAs. */
  ca?: string | Buffer | (string | Buffer)[];
  /** The name the certificate must bear, when the URL's host is not it (an address, a tunnel). */
  servername?: string;
}

/** A Unix socket, or a TCP address and the `host` header naming it (`authority`: `name:port`, `[v6]:port`). */
export type Endpoint = { socketPath: string } | { host: string; port: number; tls: TlsOptions | null; authority: string };

/** How much of a reply is read, and for how long, before it is given up. */
export interface ReplyLimits {
  /** Largest body, however it is framed. */
  maxBodyBytes: number;
  /** From a reply's first byte to its last. */
  timeoutMs: number;
}

export interface Http1Request {
  method: string;
  /** Already encoded. */
  path: string;
  headers: Record<string, string>;
  body?: Buffer | string;
  signal?: AbortSignal;
}

/** Largest head (status line and headers, interim replies and trailers included): the daemon's are a few hundred bytes. */
const MAX_HEAD = 64 * 1024;
/** Most header lines in one head: the daemon sends about ten, a proxy adds a few. */
const MAX_HEADERS = 128;
/**
 * Most interim replies before the real one: a proxy sends one `100 Continue`, a server that
 * says it is still working (`102 Processing`) one every few seconds of a long run.
 */
const MAX_INTERIM = 100;
/** Longest chunk size line, extensions included. */
const MAX_CHUNK_LINE = 4096;
/** 13 hex digits stay below 2^53: a larger chunk could not be counted exactly, nor held. */
const MAX_CHUNK_DIGITS = 13;
const EMPTY = Buffer.alloc(0);
/**
 * Where every connection's reads land (`onread`): the kernel's bytes are copied into it, and the
 * reader copies out only what it keeps (a body, a head split across reads), so a read allocates
 * nothing and skips the stream machinery a `data` event goes through. One buffer serves every
 * connection: a read's callback runs to its end before the next read begins.
 */
let readBuffer: Buffer | null = null;
const READ_BUFFER_BYTES = 64 * 1024;
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** A connection closed before its reply began: node:http's error for it, so callers see the same. */
function hangUp(): NodeJS.ErrnoException {
  const e: NodeJS.ErrnoException = new Error('socket hang up');
  e.code = 'ECONNRESET';
  return e;
}

/**
 * A TLS server whose certificate the client does not trust (an unknown CA, another name, expired)
 * as the client's error, saying what to give; any other error as it is.
 */
export function untrusted(e: Error & { code?: string }): Error {
  if (e.code === undefined || !/CERT|^UNABLE_TO_|SELF_SIGNED/.test(e.code)) return e;
  const hint = e.code === 'ERR_TLS_CERT_ALTNAME_INVALID' ? "the name it bears as connect()'s tls.servername" : "the CA that signed it as connect()'s tls.ca";
  return new SandcellRemoteError(0, 'untrusted-certificate', `the daemon's TLS certificate is not trusted: ${e.message} (${e.code}); give ${hint}`, 'tls', undefined, { cause: e });
}

function badReply(status: number, what: string): SandcellRemoteError {
  return new SandcellRemoteError(status, 'bad-reply', `the daemon's reply is not HTTP/1.1 the client can read: ${what}`);
}

const quote = (text: string): string => JSON.stringify(text.slice(0, 80));

/** A content-length: digits, or a list of the same digits (a proxy may have repeated the header). */
function contentLength(status: number, value: string): number {
  const parts = value.split(',').map((v) => v.trim());
  const n = Number(parts[0]);
  if (!parts.every((v) => /^\d+$/.test(v) && v === parts[0])) throw badReply(status, `a bad content-length ${quote(value)}`);
  if (!Number.isSafeInteger(n)) throw badReply(status, `a content-length past 2^53 ${quote(value)}`);
  return n;
}

/** A chunk size line: hex digits, then extensions (ignored) after `;`. */
function chunkSize(status: number, line: string): number {
  const digits = (line.split(';')[0] as string).trim();
  if (!/^[0-9a-f]+$/i.test(digits)) throw badReply(status, `a bad chunk size ${quote(line)}`);
  const significant = digits.replace(/^0+(?=.)/, '');
  if (significant.length > MAX_CHUNK_DIGITS) throw badReply(status, `a chunk size past 2^52 ${quote(line)}`);
  return Number.parseInt(significant, 16);
}

interface Pending {
  method: string;
  resolve: (r: Reply) => void;
  reject: (e: Error) => void;
}

/**
 * Where the reader is in a reply: its head (interim replies included); a body framed by
 * content-length or by the connection's end; or a chunked body: a size line, the chunk's data,
 * the CRLF after it, and after the zero size the trailers up to a blank line; then done.
 */
type Stage = 'head' | 'length' | 'to-end' | 'chunk-size' | 'chunk-data' | 'chunk-end' | 'trailers' | 'done';

/** One connection and the reply it is reading, if any. */
class Connection {
  /** Requests it has carried: a reused connection may have been closed by the server while idle. */
  uses = 0;
  /** Bytes of the current reply have arrived (so the request reached the server). */
  answered = false;
  /** While idle: when (`Date.now()`) it is too close to the daemon's keep-alive timeout to be used again. */
  staleAt = Infinity;
  private pending: Pending | null = null;
  private stage: Stage = 'done';
  /** The head gathered so far. */
  private head: Buffer = EMPTY;
  /** Head bytes of this reply: its interim replies, its head, its trailers. */
  private headBytes = 0;
  /** Interim replies read before this reply's own head. */
  private interim = 0;
  private status = 0;
  private headers: Record<string, string> = {};
  private keep = false;
  /** Bytes left of the body (`length`) or of the chunk (`chunk-data`). */
  private left = 0;
  /** In `chunk-size`, `chunk-end` and `trailers`: the line gathered so far. */
  private line = '';
  private body: Buffer[] = [];
  private received = 0;
  /**
   * Bounds the reply once it has begun: a daemon that drips it is given up. An interim reply is
   * bounded on its own: after it, the reply begins when the daemon has it. Armed only when a
   * reply outlasts the read it began in: the daemon's replies come whole in one read, and a
   * timer set and cleared per request cost more than the rest of the reply's reading.
   */
  private deadline: NodeJS.Timeout | null = null;
  /** Bytes of the reply (or of an interim reply) have arrived, and it is not yet whole. */
  private begun = false;

  constructor(
    readonly socket: Socket,
    private readonly limits: ReplyLimits,
    private readonly release: (c: Connection, keep: boolean, hint: string | undefined) => void,
  ) {
    socket.setNoDelay(true);
    socket.on('end', () => this.closed(null));
    socket.on('error', (e) => this.closed(e));
    socket.on('close', () => this.closed(null));
  }

  send(r: Http1Request, pending: Pending, host: string): void {
    this.uses++;
    this.answered = false;
    this.pending = pending;
    this.stage = 'head';
    this.head = EMPTY;
    this.headBytes = 0;
    this.interim = 0;
    this.status = 0;
    this.headers = {};
    this.body = [];
    this.received = 0;
    this.line = '';
    let text = `${r.method} ${r.path} HTTP/1.1\r\nhost: ${host}\r\nconnection: keep-alive\r\n`;
    for (const [k, v] of Object.entries(r.headers)) text += `${k}: ${v}\r\n`;
    if (r.body !== undefined) text += `content-length: ${Buffer.byteLength(r.body)}\r\n`;
    text += '\r\n';
    // One write: a request whose head and body go apart wakes the daemon twice. A Buffer body
    // (an upload of many megabytes) is not copied: corked, the two go out in one writev.
    if (r.body === undefined) this.socket.write(text);
    else if (typeof r.body === 'string') this.socket.write(text + r.body);
    else {
      this.socket.cork();
      this.socket.write(text, 'latin1');
      this.socket.write(r.body);
      this.socket.uncork();
    }
  }

  /** Fails the reply in progress (if any) and closes the connection for good. */
  destroy(e: Error): void {
    const p = this.pending;
    this.pending = null;
    this.stopDeadline();
    this.socket.destroy();
    p?.reject(e);
  }

  private stopDeadline(): void {
    this.begun = false;
    if (this.deadline !== null) clearTimeout(this.deadline);
    this.deadline = null;
  }

  private closed(e: Error | null): void {
    const p = this.pending;
    if (p === null) {
      this.release(this, false, undefined);
      return;
    }
    // A reply read to the end of the connection is whole once the connection ends.
    if (e === null && this.stage === 'to-end') {
      this.finish();
      return;
    }
    this.pending = null;
    this.stopDeadline();
    this.socket.destroy();
    this.release(this, false, undefined);
    p.reject(this.answered ? this.cutShort(e) : e !== null ? untrusted(e) : hangUp());
  }

  /** The connection ended within a reply: where in it, and the socket's own error as the cause. */
  private cutShort(e: Error | null): SandcellRemoteError {
    const where =
      this.stage === 'head'
        ? `within its head (${this.head.length} bytes)`
        : this.stage === 'length'
          ? `after ${this.received} of the ${this.received + this.left} bytes of its body`
          : `within its chunked body, after ${this.received} bytes`;
    return new SandcellRemoteError(this.status, 'closed', `the connection closed before the daemon's reply was whole: ${where}`, undefined, undefined, e === null ? undefined : { cause: e });
  }

  /** What `onread` hands over: `n` bytes at the start of the shared buffer, valid until this returns. */
  read(d: Buffer): void {
    if (this.pending === null) {
      // Bytes nobody asked for: the connection is out of step, never used again.
      this.socket.destroy();
      return;
    }
    this.answered = true;
    try {
      this.consume(d);
    } catch (e) {
      this.destroy(e as Error);
      return;
    }
    if (this.begun && this.deadline === null) {
      const ms = this.limits.timeoutMs;
      this.deadline = setTimeout(() => this.destroy(new SandcellRemoteError(this.status, 'reply-timeout', `the daemon's reply was not whole ${ms} ms after it began (connect()'s replyTimeoutMs)`, 'replyTimeoutMs')), ms);
    }
  }

  private consume(d: Buffer): void {
    let data = d;
    while (data.length > 0) {
      switch (this.stage) {
        case 'head':
          data = this.readHead(data);
          break;
        case 'length':
        case 'chunk-data':
          data = this.readCounted(data);
          break;
        case 'to-end':
          this.keepBody(data);
          data = EMPTY;
          break;
        case 'chunk-size':
        case 'chunk-end':
        case 'trailers':
          data = this.readLine(data);
          break;
        case 'done':
          throw badReply(this.status, 'bytes after the end of the reply');
      }
    }
  }

  private readHead(data: Buffer): Buffer {
    this.begun = true;
    const all = this.head.length === 0 ? data : Buffer.concat([this.head, data]);
    const end = all.indexOf('\r\n\r\n');
    if (this.headBytes + (end < 0 ? all.length : end + 4) > MAX_HEAD) {
      throw new SandcellRemoteError(0, 'reply-too-large', `the daemon's reply has a head over ${MAX_HEAD} bytes`);
    }
    if (end < 0) {
      this.head = all === data ? Buffer.copyBytesFrom(data) : all;
      return EMPTY;
    }
    this.head = EMPTY;
    this.headBytes += end + 4;
    this.parseHead(all.subarray(0, end).toString('latin1'));
    return all.subarray(end + 4);
  }

  private parseHead(text: string): void {
    const lines = text.split('\r\n');
    const m = /^HTTP\/1\.([01]) ([1-9]\d\d)(?: |$)/.exec(lines[0] as string);
    if (!m) throw badReply(0, `no HTTP/1.x status line: ${quote(lines[0] as string)}`);
    const status = Number(m[2]);
    if (lines.length - 1 > MAX_HEADERS) throw new SandcellRemoteError(status, 'reply-too-large', `the daemon's reply has over ${MAX_HEADERS} header lines`);
    const headers: Record<string, string> = {};
    for (const l of lines.slice(1)) {
      const at = l.indexOf(':');
      const name = l.slice(0, at);
      const value = l.slice(at + 1).trim();
      if (at <= 0 || !TOKEN.test(name) || /[\0\r\n]/.test(value)) throw badReply(status, `a malformed header line ${quote(l)}`);
      const key = name.toLowerCase();
      headers[key] = headers[key] === undefined ? value : `${headers[key]}, ${value}`;
    }
    if (status < 200) {
      // A protocol switch nobody asked for: what follows is no HTTP the client could read.
      if (status === 101) throw badReply(status, 'a 101 Switching Protocols the client did not ask for');
      if (++this.interim > MAX_INTERIM) throw new SandcellRemoteError(status, 'reply-too-large', `the daemon's reply has over ${MAX_INTERIM} interim (1xx) replies before it`);
      // An interim reply (100 Continue and the like): the real one follows, in its own time.
      this.stopDeadline();
      return;
    }
    this.status = status;
    this.headers = headers;
    const connection = (headers.connection ?? '').toLowerCase();
    this.keep = m[1] === '1' ? !/\bclose\b/.test(connection) : /\bkeep-alive\b/.test(connection);
    if ((this.pending as Pending).method === 'HEAD' || status === 204 || status === 304) this.finish();
    else if (/\bchunked\b/i.test(headers['transfer-encoding'] ?? '')) {
      this.stage = 'chunk-size';
      this.line = '';
    } else if (headers['content-length'] !== undefined) {
      this.left = contentLength(status, headers['content-length']);
      this.admit(this.left);
      this.stage = 'length';
      if (this.left === 0) this.finish();
    } else {
      this.stage = 'to-end';
      this.keep = false;
    }
  }

  /** Refuses a body that would grow past the limit by `more` bytes, before they arrive when their count is announced. */
  private admit(more: number): void {
    const max = this.limits.maxBodyBytes;
    if (this.received + more > max) {
      throw new SandcellRemoteError(this.status, 'reply-too-large', `the daemon's reply has a body over ${max} bytes (connect()'s maxReplyBytes)`, 'maxReplyBytes');
    }
  }

  private keepBody(data: Buffer): void {
    this.admit(data.length);
    this.received += data.length;
    this.body.push(Buffer.copyBytesFrom(data));
  }

  /** The data of a body of known length, or of a chunk: returns what follows it. */
  private readCounted(data: Buffer): Buffer {
    const take = Math.min(this.left, data.length);
    this.body.push(Buffer.copyBytesFrom(data, 0, take));
    this.received += take;
    this.left -= take;
    if (this.left === 0) {
      if (this.stage === 'length') this.finish();
      else {
        this.stage = 'chunk-end';
        this.line = '';
      }
    }
    return data.subarray(take);
  }

  /** A line of a chunked body (a size, the CRLF after a chunk, a trailer): returns what follows it. */
  private readLine(data: Buffer): Buffer {
    const limit = this.stage === 'trailers' ? MAX_HEAD - this.headBytes : MAX_CHUNK_LINE;
    const nl = data.indexOf('\n');
    const line = this.line + (nl < 0 ? data : data.subarray(0, nl)).toString('latin1');
    if (line.length > limit) {
      if (this.stage === 'trailers') throw new SandcellRemoteError(this.status, 'reply-too-large', `the daemon's reply has a head and trailers over ${MAX_HEAD} bytes`);
      throw badReply(this.status, `a chunk size line over ${MAX_CHUNK_LINE} bytes`);
    }
    if (nl < 0) {
      this.line = line;
      return EMPTY;
    }
    this.line = '';
    const text = line.replace(/\r$/, '');
    if (this.stage === 'chunk-end') {
      if (text !== '') throw badReply(this.status, 'a chunk not followed by CRLF');
      this.stage = 'chunk-size';
    } else if (this.stage === 'trailers') {
      this.headBytes += line.length + 1;
      if (text === '') this.finish();
    } else {
      const size = chunkSize(this.status, text);
      this.admit(size);
      if (size === 0) this.stage = 'trailers';
      else {
        this.stage = 'chunk-data';
        this.left = size;
      }
    }
    return data.subarray(nl + 1);
  }

  private finish(): void {
    this.stage = 'done';
    this.stopDeadline();
    const p = this.pending as Pending;
    this.pending = null;
    const reply = { status: this.status, headers: this.headers, body: this.body.length === 1 ? (this.body[0] as Buffer) : Buffer.concat(this.body) };
    this.body = [];
    if (!this.keep) this.socket.destroy();
    this.release(this, this.keep, this.headers['keep-alive']);
    p.resolve(reply);
  }
}

/** node:tls's options for a daemon at `host`: a certificate names a host, never an address, so only a name is sent as the server's name unless one is given. */
export function tlsOptions(host: string, tls: TlsOptions): { ca?: TlsOptions['ca']; servername?: string } {
  const servername = tls.servername ?? (isIP(host) === 0 ? host : undefined);
  return { ...(tls.ca !== undefined ? { ca: tls.ca } : {}), ...(servername !== undefined ? { servername } : {}) };
}

/** Kept connections to one daemon, each carrying one request at a time. */
export class Http1Pool {
  private readonly idle: Connection[] = [];
  private readonly open = new Set<Connection>();
  private closed = false;
  /** The last keep-alive hint seen and what it leaves of an idle connection's life, in ms: a daemon sends the same on every reply. */
  private hint: string | undefined = undefined;
  private keepMs = Infinity;

  constructor(
    private readonly endpoint: Endpoint,
    private readonly limits: ReplyLimits,
  ) {}

  /**
   * Sends one request and resolves with its reply. Aborting the signal closes the connection
   * (the daemon takes a closed connection as its client gone) and rejects with `abortError`.
   * A kept connection the daemon closed while idle fails before any reply: the request is then
   * sent once more, on a new connection.
   */
  request(r: Http1Request, abortError: (s: AbortSignal) => Error): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const { signal } = r;
      if (signal?.aborted) {
        reject(abortError(signal));
        return;
      }
      let c: Connection;
      const onAbort = (): void => c.destroy(abortError(signal as AbortSignal));
      const attempt = (): void => {
        c = this.take();
        c.send(
          r,
          {
            method: r.method,
            resolve: (reply) => {
              signal?.removeEventListener('abort', onAbort);
              resolve(reply);
            },
            reject: (e: NodeJS.ErrnoException) => {
              // Another kept connection may be as stale: each is tried once, then a new one.
              if (c.uses > 1 && !c.answered && !signal?.aborted && !this.closed && (e.code === 'ECONNRESET' || e.code === 'EPIPE')) {
                attempt();
                return;
              }
              signal?.removeEventListener('abort', onAbort);
              reject(e);
            },
          },
          'authority' in this.endpoint ? this.endpoint.authority : 'sandcell',
        );
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      attempt();
    });
  }

  /** Closes every connection; requests in flight fail. */
  close(): void {
    this.closed = true;
    for (const c of [...this.open]) c.destroy(hangUp());
    this.idle.length = 0;
  }

  private take(): Connection {
    while (this.idle.length > 0) {
      const c = this.idle.pop() as Connection;
      if (c.socket.destroyed) continue;
      if (Date.now() >= c.staleAt) {
        this.open.delete(c);
        c.socket.destroy();
        continue;
      }
      c.socket.ref();
      return c;
    }
    const e = this.endpoint;
    let c: Connection | null = null;
    const buffer = (readBuffer ??= Buffer.allocUnsafe(READ_BUFFER_BYTES));
    // Returning false would pause the socket: a reply is always read as it comes.
    const onread = {
      buffer,
      callback: (n: number): boolean => {
        (c as Connection).read(buffer.subarray(0, n));
        return true;
      },
    };
    let socket: Socket;
    if ('socketPath' in e) socket = netConnect({ path: e.socketPath, onread });
    else if (e.tls === null) socket = netConnect({ host: e.host, port: e.port, onread });
    else {
      // node:tls's types know no `onread`: a TLS daemon's bytes come as `data` events, read the same way.
      socket = tlsConnect({ host: e.host, port: e.port, ...tlsOptions(e.host, e.tls) });
      socket.on('data', (d: Buffer) => (c as Connection).read(d));
    }
    c = new Connection(socket, this.limits, (conn, keep, hint) => this.release(conn, keep, hint));
    this.open.add(c);
    return c;
  }

  /**
   * A connection whose reply is whole goes back to the idle ones, unreferenced (an idle
   * connection keeps no process alive). It is not used again within a second of the daemon's
   * announced keep-alive timeout, as node:http's Agent drops it then, so that it is rarely found
   * closed; past that it waits for the daemon to close it (its end closes this side) or for
   * take() to drop it, rather than for a timer set and cleared on every request.
   */
  private release(c: Connection, keep: boolean, hint: string | undefined): void {
    const at = this.idle.indexOf(c);
    if (at >= 0) this.idle.splice(at, 1);
    if (hint !== this.hint) {
      this.hint = hint;
      const seconds = Number(/^timeout=(\d+)/.exec(hint ?? '')?.[1] ?? NaN);
      this.keepMs = Number.isFinite(seconds) ? seconds * 1000 - 1000 : Infinity;
    }
    if (!keep || this.closed || c.socket.destroyed || this.keepMs <= 0) {
      this.open.delete(c);
      c.socket.destroy();
      return;
    }
    c.socket.unref();
    c.staleAt = Date.now() + this.keepMs;
    this.idle.push(c);
  }
}
