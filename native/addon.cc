// The N-API surface: setInit(path), spawn(plan) → Promise, and the Box handle that watches a
// running box (pidfd and seccomp listener polled by libuv, no thread per box) and kills it.
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/seccomp.h>
#include <napi.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include <cstring>
#include <functional>
#include <vector>

#include "box_files.h"
#include "cgroup_files.h"
#include "dev_tree.h"
#include "file_ids.h"
#include "netlink.h"
#include "netns.h"
#include "peer_cred.h"
#include "process_util.h"
#include "run_pipes.h"
#include "spawn.h"
#include "validate.h"
#include "wire.h"

namespace sandcell {
namespace {

int g_init_fd = -1;
int g_device_tree = -1;

Napi::Value SetInit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "setInit(path: string)");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  int fd = open(path.c_str(), O_PATH | O_CLOEXEC);
  if (fd < 0) throw Napi::Error::New(env, "cannot open the sandcell init " + path + ": " + strerror(errno));
  struct stat st;
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (st.st_mode & 0111) == 0) {
    close(fd);
    throw Napi::Error::New(env, "the sandcell init " + path + " is not an executable file");
  }
  if (g_init_fd >= 0) close(g_init_fd);
  g_init_fd = fd;
  return env.Undefined();
}

// deviceTree({ nodes: [[name, major, minor]], links: [[name, target]], dirs: [name], uid, gid }):
// makes the process's /dev tree once (dev_tree.h); null once made, or why it cannot be (a user
// namespace may not make device nodes: the caller then binds the host's one by one).
Napi::Value DeviceTree(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* usage = "deviceTree({ nodes: [name, major, minor][], links: [name, target][], dirs: string[], uid, gid })";
  if (g_device_tree >= 0) return env.Null();
  if (info.Length() != 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, usage);
  Napi::Object o = info[0].As<Napi::Object>();
  auto name_ok = [](const std::string& n) { return !n.empty() && n.size() < 64 && n != "." && n != ".." && n.find('/') == std::string::npos && n.find('\0') == std::string::npos; };
  auto list = [&](const char* key) {
    Napi::Value v = o.Get(key);
    if (!v.IsArray()) throw Napi::TypeError::New(env, std::string(usage) + ": " + key + " must be an array");
    return v.As<Napi::Array>();
  };
  auto text = [&](Napi::Value v, const char* what, bool is_name) {
    if (!v.IsString()) throw Napi::TypeError::New(env, std::string(usage) + ": " + what + " must be a string");
    std::string s = v.As<Napi::String>().Utf8Value();
    if (is_name ? !name_ok(s) : s.empty() || s.size() > 255 || s.find('\0') != std::string::npos)
      throw Napi::TypeError::New(env, std::string(usage) + ": bad " + what + " '" + s + "'");
    return s;
  };
  auto number = [&](Napi::Value v, const char* what, uint32_t max) {
    if (!v.IsNumber()) throw Napi::TypeError::New(env, std::string(usage) + ": " + what + " must be a number");
    double d = v.As<Napi::Number>().DoubleValue();
    if (!(d >= 0 && d <= max) || d != static_cast<double>(static_cast<uint32_t>(d)))
      throw Napi::TypeError::New(env, std::string(usage) + ": " + what + " out of range");
    return static_cast<uint32_t>(d);
  };
  DeviceTreeSpec spec;
  Napi::Array nodes = list("nodes"), links = list("links"), dirs = list("dirs");
  if (nodes.Length() + links.Length() + dirs.Length() > 32) throw Napi::TypeError::New(env, std::string(usage) + ": at most 32 entries");
  for (uint32_t i = 0; i < nodes.Length(); i++) {
    if (!nodes.Get(i).IsArray() || nodes.Get(i).As<Napi::Array>().Length() != 3) throw Napi::TypeError::New(env, usage);
    Napi::Array n = nodes.Get(i).As<Napi::Array>();
    spec.nodes.push_back({text(n.Get(0u), "node name", true), number(n.Get(1u), "major", 4095), number(n.Get(2u), "minor", 0xfffff)});
  }
  for (uint32_t i = 0; i < links.Length(); i++) {
    if (!links.Get(i).IsArray() || links.Get(i).As<Napi::Array>().Length() != 2) throw Napi::TypeError::New(env, usage);
    Napi::Array l = links.Get(i).As<Napi::Array>();
    spec.links.push_back({text(l.Get(0u), "link name", true), text(l.Get(1u), "link target", false)});
  }
  for (uint32_t i = 0; i < dirs.Length(); i++) spec.dirs.push_back(text(dirs.Get(i), "dir name", true));
  spec.uid = number(o.Get("uid"), "uid", 0xfffffffe);
  spec.gid = number(o.Get("gid"), "gid", 0xfffffffe);
  std::string stage;
  if (int err = make_device_tree(spec, &g_device_tree, &stage)) return Napi::String::New(env, stage + ": " + strerror(err));
  return env.Null();
}

Napi::Error file_error(const Napi::Env& env, int err, const std::string& what) {
  Napi::Error e = Napi::Error::New(env, what + ": " + strerror(err));
  e.Set("errno", Napi::Number::New(env, err));
  return e;
}

// A read of a living box's files (box_files.h) on a libuv worker thread: a large file or
// directory never holds the event loop. It owns a duplicate of the box's pidfd, so the box may
// end meanwhile: the read then fails with ESRCH.
class BoxFileWorker : public Napi::AsyncWorker {
 public:
  using Work = std::function<void(int pid, int pidfd, BoxFileWorker*)>;
  using Done = Napi::Value (*)(Napi::Env, BoxFileWorker*);

  static Napi::Value Queue(Napi::Env env, int pid, int pidfd, Work work, Done done) {
    auto* w = new BoxFileWorker(env, pid, pidfd, std::move(work), done);
    Napi::Promise p = w->deferred_.Promise();
    if (pidfd < 0) {
      w->deferred_.Reject(file_error(env, ESRCH, "the box has ended").Value());
      delete w;
      return p;
    }
    w->Napi::AsyncWorker::Queue();
    return p;
  }

