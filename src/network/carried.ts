/**
 * A connection carried between the host and a box (a published port's, the egress proxy's), and
 * how it ends with the box: what the box sent before it ended is still in the kernel's buffers,
 * or on its way through Node, when the box ends, and a connection cut then loses it.
 */
import type net from 'node:net';

export interface Carried {
  /** The socket to the host's peer (a published port's client, the proxy's upstream). */
  host: net.Socket;
  /** The socket the box's side comes through (made in its namespace, or accepted from it). */
  box: net.Socket;
}

/** How long a carried connection may take, once its box has ended, to hand its host peer what the box sent. */
const DRAIN_MS = 500;

/**
 * Ends `c` after its host side has written what its box side read, up to the box side's end (the
 * host side's 'finish'), or after DRAIN_MS (a host peer that does not read), whichever is first.
 */
function drainCarried(c: Carried): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      c.box.destroy();
      c.host.destroy();
      resolve();
    };
    const timer = setTimeout(done, DRAIN_MS);
    if (c.host.destroyed || c.host.writableFinished) return done();
    c.host.once('finish', done);
    c.host.once('close', done);
  });
}

/**
 * The end of a box's host-side connections: each socket of `open` that no carried connection
 * holds is cut (a connection still being set up, a request not yet answered), and each carried
 * one drained.
 */
export async function endCarrying(open: Iterable<net.Socket>, carried: Iterable<Carried>): Promise<void> {
  const pairs = [...carried];
  const carrying = new Set(pairs.flatMap((c) => [c.host, c.box]));
  for (const s of open) if (!carrying.has(s)) s.destroy();
  await Promise.all(pairs.map(drainCarried));
}
