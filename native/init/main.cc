// sandcell-init's entry: reads the plan and runs the mode it asks for. A box of its own builds
// its root and starts its program; a living box (kPersistent) builds its root and waits for runs;
// a run in a living box (kJoin) gets a PID namespace of its own; a box built ahead (kPrepared)
// builds its root and waits for its one run's plan; a run staged in a living box (kJoin and
// kPrepared) gets its PID namespace and /proc and waits for its plan.
#include <sched.h>
#include <sys/prctl.h>

#include "init.h"
#include "sys.h"

namespace {

using namespace sandcell::init;
namespace wire = sandcell::wire;
namespace sys = sandcell::init::sys;
namespace fdpass = sandcell::fdpass;

// The plan's `len` bytes (after its length) into memory of their own; a read that fails ends the
// init with `stage` and `err`, or (err 0) with the read's own error.
const char* read_plan(uint32_t len, const char* stage, int err) {
  char* bytes = static_cast<char*>(allocate(len));
  if (long r = read_exact(wire::kPlanFd, bytes, len); r < 0) fail(stage, err ? err : static_cast<int>(-r));
  return bytes;
}

// A box or a living box's run made ahead of its run (kPrepared): all is ready; say so, then wait
// for the run's own plan and the program's stdio, which arrive together on the control channel. Everything the
// run may choose is taken from that plan; what the box is (namespaces, root, ids) stays as built.
void await_run(Plan* plan) {
  wire::Report ready{};
  ready.kind = wire::kReady;
  if (sys::write(wire::kReportFd, &ready, sizeof ready) != static_cast<long>(sizeof ready)) sys::exit_group(1);

  // The stdio descriptors ride on the first bytes of the plan's length.
  uint32_t len = 0;
  int received[fdpass::kMaxFds] = {-1, -1, -1};
  size_t count = 0;
  long n;
  do n = fdpass::recv_fds(wire::kPlanFd, &len, sizeof len, received, &count);
  while (n == -EINTR);
  if (n == 0) sys::exit_group(0);  // the box was discarded unused
  if (n < 0) fail("read run plan", static_cast<int>(-n));
  if (count != 3) fail("run stdio", EPROTO);
  if (n < static_cast<long>(sizeof len) &&
      read_exact(wire::kPlanFd, reinterpret_cast<char*>(&len) + n, sizeof len - static_cast<size_t>(n)) < 0)
    fail("read run plan", EPIPE);
  if (len == 0 || len > wire::kMaxPlanBytes) fail("read run plan", EINVAL);
  const char* bytes = read_plan(len, "read run plan", EPIPE);
  Plan run;
  if (!decode(bytes, len, &run) || run.argv.empty() || !(run.flags & wire::kJoin) || run.uid != plan->uid ||
      run.gid != plan->gid)
    fail("decode run plan", EINVAL);
  for (const auto& m : run.mounts)
    if (m.kind != wire::kFile && m.kind != wire::kDir) fail("decode run plan", EINVAL);

  for (int i = 0; i < 3; i++) {
    if (received[i] == i) continue;
    if (long r = sys::dup3(received[i], i, 0); r < 0) fail("run stdio", static_cast<int>(-r));
    sys::close(received[i]);
  }
  plan->argv = run.argv;
  plan->env = run.env;
  plan->cwd = run.cwd;
  plan->rlimits = run.rlimits;
  plan->seccomp = run.seccomp;
  plan->exec_path_lo = run.exec_path_lo;
  plan->exec_path_hi = run.exec_path_hi;
  plan->flags = (plan->flags & ~wire::kSeccompListener) | (run.flags & wire::kSeccompListener);
  plan->mounts = run.mounts;
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
};

[[noreturn]] int run_init(void* p) {
  Join& j = *static_cast<Join*>(p);
  // The supervisor ends the run through the run's init (killing the process it cloned would leave
  // us to die of PR_SET_PDEATHSIG a moment later, after the result), so it gets our pidfd first:
  // sent by us, it arrives before anything else we report (a staged run's ready note included).
  long self = sys::pidfd_open(sys::getpid());
  if (self < 0) fail("run init pidfd", static_cast<int>(-self));
  if (long r = send_note(wire::kRunInit, "run init", static_cast<int>(self)); r < 0) fail("run init pidfd", static_cast<int>(-r));
  sys::close(static_cast<int>(self));
  // The run's own /proc, over the box's, in the run's mount namespace: the run sees its processes
  // only. (A new procfs needs one already fully visible in the namespace, so the box's stays below.)
  mount_proc("/proc", "mount run /proc");
  if (j.plan->flags & wire::kPrepared) await_run(j.plan);
  supervise(*j.plan, true);
}

[[noreturn]] int run_link(void* p) {
  Join& j = *static_cast<Join*>(p);
  if (long r = sys::unshare(CLONE_NEWPID); r < 0) fail("run PID namespace", static_cast<int>(-r));
  link_until_reaped(clone_tied("fork run init", run_init, p));
}

[[noreturn]] void join_box(Plan& plan) {
  // Never unwound: this frame lives as long as we do, and the children read it from our memory.
  Join j{&plan};
  link_until_reaped(clone_tied("fork", run_link, &j));
}

}  // namespace

extern "C" [[noreturn]] void sandcell_main() {
  // If the Node process dies, so does the box: the kernel kills the rest of the PID namespace
  // when its init goes. The control socket gives EOF too when the whole parent process is gone,
  // which also covers the parent thread dying first.
  sys::prctl(PR_SET_PDEATHSIG, SIGKILL);
  sys::SigMask all = kAllSignals;
  sys::sigprocmask(SIG_BLOCK, &all);

  uint32_t len = 0;
  if (read_exact(wire::kPlanFd, reinterpret_cast<char*>(&len), sizeof len) < 0) sys::exit_group(1);  // the parent went away
  if (len == 0 || len > wire::kMaxPlanBytes) fail("read plan", EINVAL);
  const char* bytes = read_plan(len, "read plan", 0);
  Plan plan;
  bool decoded = decode(bytes, len, &plan);
  bool argv_later = plan.flags & (wire::kPersistent | wire::kPrepared);
  if (!decoded || (plan.argv.empty() && !argv_later) || plan.staging.empty() || plan.staging[0] != '/')
    fail("decode plan", EINVAL);

  if (int err = drop_bounding_set()) fail("drop capabilities", err);
  if (plan.flags & wire::kJoin) join_box(plan);
  if (plan.flags & wire::kNewCgroupNs)
    if (long r = sys::unshare(CLONE_NEWCGROUP); r < 0) fail("cgroup namespace", static_cast<int>(-r));
  if (long r = sys::sethostname(plan.hostname.p, plan.hostname.n); r < 0) fail("sethostname", static_cast<int>(-r));
  if (plan.flags & wire::kLoopbackUp) loopback_up();
  build_root(plan);
  bool prepared = plan.flags & wire::kPrepared;
  if (prepared) await_run(&plan);
  supervise(plan, prepared);
}