  ~BoxFileWorker() override {
    if (pidfd_ >= 0) close(pidfd_);
  }

  void Execute() override {
    try {
      work_(pid_, pidfd_, this);
    } catch (const BoxFileError& e) {
      failed_ = true;
      err_ = e;
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (failed_) deferred_.Reject(file_error(env, err_.err, err_.what).Value());
    else deferred_.Resolve(done_(env, this));
  }

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

  std::string data;  // a file's contents, or a listing's names
  std::string dirs;
  bool truncated = false;

 private:
  BoxFileWorker(Napi::Env env, int pid, int pidfd, Work work, Done done)
      : Napi::AsyncWorker(env, "sandcell.boxfile"), deferred_(Napi::Promise::Deferred::New(env)), pid_(pid), pidfd_(pidfd),
        work_(std::move(work)), done_(done) {}

  Napi::Promise::Deferred deferred_;
  int pid_;
  int pidfd_;
  Work work_;
  Done done_;
  bool failed_ = false;
  BoxFileError err_{};
};

// What the addon keeps per environment: the mount namespaces of ended boxes being let go
// (Box::release_namespace) and the promises of whenReleased() waiting for the last; the array a
// box's end is handed over in (Box::deliver).
struct PerEnv {
  int pending = 0;
  std::vector<Napi::Promise::Deferred> waiting;
  Napi::Reference<Napi::TypedArrayOf<int64_t>> exit_slots;
};

PerEnv* per_env(Napi::Env env) {
  auto* r = env.GetInstanceData<PerEnv>();
  if (r == nullptr) {
    r = new PerEnv();
    env.SetInstanceData(r);
  }
  return r;
}

class NamespaceRelease : public Napi::AsyncWorker {
 public:
  NamespaceRelease(Napi::Env env, int fd, int64_t owner) : Napi::AsyncWorker(env, "sandcell.release"), fd_(fd), owner_(owner) {
    per_env(env)->pending++;
  }
  // The last reference: the kernel tears the mount tree down here, in this thread.
  void Execute() override {
    close(fd_);
    if (owner_ >= 0) release_owner(static_cast<uint32_t>(owner_));
  }
  void OnOK() override {
    PerEnv* r = per_env(Env());
    if (--r->pending > 0) return;
    std::vector<Napi::Promise::Deferred> waiting = std::move(r->waiting);
    for (auto& d : waiting) d.Resolve(Env().Undefined());
  }

 private:
  int fd_;
  int64_t owner_;
};

// whenReleased() → Promise: resolves once no ended box's namespace is held any more.
Napi::Value WhenReleased(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto d = Napi::Promise::Deferred::New(env);
  PerEnv* r = per_env(env);
  if (r->pending == 0) d.Resolve(env.Undefined());
  else r->waiting.push_back(d);
  return d.Promise();
}

// A box put on a private network (netAttach) on a libuv worker thread. Owns its two fds.
class NetAttachWorker : public Napi::AsyncWorker {
 public:
  static Napi::Value Queue(Napi::Env env, int network_ns, int box_pidfd, int box_pid, std::string host_if, uint32_t address, int prefix) {
    auto* w = new NetAttachWorker(env, network_ns, box_pidfd, box_pid, std::move(host_if), address, prefix);
    Napi::Promise p = w->deferred_.Promise();
    w->Napi::AsyncWorker::Queue();
    return p;
  }

  ~NetAttachWorker() override {
    close(network_ns_);
    close(box_pidfd_);
  }

  void Execute() override { err_ = attach_box(network_ns_, box_pidfd_, box_pid_, host_if_.c_str(), address_, prefix_, &step_); }

  void OnOK() override {
    Napi::Env env = Env();
    if (err_ == 0) {
      deferred_.Resolve(env.Undefined());
      return;
    }
    Napi::Error e = Napi::Error::New(env, std::string(step_) + ": " + strerror(-err_));
    e.Set("errno", Napi::Number::New(env, -err_));
    e.Set("step", Napi::String::New(env, step_));
    deferred_.Reject(e.Value());
  }

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  NetAttachWorker(Napi::Env env, int network_ns, int box_pidfd, int box_pid, std::string host_if, uint32_t address, int prefix)
      : Napi::AsyncWorker(env, "sandcell.netattach"), deferred_(Napi::Promise::Deferred::New(env)), network_ns_(network_ns),
        box_pidfd_(box_pidfd), box_pid_(box_pid), host_if_(std::move(host_if)), address_(address), prefix_(prefix) {}

