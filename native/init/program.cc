// The program's own process, from the init's fork to its execve: a sequence of named steps, each
// taking something away or putting something in place. The first that fails is reported by its
// name (the stage of SandboxSetupError) and the program never runs.
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <string>
#include <vector>

#include "init.h"

namespace sandcell::init {
namespace {

struct Program {
  const Plan& plan;
  int cap_last;
  bool run_files;
  std::string path;  // the command, resolved in PATH
  std::vector<char*> argv, envp;
  std::string what;  // set by a step whose failure names more than the step ("chdir /work")
};

// The report channel must close when execve succeeds: that EOF is how the supervisor learns it did.
int own_channels(Program&) {
  close(wire::kStatusFd);
  close(wire::kPlanFd);
  return fcntl(wire::kReportFd, F_SETFD, FD_CLOEXEC) < 0 ? errno : 0;
}

int reset_signals(Program&) {
  setsid();
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  for (int s = 1; s < NSIG; s++) signal(s, SIG_DFL);
  return 0;
}

int place_files(Program& p) { return p.run_files ? place_run_files(p.plan, &p.what) : 0; }

int enter_cwd(Program& p) {
  p.what = "chdir " + p.plan.cwd;
  return chdir(p.plan.cwd.c_str()) < 0 ? errno : 0;
}

const char* const kRlimitNames[] = {"cpu", "fsize", "data", "stack", "core", "rss", "nproc", "nofile",
                                    "memlock", "as", "locks", "sigpending", "msgqueue", "nice", "rtprio", "rttime"};

int set_rlimits(Program& p) {
  for (const auto& l : p.plan.rlimits) {
    rlimit r{l.soft, l.hard};
    if (setrlimit(static_cast<__rlimit_resource>(l.resource), &r) < 0) {
      p.what = std::string("rlimit ") + (l.resource < 16 ? kRlimitNames[l.resource] : "?");
      return errno;
    }
  }
  return 0;
}

int drop_bounding_set(Program& p) {
  for (int cap = 0; cap <= p.cap_last; cap++)
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL) return errno;
  return 0;
}

int set_gid(Program& p) { return setresgid(p.plan.gid, p.plan.gid, p.plan.gid) < 0 ? errno : 0; }

int set_uid(Program& p) { return setresuid(p.plan.uid, p.plan.uid, p.plan.uid) < 0 ? errno : 0; }

int drop_capabilities(Program&) {
  if (int err = clear_caps()) return err;
  return prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL ? errno : 0;
}

int no_new_privs(Program&) { return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ? errno : 0; }

// Before the filter is loaded, so the filter sees one execve only, and nothing after it allocates.
int resolve_command(Program& p) {
  const Plan& plan = p.plan;
  for (const auto& a : plan.argv) p.argv.push_back(const_cast<char*>(a.c_str()));
  p.argv.push_back(nullptr);
  for (const auto& e : plan.env) p.envp.push_back(const_cast<char*>(e.c_str()));
  p.envp.push_back(nullptr);
  p.path = plan.argv[0];
  if (p.path.find('/') != std::string::npos) return 0;
  std::string search = "/usr/local/bin:/usr/bin:/bin";
  for (const auto& e : plan.env)
    if (e.compare(0, 5, "PATH=") == 0) search = e.substr(5);
  int first_err = ENOENT;
  for (size_t start = 0; start <= search.size();) {
    size_t end = search.find(':', start);
    if (end == std::string::npos) end = search.size();
    std::string dir = search.substr(start, end - start);
    std::string candidate = (dir.empty() ? "." : dir) + "/" + plan.argv[0];
    if (access(candidate.c_str(), X_OK) == 0) {
      p.path = candidate;
      return 0;
    }
    if (errno == EACCES) first_err = EACCES;
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
  std::atomic<int> fd{-1};
  std::atomic<bool> sent{false};
};

void* send_listener(void* arg) {
  auto* h = static_cast<ListenerHandoff*>(arg);
  int lfd;
  while ((lfd = h->fd.load()) < 0) sched_yield();
  // fail() ends the whole process (exit_group), the filtered thread included.
  if (!send_note(wire::kListener, "seccomp listener", lfd)) fail("seccomp listener", errno);
  close(lfd);  // the fd table is shared: this is the program's copy
  h->sent.store(true);
  return nullptr;
}

int load_filter(Program& p) {
  const Plan& plan = p.plan;
  if (plan.seccomp.empty()) return 0;
  std::string filter = plan.seccomp;
  uint64_t address = reinterpret_cast<uintptr_t>(p.path.c_str());
  for (uint32_t i : plan.exec_path_lo) {
    uint32_t k = static_cast<uint32_t>(address);
    memcpy(&filter[i * 8 + 4], &k, 4);
  }
  for (uint32_t i : plan.exec_path_hi) {
    uint32_t k = static_cast<uint32_t>(address >> 32);
    memcpy(&filter[i * 8 + 4], &k, 4);
  }
  sock_fprog prog{};
  prog.len = static_cast<unsigned short>(filter.size() / sizeof(sock_filter));
  prog.filter = reinterpret_cast<sock_filter*>(filter.data());
  unsigned flags = (plan.flags & wire::kSeccompListener) ? SECCOMP_FILTER_FLAG_NEW_LISTENER : 0;
  static ListenerHandoff handoff;
  pthread_t helper;
  if (flags && pthread_create(&helper, nullptr, send_listener, &handoff) != 0) {
    p.what = "seccomp listener";
    return EAGAIN;
  }
  long listener = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
  if (listener < 0) return errno;
  if (flags) {
    // No system call from here to execve (see ListenerHandoff): a spin on shared memory.
    handoff.fd.store(static_cast<int>(listener));
    while (!handoff.sent.load()) {
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
// set while the process may still raise them; the bounding set is dropped while CAP_SETPCAP is
// held; the filter comes last, so it sees nothing of the setup but the execve.
constexpr Step kSteps[] = {
    {"report channel", own_channels},
    {"signals", reset_signals},
    {"place files", place_files},
    {"chdir", enter_cwd},
    {"rlimit", set_rlimits},
    {"drop capabilities", drop_bounding_set},
    {"setgid", set_gid},
    {"setuid", set_uid},
    {"drop capabilities", drop_capabilities},
    {"no_new_privs", no_new_privs},
    {"execve", resolve_command},
    {"seccomp", load_filter},
};

}  // namespace

[[noreturn]] void exec_program(const Plan& plan, int cap_last, bool run_files) {
  Program p{plan, cap_last, run_files, {}, {}, {}, {}};
  for (const Step& step : kSteps) {
    p.what.clear();
    if (int err = step.run(p)) fail(p.what.empty() ? step.name : p.what, err);
  }
  execve(p.path.c_str(), p.argv.data(), p.envp.data());
  fail("execve", errno);
}

}  // namespace sandcell::init
