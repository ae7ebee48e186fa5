#pragma once

#include <napi.h>

#include <string>

namespace sandcell {

// cgroupFiles(mkdirs, writes, reads, rmdirs?) → Promise<(string | null)[]>: removes `rmdirs`,
// makes the directories, then writes the files (`writes` is flat: path, value, path, value…),
// then reads the files, in that order, on a libuv worker thread. Which files and values is the
// caller's choice; this only keeps the cgroupfs syscalls off the event loop. The first rmdir,
// mkdir or write the kernel refuses rejects the promise with { op, path, value, errno } and
// nothing after it is done; a read that fails gives null.
Napi::Value CgroupFiles(const Napi::CallbackInfo& info);

// A cgroup kept for run after run (a pool's, readied by its reuse) has its control files opened
// by path on every run: a kernfs open and close cost about 20 µs of a pool thread each, seven
// times per run. cgroupHold(dirs) keeps the files of these directories open, once opened, for
// cgroupFiles and the spawn's attach; cgroupLetGo(dirs) closes them (before the directory is
// removed, or never held again). A cgroup.procs is never read through a held descriptor: v1
// keeps the list a descriptor read for a second and would give it again.
Napi::Value CgroupHold(const Napi::CallbackInfo& info);
Napi::Value CgroupLetGo(const Napi::CallbackInfo& info);
// cgroupCloseHeld(): closes every held file (one in use, when its user is done); the directories
// stay held, their files opened again at their next use. For a count of this process's files.
Napi::Value CgroupCloseHeld(const Napi::CallbackInfo& info);

// A held descriptor of `path` opened with `flags` (O_RDONLY or O_WRONLY): *held false when its
// directory is not held (the caller opens and closes the file itself, -1 is returned); else the
// descriptor, or -1 with errno when the open failed. Each descriptor handed out is given back
// with held_put, and stays open until then even if its directory is let go meanwhile.
int held_get(const std::string& path, int flags, bool* held);
void held_put(int fd);

}  // namespace sandcell