  Napi::Promise::Deferred deferred_;
  int network_ns_;
  int box_pidfd_;
  int box_pid_;
  std::string host_if_;
  uint32_t address_;
  int prefix_;
  int err_ = 0;
  const char* step_ = "";
};

// One running box. Owns the pidfd, the status pipe and the seccomp listener until the box has
// ended; JavaScript only ever sees it through kill() and the exit callback.
class Box : public Napi::ObjectWrap<Box> {
 public:
  static Napi::FunctionReference* constructor;

  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Box",
                       {InstanceMethod("watch", &Box::Watch), InstanceMethod("kill", &Box::Kill),
                        InstanceMethod("terminate", &Box::Terminate), InstanceMethod("close", &Box::Close),
                        InstanceMethod("readFile", &Box::ReadFile), InstanceMethod("listDir", &Box::ListDir),
                        InstanceMethod("start", &Box::Start), InstanceMethod("netSocket", &Box::NetSocket),
                        InstanceMethod("netAttach", &Box::NetAttach), InstanceMethod("whenReaped", &Box::WhenReaped)});
  }

  explicit Box(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Box>(info) {}
  ~Box() override {
    if (mnt_ns_fd_ >= 0) close(mnt_ns_fd_);
    mnt_ns_fd_ = -1;
    release_fds();
  }

  // A duplicate of the pidfd for a run that joins this box (-1 once the box has ended).
  int dup_pidfd() const { return pidfd_ >= 0 && !exited_ ? fcntl(pidfd_, F_DUPFD_CLOEXEC, 0) : -1; }

  void adopt(int pid, int pidfd, int run_pidfd, int status_fd, int control_fd, int notify_fd, int report_fd, int64_t owner) {
    pid_ = pid;
    owner_ = owner;
    pidfd_ = pidfd;
    run_pidfd_ = run_pidfd;
    control_fd_ = control_fd;
    status_fd_ = status_fd;
    notify_fd_ = notify_fd;
    report_fd_ = report_fd;
  }

  // The box's mount namespace, held so that the init's exit does not tear it down (spawn.cc,
  // hold_mount_namespace); released once the box has ended (release_namespace).
  void hold_namespace(int fd) { mnt_ns_fd_ = fd; }

  // A prepared box's run has started: the seccomp listener, if any, is watched with the box.
  void started(int notify_fd) {
    if (notify_fd_ >= 0) close(notify_fd_);
    notify_fd_ = notify_fd;
  }

  // The program broke the policy before its start was seen (SpawnResult::early_violation_nr):
  // recorded as any violation, and the run ends.
  void violated_early(const SpawnResult& res) {
    if (res.early_violation_nr < 0) return;
    violation_ = true;
    violation_nr_ = static_cast<int>(res.early_violation_nr);
    violation_arch_ = res.early_violation_arch;
    kill_pidfd(run_init());
  }

 private:
  Napi::Value Start(const Napi::CallbackInfo& info);

  struct Poll {
    uv_poll_t handle;
    Box* box;
  };

  static constexpr size_t kExitSlots = 15;

  // watch(callback): calls back once, when the box's init has exited and was reaped, with how the
  // box ended in a BigInt64Array that is only valid during the call (src/native.ts reads it).
  Napi::Value Watch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() != 1 || !info[0].IsFunction()) throw Napi::TypeError::New(env, "watch(callback)");
    if (pidfd_ < 0 || exit_poll_ != nullptr) throw Napi::Error::New(env, "box is not running or already watched");
    callback_ = Napi::Persistent(info[0].As<Napi::Function>());
    context_ = std::make_unique<Napi::AsyncContext>(env, "sandcell.box");
    napi_get_uv_event_loop(env, &loop_);
    exit_poll_ = start_poll(loop_, pidfd_, &Box::OnExitReady);
    if (notify_fd_ >= 0) notify_poll_ = start_poll(loop_, notify_fd_, &Box::OnNotifyReady);
    if (run_pidfd_ >= 0) run_poll_ = start_poll(loop_, run_pidfd_, &Box::OnRunEnded);
    Ref();  // stay alive while libuv holds pointers to us
    return env.Undefined();
  }

  // whenReaped(callback): calls back (at once if it is so already) once the process we cloned is
  // reaped. A joined run's result may come before (see on_run_ended), while the link and that
  // process still sit in the run's cgroup: its removal waits for this.
  Napi::Value WhenReaped(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() != 1 || !info[0].IsFunction()) throw Napi::TypeError::New(env, "whenReaped(callback)");
    if (!delivered_ || exited_) {
      info[0].As<Napi::Function>().Call({});
      return env.Undefined();
    }
    reaped_callback_ = Napi::Persistent(info[0].As<Napi::Function>());
    reaped_context_ = std::make_unique<Napi::AsyncContext>(env, "sandcell.reaped");
    return env.Undefined();
  }

  // kill(signal = SIGKILL): SIGKILL ends the box (the init's death takes every process of its
  // PID namespace); other signals reach the init, which forwards them to the program. For a run
  // in a living box that init is the run's own, PID 1 of the run's PID namespace.
  Napi::Value Kill(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int sig = SIGKILL;
    if (info.Length() > 0) {
      if (!info[0].IsNumber()) throw Napi::TypeError::New(env, "kill(signal?: number)");
      sig = info[0].As<Napi::Number>().Int32Value();
      if (sig < 1 || sig >= NSIG) throw Napi::RangeError::New(env, "signal out of range");
    }
    if (pidfd_ < 0 || exited_ || delivered_) return Napi::Boolean::New(env, false);
    bool ok = syscall(SYS_pidfd_send_signal, run_init(), sig, nullptr, 0) == 0;
    return Napi::Boolean::New(env, ok);
  }

  // netSocket(listen: boolean, port: number): a TCP socket made in the box's network namespace
  // (listening on its 127.0.0.1:port, or unbound for the caller to connect), for the host's side
  // of the egress proxy and of published ports.
  Napi::Value NetSocket(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() != 2 || !info[0].IsBoolean() || !info[1].IsNumber())
      throw Napi::TypeError::New(env, "netSocket(listen: boolean, port: number)");
    int port = info[1].As<Napi::Number>().Int32Value();
    if (port < 1 || port > 65535) throw Napi::RangeError::New(env, "port out of range");
    if (pidfd_ < 0 || exited_) throw Napi::Error::New(env, "the box has ended");
    int fd = box_net_socket(run_init(), info[0].As<Napi::Boolean>().Value() ? BoxSocket::kListen : BoxSocket::kConnect,
                            static_cast<uint16_t>(port));
    if (fd < 0) {
      Napi::Error e = Napi::Error::New(env, std::string("a socket in the box's network: ") + strerror(-fd));
      e.Set("errno", Napi::Number::New(env, -fd));
      throw e;
    }
    return Napi::Number::New(env, fd);
  }

  // netAttach(networkNs: fd, hostIf, address, prefix) → Promise: puts the box on a private
  // network (see netlink.h) on a libuv worker thread: the veth pair's kernel work (and waiting for
  // the kernel's rtnl lock, which every network namespace's teardown on the machine takes) never
  // holds the event loop. The worker owns duplicates of both fds. Root only. Rejects with an Error
  // carrying `errno` and `step`.
  Napi::Value NetAttach(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() != 4 || !info[0].IsNumber() || !info[1].IsString() || !info[2].IsString() || !info[3].IsNumber())
      throw Napi::TypeError::New(env, "netAttach(networkNs: number, hostIf: string, address: string, prefix: number)");
    std::string host_if = info[1].As<Napi::String>().Utf8Value();
    std::string address = info[2].As<Napi::String>().Utf8Value();
    int prefix = info[3].As<Napi::Number>().Int32Value();
    in_addr addr{};
    if (host_if.empty() || host_if.size() >= IFNAMSIZ || inet_pton(AF_INET, address.c_str(), &addr) != 1 || prefix < 1 || prefix > 32)
      throw Napi::RangeError::New(env, "netAttach: bad interface name, address or prefix");
    int box_pidfd = pidfd_ >= 0 && !exited_ ? fcntl(run_init(), F_DUPFD_CLOEXEC, 0) : -1;
    if (box_pidfd < 0) throw Napi::Error::New(env, "the box has ended");
    int network_ns = fcntl(info[0].As<Napi::Number>().Int32Value(), F_DUPFD_CLOEXEC, 0);
    if (network_ns < 0) {
      close(box_pidfd);
      throw Napi::Error::New(env, std::string("netAttach: the network's namespace fd: ") + strerror(errno));
    }
    return NetAttachWorker::Queue(env, network_ns, box_pidfd, pid_, host_if, addr.s_addr, prefix);
  }

  // terminate(): asks the init to end the box; unlike SIGKILL to the init, the init first reaps
  // every process so the result still carries the whole tree's usage.
  Napi::Value Terminate(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (control_fd_ < 0 || exited_) return Napi::Boolean::New(env, false);
    char c = wire::kTerminate;
    ssize_t n;
    do n = send(control_fd_, &c, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    return Napi::Boolean::New(env, n == 1);
  }

  // readFile(dir, name, maxBytes) → Promise<Buffer>: a regular file of the box, read safely (see
  // box_files.h) on a libuv worker thread. Rejects with an Error carrying `errno`.
  Napi::Value ReadFile(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() != 3 || !info[0].IsString() || !info[1].IsString() || !info[2].IsNumber())
      throw Napi::TypeError::New(env, "readFile(dir: string, name: string, maxBytes: number)");
    double max = info[2].As<Napi::Number>().DoubleValue();
    if (!(max >= 0) || max > 1e12) throw Napi::RangeError::New(env, "maxBytes out of range");
    std::string dir = checked(env, info[0], "dir"), name = checked(env, info[1], "name");
    size_t max_bytes = static_cast<size_t>(max);
    return BoxFileWorker::Queue(env, pid_, dup_pidfd(), [=](int pid, int pidfd, BoxFileWorker* w) {
      w->data = box_read_file(pid, pidfd, dir, name, max_bytes);
    }, [](Napi::Env env, BoxFileWorker* w) -> Napi::Value {
      // The file's bytes become the Buffer's without a copy on the event loop (up to the limit, 64 MiB).
      auto* bytes = new std::string(std::move(w->data));
      return Napi::Buffer<char>::NewOrCopy(env, bytes->data(), bytes->size(), [bytes](Napi::Env, char*) { delete bytes; });
    });
  }

  // listDir(dir, name, maxEntries) → Promise<{ names, dirs, truncated }>: a directory of the box,
  // symlinks not followed, at most maxEntries read, on a libuv worker thread. The names come as one
  // string, each ended by NUL (no name contains one), and `dirs` has a byte per name (1: a
  // directory): tens of thousands of entries are then two values for the event loop to make, not
  // tens of thousands of objects.
  Napi::Value ListDir(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() != 3 || !info[0].IsString() || !info[1].IsString() || !info[2].IsNumber())
      throw Napi::TypeError::New(env, "listDir(dir: string, name: string, maxEntries: number)");
    double max = info[2].As<Napi::Number>().DoubleValue();
    if (!(max >= 0) || max > 1e7) throw Napi::RangeError::New(env, "maxEntries out of range");
    std::string dir = checked(env, info[0], "dir"), name = checked(env, info[1], "name");
    size_t max_entries = static_cast<size_t>(max);
    return BoxFileWorker::Queue(env, pid_, dup_pidfd(), [=](int pid, int pidfd, BoxFileWorker* w) {
      for (const DirEntry& e : box_list_dir(pid, pidfd, dir, name, max_entries, &w->truncated)) {
        w->data += e.name;
        w->data += '\0';
        w->dirs += e.is_dir ? '\1' : '\0';
      }
    }, [](Napi::Env env, BoxFileWorker* w) -> Napi::Value {
      Napi::Object out = Napi::Object::New(env);
      out.Set("names", Napi::String::New(env, w->data));
      out.Set("dirs", Napi::Buffer<char>::Copy(env, w->dirs.data(), w->dirs.size()));
      out.Set("truncated", w->truncated);
      return out;
    });
  }

  static std::string checked(const Napi::Env& env, const Napi::Value& v, const char* what) {
    std::string s = v.As<Napi::String>().Utf8Value();
    if (s.find('\0') != std::string::npos || s.size() > 4096) throw Napi::TypeError::New(env, std::string(what) + ": bad path");
    return s;
  }

  // close(): for a box that will never be watched (the caller gave up before watching).
  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (exit_poll_ == nullptr && pidfd_ >= 0 && !exited_) {
      end_box(pidfd_, run_pidfd_);
      release_fds();
      release_namespace(info.Env());
    }
    return info.Env().Undefined();
  }

  Poll* start_poll(uv_loop_t* loop, int fd, uv_poll_cb cb) {
    Poll* p = new Poll{};
    p->box = this;
    uv_poll_init(loop, &p->handle, fd);
    p->handle.data = p;
    uv_poll_start(&p->handle, UV_READABLE | UV_DISCONNECT, cb);
    return p;
  }

  static void stop_poll(Poll** slot) {
    if (*slot == nullptr) return;
    Poll* p = *slot;
    *slot = nullptr;
    uv_poll_stop(&p->handle);
    uv_close(reinterpret_cast<uv_handle_t*>(&p->handle), [](uv_handle_t* h) { delete static_cast<Poll*>(h->data); });
  }

  static void OnNotifyReady(uv_poll_t* handle, int status, int events) {
    Box* box = static_cast<Poll*>(handle->data)->box;
    box->on_notify(status, events);
  }

  void on_notify(int status, int events) {
    if (status < 0 || (events & UV_DISCONNECT)) {
      stop_poll(&notify_poll_);
      return;
    }
    seccomp_notif req;
    std::memset(&req, 0, sizeof req);
    if (ioctl(notify_fd_, SECCOMP_IOCTL_NOTIF_RECV, &req) < 0) {
      if (errno != EINTR && errno != ENOENT) stop_poll(&notify_poll_);
      return;
    }
    // A call the policy says must end the run: remember the first one and end the box (for a run
    // in a living box, the run's own PID namespace). The caller is never answered; it dies with
    // the box, before the listener is closed.
    if (!violation_) {
      violation_ = true;
      violation_nr_ = req.data.nr;
      violation_arch_ = req.data.arch;
    }
    kill_pidfd(run_init());
  }

  // The process whose death ends every process of the run: the box's init, or a joined run's own.
  int run_init() const { return run_pidfd_ >= 0 ? run_pidfd_ : pidfd_; }

  static void OnExitReady(uv_poll_t* handle, int, int) {
    Box* box = static_cast<Poll*>(handle->data)->box;
    box->on_exit();
  }

  void on_exit() {
    std::memset(&exit_info_, 0, sizeof exit_info_);
    std::memset(&exit_usage_, 0, sizeof exit_usage_);
    long r = syscall(SYS_waitid, P_PIDFD, pidfd_, &exit_info_, WEXITED | WNOHANG | __WALL, &exit_usage_);
    if (r < 0 && errno == EINTR) return;
    if (r == 0 && exit_info_.si_pid == 0) return;  // not yet: spurious wake-up
    exited_ = true;
    stop_poll(&exit_poll_);
    if (delivered_) {
      release_fds();
      Napi::FunctionReference cb = std::move(reaped_callback_);
      std::unique_ptr<Napi::AsyncContext> ctx = std::move(reaped_context_);
      Napi::Env env = Env();
      Unref();
      if (cb.IsEmpty()) return;
      Napi::HandleScope scope(env);
      try {
        cb.MakeCallback(env.Global(), {}, *ctx);
      } catch (const Napi::Error& e) {
        e.ThrowAsJavaScriptException();
      }
      return;
    }
    ended_ns_ = now_ns();
    // A joined run's init normally ends before the process we cloned (which waits for it), and
    // its pidfd turns readable only once its PID namespace is empty. If the clone went first
    // (killed from outside), the run is ended now and the result waits until it is gone.
    pollfd run{run_pidfd_, POLLIN, 0};
    if (run_pidfd_ >= 0 && poll(&run, 1, 0) == 0) {
      kill_pidfd(run_pidfd_);
      if (run_poll_ == nullptr) run_poll_ = start_poll(loop_, run_pidfd_, &Box::OnRunEnded);
      return;
    }
    stop_poll(&run_poll_);
    deliver();
  }

  static void OnRunEnded(uv_poll_t* handle, int, int) {
    Box* box = static_cast<Poll*>(handle->data)->box;
    box->on_run_ended();
  }

  // A joined run's init has ended and its PID namespace is empty: no process of the run is left.
  // With the init's report in hand the result is whole, and it is delivered now: the link and the
  // process we cloned hold nothing of the run (no privilege, channel or stdio), and their exits
  // (the run's mount namespace goes with the last) are reaped after it. Without a report (the
  // run's init was killed) the result waits for the process we cloned, whose rusage stands in.
  void on_run_ended() {
    stop_poll(&run_poll_);
    if (exited_) {
      deliver();
      return;
    }
    pollfd st{status_fd_, POLLIN, 0};
    if (status_fd_ < 0 || poll(&st, 1, 0) != 1 || !(st.revents & POLLIN)) return;
    std::memset(&exit_info_, 0, sizeof exit_info_);
    std::memset(&exit_usage_, 0, sizeof exit_usage_);
    ended_ns_ = now_ns();
    delivered_ = true;
    deliver();
  }

  // Calls back with how the box ended; every process of it is gone.
  void deliver() {
    // A pending notification may still be queued if the filter fired right before the end.
    if (notify_fd_ >= 0 && !violation_) {
      pollfd pfd{notify_fd_, POLLIN, 0};
      if (poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLIN)) on_notify(0, 0);
    }

    wire::ExitStatus st{};
    bool have_status = false;
    if (status_fd_ >= 0) {
      ssize_t n;
      do n = read(status_fd_, &st, sizeof st);
      while (n < 0 && errno == EINTR);
      have_status = n == static_cast<ssize_t>(sizeof st) && st.magic == wire::kStatusMagic;
    }
    stop_poll(&notify_poll_);
    // Delivered before the process we cloned was reaped: it keeps its pidfd (and us) until then.
    int cloned = delivered_ && !exited_ ? pidfd_ : -1;
    if (cloned >= 0) pidfd_ = -1;
    release_fds();
    pidfd_ = cloned;

    const siginfo_t& si = exit_info_;
    const struct rusage& ru = exit_usage_;
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    release_namespace(env);
    // One typed array, the same for every box and read by the callback before it returns (src/
    // native.ts, nativeExit): objects built property by property, or a new buffer, cost the event
    // loop more than the rest of the exit's delivery.
    bool reaped = exited_;
    if (!have_status) st = wire::ExitStatus{};
    PerEnv* pe = per_env(env);
    if (pe->exit_slots.IsEmpty()) pe->exit_slots = Napi::Persistent(Napi::TypedArrayOf<int64_t>::New(env, kExitSlots, napi_bigint64_array));
    Napi::TypedArrayOf<int64_t> out = pe->exit_slots.Value();
    int64_t* x = out.Data();
    x[0] = reaped && si.si_code == CLD_EXITED ? si.si_status : -1;
    x[1] = reaped && si.si_code != CLD_EXITED ? si.si_status : -1;
    x[2] = have_status ? st.kind : 0;
    x[3] = st.value;
    x[4] = static_cast<int64_t>(st.user_us);
    x[5] = static_cast<int64_t>(st.system_us);
    x[6] = static_cast<int64_t>(st.max_rss_kib);
    x[7] = static_cast<int64_t>(st.ended_ns);
    x[8] = static_cast<int64_t>(ru.ru_utime.tv_sec) * 1000000 + ru.ru_utime.tv_usec;
    x[9] = static_cast<int64_t>(ru.ru_stime.tv_sec) * 1000000 + ru.ru_stime.tv_usec;
    x[10] = ru.ru_maxrss;
    x[11] = ended_ns_;
    x[12] = violation_ ? 1 : 0;
    x[13] = violation_nr_;
    x[14] = violation_arch_;
    Napi::FunctionReference cb = std::move(callback_);
    std::unique_ptr<Napi::AsyncContext> ctx = std::move(context_);
    if (cloned < 0) Unref();
    try {
      cb.MakeCallback(env.Global(), {out}, *ctx);
    } catch (const Napi::Error& e) {
      // An exception from the callback belongs to the JavaScript side; surface it there.
      e.ThrowAsJavaScriptException();
    }
  }

  // Every path here has reaped the init (or, from the destructor, lost it). The box's owner id is
  // free for another box once nothing of the box holds its namespaces: at once unless its mount
  // namespace is still held (then release_namespace frees both).
  void release_fds() {
    for (int* fd : {&pidfd_, &run_pidfd_, &status_fd_, &notify_fd_, &control_fd_, &report_fd_}) {
      if (*fd >= 0) close(*fd);
      *fd = -1;
    }
    if (mnt_ns_fd_ >= 0) return;
    if (owner_ >= 0) release_owner(static_cast<uint32_t>(owner_));
    owner_ = -1;
  }

  // The box has ended and was reaped: its mount namespace (and with it the box's owner id) is let
  // go on a libuv worker thread, where the tree's teardown blocks no one. Until then this process
  // holds one more descriptor: whenReleased() tells when none is held any more.
  void release_namespace(Napi::Env env) {
    if (mnt_ns_fd_ < 0) return;
    (new NamespaceRelease(env, mnt_ns_fd_, owner_))->Queue();
    mnt_ns_fd_ = -1;
    owner_ = -1;
  }

  int pid_ = -1;
  int pidfd_ = -1;
  int run_pidfd_ = -1;  // a joined run's init (PID 1 of the run's namespace); -1 for a box of its own
  int status_fd_ = -1;
  int notify_fd_ = -1;
  int control_fd_ = -1;
  int report_fd_ = -1;  // a prepared box's, until its start takes it
  int mnt_ns_fd_ = -1;  // the box's mount namespace (spawn.cc, hold_mount_namespace)
  int64_t owner_ = -1;  // the host id owning the box's user namespace, taken from the plan's range
  bool exited_ = false;
  bool delivered_ = false;  // a joined run's result went before the process we cloned was reaped
  bool violation_ = false;
  int violation_nr_ = 0;
  uint32_t violation_arch_ = 0;
  Poll* exit_poll_ = nullptr;
  Poll* notify_poll_ = nullptr;
  Poll* run_poll_ = nullptr;
  uv_loop_t* loop_ = nullptr;
  siginfo_t exit_info_;
  struct rusage exit_usage_;
  int64_t ended_ns_ = 0;
  Napi::FunctionReference callback_;
  std::unique_ptr<Napi::AsyncContext> context_;
  Napi::FunctionReference reaped_callback_;
  std::unique_ptr<Napi::AsyncContext> reaped_context_;
};

