/**
 * What a box's network could leave in the Node process, for the leak checks. A box's network
 * namespace outlives the box only while something holds it: a process in it (the tests check that
 * no child is left), a mount (sandcell mounts none of a box's), or an fd: a namespace fd or a
 * socket made in it, which is how the proxy's listener and a published port's connections are
 * made. So the check is that this process holds exactly the sockets and namespace fds it held
 * before, and the same TCP handles.
 */
import { readdirSync, readlinkSync } from 'node:fs';

/** This process's fds that are sockets or namespaces (`socket:[inode]`, `net:[inode]`), sorted. */
export function socketsAndNamespaces(): string[] {
  const out: string[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      if (/^(socket|net):\[/.test(target)) out.push(target);
    } catch {
      // the fd of the listing itself, closed meanwhile
    }
  }
  return out.sort();
}

/** Node's own count of its TCP servers and sockets (proxies, published ports, carried connections). */
export function tcpHandles(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'TCPServerWrap' || r === 'TCPSocketWrap').length;
}
