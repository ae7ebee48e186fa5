// Turning the JavaScript plan object into a SpawnRequest, checking every field on the way. The
// TypeScript side validated it already; this side does not rely on that, because a bad value
// here could crash the embedding service or weaken the box.
#pragma once

#include <napi.h>

#include "spawn.h"

namespace sandcell {

// Throws a Napi::TypeError naming the field ("plan.mounts[2].target: ...") when anything is off.
SpawnRequest request_from_plan(const Napi::Object& plan);

}  // namespace sandcell