Napi::FunctionReference* Box::constructor = nullptr;

// The rejection of a spawn or start that failed: the stage and errno, for SandboxSetupError.
Napi::Value setup_error(Napi::Env env, const SpawnResult& res) {
  Napi::Error err = Napi::Error::New(env, "sandbox setup failed at " + res.stage + ": " + strerror(res.err));
  err.Set("stage", Napi::String::New(env, res.stage));
  err.Set("errno", Napi::Number::New(env, res.err));
  return err.Value();
}

// setTimings(true) (NODE_DEBUG=sandcell): started programs carry the worker's step times.
bool g_timings = false;

// The time of each step reached, in ms, named by the step that ended at its mark (NativeStarted.marks).
Napi::Object step_times(Napi::Env env, const SpawnResult& res) {
  static const char* const kNames[SpawnResult::kMarkCount] = {nullptr,  "queue",    "clone", "idMapsCgroup",
                                                              "initExec", "planSent", "report"};
  Napi::Object out = Napi::Object::New(env);
  int64_t last = res.marks[SpawnResult::kQueued];
  for (int i = SpawnResult::kBegun; i < SpawnResult::kMarkCount; i++) {
    if (res.marks[i] == 0) continue;
    out.Set(kNames[i], Napi::Number::New(env, static_cast<double>(res.marks[i] - last) / 1e6));
    last = res.marks[i];
  }
  return out;
}

