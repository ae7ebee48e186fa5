/**
 * The egress proxy of a box with an allow list. It runs in the host's Node process; its listening
 * socket was made in the box's network namespace (`127.0.0.1:PROXY_PORT` there), so the box
 * reaches it over its own loopback and nothing else leaves the box. One port speaks HTTP (CONNECT,
 * and plain requests in absolute form) and SOCKS5 (told apart by the first byte). The proxy
 * resolves names itself, checks the name and the address it will connect to against the list,
 * and connects to exactly that address: what the box asked for is never resolved twice.
 * Connections at once and bytes each way are bounded; every tunnel is copied with backpressure,
 * so a box can hold at most its connection limit of host sockets and a few buffers each.
 */
import net, { isIP } from 'node:net';

import { normalizeHost, type AllowList } from './allow.js';
import { endCarrying, type Carried } from './carried.js';

/** Where the proxy listens inside the box. */
export const PROXY_PORT = 3128;
/** A request's head (HTTP) or greeting and request (SOCKS5) must fit in this, and arrive within HEAD_TIMEOUT_MS. */
const MAX_HEAD_BYTES = 16 * 1024;
const HEAD_TIMEOUT_MS = 10_000;
const CONNECT_TIMEOUT_MS = 10_000;
/** Connections recorded in the result; past it they are only counted. */
const MAX_RECORDED = 1000;

export interface EgressLimits {
  /** Connections open at once. */
  connections: number;
  /** Bytes from the box to its destinations, all connections together. */
  bytesOut: number;
  /** Bytes from the destinations to the box. */
  bytesIn: number;
}

/** One connection the box asked for. */
export interface NetworkConnection {
  /** The destination as the program named it, `host:port`. */
  to: string;
  allowed: boolean;
  /** The address connected to (allowed connections). */
  address?: string;
  /** Why it was refused or cut short. */
  reason?: string;
  /** Bytes the box received. */
  bytesIn: number;
  /** Bytes the box sent. */
  bytesOut: number;
}

export interface NetworkReport {
  connections: NetworkConnection[];
  /** Connections past the first 1,000, not recorded. */
  unrecorded: number;
}

export type Lookup = (host: string) => Promise<string[]>;

// dns/promises is loaded by the first name a proxy resolves: most runs have no proxy at all.
const systemLookup: Lookup = async (host) => {
  const { lookup } = await import('node:dns/promises');
  return (await lookup(host, { all: true, verbatim: true })).map((a) => a.address);
};

export class EgressProxy {
  private readonly server: net.Server;
  private readonly open = new Set<net.Socket>();
  private readonly carried = new Set<Carried>();
  private readonly records: NetworkConnection[] = [];
  private unrecorded = 0;
  private bytesIn = 0;
  private bytesOut = 0;
  private active = 0;
  private closed = false;

  constructor(
    fd: number,
    private readonly allow: AllowList,
    private readonly limits: EgressLimits,
    private readonly lookup: Lookup = systemLookup,
  ) {
    this.server = net.createServer({ allowHalfOpen: true }, (socket) => this.accept(socket));
    // A listen error leaves the box without a way out, which is what it asked for minus the list.
    this.server.on('error', () => undefined);
    this.server.listen({ fd });
  }

