// The program's own process, from the init's clone to its execve: a sequence of named steps, each
// taking something away or putting something in place. The first that fails is reported by its
// name (the stage of SandboxSetupError) and the program never runs.
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <sys/prctl.h>

#include "init.h"
#include "sys.h"

namespace sandcell::init {
namespace {

struct Program {
  const Plan& plan;
  bool run_files;
  const char* path;  // the command, resolved in PATH
  char** argv;
  char** envp;
  Str what;  // set by a step whose failure names more than the step ("chdir /work")
};

// The report channel must close when execve succeeds: that EOF is how the supervisor learns it did.
int own_channels(Program&) {
  sys::close(wire::kStatusFd);
  sys::close(wire::kPlanFd);
  return static_cast<int>(-sys::fcntl(wire::kReportFd, F_SETFD, FD_CLOEXEC));
}

int reset_signals(Program&) {
  sys::setsid();
  sys::SigMask none = 0;
  sys::sigprocmask(SIG_SETMASK, &none);
  for (int s = 1; s <= 64; s++) sys::default_action(s);
  return 0;
}

int place_files(Program& p) { return p.run_files ? place_run_files(p.plan, &p.what) : 0; }

int enter_cwd(Program& p) {
  p.what = join("chdir ", p.plan.cwd.p);
  return static_cast<int>(-sys::chdir(p.plan.cwd.p));
}

const char* const kRlimitNames[] = {"cpu", "fsize", "data", "stack", "core", "rss", "nproc", "nofile",
                                    "memlock", "as", "locks", "sigpending", "msgqueue", "nice", "rtprio", "rttime"};

int set_rlimits(Program& p) {
  for (const auto& l : p.plan.rlimits) {
    rlimit r{l.soft, l.hard};
    long err = sys::setrlimit(l.resource, &r);
    if (err < 0) {
      p.what = join("rlimit ", l.resource < 16 ? kRlimitNames[l.resource] : "?");
      return static_cast<int>(-err);
    }
  }
  return 0;
}

int set_gid(Program& p) { return static_cast<int>(-sys::setresgid(p.plan.gid)); }

int set_uid(Program& p) { return static_cast<int>(-sys::setresuid(p.plan.uid)); }

int drop_capabilities(Program&) {
  if (int err = clear_caps()) return err;
  long r = sys::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL);
  return r < 0 && r != -EINVAL ? static_cast<int>(-r) : 0;
}

int no_new_privs(Program&) { return static_cast<int>(-sys::prctl(PR_SET_NO_NEW_PRIVS, 1)); }

char** c_strings(const List<Str>& list) {
  char** out = allocate_array<char*>(list.size + 1);
  for (uint32_t i = 0; i < list.size; i++) out[i] = const_cast<char*>(list[i].p);
  out[list.size] = nullptr;
  return out;
}

bool has_slash(Str s) {
  for (uint32_t i = 0; i < s.n; i++)
    if (s[i] == '/') return true;
  return false;
}

// Before the filter is loaded, so the filter sees one execve only, and nothing after it allocates.
int resolve_command(Program& p) {
  const Plan& plan = p.plan;
  p.argv = c_strings(plan.argv);
  p.envp = c_strings(plan.env);
  p.path = plan.argv[0].p;
  if (has_slash(plan.argv[0])) return 0;
  Str search{"/usr/local/bin:/usr/bin:/bin", 28};
  for (const auto& e : plan.env)
    if (e.starts_with("PATH=")) search = {e.p + 5, e.n - 5};
  int first_err = ENOENT;
  for (size_t start = 0; start <= search.n;) {
    size_t end = start;
    while (end < search.n && search[end] != ':') end++;
    Str dir = prefix({search.p + start, static_cast<uint32_t>(search.n - start)}, end - start);
    Str candidate = join(dir.empty() ? "." : dir.p, "/", plan.argv[0].p);
    long r = sys::access(candidate.p, X_OK);
    if (r == 0) {
      p.path = candidate.p;
      return 0;
    }
    if (r == -EACCES) first_err = EACCES;
    start = end + 1;
  }
  return first_err;
}

// The seccomp listener's way out of the box. Once the filter is loaded every system call of the
// program's thread passes through it, sendmsg included, and a policy may answer sendmsg with
// `kill` (USER_NOTIF): judge does. That notification would wait for a supervisor that can only get
// the listener from this very sendmsg, and the box would hang before its program starts. So the
// listener is sent by a helper thread started before the filter is loaded (filters apply to the
// thread that loads them; threads started earlier do not get them), and the program's thread
// makes no system call between loading the filter and its execve: it hands the fd over and waits
// on shared memory.
struct ListenerHandoff {
  int fd = -1;
  bool sent = false;
};

ListenerHandoff handoff;
// The helper's stack: it makes one sendmsg and a close.
alignas(16) char helper_stack[64 << 10];

int send_listener(void* arg) {
  auto* h = static_cast<ListenerHandoff*>(arg);
  int lfd;
  while ((lfd = __atomic_load_n(&h->fd, __ATOMIC_ACQUIRE)) < 0) sys::syscall6(__NR_sched_yield);
  // fail() ends the whole process (exit_group), the filtered thread included.
  if (long r = send_note(wire::kListener, "seccomp listener", lfd); r < 0) fail("seccomp listener", static_cast<int>(-r));
  sys::close(lfd);  // the fd table is shared: this is the program's copy
  __atomic_store_n(&h->sent, true, __ATOMIC_RELEASE);
  return 0;
}

int load_filter(Program& p) {
  const Plan& plan = p.plan;
  if (plan.seccomp.empty()) return 0;
  // Patched in place: the plan is this process's own copy, and the program's process is started
  // once.
  char* filter = const_cast<char*>(plan.seccomp.p);
  uint64_t address = reinterpret_cast<uintptr_t>(p.path);
  for (uint32_t i : plan.exec_path_lo) {
    uint32_t k = static_cast<uint32_t>(address);
    memcpy(&filter[i * 8 + 4], &k, 4);
  }
  for (uint32_t i : plan.exec_path_hi) {
    uint32_t k = static_cast<uint32_t>(address >> 32);
    memcpy(&filter[i * 8 + 4], &k, 4);
  }
  sock_fprog prog{};
  prog.len = static_cast<unsigned short>(plan.seccomp.n / sizeof(sock_filter));
  prog.filter = reinterpret_cast<sock_filter*>(filter);
  unsigned flags = (plan.flags & wire::kSeccompListener) ? SECCOMP_FILTER_FLAG_NEW_LISTENER : 0;
  // A thread of this process, as a C library's would be: same memory, files, signal handlers.
  constexpr unsigned long kThread = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM;
  if (flags && sys::clone(send_listener, helper_stack + sizeof helper_stack, kThread, &handoff) < 0) {
    p.what = Str{"seccomp listener", 16};
    return EAGAIN;
  }
  long listener = sys::seccomp(SECCOMP_SET_MODE_FILTER, flags, &prog);
  if (listener < 0) return static_cast<int>(-listener);
  if (flags) {
    // No system call from here to execve (see ListenerHandoff): a spin on shared memory.
    __atomic_store_n(&handoff.fd, static_cast<int>(listener), __ATOMIC_RELEASE);
    while (!__atomic_load_n(&handoff.sent, __ATOMIC_ACQUIRE)) {
    }
  }
  return 0;
}

using StepFn = int (*)(Program&);
struct Step {
  const char* name;
  StepFn run;
};

// In this order: files are placed with the program's ids before its rlimits apply; rlimits are
// set while the process may still raise them; the filter comes last, so it sees nothing of the
// setup but the execve. The bounding set is already empty: the init's (drop_bounding_set).
constexpr Step kSteps[] = {
    {"report channel", own_channels},
    {"signals", reset_signals},
    {"place files", place_files},
    {"chdir", enter_cwd},
    {"rlimit", set_rlimits},
    {"setgid", set_gid},
    {"setuid", set_uid},
    {"drop capabilities", drop_capabilities},
    {"no_new_privs", no_new_privs},
    {"execve", resolve_command},
    {"seccomp", load_filter},
};

}  // namespace

[[noreturn]] void exec_program(const Plan& plan, bool run_files) {
  Program p{plan, run_files, nullptr, nullptr, nullptr, {}};
  for (const Step& step : kSteps) {
    p.what = Str{};
    if (int err = step.run(p)) fail(p.what.empty() ? step.name : p.what.p, err);
  }
  long r = sys::execve(p.path, p.argv, p.envp);
  fail("execve", static_cast<int>(-r));
}

}  // namespace sandcell::init