// What JavaScript learns of a program that started (NativeStarted, src/native.ts reads it): its
// pid, stdio (-1: none) and start time, what the cgroup's CPU time read then, and the step times,
// as elements by index: properties by name cost the event loop more.
Napi::Array started_value(Napi::Env env, const SpawnResult& res, int pid) {
  Napi::Array out = Napi::Array::New(env, 8);
  out.Set(0u, Napi::Number::New(env, pid));
  for (uint32_t i = 0; i < 3; i++) out.Set(1 + i, Napi::Number::New(env, res.stdio[i]));
  out.Set(4u, Napi::BigInt::New(env, res.started_ns));
  out.Set(5u, res.cpu_usage_at_start.empty() ? env.Null() : Napi::Value(Napi::String::New(env, res.cpu_usage_at_start)));
  out.Set(6u, g_timings ? Napi::Value(step_times(env, res)) : env.Undefined());
  return out;
}

class SpawnWorker : public Napi::AsyncWorker {
 public:
  SpawnWorker(Napi::Env env, SpawnRequest req)
      : Napi::AsyncWorker(env, "sandcell.spawn"), deferred_(Napi::Promise::Deferred::New(env)), req_(std::move(req)) {
    res_.marks[SpawnResult::kQueued] = now_ns();
  }

