/**
 * The client's HTTP/1.1: a request written by hand on a kept connection, the reply read by hand.
 * On a VM of 2 cores node:http's client (a ClientRequest, an Agent handing out the socket a tick
 * later, an IncomingMessage stream) cost ~0.5 ms of wall time per request over this, which is
 * most of what a run through the daemon adds to a local run beyond the two processes' wake-ups.
 * The daemon is the only server it has to understand, but a proxy may stand in front of a TCP
 * daemon, so every reply framing HTTP/1.1 allows is read: content-length, chunked, and to the
 * end of the connection.
 */
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

export interface Reply {
  status: number;
  /** Header names lowercased; a repeated header's values joined with `, `. */
  headers: Record<string, string>;
  body: Buffer;
}

/** A Unix socket, or a TCP address and the `host` header naming it (`authority`: `name:port`, `[v6]:port`). */
export type Endpoint = { socketPath: string } | { host: string; port: number; tls: boolean; authority: string };

export interface Http1Request {
  method: string;
  /** Already encoded. */
  path: string;
  headers: Record<string, string>;
  body?: Buffer | string;
  signal?: AbortSignal;
}

/** Largest head (status line and headers) of a reply: the daemon's are a few hundred bytes. */
const MAX_HEAD = 64 * 1024;

/** A connection closed before its reply was whole: node:http's error for it, so callers see the same. */
function hangUp(): NodeJS.ErrnoException {
  const e: NodeJS.ErrnoException = new Error('socket hang up');
  e.code = 'ECONNRESET';
  return e;
}

interface Pending {
  method: string;
  resolve: (r: Reply) => void;
  reject: (e: Error) => void;
}

/** One connection and the reply it is reading, if any. */
class Connection {
  /** Requests it has carried: a reused connection may have been closed by the server while idle. */
  uses = 0;
  /** Bytes of the current reply have arrived (so the request reached the server). */
  answered = false;
  idleTimer: NodeJS.Timeout | null = null;
  private pending: Pending | null = null;
  private head: Buffer | null = Buffer.alloc(0);
  private status = 0;
  private headers: Record<string, string> = {};
  private keep = false;
  /** Bytes of body still expected (content-length or the current chunk); -1 until the end of the connection. */
  private want = 0;
  private chunked = false;
  /** In a chunked body: the text of the next chunk's size line (or the CRLF after a chunk) gathered so far. */
  private line: string | null = null;
  private body: Buffer[] = [];
  private done = false;

