// A box's place on a private network, made over rtnetlink: a veth pair whose one end joins the
// network's bridge and whose other end becomes the box's addressed, up eth0.
#pragma once

#include <cstdint>

namespace sandcell {

// `network_nl` and `box_nl` are NETLINK_ROUTE sockets made in the network's and in the box's
// namespaces. Makes `host_if` (on the bridge `bridge`, up) paired with `eth0` in the namespace of
// `box_pid`, then gives eth0 `address`/`prefix` (network byte order) and brings it up.
// Returns 0, or -errno of the step that failed, with `*step` naming it.
int attach_veth(int network_nl, int box_nl, int box_pid, const char* bridge, const char* host_if, uint32_t address, int prefix,
                const char** step);

// The whole of putting a box on a network, for a worker thread: NETLINK_ROUTE sockets made in the
// network's namespace (`network_ns`, its nsfs fd) and in the box's (through `box_pidfd`, its
// init's pidfd), then attach_veth on them, and both closed. Returns 0, or -errno with `*step`.
int attach_box(int network_ns, int box_pidfd, int box_pid, const char* host_if, uint32_t address, int prefix, const char** step);

}  // namespace sandcell