  ~SpawnWorker() override {
    if (req_.join_pidfd >= 0) close(req_.join_pidfd);
  }

  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    req_.init_fd = g_init_fd;
    req_.devices_fd = g_device_tree;
    spawn_box(req_, &res_);
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (res_.pid < 0) {
      deferred_.Reject(setup_error(env, res_));
      return;
    }
    Napi::Object boxObj = Box::constructor->New({});
    Box::Unwrap(boxObj)->adopt(res_.pid, res_.pidfd, res_.run_pidfd, res_.status_fd, res_.control_fd, res_.notify_fd, res_.report_fd,
                               res_.owner);
    Box::Unwrap(boxObj)->hold_namespace(res_.mnt_ns_fd);
    Box::Unwrap(boxObj)->violated_early(res_);
    Napi::Array out = started_value(env, res_, res_.pid);
    out.Set(7u, boxObj);
    deferred_.Resolve(out);
  }

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  SpawnRequest req_;
  SpawnResult res_;
};

// The run of a prepared box, on a libuv worker thread like a spawn.
class StartWorker : public Napi::AsyncWorker {
 public:
  StartWorker(Napi::Env env, Napi::Object box, StartRequest req)
      : Napi::AsyncWorker(env, "sandcell.start"), deferred_(Napi::Promise::Deferred::New(env)), req_(std::move(req)) {
    box_ = Napi::Persistent(box);
    res_.marks[SpawnResult::kQueued] = now_ns();
  }

