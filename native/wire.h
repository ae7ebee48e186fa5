// The plan as bytes, written by the addon after validating the JavaScript object. The init reads
// it with a decoder of its own (init/plan.cc, no C++ library there) that follows encode() field
// by field and checks every length, because the init must never trust its input blindly.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "wire_format.h"

namespace sandcell::wire {

struct Mount {
  uint32_t kind = 0;
  uint32_t flags = 0;
  uint32_t mode = 0;
  uint32_t owner = 0;  // kFile / kDir: 1 = owned by the program's uid/gid, 0 = by the box's root
  std::string source;
  std::string target;
  std::string data;
};

struct Rlimit {
  uint32_t resource = 0;
  uint64_t soft = 0;
  uint64_t hard = 0;
};

struct Plan {
  uint32_t flags = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::string hostname;
  std::string staging;  // host directory the new root is assembled on (inside the private mount ns)
  std::vector<std::string> layers;  // with kOverlayRoot: the read-only lower directories, uppermost first
  std::string root_tmpfs;   // options of the tmpfs under the new root (holds the overlay's upper layer)
  std::string cwd;
  std::vector<std::string> argv;
  std::vector<std::string> env;
  std::vector<Mount> mounts;
  std::vector<Rlimit> rlimits;
  std::string seccomp;  // struct sock_filter[], as bytes
  // Instructions whose constant becomes the low / high half of the address of the path string
  // the init passes to execve, so a filter can allow that one execve and no other.
  std::vector<uint32_t> exec_path_lo;
  std::vector<uint32_t> exec_path_hi;
};

class Writer {
 public:
  void u32(uint32_t v) { raw(&v, 4); }
  void u64(uint64_t v) { raw(&v, 8); }
  void str(const std::string& s) {
    u32(static_cast<uint32_t>(s.size()));
    out_.append(s);
  }
  void strs(const std::vector<std::string>& v) {
    u32(static_cast<uint32_t>(v.size()));
    for (const auto& s : v) str(s);
  }
  const std::string& bytes() const { return out_; }

 private:
  void raw(const void* p, size_t n) { out_.append(static_cast<const char*>(p), n); }
  std::string out_;
};

inline std::string encode(const Plan& plan) {
  Writer w;
  w.u32(kPlanMagic);
  w.u32(plan.flags);
  w.u32(plan.uid);
  w.u32(plan.gid);
  w.str(plan.hostname);
  w.str(plan.staging);
  w.strs(plan.layers);
  w.str(plan.root_tmpfs);
  w.str(plan.cwd);
  w.strs(plan.argv);
  w.strs(plan.env);
  w.u32(static_cast<uint32_t>(plan.mounts.size()));
  for (const auto& m : plan.mounts) {
    w.u32(m.kind);
    w.u32(m.flags);
    w.u32(m.mode);
    w.u32(m.owner);
    w.str(m.source);
    w.str(m.target);
    w.str(m.data);
  }
  w.u32(static_cast<uint32_t>(plan.rlimits.size()));
  for (const auto& r : plan.rlimits) {
    w.u32(r.resource);
    w.u64(r.soft);
    w.u64(r.hard);
  }
  w.str(plan.seccomp);
  for (const auto* list : {&plan.exec_path_lo, &plan.exec_path_hi}) {
    w.u32(static_cast<uint32_t>(list->size()));
    for (uint32_t x : *list) w.u32(x);
  }
  return w.bytes();
}

}  // namespace sandcell::wire
