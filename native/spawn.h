// Starting a box: clone the init into fresh namespaces without copying the Node process, map its
// ids, put it in its cgroups, hand it the plan and wait until the program has exec'd (or failed).
// Plain C++ with no N-API, run on a libuv worker thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sandcell {

// What to connect a box's stdin/stdout/stderr to.
enum class StdioKind { kPipe, kNull, kFd };
struct StdioSpec {
  StdioKind kind = StdioKind::kPipe;
  int fd = -1;  // for kFd: a descriptor of this process, dup'ed into the box
};

struct SpawnRequest {
  std::string plan;  // wire::encode()d
  std::string uid_map;
  std::string gid_map;
  bool deny_setgroups = false;  // an unprivileged caller may map its gid only after this
  // The box's user namespace is owned by a free id of [owner_first, owner_first + owner_count),
  // held until release_owner(); with owner_count 0 it is the caller's.
  uint32_t owner_first = 0;
  uint32_t owner_count = 0;
  std::vector<std::string> cgroup_procs;  // files to write the init's pid to before it runs
  std::string cpu_usage_file;             // read right after the program's execve, if set
  bool new_net = true;
  StdioSpec stdio[3];
  int init_fd = -1;  // O_PATH fd of the init executable (owned by the caller)
  int join_pidfd = -1;  // a living box's init: run inside its namespaces instead of making new ones
  bool prepared = false;  // a box built ahead: done when its root is ready, the run comes later
  bool devices = false;  // the plan has a kDevices entry: the box gets a clone of devices_fd's tree
  int devices_fd = -1;  // the process's device tree (dev_tree.h; owned by the caller)
};

// The run of a prepared box: its plan (a join plan: program, limits, filter, files) and stdio.
struct StartRequest {
  std::string plan;  // wire::encode()d
  std::string cpu_usage_file;
  StdioSpec stdio[3];
  // The box's descriptors, owned by the caller: its init, its control channel, its report channel.
  int pidfd = -1;
  int control_fd = -1;
  int report_fd = -1;
  int init_fd = -1;  // O_PATH fd of the init executable (owned by the caller)
};

struct SpawnResult {
  // On failure: the stage and errno (the program never ran; everything was cleaned up).
  std::string stage;
  int err = 0;
  // On success, all owned by the caller.
  int pid = -1;
  int pidfd = -1;
  int stdio[3] = {-1, -1, -1};  // parent ends of pipes (-1 where not a pipe)
  int status_fd = -1;           // the init reports the program's exit status here
  int control_fd = -1;          // kept open: closing it (or sending kTerminate) ends the box
  int notify_fd = -1;           // seccomp user-notification listener, when the plan asked for one
  int run_pidfd = -1;           // a joined run's init, PID 1 of the run's namespace: ending it ends the run
  int report_fd = -1;           // a prepared box's report channel, for its start
  int mnt_ns_fd = -1;           // the box's mount namespace, held (see hold_mount_namespace)
  int64_t owner = -1;           // the host id owning the box's user namespace, if taken from a range
  int64_t started_ns = 0;       // CLOCK_MONOTONIC when the program's execve succeeded
  // A call the policy ends the run at, made by the program once it ran, but received before the
  // report channel's EOF (another process of the box still held the channel): the run is not a
  // setup failure; the box records the violation and ends the run. nr -1: none.
  int64_t early_violation_nr = -1;
  uint32_t early_violation_arch = 0;
  std::string cpu_usage_at_start;  // contents of cpu_usage_file at that moment (the setup's share)
  // CLOCK_MONOTONIC as the request passes each step (0: not reached), for the stage times of the
  // debug log. The init's own steps lie between them: its exec and root (kInitExec to kReported of
  // a spawn), its fork and the program's setup and execve (kSent to kReported of a start).
  enum Mark { kQueued, kBegun, kCloned, kMapped, kInitExec, kSent, kReported, kMarkCount };
  int64_t marks[kMarkCount] = {};
};

void spawn_box(const SpawnRequest& req, SpawnResult* res);

// Gives back a box's owner id (SpawnResult::owner) once its init is reaped and its mount namespace
// let go. What the kernel frees after that (the namespaces themselves) may still be charged to it
// for a moment: ids are handed out in turn, so a freed one is the last to be reused.
void release_owner(uint32_t id);

// Hands a prepared box its run and waits until the program has exec'd (or failed: then the box is
// killed). On success res has the stdio, notify fd and start time; pid, pidfd and the rest stay
// with the box.
void start_prepared(const StartRequest& req, SpawnResult* res);

}  // namespace sandcell
