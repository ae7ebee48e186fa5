#include "cgroup_files.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace sandcell {
namespace {

struct HeldFile {
  int fd;
  int users;
  bool gone;  // let go or closed (cgroupLetGo, cgroupCloseHeld): closed by its last user
};

// Shared by the pool threads (cgroupFiles, spawns) and the event loop (hold, let go).
std::mutex g_held_mu;
std::unordered_set<std::string> g_held_dirs;
// By path and mode ("w" or "r" appended), and by descriptor for held_put.
std::unordered_map<std::string, HeldFile> g_held;
std::unordered_map<int, std::string> g_held_keys;

void close_if_unused(std::unordered_map<std::string, HeldFile>::iterator it) {
  if (!it->second.gone || it->second.users > 0) return;
  close(it->second.fd);
  g_held_keys.erase(it->second.fd);
  g_held.erase(it);
}

std::vector<std::string> strings(const Napi::Env& env, const Napi::Value& v, const char* name) {
  if (!v.IsArray()) throw Napi::TypeError::New(env, std::string("cgroupFiles: ") + name + " must be an array of strings");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<std::string> out;
  out.reserve(a.Length());
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Value s = a.Get(i);
    if (!s.IsString()) throw Napi::TypeError::New(env, std::string("cgroupFiles: ") + name + " must be an array of strings");
    out.push_back(s.As<Napi::String>().Utf8Value());
  }
  return out;
}

// A file held open (cgroupHold) or opened now and closed when done.
class ControlFile {
 public:
  ControlFile(const std::string& path, int flags) {
    fd_ = held_get(path, flags, &held_);
    // O_TRUNC: a fake tree's files (tests) are regular files, where a shorter value would leave
    // the old one's tail.
    if (!held_) fd_ = open(path.c_str(), flags | (flags == O_WRONLY ? O_TRUNC : 0) | O_CLOEXEC);
  }
  ~ControlFile() {
    if (fd_ < 0) return;
    if (held_) held_put(fd_);
    else close(fd_);
  }
  int fd() const { return fd_; }

 private:
  int fd_;
  bool held_ = false;
};

// A control file is written with one write(2): the kernel parses each write as one value, and
// ignores the offset (a held file's is 0).
int write_file(const std::string& path, const std::string& value) {
  ControlFile f(path, O_WRONLY);
  if (f.fd() < 0) return errno;
  ssize_t n;
  do n = pwrite(f.fd(), value.data(), value.size(), 0);
  while (n < 0 && errno == EINTR);
  return n < 0 ? errno : n != static_cast<ssize_t>(value.size()) ? EIO : 0;
}

// Read from offset 0: a held file's contents are made afresh by a read from its start.
bool read_file(const std::string& path, std::string* out) {
  bool procs = path.size() >= 13 && path.compare(path.size() - 13, 13, "/cgroup.procs") == 0;
  int fd;
  bool held = false;
  if (procs) {
    fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  } else {
    fd = held_get(path, O_RDONLY, &held);
    if (!held) fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  }
  if (fd < 0) return false;
  char buf[4096];
  off_t at = 0;
  bool ok = true;
  for (;;) {
    ssize_t n = pread(fd, buf, sizeof buf, at);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ok = false;
      break;
    }
    if (n == 0) break;
    out->append(buf, static_cast<size_t>(n));
    at += n;
  }
  if (held) held_put(fd);
  else close(fd);
  return ok;
}

std::vector<std::string> dir_list(const Napi::CallbackInfo& info, const char* fn) {
  if (info.Length() != 1) throw Napi::TypeError::New(info.Env(), std::string(fn) + "(dirs: string[])");
  return strings(info.Env(), info[0], "dirs");
}

