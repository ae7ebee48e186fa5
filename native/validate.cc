#include "validate.h"

#include <cmath>
#include <cstring>
#include <cstdint>
#include <string>
#include <vector>

#include "wire.h"

namespace sandcell {
namespace {

constexpr size_t kMaxPath = 4096;
constexpr size_t kMaxArg = 128 * 1024;
constexpr uint32_t kMaxList = 65536;
constexpr size_t kMaxMounts = 1024;

[[noreturn]] void bad(const Napi::Env& env, const std::string& field, const std::string& why) {
  throw Napi::TypeError::New(env, "invalid native plan: " + field + ": " + why);
}

Napi::Value field(const Napi::Object& o, const char* key) { return o.Get(key); }

std::string str(const Napi::Env& env, const Napi::Value& v, const std::string& name, size_t max) {
  if (!v.IsString()) bad(env, name, "must be a string");
  std::string s = v.As<Napi::String>().Utf8Value();
  if (s.size() > max) bad(env, name, "is longer than " + std::to_string(max) + " bytes");
  if (s.find('\0') != std::string::npos) bad(env, name, "contains a NUL byte");
  return s;
}

// Absolute, no empty, "." or ".." components: what the init may join below its staging root.
std::string clean_path(const Napi::Env& env, const Napi::Value& v, const std::string& name) {
  std::string p = str(env, v, name, kMaxPath);
  if (p.empty() || p[0] != '/') bad(env, name, "must be an absolute path");
  if (p == "/") return p;
  if (p.back() == '/') bad(env, name, "must not end with '/'");
  size_t start = 1;
  while (start <= p.size()) {
    size_t end = p.find('/', start);
    if (end == std::string::npos) end = p.size();
    std::string part = p.substr(start, end - start);
    if (part.empty() || part == "." || part == "..") bad(env, name, "must not contain empty, '.' or '..' parts");
    start = end + 1;
  }
  return p;
}

uint64_t uint(const Napi::Env& env, const Napi::Value& v, const std::string& name, uint64_t max) {
  if (v.IsBigInt()) {
    bool lossless = false;
    uint64_t x = v.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless || x > max) bad(env, name, "is out of range");
    return x;
  }
  if (!v.IsNumber()) bad(env, name, "must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || d < 0 || d != std::floor(d) || d > static_cast<double>(max) || d > 9007199254740991.0)
    bad(env, name, "must be a whole number from 0 to " + std::to_string(max));
  return static_cast<uint64_t>(d);
}

bool flag(const Napi::Env& env, const Napi::Object& o, const char* key, const std::string& name) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return false;
  if (!v.IsBoolean()) bad(env, name + "." + key, "must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

Napi::Array array(const Napi::Env& env, const Napi::Value& v, const std::string& name, uint32_t max) {
  if (!v.IsArray()) bad(env, name, "must be an array");
  Napi::Array a = v.As<Napi::Array>();
  if (a.Length() > max) bad(env, name, "has more than " + std::to_string(max) + " entries");
  return a;
}

std::vector<std::string> strings(const Napi::Env& env, const Napi::Value& v, const std::string& name, size_t max_each) {
  Napi::Array a = array(env, v, name, kMaxList);
  std::vector<std::string> out;
  for (uint32_t i = 0; i < a.Length(); i++) out.push_back(str(env, a.Get(i), name + "[" + std::to_string(i) + "]", max_each));
  return out;
}

// "inside outside count" lines, as /proc/<pid>/uid_map takes them.
std::string id_map(const Napi::Env& env, const Napi::Value& v, const std::string& name) {
  std::string m = str(env, v, name, 4096);
  size_t lines = 0, pos = 0;
  while (pos < m.size()) {
    size_t end = m.find('\n', pos);
    if (end == std::string::npos) bad(env, name, "every line must end with a newline");
    std::string line = m.substr(pos, end - pos);
    int fields = 0;
    size_t i = 0;
    while (i < line.size()) {
      size_t j = i;
      while (j < line.size() && line[j] >= '0' && line[j] <= '9') j++;
      if (j == i || j - i > 10) bad(env, name, "each line must be three numbers");
      if (std::stoull(line.substr(i, j - i)) > 0xffffffffULL) bad(env, name, "ids must fit in 32 bits");
      fields++;
      if (j < line.size() && line[j] != ' ') bad(env, name, "each line must be three numbers");
      i = j + 1;
    }
    if (fields != 3) bad(env, name, "each line must be three numbers");
    lines++;
    pos = end + 1;
  }
  if (lines == 0 || lines > 340) bad(env, name, "must have 1 to 340 lines");
  return m;
}

// Only the tmpfs options sandcell itself sets may reach the kernel.
std::string tmpfs_options(const Napi::Env& env, const Napi::Value& v, const std::string& name) {
  std::string data = str(env, v, name, kMaxPath);
  size_t pos = 0;
  while (pos <= data.size()) {
    size_t end = data.find(',', pos);
    if (end == std::string::npos) end = data.size();
    std::string opt = data.substr(pos, end - pos);
    bool known = false;
    for (const char* allowed : {"size=", "mode=", "nr_inodes=", "uid=", "gid="})
      if (opt.rfind(allowed, 0) == 0 && opt.size() > std::strlen(allowed) &&
          opt.find_first_not_of("0123456789kmgKMG", std::strlen(allowed)) == std::string::npos)
        known = true;
    if (!known) bad(env, name, "only numeric size=, mode=, nr_inodes=, uid= and gid= tmpfs options are allowed");
    pos = end + 1;
  }
  return data;
}

// File contents: a string (UTF-8) or a Buffer, binary-safe.
std::string bytes(const Napi::Env& env, const Napi::Value& v, const std::string& name, size_t max) {
  if (v.IsBuffer()) {
    auto b = v.As<Napi::Buffer<char>>();
    if (b.Length() > max) bad(env, name, "is larger than " + std::to_string(max) + " bytes");
    return std::string(b.Data(), b.Length());
  }
  if (!v.IsString()) bad(env, name, "must be a string or a Buffer");
  std::string s = v.As<Napi::String>().Utf8Value();
  if (s.size() > max) bad(env, name, "is larger than " + std::to_string(max) + " bytes");
  return s;
}

StdioSpec stdio_spec(const Napi::Env& env, const Napi::Value& v, const std::string& name) {
  StdioSpec s;
  if (v.IsString()) {
    std::string k = v.As<Napi::String>().Utf8Value();
    if (k == "pipe") s.kind = StdioKind::kPipe;
    else if (k == "null") s.kind = StdioKind::kNull;
    else bad(env, name, "must be 'pipe', 'null' or a file descriptor");
    return s;
  }
  s.kind = StdioKind::kFd;
  s.fd = static_cast<int>(uint(env, v, name, 1 << 20));
  return s;
}

wire::Mount mount_entry(const Napi::Env& env, const Napi::Value& v, const std::string& name) {
  if (!v.IsObject()) bad(env, name, "must be an object");
  Napi::Object o = v.As<Napi::Object>();
  wire::Mount m;
  std::string kind = str(env, o.Get("kind"), name + ".kind", 16);
  if (kind == "bind") m.kind = wire::kBind;
  else if (kind == "tmpfs") m.kind = wire::kTmpfs;
  else if (kind == "proc") m.kind = wire::kProc;
  else if (kind == "dir") m.kind = wire::kDir;
  else if (kind == "symlink") m.kind = wire::kSymlink;
  else if (kind == "file") m.kind = wire::kFile;
  else if (kind == "devices") m.kind = wire::kDevices;
  else bad(env, name + ".kind", "must be bind, tmpfs, proc, dir, symlink, file or devices");
  m.target = clean_path(env, o.Get("target"), name + ".target");
  if (m.target == "/") bad(env, name + ".target", "must not be the root itself");
  if (m.kind == wire::kBind) m.source = clean_path(env, o.Get("source"), name + ".source");
  if (m.kind == wire::kTmpfs || m.kind == wire::kSymlink) m.data = str(env, o.Get("data"), name + ".data", kMaxPath);
  if (m.kind == wire::kSymlink && m.data.empty()) bad(env, name + ".data", "must not be empty");
  if (m.kind == wire::kFile) m.data = bytes(env, o.Get("data"), name + ".data", 8 << 20);
  if (m.kind == wire::kFile || m.kind == wire::kDir) m.owner = flag(env, o, "programOwned", name) ? 1 : 0;
  if (m.kind == wire::kTmpfs) m.data = tmpfs_options(env, o.Get("data"), name + ".data");
  if (m.kind == wire::kDir || m.kind == wire::kFile) m.mode = static_cast<uint32_t>(uint(env, o.Get("mode"), name + ".mode", 07777));
  if (flag(env, o, "readOnly", name)) m.flags |= wire::kReadOnly;
  if (flag(env, o, "noSuid", name)) m.flags |= wire::kNoSuid;
  if (flag(env, o, "noDev", name)) m.flags |= wire::kNoDev;
  if (flag(env, o, "noExec", name)) m.flags |= wire::kNoExec;
  if (flag(env, o, "optional", name)) m.flags |= wire::kOptional;
  return m;
}

// wire::encode writes a plan as: magic, flags, the fields from uid to env, the mounts' count, the
// mounts, then the rlimits, the filter and its two patch lists. A shape's bytes are cut from its
// output once and a run's parts from it per run, so wire.h stays the one place the format is written.
constexpr size_t kCountsAfterMounts = 4 * 4;  // rlimits, the filter's length, the two patch lists

// Where the mounts' count begins in the bytes of a plan without rlimits, filter or patches.
size_t mount_count_at(const std::string& encoded) { return encoded.size() - kCountsAfterMounts - 4; }

// A run's own mounts come after its shape's: only the files and directories it places.
void run_mounts(const Napi::Env& env, const Napi::Value& v, size_t first, std::vector<wire::Mount>* out) {
  Napi::Array mounts = array(env, v, "plan.mounts", kMaxMounts);
  if (first + mounts.Length() > kMaxMounts) bad(env, "plan.mounts", "has more than " + std::to_string(kMaxMounts) + " entries");
  for (uint32_t i = 0; i < mounts.Length(); i++) {
    std::string name = "plan.mounts[" + std::to_string(first + i) + "]";
    out->push_back(mount_entry(env, mounts.Get(i), name));
    if (out->back().kind != wire::kFile && out->back().kind != wire::kDir)
      bad(env, name + ".kind", "a run's own mounts may only place files and directories");
  }
}

// The plan's bytes as wire::encode writes them: the shape's parts as they were encoded once, the
// run's (`run`: its flags, added mounts, rlimits and filter; nothing else) encoded now.
std::string encode_run(const PreparedRequest& shape, const wire::Plan& run) {
  static const size_t empty_head = mount_count_at(wire::encode(wire::Plan{}));
  std::string own = wire::encode(run);
  wire::Writer w;
  w.u32(wire::kPlanMagic);
  w.u32(run.flags);
  w.u32(static_cast<uint32_t>(shape.mount_count + run.mounts.size()));
  std::string out;
  out.reserve(shape.head.size() + shape.mounts.size() + own.size());
  out.append(w.bytes(), 0, 8);
  out += shape.head;
  out.append(w.bytes(), 8, 4);
  out += shape.mounts;
  out.append(own, empty_head + 4, std::string::npos);
  return out;
}

}  // namespace

// The fields of a plan that are a run's own, onto a copy of its shape's: every spawn or start
// reads these, and only these, from its run.
SpawnRequest request_for_run(const PreparedRequest& shape, const Napi::Object& run, bool adds_mounts) {
  Napi::Env env = run.Env();
  // The run's own part of the plan; the shape's is encoded already.
  wire::Plan p;
  p.flags = shape.flags;
  SpawnRequest req = shape.req;
  if (adds_mounts) run_mounts(env, field(run, "mounts"), shape.mount_count, &p.mounts);

  Napi::Array limits = array(env, field(run, "rlimits"), "plan.rlimits", 16);
  for (uint32_t i = 0; i < limits.Length(); i++) {
    std::string name = "plan.rlimits[" + std::to_string(i) + "]";
    Napi::Value v = limits.Get(i);
    if (!v.IsObject()) bad(env, name, "must be an object");
    Napi::Object o = v.As<Napi::Object>();
    wire::Rlimit r;
    r.resource = static_cast<uint32_t>(uint(env, o.Get("resource"), name + ".resource", 15));
    auto value = [&](const char* key) -> uint64_t {
      Napi::Value x = o.Get(key);
      if (x.IsString() && x.As<Napi::String>().Utf8Value() == "unlimited") return ~0ULL;
      return uint(env, x, name + "." + key, ~0ULL - 1);
    };
    r.soft = value("soft");
    r.hard = value("hard");
    if (r.soft > r.hard) bad(env, name, "soft must not exceed hard");
    p.rlimits.push_back(r);
  }

  Napi::Value filter = field(run, "seccomp");
  if (!filter.IsNull() && !filter.IsUndefined()) {
    if (!filter.IsBuffer()) bad(env, "plan.seccomp", "must be a Buffer or null");
    auto buf = filter.As<Napi::Buffer<char>>();
    if (buf.Length() == 0 || buf.Length() % 8 != 0 || buf.Length() > 4096 * 8)
      bad(env, "plan.seccomp", "must hold 1 to 4096 BPF instructions of 8 bytes");
    p.seccomp.assign(buf.Data(), buf.Length());
  }
  const std::pair<const char*, std::vector<uint32_t>*> patches[] = {{"seccompExecPathLo", &p.exec_path_lo},
                                                                     {"seccompExecPathHi", &p.exec_path_hi}};
  for (const auto& [key, out] : patches) {
    std::string name = std::string("plan.") + key;
    Napi::Value v = field(run, key);
    if (v.IsUndefined()) continue;
    Napi::Array a = array(env, v, name, 4096);
    for (uint32_t i = 0; i < a.Length(); i++) {
      uint64_t index = uint(env, a.Get(i), name + "[" + std::to_string(i) + "]", 4095);
      if (index >= p.seccomp.size() / 8) bad(env, name + "[" + std::to_string(i) + "]", "is past the end of the filter");
      out->push_back(static_cast<uint32_t>(index));
    }
  }
  bool seccomp_listener = flag(env, run, "seccompListener", "plan");
  if (seccomp_listener && p.seccomp.empty()) bad(env, "plan.seccompListener", "needs a seccomp filter");
  if (seccomp_listener) p.flags |= wire::kSeccompListener;
  // The program's filter comes with its run; a box waiting for one runs nothing to filter.
  if (shape.prepared && !p.seccomp.empty()) bad(env, "plan.seccomp", "a prepared box gets its filter with its run");

  std::vector<std::string> procs = strings(env, field(run, "cgroupProcs"), "plan.cgroupProcs", kMaxPath);
  for (size_t i = 0; i < procs.size(); i++) {
    std::string name = "plan.cgroupProcs[" + std::to_string(i) + "]";
    std::string path = clean_path(env, Napi::String::New(env, procs[i]), name);
    const std::string suffix = "/cgroup.procs";
    if (path.size() <= suffix.size() || path.compare(path.size() - suffix.size(), suffix.size(), suffix) != 0)
      bad(env, name, "must be a cgroup.procs file");
    req.cgroup_procs.push_back(path);
  }
  Napi::Value usage = field(run, "cpuUsageFile");
  if (!usage.IsUndefined() && !usage.IsNull()) {
    req.cpu_usage_file = clean_path(env, usage, "plan.cpuUsageFile");
    auto ends_with = [&](const std::string& suffix) {
      const std::string& f = req.cpu_usage_file;
      return f.size() > suffix.size() && f.compare(f.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    if (!ends_with("/cpuacct.usage") && !ends_with("/cpu.stat")) bad(env, "plan.cpuUsageFile", "must be a cpuacct.usage or cpu.stat file");
  }
  Napi::Array stdio = array(env, field(run, "stdio"), "plan.stdio", 3);
  if (stdio.Length() != 3) bad(env, "plan.stdio", "must have exactly 3 entries");
  for (uint32_t i = 0; i < 3; i++) req.stdio[i] = stdio_spec(env, stdio.Get(i), "plan.stdio[" + std::to_string(i) + "]");

  req.plan = encode_run(shape, p);
  if (req.plan.size() > wire::kMaxPlanBytes) bad(env, "plan", "is larger than 16 MiB");
  return req;
}

PreparedRequest prepare_from_plan(const Napi::Object& plan) {
  Napi::Env env = plan.Env();
  PreparedRequest out;
  wire::Plan p;
  bool persistent = flag(env, plan, "persistent", "plan");
  bool join = flag(env, plan, "join", "plan");
  bool prepared = flag(env, plan, "prepared", "plan");
  // join with prepared: a run staged in a living box, waiting for its plan as a box built ahead does.
  if (persistent + join + prepared > 1 && !(join && prepared && !persistent))
    bad(env, "plan", "can be only one of persistent, join and prepared, or join and prepared together");
  out.join = join;
  out.prepared = prepared;
  p.argv = strings(env, field(plan, "argv"), "plan.argv", kMaxArg);
  if (p.argv.empty() && !persistent && !prepared) bad(env, "plan.argv", "must not be empty");
  if (!p.argv.empty() && p.argv[0].empty()) bad(env, "plan.argv[0]", "must not be empty");
  p.env = strings(env, field(plan, "env"), "plan.env", kMaxArg);
  for (size_t i = 0; i < p.env.size(); i++)
    if (p.env[i].find('=') == std::string::npos || p.env[i][0] == '=')
      bad(env, "plan.env[" + std::to_string(i) + "]", "must look like NAME=value");
  p.cwd = clean_path(env, field(plan, "cwd"), "plan.cwd");
  p.staging = clean_path(env, field(plan, "staging"), "plan.staging");
  if (p.staging == "/") bad(env, "plan.staging", "must not be the root itself");
  p.hostname = str(env, field(plan, "hostname"), "plan.hostname", 64);
  p.uid = static_cast<uint32_t>(uint(env, field(plan, "uid"), "plan.uid", 0xfffffffe));
  p.gid = static_cast<uint32_t>(uint(env, field(plan, "gid"), "plan.gid", 0xfffffffe));

  Napi::Array mounts = array(env, field(plan, "mounts"), "plan.mounts", kMaxMounts);
  bool req_devices = false;
  for (uint32_t i = 0; i < mounts.Length(); i++) {
    std::string name = "plan.mounts[" + std::to_string(i) + "]";
    p.mounts.push_back(mount_entry(env, mounts.Get(i), name));
    if (p.mounts.back().kind == wire::kDevices) {
      if (req_devices) bad(env, name + ".kind", "a plan has at most one devices entry");
      req_devices = true;
    }
    // A run in a living box only places files and directories; its root was built with the box.
    if (join && p.mounts.back().kind != wire::kFile && p.mounts.back().kind != wire::kDir)
      bad(env, name + ".kind", "a run inside a box may only place files and directories");
  }
  Napi::Value layers = field(plan, "layers");
  if (!layers.IsUndefined() && !layers.IsNull()) {
    Napi::Array list = array(env, layers, "plan.layers", wire::kMaxLayers);
    if (list.Length() == 0) bad(env, "plan.layers", "must name at least one directory");
    for (uint32_t i = 0; i < list.Length(); i++)
      p.layers.push_back(clean_path(env, list.Get(i), "plan.layers[" + std::to_string(i) + "]"));
    p.flags |= wire::kOverlayRoot;
  }
  p.root_tmpfs = tmpfs_options(env, field(plan, "rootTmpfs"), "plan.rootTmpfs");

  if (flag(env, plan, "loopback", "plan")) p.flags |= wire::kLoopbackUp;
  if (flag(env, plan, "cgroupNamespace", "plan")) p.flags |= wire::kNewCgroupNs;
  if (flag(env, plan, "rootReadOnly", "plan")) p.flags |= wire::kRootReadOnly;
  if (persistent) p.flags |= wire::kPersistent;
  if (join) p.flags |= wire::kJoin;
  if (prepared) p.flags |= wire::kPrepared;

  SpawnRequest& req = out.req;
  req.prepared = prepared;
  req.devices = req_devices;
  req.new_net = flag(env, plan, "newNetwork", "plan");
  req.uid_map = id_map(env, field(plan, "uidMap"), "plan.uidMap");
  req.gid_map = id_map(env, field(plan, "gidMap"), "plan.gidMap");
  req.deny_setgroups = flag(env, plan, "denySetgroups", "plan");
  Napi::Value owners = field(plan, "owners");
  if (!owners.IsUndefined()) {
    if (!owners.IsObject()) bad(env, "plan.owners", "must be an object { first, count }");
    Napi::Object o = owners.As<Napi::Object>();
    // Never host root, and (uid_t)-1 means "unchanged" to the kernel.
    constexpr uint64_t kMaxId = 0xfffffffe;
    uint64_t first = uint(env, o.Get("first"), "plan.owners.first", kMaxId);
    uint64_t count = uint(env, o.Get("count"), "plan.owners.count", kMaxId);
    if (first == 0) bad(env, "plan.owners.first", "must not be 0 (host root)");
    if (count == 0 || count > kMaxId - first + 1) bad(env, "plan.owners.count", "must be at least 1 and end the range by " + std::to_string(kMaxId));
    req.owner_first = static_cast<uint32_t>(first);
    req.owner_count = static_cast<uint32_t>(count);
  }

  out.flags = p.flags;
  std::vector<wire::Mount> shape_mounts = std::move(p.mounts);
  p.mounts.clear();
  std::string bare = wire::encode(p);
  out.head = bare.substr(8, mount_count_at(bare) - 8);
  p.mounts = std::move(shape_mounts);
  std::string whole = wire::encode(p);
  size_t first = 8 + out.head.size() + 4;
  out.mounts = whole.substr(first, whole.size() - first - kCountsAfterMounts);
  out.mount_count = static_cast<uint32_t>(p.mounts.size());
  // The cut is checked against wire::encode itself: a run adding nothing must be the shape's bytes.
  wire::Plan nothing;
  nothing.flags = p.flags;
  if (encode_run(out, nothing) != whole)
    throw Napi::Error::New(env, "the addon's prepared plan does not encode as wire::encode does");
  return out;
}


}  // namespace sandcell
