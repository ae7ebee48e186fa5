// sandcell-init: PID 1 of every box, and of every run in a living box. Started by the addon as
// root of the box's user namespace, it reads the plan, builds the root filesystem (root.cc),
// starts the program as its child with every privilege dropped (program.cc, files.cc), then
// reaps, forwards signals and reports how the program ended (reaper.cc); main.cc picks the mode.
// An ordinary single-threaded static program: unlike the clone child it may use libc freely.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <string>

#include "../wire.h"

namespace sandcell::init {

using wire::Mount;
using wire::Plan;

// common.cc
// Reports a failed setup step (the stage names it) on the report channel and exits: the program
// never runs.
[[noreturn]] void fail(const std::string& stage, int err);
// Sends a note of `kind` on the report channel with one descriptor attached.
bool send_note(wire::ReportKind kind, const char* stage, int fd);
bool read_exact(int fd, char* buf, size_t n);
bool write_all(int fd, const std::string& s);
int last_cap();
// Clears every capability set of this process; 0 or an errno.
int clear_caps();

// root.cc: the box's root, assembled on a tmpfs and entered with pivot_root.
void build_root(const Plan& plan);
void loopback_up();
// A procfs of the caller's PID namespace at `at`.
void mount_proc(const std::string& at, const std::string& stage);

// files.cc: a run's own files (a join plan's entries) in a box that exists already. 0 or an
// errno; `what` then names the file.
int place_run_files(const Plan& plan, std::string* what);

// program.cc: the program's process, from fork to execve.
[[noreturn]] void exec_program(const Plan& plan, int cap_last, bool run_files);

// reaper.cc
// Starts the program (unless the box only waits for runs: kPersistent), forwards signals, reaps,
// and ends the run when it ends or when the supervisor says so.
[[noreturn]] void supervise(const Plan& plan, int cap_last, const sigset_t& all, bool run_files);
// Starts fn(arg) in a child that shares our memory and dies with us; its pid. From then on the
// caller makes raw system calls only (link_until_reaped).
pid_t clone_tied(const char* stage, int (*fn)(void*), void* arg);
// Ends once `child` is reaped, holding no privilege, channel or stdio meanwhile.
[[noreturn]] void link_until_reaped(pid_t child, int cap_last);

}  // namespace sandcell::init
