// The plan's wire format and the records the init sends back: the constants and fixed-size
// structs both sides use. Written by the addon (wire.h encodes a plan), read by the init, which has
// no C++ library and decodes the plan itself (init/plan.cc). Freestanding: it includes nothing the
// init could not link.
#pragma once

#include <stdint.h>

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

}  // namespace sandcell::wire
