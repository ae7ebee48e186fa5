// The credentials of a Unix socket's peer: Node has no API for them, and a daemon that serves
// several local users on one socket needs them to tell its clients apart.
#include "peer_cred.h"

#include <errno.h>
#include <sys/socket.h>

#include <cmath>
#include <cstring>

namespace sandcell {

Napi::Value PeerCred(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "peerCred(fd: number)");
  double d = info[0].As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || d < 0 || d > 0x7fffffff || std::floor(d) != d) throw Napi::TypeError::New(env, "peerCred: fd must be a non-negative integer");
  struct ucred cred;
  socklen_t len = sizeof cred;
  std::memset(&cred, 0, sizeof cred);
  if (getsockopt(static_cast<int>(d), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof cred) {
    int err = len != sizeof cred ? EINVAL : errno;
    Napi::Error e = Napi::Error::New(env, std::string("peerCred: getsockopt(SO_PEERCRED): ") + std::strerror(err));
    e.Set("errno", Napi::Number::New(env, err));
    throw e;
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("pid", Napi::Number::New(env, cred.pid));
  out.Set("uid", Napi::Number::New(env, cred.uid));
  out.Set("gid", Napi::Number::New(env, cred.gid));
  return out;
}

}  // namespace sandcell
