// sandcell-init's entry: reads the plan and runs the mode it asks for. A box of its own builds
// its root and starts its program; a living box (kPersistent) builds its root and waits for runs;
// a run in a living box (kJoin) gets a PID namespace of its own; a box built ahead (kPrepared)
// builds its root and waits for its one run's plan; a run staged in a living box (kJoin and
// kPrepared) gets its PID namespace and /proc and waits for its plan.
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "../fd_passing.h"
#include "init.h"

namespace {

using namespace sandcell::init;
namespace wire = sandcell::wire;
namespace fdpass = sandcell::fdpass;

// A box or a living box's run made ahead of its run (kPrepared): all is ready; say so, then wait
// for the run's own plan and the program's stdio, which arrive together on the control channel. Everything the
// run may choose is taken from that plan; what the box is (namespaces, root, ids) stays as built.
void await_run(Plan* plan) {
  wire::Report ready{};
  ready.kind = wire::kReady;
  if (write(wire::kReportFd, &ready, sizeof ready) != static_cast<ssize_t>(sizeof ready)) _exit(1);

  // The stdio descriptors ride on the first bytes of the plan's length.
  uint32_t len = 0;
  int received[fdpass::kMaxFds] = {-1, -1, -1};
  size_t count = 0;
  ssize_t n;
  do n = fdpass::recv_fds(wire::kPlanFd, &len, sizeof len, received, &count);
  while (n < 0 && errno == EINTR);
  if (n == 0) _exit(0);  // the box was discarded unused
  if (n < 0) fail("read run plan", errno);
  if (count != 3) fail("run stdio", EPROTO);
  if (n < static_cast<ssize_t>(sizeof len) &&
      !read_exact(wire::kPlanFd, reinterpret_cast<char*>(&len) + n, sizeof len - static_cast<size_t>(n)))
    fail("read run plan", EPIPE);
  if (len == 0 || len > wire::kMaxPlanBytes) fail("read run plan", EINVAL);
  std::string bytes(len, '\0');
  if (!read_exact(wire::kPlanFd, bytes.data(), len)) fail("read run plan", EPIPE);
  Plan run;
  if (!wire::decode(bytes, &run) || run.argv.empty() || !(run.flags & wire::kJoin) || run.uid != plan->uid ||
      run.gid != plan->gid)
    fail("decode run plan", EINVAL);
  for (const auto& m : run.mounts)
    if (m.kind != wire::kFile && m.kind != wire::kDir) fail("decode run plan", EINVAL);

  for (int i = 0; i < 3; i++) {
    if (dup2(received[i], i) < 0) fail("run stdio", errno);
    if (received[i] != i) close(received[i]);
  }
  plan->argv = std::move(run.argv);
  plan->env = std::move(run.env);
  plan->cwd = std::move(run.cwd);
  plan->rlimits = std::move(run.rlimits);
  plan->seccomp = std::move(run.seccomp);
  plan->exec_path_lo = std::move(run.exec_path_lo);
  plan->exec_path_hi = std::move(run.exec_path_hi);
  plan->flags = (plan->flags & ~wire::kSeccompListener) | (run.flags & wire::kSeccompListener);
  plan->mounts = std::move(run.mounts);
}

// A run in a living box. The addon started us in the box's namespaces (and a mount namespace of
// the run's own); the box's PID namespace holds for our children only, and a new PID namespace can
// be made only by a process inside the one it goes below. So our child, in the box's PID
// namespace, makes the run's own, and its child is PID 1 there: the run's init. Its death takes the
// whole run with it, by the kernel; the box's init never sees the run's processes, nor they it.
// Both children are tied (clone_tied): the only processes that could ever be left to the box's init
// (a link or run init whose parent died) are killed with their parent, so it never keeps one. They
// share our memory: the run's three processes are one address space, and the program's process is
// too until its execve (start_program, reaper.cc).
// A run staged ahead (kPrepared with kJoin) goes as far as the run's init with its /proc, then
// waits for the run's plan and stdio as a box built ahead does: the run itself pays only for the
// program's process and its execve.
struct Join {
  Plan* plan;
  int cap_last;
  const sigset_t* all;
};

[[noreturn]] int run_init(void* p) {
  Join& j = *static_cast<Join*>(p);
  // The supervisor ends the run through the run's init (killing the process it cloned would leave
  // us to die of PR_SET_PDEATHSIG a moment later, after the result), so it gets our pidfd first:
  // sent by us, it arrives before anything else we report (a staged run's ready note included).
  int self = static_cast<int>(syscall(SYS_pidfd_open, getpid(), 0));
  if (self < 0 || !send_note(wire::kRunInit, "run init", self)) fail("run init pidfd", errno);
  close(self);
  // The run's own /proc, over the box's, in the run's mount namespace: the run sees its processes
  // only. (A new procfs needs one already fully visible in the namespace, so the box's stays below.)
  mount_proc("/proc", "mount run /proc");
  if (j.plan->flags & wire::kPrepared) await_run(j.plan);
  supervise(*j.plan, j.cap_last, *j.all, true);
}

[[noreturn]] int run_link(void* p) {
  Join& j = *static_cast<Join*>(p);
  if (unshare(CLONE_NEWPID) < 0) fail("run PID namespace", errno);
  link_until_reaped(clone_tied("fork run init", run_init, p), j.cap_last);
}

[[noreturn]] void join_box(Plan& plan, int cap_last, const sigset_t& all) {
  // Never unwound: this frame lives as long as we do, and the children read it from our memory.
  Join j{&plan, cap_last, &all};
  link_until_reaped(clone_tied("fork", run_link, &j), cap_last);
}

}  // namespace

int main() {
  // If the Node process dies, so does the box: the kernel kills the rest of the PID namespace
  // when its init goes. The control socket gives EOF too when the whole parent process is gone,
  // which also covers the parent thread dying first.
  prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  sigset_t all;
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, nullptr);

  uint32_t len = 0;
  if (!read_exact(wire::kPlanFd, reinterpret_cast<char*>(&len), sizeof len)) _exit(1);  // the parent went away
  if (len == 0 || len > wire::kMaxPlanBytes) fail("read plan", EINVAL);
  std::string bytes(len, '\0');
  if (!read_exact(wire::kPlanFd, bytes.data(), len)) fail("read plan", errno ? errno : EPIPE);
  Plan plan;
  bool decoded = wire::decode(bytes, &plan);
  bool argv_later = plan.flags & (wire::kPersistent | wire::kPrepared);
  if (!decoded || (plan.argv.empty() && !argv_later) ||
      plan.staging.empty() || plan.staging[0] != '/')
    fail("decode plan", EINVAL);
  bytes.clear();

  int cap_last = last_cap();
  if (plan.flags & wire::kJoin) join_box(plan, cap_last, all);
  if (plan.flags & wire::kNewCgroupNs)
    if (unshare(CLONE_NEWCGROUP) < 0) fail("cgroup namespace", errno);
  if (sethostname(plan.hostname.data(), plan.hostname.size()) < 0) fail("sethostname", errno);
  if (plan.flags & wire::kLoopbackUp) loopback_up();
  build_root(plan);
  bool prepared = plan.flags & wire::kPrepared;
  if (prepared) await_run(&plan);
  supervise(plan, cap_last, all, prepared);
}
