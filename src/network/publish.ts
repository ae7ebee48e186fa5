/**
 * Ports of a box published on the host: the host side listens where it is told (127.0.0.1
 * unless another address is given) and each connection it accepts is carried to the box's port
 * over a socket made in the box's network namespace, so the box needs no route to the host and
 * the host listens nowhere it was not asked to. Everything closes with the box.
 */
import net, { isIP } from 'node:net';

import { SandboxSetupError } from '../errors.js';
import type { NativeBox } from '../native.js';
import { endCarrying, type Carried } from './carried.js';

export interface ResolvedPublish {
  /** The box's port, on its 127.0.0.1. */
  box: number;
  /** The host address and port to listen on (port 0: any free one). */
  hostAddress: string;
  hostPort: number;
}

/** A published port as it listens: the host side's address and port. */
export interface PublishedAddress {
  box: number;
  address: string;
  port: number;
}

export const PUBLISH_HOST_ERROR = "must be 'address:port' with an IP address (127.0.0.1:18000, [::1]:18000) or a port number";

/** Where a published port listens on the host (`host` as given: a port, 'address:port', or nothing), or what is wrong with it. */
export function publishHost(host: string | number | undefined, boxPort: number): { hostAddress: string; hostPort: number } | string {
  if (host === undefined) return { hostAddress: '127.0.0.1', hostPort: boxPort };
  if (typeof host === 'number') return { hostAddress: '127.0.0.1', hostPort: host };
  const m = /^(\[[0-9a-fA-F:.]+\]|[0-9.]+):(\d{1,5})$/.exec(host);
  const address = m ? (m[1] as string).replace(/^\[|\]$/g, '') : '';
  const hostPort = m ? Number(m[2]) : NaN;
  if (!m || isIP(address) === 0 || hostPort > 65535) return PUBLISH_HOST_ERROR;
  return { hostAddress: address, hostPort };
}

/** Connections carried at once per published port: each holds two host sockets. */
const MAX_CONNECTIONS = 256;

export class PublishedPorts {
  private readonly open = new Set<net.Socket>();
  private readonly carried = new Set<Carried>();
  private closed = false;

  private constructor(
    private readonly servers: net.Server[],
    readonly addresses: PublishedAddress[],
  ) {}

  /** Listens on every host address (or on none: the first that fails closes the others and throws). */
  static async open(box: NativeBox, ports: readonly ResolvedPublish[]): Promise<PublishedPorts> {
    const servers: net.Server[] = [];
    const addresses: PublishedAddress[] = [];
    let self: PublishedPorts | null = null;
    let at = 0;
    try {
      for (const [i, p] of ports.entries()) {
        at = i;
        const server = net.createServer({ allowHalfOpen: true }, (c) => self?.carry(box, p.box, c));
        server.maxConnections = MAX_CONNECTIONS;
        servers.push(server);
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen({ host: p.hostAddress, port: p.hostPort, exclusive: true }, () => {
            server.off('error', reject);
            resolve();
          });
        });
        server.on('error', () => undefined);
        const a = server.address() as net.AddressInfo;
        addresses.push({ box: p.box, address: a.address, port: a.port });
      }
    } catch (e) {
      await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
      const err = e as NodeJS.ErrnoException;
      const p = ports[at] as ResolvedPublish;
      throw new SandboxSetupError(`network.publish[${at}]`, -(err.errno ?? 0), err.code ?? 'EIO', `listening on ${p.hostAddress}:${p.hostPort}: ${err.message}`);
    }
    self = new PublishedPorts(servers, addresses);
    return self;
  }

  /**
   * Stops listening, and lets each carried connection hand its host peer what the box sent before
   * it ended, then closes it. A program that answers and exits at once leaves its answer in the
   * kernel's buffers (or its connect not yet seen here) when the box ends: cut then, the host
   * peer read nothing. A connection goes once its host side has written all of it and its end,
   * or after 0.5 s (a host peer that does not read): endCarrying.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const servers = Promise.all(this.servers.map((s) => new Promise((resolve) => s.close(resolve))));
    await endCarrying(this.open, this.carried);
    await servers;
  }

  private track(s: net.Socket): void {
    this.open.add(s);
    s.on('close', () => this.open.delete(s));
    s.on('error', () => s.destroy());
  }

  /** One connection from the host, carried to the box's port in its own namespace. */
  private carry(box: NativeBox, port: number, client: net.Socket): void {
    this.track(client);
    if (this.closed) return void client.destroy();
    let fd: number;
    try {
      fd = box.netSocket(false, 1);
    } catch {
      client.destroy();
      return;
    }
    const inner = new net.Socket({ fd, readable: true, writable: true, allowHalfOpen: true });
    this.track(inner);
    const pair = { host: client, box: inner };
    this.carried.add(pair);
    inner.connect(port, '127.0.0.1');
    // Each side's end is passed on to the other (pipe), and a socket closes once both its
    // directions are done, so the last bytes either side sent are written before its peer goes.
    // A side that fails (refused, reset) takes the other with it.
    client.pipe(inner);
    inner.pipe(client);
    const closed = (other: net.Socket) => (failed: boolean): void => {
      if (failed) other.destroy();
      if (client.destroyed && inner.destroyed) this.carried.delete(pair);
    };
    client.on('close', closed(inner));
    inner.on('close', closed(client));
  }
}
