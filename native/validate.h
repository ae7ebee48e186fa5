// Turning the JavaScript plan object into a SpawnRequest, checking every field on the way. The
// TypeScript side validated it already; this side does not rely on that, because a bad value
// here could crash the embedding service or weaken the box.
#pragma once

#include <napi.h>

#include "spawn.h"
#include "wire.h"

namespace sandcell {

// What a plan's shape is, checked and encoded once: everything but a run's own fields (its files
// after the shape's mounts, rlimits, filter, cgroup files and stdio). Its bytes are wire::encode's
// own, cut where the run's parts go in (request_for_run).
struct PreparedRequest {
  uint32_t flags = 0;
  std::string head;    // the encoded fields from uid to env
  uint32_t mount_count = 0;
  std::string mounts;  // the shape's mounts, encoded
  SpawnRequest req;    // without a plan, cgroup files or stdio
  bool join = false;
  bool prepared = false;
};

// Each throws a Napi::TypeError naming the field ("plan.mounts[2].target: ...") when anything is off.
PreparedRequest prepare_from_plan(const Napi::Object& plan);
// A run of a prepared shape, its own fields read from `run`: with `adds_mounts`, `run` holds only
// them, and its mounts are those the run adds (files and directories); without, `run` is the whole
// plan the shape was prepared from.
SpawnRequest request_for_run(const PreparedRequest& shape, const Napi::Object& run, bool adds_mounts);

}  // namespace sandcell
