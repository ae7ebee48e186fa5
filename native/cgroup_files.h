#pragma once

#include <napi.h>

namespace sandcell {

// cgroupFiles(mkdirs, writes, reads, rmdirs?) → Promise<(string | null)[]>: removes `rmdirs`,
// makes the directories, then writes the files (`writes` is flat: path, value, path, value…),
// then reads the files, in that order, on a libuv worker thread. Which files and values is the
// caller's choice; this only keeps the cgroupfs syscalls off the event loop. The first rmdir,
// mkdir or write the kernel refuses rejects the promise with { op, path, value, errno } and
// nothing after it is done; a read that fails gives null.
Napi::Value CgroupFiles(const Napi::CallbackInfo& info);

}  // namespace sandcell
