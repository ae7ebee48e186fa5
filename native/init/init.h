// sandcell-init: PID 1 of every box, and of every run in a living box. Started by the addon as
// root of the box's user namespace, it reads the plan (plan.cc), builds the root filesystem
// (root.cc), starts the program as its child with every privilege dropped (program.cc, files.cc),
// then reaps, forwards signals and reports how the program ended (reaper.cc); main.cc picks the
// mode. A freestanding program: no C or C++ library (start.cc has what it needs of one), every
// system call raw (sys.h), so a failed call gives -errno and there is no errno to read.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "../fd_passing.h"
#include "../wire_format.h"

// start.cc: the memory functions the compiler may also emit calls to.
extern "C" void* memcpy(void* dst, const void* src, size_t n);
extern "C" void* memset(void* dst, int c, size_t n);
extern "C" size_t strlen(const char* s);

namespace sandcell::init {

// start.cc
// Memory that lives as long as the process; the first allocation of a chunk maps it.
void* allocate(size_t n);
template <typename T>
T* allocate_array(size_t n) {
  return static_cast<T*>(allocate(n * sizeof(T)));
}

// A string of the plan, or one made from its parts: `n` bytes at `p`, then a NUL, so `p` is also
// what a system call takes. As a C string it ends at its first NUL, as std::string's c_str() did.
struct Str {
  const char* p = "";
  uint32_t n = 0;
  bool empty() const { return n == 0; }
  char operator[](size_t i) const { return p[i]; }
  bool starts_with(const char* prefix) const;
  bool operator==(const char* s) const;
};
// The concatenation of the parts (C strings), newly allocated.
Str join(const char* a, const char* b, const char* c = "", const char* d = "", const char* e = "");
// A copy of the first `n` bytes of `s`.
Str prefix(Str s, size_t n);
// The decimal digits of v.
struct Decimal {
  explicit Decimal(uint64_t v);
  Decimal(const Decimal&) = delete;
  Decimal& operator=(const Decimal&) = delete;
  const char* c_str() const { return p; }

 private:
  char buf[24];
  char* p;
};

// plan.cc: the plan as the init uses it, decoded from the addon's wire format (wire.h).
struct Mount {
  uint32_t kind = 0;
  uint32_t flags = 0;
  uint32_t mode = 0;
  uint32_t owner = 0;
  Str source;
  Str target;
  Str data;
};

struct Rlimit {
  uint32_t resource = 0;
  uint64_t soft = 0;
  uint64_t hard = 0;
};

template <typename T>
struct List {
  T* items = nullptr;
  uint32_t size = 0;
  bool empty() const { return size == 0; }
  T* begin() const { return items; }
  T* end() const { return items + size; }
  T& operator[](size_t i) const { return items[i]; }
};

struct Plan {
  uint32_t flags = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  Str hostname;
  Str staging;
  List<Str> layers;
  Str root_tmpfs;
  Str cwd;
  List<Str> argv;
  List<Str> env;
  List<Mount> mounts;
  List<Rlimit> rlimits;
  Str seccomp;
  List<uint32_t> exec_path_lo;
  List<uint32_t> exec_path_hi;
};

// Decodes `n` bytes of a plan; false if they are not one, each length checked against what is
// left, each count against its bound.
bool decode(const char* bytes, size_t n, Plan* plan);

// common.cc
// Reports a failed setup step (the stage names it) on the report channel and exits: the program
// never runs. `err` is an errno (positive).
[[noreturn]] void fail(const char* stage, int err);
[[noreturn]] inline void fail(Str stage, int err) { fail(stage.p, err); }
// Sends a note of `kind` on the report channel with one descriptor attached; 0 or -errno.
long send_note(wire::ReportKind kind, const char* stage, int fd);
// 0 once all n bytes are read; -errno, or -EPIPE at EOF.
long read_exact(int fd, char* buf, size_t n);
// 0 once all n bytes are written, or -errno.
long write_all(int fd, const char* p, size_t n);
// Empties this process's capability bounding set; 0 or an errno. The init does it once, first:
// its setup needs only the capabilities it holds, and every process it starts (the program's,
// a run's link and init) inherits the empty set. Each PR_CAPBSET_DROP commits new credentials,
// so a pass per process cost each of them as much again for nothing.
int drop_bounding_set();
// Clears every capability set of this process; 0 or an errno.
int clear_caps();

// root.cc: the box's root, assembled on a tmpfs and entered with pivot_root.
void build_root(const Plan& plan);
void loopback_up();
// A procfs of the caller's PID namespace at `at`.
void mount_proc(const char* at, const char* stage);

// files.cc: a run's own files (a join plan's entries) in a box that exists already. 0 or an
// errno; `what` then names the file.
int place_run_files(const Plan& plan, Str* what);

// program.cc: the program's process, from its clone to execve.
[[noreturn]] void exec_program(const Plan& plan, bool run_files);

// reaper.cc
// The signals the init blocks and reads from its signalfd: all but 32 and 33, which glibc kept
// for its threads and never let the init block, so a box still answers them as it always has.
constexpr uint64_t kAllSignals = ~((1ull << 31) | (1ull << 32));
// Starts the program (unless the box only waits for runs: kPersistent), forwards signals, reaps,
// and ends the run when it ends or when the supervisor says so.
[[noreturn]] void supervise(const Plan& plan, bool run_files);
// Starts fn(arg) in a child that shares our memory and dies with us; its pid. From then on the
// caller touches no memory the child may use (link_until_reaped).
long clone_tied(const char* stage, int (*fn)(void*), void* arg);
// Ends once `child` is reaped, holding no privilege, channel or stdio meanwhile.
[[noreturn]] void link_until_reaped(long child);

}  // namespace sandcell::init
