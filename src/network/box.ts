/**
 * The host side of a box's network: its egress proxy, its published ports and its place on a
 * private network, opened before the program starts and closed when the box ends (the sockets
 * made in the box's namespace keep that namespace alive: nothing of it may outlive the box).
 */
import { constants as osConstants } from 'node:os';

import { SandboxSetupError } from '../errors.js';
import type { NativeBox, NativeSpawned } from '../native.js';
import type { ResolvedOptions } from '../options.js';
import { claim, joinNetwork, prepareMembership, type Membership, type PreparedMembership } from './private.js';
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
    private readonly membership: Membership | null,
  ) {}

  /** Whether the options ask for anything on the host side. */
  static wanted(o: ResolvedOptions): boolean {
    return o.egress !== null || o.publish.length > 0 || o.privateNetwork !== null;
  }

  /**
   * Opens the proxy and the published ports, and puts the box on its private network, for a box
   * that has not started its program yet. A box built ahead was put on it then (`prepare`).
   */
  static async open(native: Pick<NativeSpawned, 'box' | 'pid'>, o: ResolvedOptions, prepared: PreparedMembership | null = null): Promise<BoxNetwork> {
    const membership =
      prepared !== null ? claim(prepared, o.hostname) : o.privateNetwork !== null ? await joinNetwork(o.privateNetwork, o.hostname, native) : null;
    let proxy: EgressProxy | null = null;
    try {
      proxy = o.egress ? new EgressProxy(boxSocket(native.box), o.egress.allow, o.egress.limits) : null;
      const ports = o.publish.length > 0 ? await PublishedPorts.open(native.box, o.publish) : null;
      return new BoxNetwork(proxy, ports, membership);
    } catch (e) {
      await proxy?.close();
      membership?.leave();
      throw e;
    }
  }

  /**
   * For a box built ahead of its run: its place on its private network, made now (the veth pair
   * is the costly part of a network's setup), so that the run only claims it.
   */
  static prepare(native: Pick<NativeSpawned, 'box' | 'pid'>, network: string | null): Promise<PreparedMembership | null> {
    return network === null ? Promise.resolve(null) : prepareMembership(network, native);
  }

  /** The box's address on its private network (null: it is on none). */
  get address(): string | null {
    return this.membership?.address ?? null;
  }

  /** Where the published ports listen on the host. */
  get published(): PublishedAddress[] {
    return this.ports?.addresses ?? [];
  }

  async close(): Promise<void> {
    await Promise.all([this.proxy?.close(), this.ports?.close()]);
    this.membership?.leave();
  }

  /** The egress proxy's connections (undefined: the box had no allow list). */
  report(): NetworkReport | undefined {
    return this.proxy?.report();
  }
}