  ~StartWorker() override {
    for (int fd : {req_.pidfd, req_.control_fd, req_.report_fd})
      if (fd >= 0) close(fd);
  }

  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    req_.init_fd = g_init_fd;
    start_prepared(req_, &res_);
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (!res_.stage.empty()) {
      deferred_.Reject(setup_error(env, res_));
      return;
    }
    Box::Unwrap(box_.Value())->started(res_.notify_fd);
    Box::Unwrap(box_.Value())->violated_early(res_);
    deferred_.Resolve(started_value(env, res_, -1));
  }

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  Napi::ObjectReference box_;
  StartRequest req_;
  SpawnResult res_;
};

// A plan's shape checked and encoded once (PreparedRequest), for each spawn or start of it: those
// then read only the run's own fields.
class PreparedPlan : public Napi::ObjectWrap<PreparedPlan> {
 public:
  static Napi::FunctionReference* constructor;

  static Napi::Function Define(Napi::Env env) { return DefineClass(env, "PreparedPlan", {}); }

  explicit PreparedPlan(const Napi::CallbackInfo& info) : Napi::ObjectWrap<PreparedPlan>(info) {
    if (info.Length() != 1 || !info[0].IsObject()) throw Napi::TypeError::New(info.Env(), "new PreparedPlan(plan: object)");
    shape_ = prepare_from_plan(info[0].As<Napi::Object>());
    info.This().As<Napi::Object>().TypeTag(&kTag);
  }

  // The prepared plan v is, or null when it is none. A type tag, not instanceof: that walks the
  // prototype chain on every spawn.
  static const PreparedRequest* of(const Napi::Value& v) {
    if (!v.IsObject() || !v.As<Napi::Object>().CheckTypeTag(&kTag)) return nullptr;
    return &Unwrap(v.As<Napi::Object>())->shape_;
  }

 private:
  static constexpr napi_type_tag kTag = {0x73616e6463656c6cULL, 0x7072657061726564ULL};
  PreparedRequest shape_;
};

Napi::FunctionReference* PreparedPlan::constructor = nullptr;

// A spawn's or start's request from its arguments, (plan) or (prepared, run), and whether it joins
// a box; `rest` is the index of the argument after them.
SpawnRequest request_of(const Napi::CallbackInfo& info, const char* usage, bool* join, size_t* rest) {
  Napi::Env env = info.Env();
  const PreparedRequest* shape = info.Length() > 0 ? PreparedPlan::of(info[0]) : nullptr;
  *rest = shape ? 2 : 1;
  if (info.Length() < *rest || !info[*rest - 1].IsObject()) throw Napi::TypeError::New(env, usage);
  if (shape) {
    *join = shape->join;
    return request_for_run(*shape, info[1].As<Napi::Object>(), true);
  }
  PreparedRequest whole = prepare_from_plan(info[0].As<Napi::Object>());
  *join = whole.join;
  return request_for_run(whole, info[0].As<Napi::Object>(), false);
}

