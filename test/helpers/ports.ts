/**
 * A TCP port on 127.0.0.1 for a server a test starts by its number (a published port, a TLS
 * terminator's accept). Taken below the kernel's ephemeral range: a port the kernel handed out
 * by `listen(0)` and gave back can be handed out again at once, to another suite's listener or
 * as the local port of any outgoing connection, and the server the test starts then fails with
 * EADDRINUSE. Ports the kernel never picks by itself can only be taken by a caller naming them.
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';

const FALLBACK_EPHEMERAL_LOW = 32768;
const LOWEST = 20000;

function ephemeralLow(): number {
  const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
  return Number.isInteger(low) && low > LOWEST + 1000 ? low : FALLBACK_EPHEMERAL_LOW;
}

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** A port below the ephemeral range that nothing on 127.0.0.1 holds now. */
export async function namedPort(): Promise<number> {
  const high = ephemeralLow();
  for (let i = 0; i < 50; i++) {
    const port = LOWEST + Math.floor(Math.random() * (high - LOWEST));
    if (await bindable(port)) return port;
  }
  throw new Error(`no free port on 127.0.0.1 between ${LOWEST} and ${high} in 50 tries`);
}