  constructor(
    readonly socket: Socket,
    private readonly release: (c: Connection, keep: boolean, hint: string | undefined) => void,
  ) {
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => this.read(d));
    socket.on('end', () => this.closed(null));
    socket.on('error', (e) => this.closed(e));
    socket.on('close', () => this.closed(null));
  }

  send(r: Http1Request, pending: Pending, host: string): void {
    this.uses++;
    this.answered = false;
    this.pending = pending;
    this.head = Buffer.alloc(0);
    this.headers = {};
    this.body = [];
    this.done = false;
    this.line = null;
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
    this.socket.destroy();
    p?.reject(e);
  }

  private closed(e: Error | null): void {
    const p = this.pending;
    if (p === null) {
      this.release(this, false, undefined);
      return;
    }
    // A reply read to the end of the connection is whole once the connection ends.
    if (e === null && this.head === null && this.want === -1) {
      this.finish();
      return;
    }
    this.pending = null;
    this.socket.destroy();
    this.release(this, false, undefined);
    p.reject(e ?? hangUp());
  }

  private read(d: Buffer): void {
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
    }
  }

  private consume(d: Buffer): void {
    let data = d;
    while (data.length > 0 && !this.done) {
      if (this.head !== null) {
        const all = this.head.length === 0 ? data : Buffer.concat([this.head, data]);
        const end = all.indexOf('\r\n\r\n');
        if (end < 0) {
          if (all.length > MAX_HEAD) throw new Error(`the daemon's reply has a head over ${MAX_HEAD} bytes`);
          this.head = all;
          return;
        }
        data = all.subarray(end + 4);
        this.parseHead(all.subarray(0, end).toString('latin1'));
        continue;
      }
      data = this.chunked ? this.chunk(data) : this.plain(data);
    }
    if (this.done && data.length > 0) throw new Error('the daemon sent bytes after its reply');
  }

  private parseHead(text: string): void {
    const lines = text.split('\r\n');
    const m = /^HTTP\/1\.([01]) (\d{3})(?: |$)/.exec(lines[0] as string);
    if (!m) throw new Error(`not an HTTP/1.x reply: ${JSON.stringify((lines[0] as string).slice(0, 80))}`);
    const status = Number(m[2]);
    const headers: Record<string, string> = {};
    for (const l of lines.slice(1)) {
      const at = l.indexOf(':');
      if (at <= 0) throw new Error(`a malformed header line in the daemon's reply: ${JSON.stringify(l.slice(0, 80))}`);
      const name = l.slice(0, at).trim().toLowerCase();
      const value = l.slice(at + 1).trim();
      headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
    }
    // An interim reply (100 Continue and the like): the real one follows.
    if (status >= 100 && status < 200) {
      this.head = Buffer.alloc(0);
      return;
    }
    this.head = null;
    this.status = status;
    this.headers = headers;
    const connection = (headers.connection ?? '').toLowerCase();
    this.keep = m[1] === '1' ? !/\bclose\b/.test(connection) : /\bkeep-alive\b/.test(connection);
    this.chunked = /\bchunked\b/i.test(headers['transfer-encoding'] ?? '');
    if ((this.pending as Pending).method === 'HEAD' || status === 204 || status === 304) this.want = 0;
    else if (this.chunked) this.line = '';
    else if (headers['content-length'] !== undefined) {
      this.want = Number(headers['content-length']);
      if (!Number.isSafeInteger(this.want) || this.want < 0) throw new Error(`a bad content-length in the daemon's reply: ${headers['content-length']}`);
    } else {
      this.want = -1;
      this.keep = false;
    }
    if (this.want === 0 && !this.chunked) this.finish();
  }

  /** A body framed by content-length (or by the connection's end): returns what follows it. */
  private plain(data: Buffer): Buffer {
    if (this.want === -1) {
      this.body.push(data);
      return data.subarray(data.length);
    }
    const take = Math.min(this.want, data.length);
    this.body.push(data.subarray(0, take));
    this.want -= take;
    if (this.want === 0) this.finish();
    return data.subarray(take);
  }

  /** A chunked body: size lines, chunks, the CRLF after each, a zero size, trailers, a blank line. */
  private chunk(data: Buffer): Buffer {
    if (this.line !== null) {
      const nl = data.indexOf('\n');
      if (nl < 0) {
        this.line += data.toString('latin1');
        if (this.line.length > MAX_HEAD) throw new Error('a chunk size line over the limit');
        return data.subarray(data.length);
      }
      const line = (this.line + data.subarray(0, nl).toString('latin1')).replace(/\r$/, '');
      const rest = data.subarray(nl + 1);
      if (this.want === -2) {
        // After the last chunk: trailers until a blank line.
        this.line = '';
        if (line === '') this.finish();
        return rest;
      }
      if (this.want === -3) {
        // The CRLF that ends a chunk's data.
        if (line !== '') throw new Error('a chunk not followed by CRLF');
        this.line = '';
        this.want = 0;
        return rest;
      }
      const size = Number.parseInt(line.split(';')[0] as string, 16);
      if (!Number.isSafeInteger(size) || size < 0 || !/^[0-9a-f]+$/i.test((line.split(';')[0] as string).trim())) throw new Error(`a bad chunk size: ${JSON.stringify(line.slice(0, 40))}`);
      this.line = size === 0 ? '' : null;
      this.want = size === 0 ? -2 : size;
      return rest;
    }
    const take = Math.min(this.want, data.length);
    this.body.push(data.subarray(0, take));
    this.want -= take;
    if (this.want === 0) {
      this.want = -3;
      this.line = '';
    }
    return data.subarray(take);
  }

  private finish(): void {
    this.done = true;
    const p = this.pending as Pending;
    this.pending = null;
    const reply = { status: this.status, headers: this.headers, body: this.body.length === 1 ? (this.body[0] as Buffer) : Buffer.concat(this.body) };
    this.body = [];
    if (!this.keep) this.socket.destroy();
    this.release(this, this.keep, this.headers['keep-alive']);
    p.resolve(reply);
  }
}

/** Kept connections to one daemon, each carrying one request at a time. */
export class Http1Pool {
  private readonly idle: Connection[] = [];
  private readonly open = new Set<Connection>();
  private closed = false;

  constructor(private readonly endpoint: Endpoint) {}

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
      if (c.idleTimer) clearTimeout(c.idleTimer);
      c.idleTimer = null;
      if (c.socket.destroyed) continue;
      c.socket.ref();
      return c;
    }
    const e = this.endpoint;
    const socket =
      'socketPath' in e
        ? netConnect(e.socketPath)
        : e.tls
          ? // A certificate names a host, never an address: only a name is sent as the server's name.
            tlsConnect({ host: e.host, port: e.port, ...(isIP(e.host) === 0 ? { servername: e.host } : {}) })
          : netConnect({ host: e.host, port: e.port });
    const c = new Connection(socket, (conn, keep, hint) => this.release(conn, keep, hint));
    this.open.add(c);
    return c;
  }

  /**
   * A connection whose reply is whole goes back to the idle ones, unreferenced (an idle
   * connection keeps no process alive), and is dropped a second before the daemon's announced
   * keep-alive timeout, as node:http's Agent does, so that it is rarely found closed.
   */
  private release(c: Connection, keep: boolean, hint: string | undefined): void {
    const at = this.idle.indexOf(c);
    if (at >= 0) this.idle.splice(at, 1);
    if (c.idleTimer) clearTimeout(c.idleTimer);
    c.idleTimer = null;
    const seconds = Number(/^timeout=(\d+)/.exec(hint ?? '')?.[1] ?? NaN);
    const keepMs = Number.isFinite(seconds) ? seconds * 1000 - 1000 : null;
    if (!keep || this.closed || c.socket.destroyed || keepMs === 0) {
      this.open.delete(c);
      c.socket.destroy();
      return;
    }
    c.socket.unref();
    if (keepMs !== null) {
      c.idleTimer = setTimeout(() => c.destroy(hangUp()), keepMs);
      c.idleTimer.unref();
    }
    this.idle.push(c);
  }
}
