// Reading files out of a living box without trusting it: every path is resolved inside the box's
// root (openat2 RESOLVE_IN_ROOT), no symlink is followed anywhere on the way, only regular files
// are read, and never more than the caller's limit. Blocking calls: the addon runs them on libuv's
// worker threads.
#pragma once

#include <string>
#include <vector>

namespace sandcell {

struct BoxFileError {
  int err;
  std::string what;
};

struct DirEntry {
  std::string name;
  bool is_dir;
};

// `dir` is a path inside the box ("/work"); `name` a relative path below it ("out/a.txt").
// Throws BoxFileError: ELOOP for a symlink, EINVAL for a special file, EFBIG when over max_bytes.
std::string box_read_file(int pid, int pidfd, const std::string& dir, const std::string& name, size_t max_bytes);

// The entries of a directory below `dir` (name "" for `dir` itself), symlinks not followed: at
// most max_entries of them, with *truncated set when there were more.
std::vector<DirEntry> box_list_dir(int pid, int pidfd, const std::string& dir, const std::string& name, size_t max_entries,
                                   bool* truncated);

}  // namespace sandcell
