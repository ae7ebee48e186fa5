// Which file each of a box's bind sources is, for telling whether a box built ahead still binds
// what a box built now would. Node's statSync makes a Stats object (with four Dates) per path;
// a box has a dozen sources and a run checks them two or three times.
#include "file_ids.h"

#include <errno.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstring>
#include <string>

namespace sandcell {

Napi::Value FileIds(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 1 || !info[0].IsArray()) throw Napi::TypeError::New(env, "fileIds(paths: string[])");
  Napi::Array paths = info[0].As<Napi::Array>();
  std::string out;
  out.reserve(paths.Length() * 24);
  for (uint32_t i = 0; i < paths.Length(); i++) {
    Napi::Value v = paths.Get(i);
    if (!v.IsString()) throw Napi::TypeError::New(env, "fileIds: paths must be strings");
    std::string path = v.As<Napi::String>().Utf8Value();
    if (path.find('\0') != std::string::npos) throw Napi::TypeError::New(env, "fileIds: a path contains a NUL byte");
    if (i > 0) out.push_back(' ');
    struct stat st;
    if (stat(path.c_str(), &st) == 0) {
      char id[48];
      std::snprintf(id, sizeof id, "%llu:%llu", static_cast<unsigned long long>(st.st_dev), static_cast<unsigned long long>(st.st_ino));
      out.append(id);
    } else if (errno == ENOENT || errno == ENOTDIR) {
      out.push_back('-');
    } else {
      int err = errno;
      Napi::Error e = Napi::Error::New(env, "stat " + path + ": " + std::strerror(err));
      e.Set("errno", Napi::Number::New(env, err));
      e.Set("path", Napi::String::New(env, path));
      throw e;
    }
  }
  return Napi::String::New(env, out);
}

}  // namespace sandcell