class CgroupFilesWorker : public Napi::AsyncWorker {
 public:
  CgroupFilesWorker(Napi::Env env, std::vector<std::string> rmdirs, std::vector<std::string> mkdirs, std::vector<std::string> writes,
                    std::vector<std::string> reads)
      : Napi::AsyncWorker(env, "sandcell.cgroupfiles"), deferred_(Napi::Promise::Deferred::New(env)), rmdirs_(std::move(rmdirs)),
        mkdirs_(std::move(mkdirs)), writes_(std::move(writes)), reads_(std::move(reads)) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    for (const auto& dir : rmdirs_) {
      if (rmdir(dir.c_str()) < 0) return fail("rmdir", dir, "", errno);
    }
    for (const auto& dir : mkdirs_) {
      if (mkdir(dir.c_str(), 0755) < 0) return fail("mkdir", dir, "", errno);
    }
    for (size_t i = 0; i + 1 < writes_.size(); i += 2) {
      int err = write_file(writes_[i], writes_[i + 1]);
      if (err != 0) return fail("write", writes_[i], writes_[i + 1], err);
    }
    contents_.resize(reads_.size());
    ok_.resize(reads_.size());
    for (size_t i = 0; i < reads_.size(); i++) ok_[i] = read_file(reads_[i], &contents_[i]);
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (err_ != 0) {
      Napi::Error e = Napi::Error::New(env, op_ + " " + path_ + ": " + strerror(err_));
      e.Set("op", Napi::String::New(env, op_));
      e.Set("path", Napi::String::New(env, path_));
      e.Set("value", Napi::String::New(env, value_));
      e.Set("errno", Napi::Number::New(env, err_));
      deferred_.Reject(e.Value());
      return;
    }
    Napi::Array out = Napi::Array::New(env, reads_.size());
    for (size_t i = 0; i < reads_.size(); i++) {
      out.Set(static_cast<uint32_t>(i), ok_[i] ? Napi::Value(Napi::String::New(env, contents_[i])) : env.Null());
    }
    deferred_.Resolve(out);
  }

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  void fail(const char* op, const std::string& path, const std::string& value, int err) {
    op_ = op;
    path_ = path;
    value_ = value;
    err_ = err;
  }

  Napi::Promise::Deferred deferred_;
  std::vector<std::string> rmdirs_, mkdirs_, writes_, reads_;
  std::vector<std::string> contents_;
  std::vector<bool> ok_;
  std::string op_, path_, value_;
  int err_ = 0;
};

}  // namespace

int held_get(const std::string& path, int flags, bool* held) {
  size_t slash = path.rfind('/');
  std::lock_guard<std::mutex> lock(g_held_mu);
  *held = slash != std::string::npos && g_held_dirs.count(path.substr(0, slash)) > 0;
  if (!*held) return -1;
  std::string key = path + (flags == O_WRONLY ? "\1w" : "\1r");
  auto it = g_held.find(key);
  if (it == g_held.end()) {
    int fd = open(path.c_str(), flags | O_CLOEXEC);
    if (fd < 0) return -1;
    it = g_held.emplace(key, HeldFile{fd, 0, false}).first;
    g_held_keys.emplace(fd, key);
  }
  it->second.users++;
  return it->second.fd;
}

void held_put(int fd) {
  std::lock_guard<std::mutex> lock(g_held_mu);
  auto k = g_held_keys.find(fd);
  if (k == g_held_keys.end()) return;
  auto it = g_held.find(k->second);
  it->second.users--;
  close_if_unused(it);
}

Napi::Value CgroupHold(const Napi::CallbackInfo& info) {
  std::vector<std::string> dirs = dir_list(info, "cgroupHold");
  std::lock_guard<std::mutex> lock(g_held_mu);
  for (auto& d : dirs) g_held_dirs.insert(std::move(d));
  return info.Env().Undefined();
}

Napi::Value CgroupLetGo(const Napi::CallbackInfo& info) {
  std::vector<std::string> dirs = dir_list(info, "cgroupLetGo");
  std::lock_guard<std::mutex> lock(g_held_mu);
  for (const auto& d : dirs) {
    if (g_held_dirs.erase(d) == 0) continue;
    for (auto it = g_held.begin(); it != g_held.end();) {
      auto next = std::next(it);
      const std::string& key = it->first;
      size_t slash = key.rfind('/');
      if (key.compare(0, slash, d) == 0 && slash == d.size()) {
        it->second.gone = true;
        close_if_unused(it);
      }
      it = next;
    }
  }
  return info.Env().Undefined();
}

Napi::Value CgroupCloseHeld(const Napi::CallbackInfo& info) {
  std::lock_guard<std::mutex> lock(g_held_mu);
  for (auto it = g_held.begin(); it != g_held.end();) {
    auto next = std::next(it);
    it->second.gone = true;
    close_if_unused(it);
    it = next;
  }
  return info.Env().Undefined();
}

Napi::Value CgroupFiles(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 3 && info.Length() != 4) throw Napi::TypeError::New(env, "cgroupFiles(mkdirs, writes, reads, rmdirs?)");
  std::vector<std::string> rmdirs;
  if (info.Length() == 4 && !info[3].IsUndefined()) rmdirs = strings(env, info[3], "rmdirs");
  auto mkdirs = strings(env, info[0], "mkdirs");
  auto writes = strings(env, info[1], "writes");
  auto reads = strings(env, info[2], "reads");
  if (writes.size() % 2 != 0) throw Napi::TypeError::New(env, "cgroupFiles: writes must hold path, value pairs");
  auto* w = new CgroupFilesWorker(env, std::move(rmdirs), std::move(mkdirs), std::move(writes), std::move(reads));
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

}  // namespace sandcell
