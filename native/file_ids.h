#pragma once

#include <napi.h>

namespace sandcell {

// fileIds(paths) → "dev:ino dev:ino -…": which file each path is now (stat, symlinks followed),
// "-" where none is (ENOENT, ENOTDIR), in one call. Any other failure throws with `errno` and
// `path`.
Napi::Value FileIds(const Napi::CallbackInfo& info);

}  // namespace sandcell
