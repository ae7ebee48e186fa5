/**
 * Who is at the other end of a Unix socket, for a service that puts sandcell behind one (as
 * `sandcell serve` does): the kernel's record of the connecting process, which no client can
 * forge, so local users can be told apart without tokens.
 */
import type { Socket } from 'node:net';

import { peerCredentials as peerCredentialsOfFd, type PeerCredentials } from './native.js';

export type { PeerCredentials } from './native.js';

/**
 * The pid, uid and gid of the process that connected `socket` (SO_PEERCRED: as they were at
 * `connect()`). Throws a TypeError for a TCP socket (the kernel would answer with pid 0 and
 * uid -1, which must never name anyone) and for a socket without a descriptor (closed, or not
 * connected); an error with `errno` when the kernel refuses.
 */
export function peerCredentials(socket: Socket): PeerCredentials {
  if (socket.remoteAddress !== undefined) throw new TypeError(`a TCP socket (peer ${socket.remoteAddress}) has no peer credentials: only a Unix socket does`);
  const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new TypeError('the socket has no descriptor (closed, or not a connected socket)');
  return peerCredentialsOfFd(fd);
}
