// The plan as bytes: written by the addon (after validating the JavaScript object), read by the
// init program inside the box. Both sides are C++ and share this file, so the format cannot drift;
// the reader still checks every length because the init must never trust its input blindly.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace sandcell::wire {

constexpr uint32_t kPlanMagic = 0x53434c50;    // "SCLP"
constexpr uint32_t kStatusMagic = 0x53434c53;  // "SCLS"
constexpr uint32_t kMaxPlanBytes = 16u << 20;
// Lower directories of an overlay root: their /proc/self/fd/N names joined fit the one page of
// mount options the kernel takes.
constexpr uint32_t kMaxLayers = 128;

// Fixed fd numbers the init finds its channels at (stdio is 0, 1, 2).
constexpr int kPlanFd = 3;    // read: the plan (u32 length, bytes); then control bytes, EOF = parent gone
constexpr int kReportFd = 4;  // write: Reports (see ReportKind), then EOF once the program has exec'd
constexpr int kStatusFd = 5;  // write: the ExitStatus of the program's main process
// read: a detached mount tree, the box's /dev, for the init to move into place (a kDevices entry)
constexpr int kDevicesFd = 6;

enum MountKind : uint32_t {
  kBind = 1,     // source (host path) bound at target
  kTmpfs = 2,    // data: tmpfs options ("size=...,mode=...")
  kProc = 3,     // a procfs for the box's PID namespace
  kDir = 4,      // mkdir target with mode
  kSymlink = 5,  // data: the link's text
  kFile = 6,     // data: the file's contents, mode
  kDevices = 7,  // the mount tree at kDevicesFd, moved to target (at most one per plan)
};

enum MountFlag : uint32_t {
  kReadOnly = 1,
  kNoSuid = 2,
  kNoDev = 4,
  kNoExec = 8,
  kOptional = 16,  // a bind whose source is missing is skipped instead of failing the run
};

enum PlanFlag : uint32_t {
  kLoopbackUp = 1,
  kNewCgroupNs = 2,
  kRootReadOnly = 4,
  kOverlayRoot = 64,  // the root is an overlay: the image's layers below, a tmpfs above
  kSeccompListener = 8,  // load the filter with a user-notification listener and send it back
  // A box that lives: the init builds the root and then only reaps, until told to end.
  kPersistent = 16,
  // A run inside a living box: the init was started in the box's namespaces (a mount namespace of
  // the run's own); it builds nothing, and runs the program in a PID namespace of the run's own.
  kJoin = 32,
  // A box built ahead of its run: the init builds the root, reports kReady, then waits on
  // kPlanFd for the run's own plan (a kJoin plan: program, limits, filter, files) and its stdio.
  kPrepared = 128,
};

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

// What a Report on kReportFd (or the clone child's exec pipe) says.
enum ReportKind : uint32_t {
  kSetupFailed = 1,  // a setup step failed: `stage` names it ("mount /usr", "execve"), `err` why
  kReady = 2,        // a prepared box's root is built; it waits for its run
  kListener = 3,     // the seccomp listener rides along (SCM_RIGHTS)
  kRunInit = 4,      // a pidfd of a joined run's init (PID 1 of the run's namespace) rides along
};

struct Report {
  uint32_t kind;
  int32_t err;
  char stage[248];
};

// Control bytes the supervisor sends the init after the plan.
constexpr char kTerminate = 'k';  // end the box now: kill everything, reap, report

enum ExitKind : uint32_t {
  kExited = 1,      // the main process exited; value is its code
  kSignaled = 2,    // the main process was killed by signal `value`
  kTerminated = 3,  // the supervisor asked the init to end the box
};

// Sent on kStatusFd by the init once the box has ended and every process in it was reaped. The
// usage is RUSAGE_CHILDREN of the init: the whole tree, but not the init itself (whose maximum
// RSS still counts the Node process it was cloned from).
struct ExitStatus {
  uint32_t magic;
  uint32_t kind;
  int32_t value;
  uint32_t reserved;
  uint64_t user_us;
  uint64_t system_us;
  uint64_t max_rss_kib;
  // CLOCK_MONOTONIC when the init saw the main process end (or was told to end the run): the box's
  // teardown after it takes a varying time, so its own end is no measure of which box ended first.
  uint64_t ended_ns;
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

class Reader {
 public:
  Reader(const char* p, size_t n) : p_(p), n_(n) {}
  bool u32(uint32_t* v) { return raw(v, 4); }
  bool u64(uint64_t* v) { return raw(v, 8); }
  bool str(std::string* s) {
    uint32_t len;
    if (!u32(&len) || len > n_ - off_) return false;
    s->assign(p_ + off_, len);
    off_ += len;
    return true;
  }
  bool strs(std::vector<std::string>* v, uint32_t max) {
    uint32_t count;
    if (!u32(&count) || count > max) return false;
    v->resize(count);
    for (auto& s : *v)
      if (!str(&s)) return false;
    return true;
  }
  bool u32s(std::vector<uint32_t>* v, uint32_t max) {
    uint32_t count;
    if (!u32(&count) || count > max) return false;
    v->resize(count);
    for (auto& x : *v)
      if (!u32(&x)) return false;
    return true;
  }
  bool done() const { return off_ == n_; }

 private:
  bool raw(void* v, size_t k) {
    if (k > n_ - off_) return false;
    std::memcpy(v, p_ + off_, k);
    off_ += k;
    return true;
  }
  const char* p_;
  size_t n_;
  size_t off_ = 0;
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

inline bool decode(const std::string& bytes, Plan* plan) {
  Reader r(bytes.data(), bytes.size());
  uint32_t magic, count;
  if (!r.u32(&magic) || magic != kPlanMagic) return false;
  if (!r.u32(&plan->flags) || !r.u32(&plan->uid) || !r.u32(&plan->gid)) return false;
  if (!r.str(&plan->hostname) || !r.str(&plan->staging) || !r.strs(&plan->layers, kMaxLayers) || !r.str(&plan->root_tmpfs) ||
      !r.str(&plan->cwd))
    return false;
  if (!r.strs(&plan->argv, 1u << 16) || !r.strs(&plan->env, 1u << 16)) return false;
  if (!r.u32(&count) || count > 4096) return false;
  plan->mounts.resize(count);
  for (auto& m : plan->mounts) {
    if (!r.u32(&m.kind) || !r.u32(&m.flags) || !r.u32(&m.mode) || !r.u32(&m.owner)) return false;
    if (!r.str(&m.source) || !r.str(&m.target) || !r.str(&m.data)) return false;
  }
  if (!r.u32(&count) || count > 64) return false;
  plan->rlimits.resize(count);
  for (auto& l : plan->rlimits)
    if (!r.u32(&l.resource) || !r.u64(&l.soft) || !r.u64(&l.hard)) return false;
  if (!r.str(&plan->seccomp)) return false;
  if (!r.u32s(&plan->exec_path_lo, 4096) || !r.u32s(&plan->exec_path_hi, 4096)) return false;
  uint64_t insns = plan->seccomp.size() / 8;
  for (const auto* list : {&plan->exec_path_lo, &plan->exec_path_hi})
    for (uint32_t x : *list)
      if (x >= insns) return false;
  return r.done();
}

}  // namespace sandcell::wire
