#include "cgroup_files.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace sandcell {
namespace {

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

// A control file is written with one write(2): the kernel parses each write as one value.
int write_file(const std::string& path, const std::string& value) {
  int fd = open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  if (fd < 0) return errno;
  ssize_t n;
  do n = write(fd, value.data(), value.size());
  while (n < 0 && errno == EINTR);
  int err = n < 0 ? errno : n != static_cast<ssize_t>(value.size()) ? EIO : 0;
  close(fd);
  return err;
}

bool read_file(const std::string& path, std::string* out) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      close(fd);
      return false;
    }
    if (n == 0) break;
    out->append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return true;
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
