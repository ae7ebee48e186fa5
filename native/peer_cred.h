#pragma once

#include <napi.h>

namespace sandcell {

// peerCred(fd) → { pid, uid, gid } of the process at the other end of a connected Unix socket,
// as the kernel recorded them when it connected (SO_PEERCRED). Throws with `errno` when the
// descriptor is not such a socket.
Napi::Value PeerCred(const Napi::CallbackInfo& info);

}  // namespace sandcell