// start(plan) or start(prepared, run): the run of a box spawned with prepared: true; plan is a
// join plan. Once only.
Napi::Value Box::Start(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* usage = "start(plan: object) or start(prepared: PreparedPlan, run: object)";
  bool join = false;
  size_t rest = 0;
  SpawnRequest spawn = request_of(info, usage, &join, &rest);
  if (info.Length() != rest) throw Napi::TypeError::New(env, usage);
  if (!join) throw Napi::TypeError::New(env, "plan.join: a prepared box's run is a join plan");
  if (report_fd_ < 0 || pidfd_ < 0 || exited_ || exit_poll_ != nullptr)
    throw Napi::Error::New(env, "the box is not a prepared box waiting for its run");
  StartRequest req;
  req.plan = std::move(spawn.plan);
  req.cpu_usage_file = std::move(spawn.cpu_usage_file);
  for (int i = 0; i < 3; i++) req.stdio[i] = spawn.stdio[i];
  req.pidfd = fcntl(pidfd_, F_DUPFD_CLOEXEC, 0);
  req.control_fd = fcntl(control_fd_, F_DUPFD_CLOEXEC, 0);
  req.report_fd = report_fd_;
  report_fd_ = -1;
  if (req.pidfd < 0 || req.control_fd < 0) {
    int err = errno;
    for (int fd : {req.pidfd, req.control_fd, req.report_fd})
      if (fd >= 0) close(fd);
    throw Napi::Error::New(env, std::string("start: ") + strerror(err));
  }
  auto* worker = new StartWorker(env, Value(), std::move(req));
  Napi::Promise p = worker->promise();
  worker->Queue();
  return p;
}

// spawn(plan, box?) or spawn(prepared, run, box?): a box of its own, or with a join plan a run in box.
Napi::Value Spawn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* usage = "spawn(plan: object, box?: Box) or spawn(prepared: PreparedPlan, run: object, box?: Box)";
  if (g_init_fd < 0) throw Napi::Error::New(env, "setInit() was not called");
  bool join = false;
  size_t rest = 0;
  SpawnRequest req = request_of(info, usage, &join, &rest);
  if (info.Length() > rest + 1) throw Napi::TypeError::New(env, usage);
  if (req.devices && g_device_tree < 0) throw Napi::TypeError::New(env, "plan.mounts: a devices entry needs deviceTree() to have made the tree");
  Napi::Value box = info.Length() > rest ? info[rest] : env.Undefined();
  if (join) {
    if (!box.IsObject() || !box.As<Napi::Object>().InstanceOf(Box::constructor->Value()))
      throw Napi::TypeError::New(env, "a plan with join: true needs the box to run in");
    req.join_pidfd = Box::Unwrap(box.As<Napi::Object>())->dup_pidfd();
    if (req.join_pidfd < 0) throw Napi::Error::New(env, "the box has ended");
  } else if (!box.IsUndefined()) {
    throw Napi::TypeError::New(env, "a box is only given with a plan that has join: true");
  }
  auto* worker = new SpawnWorker(env, std::move(req));
  Napi::Promise p = worker->promise();
  worker->Queue();
  return p;
}

// How a stored image layer records what an OCI layer's ".wh." entries say, in overlayfs's own
// terms (Node has neither mknod nor setxattr): a whiteout is a 0/0 character device, which the
// kernel lets any user make; an opaque directory carries user.overlay.opaque, the name an
// overlay mounted with "userxattr" (as a box mounts it, inside its user namespace) reads.
Napi::Value OverlayMark(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 2 || !info[0].IsString() || !info[1].IsString())
    throw Napi::TypeError::New(env, "overlayMark(kind: 'whiteout' | 'opaque', path: string)");
  std::string kind = info[0].As<Napi::String>().Utf8Value();
  std::string path = info[1].As<Napi::String>().Utf8Value();
  int rc;
  if (kind == "whiteout") rc = mknod(path.c_str(), S_IFCHR | 0, makedev(0, 0));
  else if (kind == "opaque") rc = lsetxattr(path.c_str(), "user.overlay.opaque", "y", 1, 0);
  else throw Napi::TypeError::New(env, "overlayMark: kind must be 'whiteout' or 'opaque'");
  if (rc < 0) {
    Napi::Error e = Napi::Error::New(env, kind + " " + path + ": " + strerror(errno));
    e.Set("errno", Napi::Number::New(env, errno));
    throw e;
  }
  return env.Undefined();
}

// The reading side of the opaque mark, for looking up a file of a stored image as its overlay
// shows it: an opaque directory hides what the layers under it have at that path.
Napi::Value OverlayIsOpaque(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "overlayIsOpaque(path: string)");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  char value[2];
  ssize_t n = lgetxattr(path.c_str(), "user.overlay.opaque", value, sizeof value);
  if (n < 0 && errno != ENODATA && errno != ENOTSUP) {
    Napi::Error e = Napi::Error::New(env, "opaque mark of " + path + ": " + strerror(errno));
    e.Set("errno", Napi::Number::New(env, errno));
    throw e;
  }
  return Napi::Boolean::New(env, n == 1 && value[0] == 'y');
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  Box::constructor = new Napi::FunctionReference(Napi::Persistent(Box::Define(env)));
  PreparedPlan::constructor = new Napi::FunctionReference(Napi::Persistent(PreparedPlan::Define(env)));
  exports.Set("PreparedPlan", PreparedPlan::constructor->Value());
  exports.Set("setInit", Napi::Function::New(env, SetInit));
  exports.Set("spawn", Napi::Function::New(env, Spawn));
  exports.Set("deviceTree", Napi::Function::New(env, DeviceTree));
  exports.Set("peerCred", Napi::Function::New(env, PeerCred));
  exports.Set("setTimings", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
    g_timings = info.Length() > 0 && info[0].ToBoolean().Value();
  }));
  exports.Set("overlayMark", Napi::Function::New(env, OverlayMark));
  exports.Set("overlayIsOpaque", Napi::Function::New(env, OverlayIsOpaque));
  exports.Set("whenReleased", Napi::Function::New(env, WhenReleased));
  exports.Set("cgroupFiles", Napi::Function::New(env, CgroupFiles));
  exports.Set("fileIds", Napi::Function::New(env, FileIds));
  exports.Set("RunPipes", DefineRunPipes(env));
  return exports;
}

}  // namespace
}  // namespace sandcell

static Napi::Object InitSandcell(Napi::Env env, Napi::Object exports) { return sandcell::Init(env, exports); }

NODE_API_MODULE(sandcell, InitSandcell)
