// TCP sockets made inside a box's network namespace for the host: the egress proxy's listener
// and the host side of a published port live in the Node process, the sockets they use live in
// the box's namespace. A socket belongs to the namespace it was created in for its whole life.
#pragma once

#include <cstdint>

namespace sandcell {

enum class BoxSocket { kListen, kConnect, kNetlink };

// A TCP socket (close-on-exec, non-blocking) created in the network namespace of the process
// `pidfd` refers to: kListen binds 127.0.0.1:port there and listens; kConnect is left unbound,
// for the caller to connect. kNetlink: a NETLINK_ROUTE socket there (blocking), to configure
// that namespace's links; `pidfd` may then also be a network namespace's own fd (root only).
// Returns the fd, or -errno.
int box_net_socket(int pidfd, BoxSocket kind, uint16_t port);

}  // namespace sandcell