  /**
   * Stops listening and ends every connection; the box's sockets are released with them. A
   * connection that reached its destination first hands it what the box sent before it ended
   * (a program that writes and exits at once leaves the end of it in the kernel's buffers), for
   * up to 0.5 s (endCarrying); any other is cut.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const server = new Promise<void>((resolve) => this.server.close(() => resolve()));
    await endCarrying(this.open, this.carried);
    await server;
  }

  report(): NetworkReport {
    return { connections: this.records.map((r) => ({ ...r })), unrecorded: this.unrecorded };
  }

  private record(r: NetworkConnection): NetworkConnection {
    if (this.records.length < MAX_RECORDED) this.records.push(r);
    else this.unrecorded++;
    return r;
  }

  private track(s: net.Socket): void {
    this.open.add(s);
    s.on('close', () => this.open.delete(s));
    s.on('error', () => undefined);
    if (this.closed) s.destroy();
  }

  private accept(client: net.Socket): void {
    this.track(client);
    if (this.active >= this.limits.connections) {
      this.record({ to: '?', allowed: false, reason: `more than ${this.limits.connections} connections at once`, bytesIn: 0, bytesOut: 0 });
      client.destroy();
      return;
    }
    this.active++;
    client.once('close', () => this.active--);
    client.setTimeout(HEAD_TIMEOUT_MS, () => client.destroy());
    let head = Buffer.alloc(0);
    let taken = false;
    const socks = { greeted: false };
    const onData = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk]);
      const done = head[0] === 5 ? this.socksStep(client, head, socks) : this.httpStep(client, head);
      if (done === 'more' && head.length <= MAX_HEAD_BYTES) return;
      taken = true;
      client.off('data', onData);
      client.pause();
      if (done === 'more') client.destroy();
    };
    client.on('data', onData);
    client.on('end', () => {
      if (!taken) client.destroy();
    });
  }

  /** An HTTP request head: CONNECT host:port, or a request for an absolute http:// URL. */
  private httpStep(client: net.Socket, buf: Buffer): 'more' | 'taken' {
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0) return 'more';
    const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
    const rest = buf.subarray(end + 4);
    const [method, target, version] = (lines[0] ?? '').split(' ');
    const refuse = (status: string, message: string): void => {
      client.end(`HTTP/1.1 ${status}\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(message) + 1}\r\nConnection: close\r\n\r\n${message}\n`);
    };
    if (!method || !target || !version?.startsWith('HTTP/')) {
      refuse('400 Bad Request', 'sandcell proxy: not an HTTP request');
      return 'taken';
    }
    if (method === 'CONNECT') {
      const dest = splitHostPort(target);
      if (!dest) {
        refuse('400 Bad Request', 'sandcell proxy: CONNECT needs host:port');
        return 'taken';
      }
      void this.open2(client, dest.host, dest.port, rest, {
        ok: () => client.write('HTTP/1.1 200 Connection Established\r\n\r\n'),
        refused: (why) => refuse('403 Forbidden', `sandcell proxy: ${why}`),
        failed: (why) => refuse('502 Bad Gateway', `sandcell proxy: ${why}`),
      });
      return 'taken';
    }
    let url: URL;
    try {
      url = new URL(target);
    } catch {
      refuse('400 Bad Request', 'sandcell proxy: a request through the proxy names an absolute http:// URL');
      return 'taken';
    }
    if (url.protocol !== 'http:') {
      refuse('400 Bad Request', `sandcell proxy: ${url.protocol} is not proxied in plain form (use CONNECT)`);
      return 'taken';
    }
    // One request per connection: the upstream connection was checked for this destination only.
    const headers = lines
      .slice(1)
      .filter((l) => !/^(proxy-connection|proxy-authorization|connection|keep-alive)\s*:/i.test(l));
    const forwarded = Buffer.concat([
      Buffer.from(`${method} ${url.pathname}${url.search} ${version}\r\n${[...headers, 'Connection: close'].join('\r\n')}\r\n\r\n`, 'latin1'),
      rest,
    ]);
    void this.open2(client, url.hostname, url.port === '' ? 80 : Number(url.port), forwarded, {
      ok: () => undefined,
      refused: (why) => refuse('403 Forbidden', `sandcell proxy: ${why}`),
      failed: (why) => refuse('502 Bad Gateway', `sandcell proxy: ${why}`),
    });
    return 'taken';
  }

  /** SOCKS5 without authentication, CONNECT only. */
  private socksStep(client: net.Socket, buf: Buffer, state: { greeted: boolean }): 'more' | 'taken' {
    if (buf.length < 2) return 'more';
    const methods = buf[1] as number;
    const greeting = 2 + methods;
    if (buf.length < greeting) return 'more';
    if (!buf.subarray(2, greeting).includes(0)) {
      client.end(Buffer.from([5, 0xff]));
      return 'taken';
    }
    if (!state.greeted) {
      state.greeted = true;
      client.write(Buffer.from([5, 0]));
    }
    const req = buf.subarray(greeting);
    if (req.length < 5) return 'more';
    const atyp = req[3];
    let host: string;
    let at: number;
    if (atyp === 1) {
      if (req.length < 10) return 'more';
      host = [...req.subarray(4, 8)].join('.');
      at = 8;
    } else if (atyp === 3) {
      const len = req[4] as number;
      if (req.length < 5 + len + 2) return 'more';
      host = req.subarray(5, 5 + len).toString('latin1');
      at = 5 + len;
    } else if (atyp === 4) {
      if (req.length < 22) return 'more';
      const parts: string[] = [];
      for (let i = 0; i < 8; i++) parts.push(req.readUInt16BE(4 + 2 * i).toString(16));
      host = parts.join(':');
      at = 20;
    } else {
      client.end(socksReply(8));
      return 'taken';
    }
    const port = req.readUInt16BE(at);
    const rest = req.subarray(at + 2);
    if (req[0] !== 5 || req[1] !== 1) {
      client.end(socksReply(7));
      return 'taken';
    }
    void this.open2(client, host, port, rest, {
      ok: () => client.write(socksReply(0)),
      refused: () => client.end(socksReply(2)),
      failed: () => client.end(socksReply(5)),
    });
    return 'taken';
  }

  /**
   * The check and the connection: the name (or address) must be on the list, and the address
   * connected to must be one the list lets it reach. Then bytes are copied both ways, counted.
   */
  private async open2(
    client: net.Socket,
    rawHost: string,
    port: number,
    first: Buffer,
    answer: { ok: () => void; refused: (why: string) => void; failed: (why: string) => void },
  ): Promise<void> {
    const host = normalizeHost(rawHost);
    const to = `${isIP(host) === 6 ? `[${host}]` : host}:${port}`;
    const rec = this.record({ to, allowed: false, bytesIn: 0, bytesOut: 0 });
    const refuse = (why: string): void => {
      rec.reason = why;
      answer.refused(why);
    };
    if (!Number.isInteger(port) || port < 1 || port > 65535) return refuse(`${to}: bad port`);
    if (!this.allow.admits(host, port)) return refuse(`${to} is not on the allow list`);
    if (this.bytesIn >= this.limits.bytesIn || this.bytesOut >= this.limits.bytesOut) return refuse('the byte limit of the box is spent');
    let addresses: string[];
    try {
      addresses = isIP(host) !== 0 ? [host] : await withTimeout(this.lookup(host), CONNECT_TIMEOUT_MS);
    } catch (e) {
      rec.reason = `${host} does not resolve (${(e as NodeJS.ErrnoException).code ?? 'error'})`;
      return answer.failed(rec.reason);
    }
    const address = addresses.find((a) => this.allow.reaches(a, port));
    if (address === undefined) return refuse(`${to} resolves to ${addresses.join(', ') || 'nothing'}, which the allow list does not reach`);
    if (client.destroyed || this.closed) {
      rec.reason = 'the box closed the connection first';
      return;
    }
    rec.allowed = true;
    rec.address = address;
    const upstream = net.connect({ host: address, port, allowHalfOpen: true });
    this.track(upstream);
    upstream.setTimeout(CONNECT_TIMEOUT_MS, () => upstream.destroy(new Error('connect timed out')));
    let connected = false;
    // Until connected, the box's going ends the attempt; after, each side's end is passed on
    // (copy) and only a side that failed takes the other with it.
    client.once('close', (failed) => (failed || !connected) && upstream.destroy());
    upstream.once('error', (e) => {
      rec.reason ??= e.message;
      if (connected) client.destroy();
      else answer.failed(`${to}: ${e.message}`);
    });
    upstream.once('connect', () => {
      connected = true;
      const pair = { host: upstream, box: client };
      this.carried.add(pair);
      upstream.once('close', () => this.carried.delete(pair));
      upstream.setTimeout(0);
      client.setTimeout(0);
      answer.ok();
      if (first.length > 0) {
        if (!this.count(rec, 'out', first.length)) {
          client.destroy();
          return;
        }
        upstream.write(first);
      }
      this.copy(client, upstream, rec, 'out');
      this.copy(upstream, client, rec, 'in');
      client.resume();
    });
  }

  /** Copies `from` into `to` with backpressure, counting against the box's byte limit. */
  private copy(from: net.Socket, to: net.Socket, rec: NetworkConnection, dir: 'in' | 'out'): void {
    from.on('data', (chunk: Buffer) => {
      if (!this.count(rec, dir, chunk.length)) {
        from.destroy();
        to.destroy();
        return;
      }
      if (!to.write(chunk)) {
        from.pause();
        to.once('drain', () => from.resume());
      }
    });
    from.on('end', () => to.end());
    // An ordinary close comes after both directions ended; a destroy then would drop what `to`
    // still has queued (the end of a reply).
    from.on('close', (failed) => failed && to.destroy());
  }

  private count(rec: NetworkConnection, dir: 'in' | 'out', n: number): boolean {
    if (dir === 'in') {
      this.bytesIn += n;
      rec.bytesIn += n;
      if (this.bytesIn <= this.limits.bytesIn) return true;
    } else {
      this.bytesOut += n;
      rec.bytesOut += n;
      if (this.bytesOut <= this.limits.bytesOut) return true;
    }
    rec.reason = `the box's limit of bytes ${dir} was reached`;
    return false;
  }
}

function splitHostPort(target: string): { host: string; port: number } | null {
  const m = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(target);
  return m ? { host: m[1] as string, port: Number(m[2]) } : null;
}

function socksReply(code: number): Buffer {
  return Buffer.from([5, code, 0, 1, 0, 0, 0, 0, 0, 0]);
}

async function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(Object.assign(new Error('timed out'), { code: 'ETIMEOUT' })), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}
