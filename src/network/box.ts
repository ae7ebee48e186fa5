/**
 * The host side of a box's network: its egress proxy and its published ports, opened before
 * the program starts and closed when the box ends (the sockets made in the box's namespace keep
 * that namespace alive: nothing of it may outlive the box).
 */
import { constants as osConstants } from 'node:os';

import { SandboxSetupError } from '../errors.js';
import type { NativeBox } from '../native.js';
import type { ResolvedOptions } from '../options.js';
import { EgressProxy, PROXY_PORT, type NetworkReport } from './proxy.js';
import { PublishedPorts, type PublishedAddress } from './publish.js';

/** The proxy's listener in the box; a failure is the box's setup failing. */
function boxSocket(box: NativeBox): number {
  try {
    return box.netSocket(true, PROXY_PORT);
  } catch (e) {
    const errno = (e as { errno?: number }).errno ?? 0;
    const code = Object.entries(osConstants.errno).find(([, n]) => n === errno)?.[0] ?? 'EIO';
    throw new SandboxSetupError('egress proxy socket in the box', errno, code, (e as Error).message);
  }
}

export class BoxNetwork {
  private constructor(
    private readonly proxy: EgressProxy | null,
    private readonly ports: PublishedPorts | null,
  ) {}

  /** Whether the options ask for anything on the host side. */
  static wanted(o: ResolvedOptions): boolean {
    return o.egress !== null || o.publish.length > 0;
  }

  /** Opens the proxy and the published ports for a box that has not started its program yet. */
  static async open(box: NativeBox, o: ResolvedOptions): Promise<BoxNetwork> {
    const proxy = o.egress ? new EgressProxy(boxSocket(box), o.egress.allow, o.egress.limits) : null;
    try {
      const ports = o.publish.length > 0 ? await PublishedPorts.open(box, o.publish) : null;
      return new BoxNetwork(proxy, ports);
    } catch (e) {
      await proxy?.close();
      throw e;
    }
  }

  /** Where the published ports listen on the host. */
  get published(): PublishedAddress[] {
    return this.ports?.addresses ?? [];
  }

  async close(): Promise<void> {
    await Promise.all([this.proxy?.close(), this.ports?.close()]);
  }

  /** The egress proxy's connections (undefined: the box had no allow list). */
  report(): NetworkReport | undefined {
    return this.proxy?.report();
  }
}
