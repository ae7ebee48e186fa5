// The init's life once the box is built: it starts the program, forwards signals to it, reaps
// everything, and when the run ends (its main process ends, or the supervisor says so) it kills
// what is left and reports how the main process ended.
#include <linux/capability.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>

#include "init.h"
#include "sys.h"

namespace sandcell::init {
namespace {

// The init is PID 1 of the PID namespace of everything it started (a box's, or a joined run's
// own): kill(-1) reaches all of it, and nothing can hide from it by double-forking.
void kill_everything_started() {
  sys::kill(-1, SIGKILL);
  for (;;) {
    long r = sys::wait4(-1, nullptr, __WALL);
    if (r < 0 && r != -EINTR) break;
  }
}

// Ends the run from the inside: every process it started dies and is reaped (so its usage is
// counted), and the supervisor learns how the main process ended.
[[noreturn]] void finish(uint32_t kind, int value) {
  timespec ended{};
  sys::clock_monotonic(&ended);
  kill_everything_started();
  rusage ru{};
  sys::getrusage_children(&ru);
  wire::ExitStatus s{};
  s.magic = wire::kStatusMagic;
  s.kind = kind;
  s.value = value;
  s.user_us = static_cast<uint64_t>(ru.ru_utime.tv_sec) * 1000000 + static_cast<uint64_t>(ru.ru_utime.tv_usec);
  s.system_us = static_cast<uint64_t>(ru.ru_stime.tv_sec) * 1000000 + static_cast<uint64_t>(ru.ru_stime.tv_usec);
  s.max_rss_kib = static_cast<uint64_t>(ru.ru_maxrss);
  s.ended_ns = static_cast<uint64_t>(ended.tv_sec) * 1000000000 + static_cast<uint64_t>(ended.tv_nsec);
  sys::write(wire::kStatusFd, &s, sizeof s);
  sys::exit_group(0);
}

// The init keeps only CAP_KILL (to end the box's processes, which run as another uid) and cannot
// be ptraced (not dumpable, and its capabilities are not a subset of the program's). The program
// cannot signal it even with the same uid (rootless): the init is PID 1 of the program's PID
// namespace, so SIGKILL and SIGSTOP from inside are dropped, and the rest, blocked here, are read
// from the signalfd and forwarded to the program.
void keep_only_kill() {
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  data[0].effective = data[0].permitted = 1u << CAP_KILL;
  if (sys::capset(&hdr, data) < 0)
    if (int err = clear_caps()) fail("init drop capabilities", err);
  sys::prctl(PR_SET_DUMPABLE, 0);
}

// PR_SET_PDEATHSIG for a child of ours, with the window between fork() and prctl() closed: the
// parent's pidfd, opened before the fork, says whether it is gone already.
void die_with_parent(int parent_pidfd) {
  sys::prctl(PR_SET_PDEATHSIG, SIGKILL);
  pollfd p{parent_pidfd, POLLIN, 0};
  if (parent_pidfd < 0 || sys::poll(&p, 1, 0) != 0) sys::exit_group(1);
  sys::close(parent_pidfd);
}

struct ProgramStart {
  const Plan* plan;
  bool run_files;
  int sigfd;
};

[[noreturn]] int program_start(void* p) {
  const ProgramStart* s = static_cast<const ProgramStart*>(p);
  sys::close(s->sigfd);
  exec_program(*s->plan, s->run_files);
}

constexpr size_t kProgramStack = 1 << 20;
constexpr size_t kGuard = 4096;

// A stack of `size` bytes whose lowest page is a guard.
char* map_stack(const char* stage, size_t size) {
  long stack = sys::mmap(size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK | MAP_NORESERVE);
  if (stack < 0) fail(stage, static_cast<int>(-stack));
  long r = sys::mprotect(reinterpret_cast<void*>(stack), kGuard, PROT_NONE);
  if (r < 0) fail(stage, static_cast<int>(-r));
  return reinterpret_cast<char*>(stack);
}

// The program's process shares our memory until its execve (CLONE_VM | CLONE_VFORK), as
// posix_spawn's does: a fork() copied the init's address space and faulted its pages back in, copy
// on write, on both sides, for a process that only sets itself up and execs. We wait meanwhile (the
// kernel resumes us at its execve or its exit), so its setup, which allocates from the memory we
// share, never runs beside ours. Everything it changes for itself (fds, signal dispositions, ids, rlimits, the
// filter) is its own: only memory is shared.
long start_program(const Plan& plan, bool run_files, int sigfd) {
  char* stack = map_stack("fork", kProgramStack);
  ProgramStart start{&plan, run_files, sigfd};
  long pid = sys::clone(program_start, stack + kProgramStack, CLONE_VM | CLONE_VFORK | SIGCHLD, &start);
  if (pid < 0) fail("fork", static_cast<int>(-pid));
  sys::munmap(stack, kProgramStack);
  return pid;
}

}  // namespace

// The init's life after setup: start the program (unless the box only waits for runs), then
// forward signals to it, reap, and end the run when it ends or when the supervisor says so.
[[noreturn]] void supervise(const Plan& plan, bool run_files) {
  // finish() ends what we started with kill(-1), which stays inside only because we are PID 1 of
  // a PID namespace of our own. Anywhere else (started by hand, or by a clone that lost
  // CLONE_NEWPID) it would reach every process of our uid on the host, so nothing starts.
  if (sys::getpid() != 1) fail("PID namespace", EINVAL);
  sys::SigMask all = kAllSignals;
  long fd = sys::signalfd(&all, SFD_CLOEXEC);
  if (fd < 0) fail("signalfd", static_cast<int>(-fd));
  int sigfd = static_cast<int>(fd);
  long main_pid = -1;
  if (!(plan.flags & wire::kPersistent)) main_pid = start_program(plan, run_files, sigfd);
  // For a living box, this EOF tells the supervisor the box is ready for runs.
  sys::close(wire::kReportFd);
  keep_only_kill();

  pollfd fds[2] = {{sigfd, POLLIN, 0}, {wire::kPlanFd, POLLIN, 0}};
  for (;;) {
    if (sys::poll(fds, 2, -1) < 0) continue;
    if (fds[1].revents) {
      char c = 0;
      if (sys::read(wire::kPlanFd, &c, 1) == -EINTR) continue;
      // A terminate request, or EOF: the supervisor is gone and nobody would read the result.
      finish(wire::kTerminated, 0);
    }
    if (!(fds[0].revents & POLLIN)) continue;
    signalfd_siginfo si;
    if (sys::read(sigfd, &si, sizeof si) != static_cast<long>(sizeof si)) continue;
    if (si.ssi_signo != SIGCHLD) {
      // Signals sent to the box (through the init) are meant for the program.
      if (main_pid > 0) sys::kill(main_pid, static_cast<int>(si.ssi_signo));
      continue;
    }
    for (;;) {
      int status;
      long pid = sys::wait4(-1, &status, WNOHANG | __WALL);
      if (pid <= 0) break;
      // A ptrace stop, not an end: the program made itself our tracee (PTRACE_TRACEME, possible
      // under a policy that allows ptrace). Let it go on, signal delivered, no longer traced.
      if (WIFSTOPPED(status)) {
        sys::ptrace_detach(pid, WSTOPSIG(status));
        continue;
      }
      if (pid != main_pid) continue;
      // The run ends with its main process; whatever it left behind dies with it.
      if (WIFEXITED(status)) finish(wire::kExited, WEXITSTATUS(status));
      finish(wire::kSignaled, WTERMSIG(status));
    }
  }
}

namespace {

// What a child started by clone_tied needs, kept at the bottom of its own stack: the parent's
// frame is gone once clone_tied returns, and the child may not have read it yet.
struct TiedStart {
  int parent_pidfd;
  int (*fn)(void*);
  void* arg;
};

int tied_start(void* p) {
  const TiedStart* t = static_cast<const TiedStart*>(p);
  die_with_parent(t->parent_pidfd);
  return t->fn(t->arg);
}

constexpr size_t kTiedStack = 2 << 20;

}  // namespace

// The links and a joined run's init share our memory (CLONE_VM): a fork() here copied the init's
// address space twice per run and faulted its pages back in, copy on write, on both sides of each
// fork, which made those two forks most of the CPU a run in a living box cost over a one-shot run.
// Each gets a stack of its own (never unmapped: the last of us to exit takes it with the address
// space). From the clone on, the parent only waits (link_until_reaped): the child allocates from
// the memory they share.
long clone_tied(const char* stage, int (*fn)(void*), void* arg) {
  long self = sys::pidfd_open(sys::getpid());
  if (self < 0) fail(stage, static_cast<int>(-self));
  char* stack = map_stack(stage, kTiedStack);
  auto* start = reinterpret_cast<TiedStart*>(stack + kGuard);
  *start = {static_cast<int>(self), fn, arg};
  long pid = sys::clone(tied_start, stack + kTiedStack, CLONE_VM | SIGCHLD, start);
  if (pid < 0) fail(stage, static_cast<int>(-pid));
  sys::close(static_cast<int>(self));
  return pid;
}

// A link between the process the addon watches and a joined run's init: it holds no privilege,
// no channel and none of the run's stdio (the run's output ends with the run, not with us), and
// ends once its child is reaped, so the process the addon watches ends only after the whole run
// has. It touches no memory the child may use (clone_tied). Dumpability belongs to the
// address space, so ours being off makes the run init (and its program until execve) not dumpable
// from here on, as the run init makes itself anyway once it keeps only CAP_KILL.
[[noreturn]] void link_until_reaped(long child) {
  for (int fd = 0; fd < 3; fd++) sys::close(fd);
  sys::close(wire::kPlanFd);
  sys::close(wire::kReportFd);
  sys::close(wire::kStatusFd);
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct none[2] = {};
  if (sys::capset(&hdr, none) < 0) sys::exit_group(127);
  sys::prctl(PR_SET_DUMPABLE, 0);
  while (sys::wait4(child, nullptr, __WALL) == -EINTR) {
  }
  sys::exit_group(0);
}

}  // namespace sandcell::init
