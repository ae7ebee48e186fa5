// run() keeps a run's output for its result: two sockets, their stream machinery and a
// JavaScript callback per chunk cost more of the main thread than the reads themselves. Here the
// pipes are watched by the loop's own poller and read into chunks per stream, handed over as one
// Buffer per stream; JavaScript is called once at the end (and once more if the output limit is
// reached).
#include "run_pipes.h"

#include <errno.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace sandcell {
namespace {

// A stream's output is kept in chunks that never move (a moved buffer's pages are slow to touch
// again under some hypervisors' shadow paging: a 1 MiB buffer grown with realloc cost 15 ms to
// first read here), each twice the size of the last.
constexpr size_t kFirstChunk = 16 * 1024;
constexpr size_t kMaxChunk = 1024 * 1024;
// Where bytes past the budget are read to be dropped.
constexpr size_t kScratch = 64 * 1024;
// Chunks freed by a run are kept for the next runs' output, up to this many bytes per thread: a
// page touched for the first time is a fault, and on this kind of VM faults are what a MiB of
// output costs most (fresh chunks for every run cost more main-thread CPU than the sockets did).
constexpr size_t kPoolBytes = 16 * 1024 * 1024;
constexpr int kChunkSizes = 7;  // kFirstChunk << 0 .. kMaxChunk

int size_class(size_t cap) {
  int c = 0;
  while ((kFirstChunk << c) < cap) c++;
  return c;
}

class ChunkPool {
 public:
  ~ChunkPool() {
    for (auto& list : free_)
      for (char* p : list) std::free(p);
  }
  char* take(size_t cap) {
    auto& list = free_[size_class(cap)];
    if (list.empty()) return static_cast<char*>(std::malloc(cap));
    char* p = list.back();
    list.pop_back();
    bytes_ -= cap;
    return p;
  }
  void give(char* p, size_t cap) {
    if (bytes_ + cap > kPoolBytes) {
      std::free(p);
      return;
    }
    free_[size_class(cap)].push_back(p);
    bytes_ += cap;
  }

 private:
  std::vector<char*> free_[kChunkSizes];
  size_t bytes_ = 0;
};

thread_local ChunkPool g_chunks;
// Reads per readiness callback: a program writing without pause must not hold the loop.
constexpr int kReadsPerTurn = 32;
// Reads of one pipe when the run has ended, before the rest is left to the quiet timer.
constexpr int kDrainReads = 256;

uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

void set_nonblocking(int fd) {
  int flags = fcntl(fd, F_GETFL);
  if (flags >= 0 && !(flags & O_NONBLOCK)) fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

class RunPipes : public Napi::ObjectWrap<RunPipes> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "RunPipes", {InstanceMethod("feed", &RunPipes::Feed), InstanceMethod("end", &RunPipes::End)});
  }

  // new RunPipes(stdoutFd, stderrFd, limitBytes, onExceeded): -1 for a stream that is no pipe.
  explicit RunPipes(const Napi::CallbackInfo& info) : Napi::ObjectWrap<RunPipes>(info) {
    Napi::Env env = info.Env();
    if (info.Length() != 4 || !info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsNumber() || !info[3].IsFunction())
      throw Napi::TypeError::New(env, "RunPipes(stdoutFd: number, stderrFd: number, limitBytes: number, onExceeded: function)");
    double limit = info[2].As<Napi::Number>().DoubleValue();
    if (!(limit >= 0)) throw Napi::RangeError::New(env, "limitBytes out of range");
    limit_ = limit >= 1.8e19 ? UINT64_MAX : static_cast<uint64_t>(limit);
    on_exceeded_ = Napi::Persistent(info[3].As<Napi::Function>());
    context_ = std::make_unique<Napi::AsyncContext>(env, "sandcell.output");
    napi_get_uv_event_loop(env, &loop_);
    for (int i = 0; i < 2; i++) {
      int fd = info[i].As<Napi::Number>().Int32Value();
      if (fd < 0) continue;
      set_nonblocking(fd);
      out_[i].fd = fd;
      out_[i].poll = start_poll(fd, i, UV_READABLE);
    }
  }

  ~RunPipes() override {
    for (Stream& s : out_) {
      if (s.fd >= 0) close(s.fd);
      for (Chunk& c : s.chunks) g_chunks.give(c.data, c.cap);
    }
    if (in_fd_ >= 0) close(in_fd_);
  }

 private:
  struct Poll {
    uv_poll_t handle;
    RunPipes* self;
    int slot;  // 0 stdout, 1 stderr, 2 stdin
  };
  struct Timer {
    uv_timer_t handle;
    RunPipes* self;
  };
  struct Chunk {
    char* data;
    size_t len;
    size_t cap;
  };
  struct Stream {
    int fd = -1;
    Poll* poll = nullptr;
    std::vector<Chunk> chunks;
    size_t total = 0;
    bool truncated = false;
  };
  enum class Got { kEmpty, kEof, kMore };

  // feed(fd, bytes): the program's stdin; the descriptor is ours from here on.
  Napi::Value Feed(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() != 2 || !info[0].IsNumber() || !info[1].IsTypedArray())
      throw Napi::TypeError::New(env, "feed(fd: number, bytes: Uint8Array)");
    int fd = info[0].As<Napi::Number>().Int32Value();
    Napi::TypedArray bytes = info[1].As<Napi::TypedArray>();
    if (fd < 0 || in_fd_ >= 0) throw Napi::Error::New(env, "feed: no descriptor, or one fed already");
    if (ending_) {
      close(fd);
      return env.Undefined();
    }
    in_fd_ = fd;
    set_nonblocking(fd);
    const char* p = static_cast<const char*>(bytes.ArrayBuffer().Data()) + bytes.ByteOffset();
    size_t n = bytes.ByteLength();
    size_t done = write_some(p, n);
    if (in_fd_ < 0) return env.Undefined();
    if (done == n) {
      close_input();
      return env.Undefined();
    }
    // The pipe is full: the rest waits, as a copy (the caller may reuse its bytes), until the
    // program reads.
    pending_.assign(p + done, n - done);
    in_poll_ = start_poll(fd, 2, UV_WRITABLE);
    return env.Undefined();
  }

  // end(quietMs, maxMs, done): the run has ended. Normally every writer of the output pipes is
  // gone and what is left in them is read at once. Not always: in a living box a process of the
  // run may have passed its stdout to a process of another run, which may hold it for as long as
  // the box lives; so output is read while it keeps coming, for maxMs at most, and once it pauses
  // for quietMs the pipe is given up.
  Napi::Value End(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() != 3 || !info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsFunction())
      throw Napi::TypeError::New(env, "end(quietMs: number, maxMs: number, done: function)");
    if (ending_) throw Napi::Error::New(env, "end: already ended");
    ending_ = true;
    quiet_ns_ = static_cast<uint64_t>(std::max(0.0, info[0].As<Napi::Number>().DoubleValue()) * 1e6);
    max_ns_ = static_cast<uint64_t>(std::max(0.0, info[1].As<Napi::Number>().DoubleValue()) * 1e6);
    done_ = Napi::Persistent(info[2].As<Napi::Function>());
    // Nothing reads the program's stdin any more.
    close_input();
    for (int i = 0; i < 2; i++) {
      if (out_[i].fd < 0) continue;
      Got got = Got::kMore;
      for (int k = 0; k < kDrainReads && got == Got::kMore; k++) got = read_stream(i);
      if (got == Got::kEof) close_stream(i);
    }
    if (out_[0].fd < 0 && out_[1].fd < 0) {
      deliver(false);
      return env.Undefined();
    }
    began_ns_ = now_ns();
    last_data_ns_ = std::max(last_data_ns_, began_ns_);
    timer_ = new Timer{};
    timer_->self = this;
    uv_timer_init(loop_, &timer_->handle);
    timer_->handle.data = timer_;
    uint64_t every = std::max<uint64_t>(1, quiet_ns_ / 1000000);
    uv_timer_start(&timer_->handle, &RunPipes::OnTimer, every, every);
    hold();
    return env.Undefined();
  }

  Poll* start_poll(int fd, int slot, int events) {
    Poll* p = new Poll{};
    p->self = this;
    p->slot = slot;
    uv_poll_init(loop_, &p->handle, fd);
    p->handle.data = p;
    uv_poll_start(&p->handle, events, &RunPipes::OnPoll);
    hold();
    return p;
  }

  void stop_poll(Poll** slot) {
    if (*slot == nullptr) return;
    Poll* p = *slot;
    *slot = nullptr;
    uv_poll_stop(&p->handle);
    uv_close(reinterpret_cast<uv_handle_t*>(&p->handle), [](uv_handle_t* h) { delete static_cast<Poll*>(h->data); });
    release();
  }

  // libuv holds pointers to this object while any handle of it is active.
  void hold() {
    if (active_++ == 0) Ref();
  }
  void release() {
    if (--active_ == 0) Unref();
  }

  static void OnPoll(uv_poll_t* handle, int status, int) {
    Poll* p = static_cast<Poll*>(handle->data);
    RunPipes* self = p->self;
    if (p->slot == 2) {
      self->write_pending(status);
      return;
    }
    int i = p->slot;
    if (status < 0 || self->read_stream(i) == Got::kEof) {
      self->close_stream(i);
      if (self->ending_ && self->out_[0].fd < 0 && self->out_[1].fd < 0) self->deliver(true);
    }
  }

  static void OnTimer(uv_timer_t* handle) {
    RunPipes* self = static_cast<Timer*>(handle->data)->self;
    uint64_t now = now_ns();
    if (now - self->last_data_ns_ < self->quiet_ns_ && now - self->began_ns_ < self->max_ns_) return;
    self->close_stream(0);
    self->close_stream(1);
    self->deliver(true);
  }

  // Reads until the pipe is empty, at its end, or after kReadsPerTurn reads. Bytes past the
  // budget are read (so the writer is never stuck on a full pipe) and dropped.
  Got read_stream(int i) {
    Stream& s = out_[i];
    thread_local char scratch[kScratch];
    for (int n = 0; n < kReadsPerTurn; n++) {
      uint64_t room = limit_ - used_;
      char* dst = scratch;
      size_t want = sizeof scratch;
      if (room > 0) {
        if (s.chunks.empty() || s.chunks.back().len == s.chunks.back().cap) add_chunk(s);
        Chunk& c = s.chunks.back();
        dst = c.data + c.len;
        want = c.cap - c.len;
      }
      ssize_t r = read(s.fd, dst, want);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0 && errno == EAGAIN) return Got::kEmpty;
      if (r <= 0) return Got::kEof;
      if (ending_) last_data_ns_ = now_ns();
      uint64_t got = static_cast<uint64_t>(r);
      uint64_t keep = std::min(got, room);
      if (keep > 0) s.chunks.back().len += keep;
      s.total += keep;
      used_ += keep;
      if (keep < got) {
        s.truncated = true;
        if (!exceeded_) {
          exceeded_ = true;
          call_exceeded();
        }
      }
      if (s.fd < 0) return Got::kEof;  // closed by a callback meanwhile
      // A short read emptied the pipe. Reading again at once would chase a writer that is
      // writing right now, a few KiB a time, on the other CPU; the poller batches its writes.
      if (got < want && !ending_) return Got::kEmpty;
    }
    return Got::kMore;
  }

  void add_chunk(Stream& s) {
    size_t cap = s.chunks.empty() ? kFirstChunk : std::min(s.chunks.back().cap * 2, kMaxChunk);
    char* data = g_chunks.take(cap);
    if (data == nullptr) Napi::Error::Fatal("sandcell RunPipes", "out of memory for a run's output");
    s.chunks.push_back(Chunk{data, 0, cap});
  }

  void call_exceeded() {
    if (on_exceeded_.IsEmpty()) return;
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    try {
      on_exceeded_.MakeCallback(env.Global(), {}, *context_);
    } catch (const Napi::Error& e) {
      e.ThrowAsJavaScriptException();
    }
  }

  // Writes what it can without blocking; closes the input on any error (EPIPE: the program
  // closed its stdin or ended, which is not the caller's error). Returns the bytes written.
  size_t write_some(const char* p, size_t n) {
    size_t done = 0;
    while (done < n) {
      ssize_t w = write(in_fd_, p + done, n - done);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0 && errno == EAGAIN) break;
      if (w < 0) {
        close_input();
        break;
      }
      done += static_cast<size_t>(w);
    }
    return done;
  }

  void write_pending(int status) {
    if (status < 0) {
      close_input();
      return;
    }
    size_t done = write_some(pending_.data() + pending_off_, pending_.size() - pending_off_);
    if (in_fd_ < 0) return;
    pending_off_ += done;
    if (pending_off_ == pending_.size()) close_input();
  }

  void close_input() {
    stop_poll(&in_poll_);
    if (in_fd_ >= 0) close(in_fd_);
    in_fd_ = -1;
    std::string().swap(pending_);
    pending_off_ = 0;
  }

  void close_stream(int i) {
    Stream& s = out_[i];
    stop_poll(&s.poll);
    if (s.fd >= 0) close(s.fd);
    s.fd = -1;
  }

  Napi::Value take(Napi::Env env, Stream& s) {
    size_t total = s.total;
    std::vector<Chunk> chunks = std::move(s.chunks);
    s.chunks.clear();
    s.total = 0;
    if (total == 0) {
      for (Chunk& c : chunks) g_chunks.give(c.data, c.cap);
      return env.Undefined();
    }
    // Copied into one Buffer, the chunks kept for the next run: a Buffer handed over without a
    // copy would take its memory from the pool and be freed by the garbage collector.
    Napi::Buffer<char> out = Napi::Buffer<char>::New(env, total);
    size_t off = 0;
    for (Chunk& c : chunks) {
      std::memcpy(out.Data() + off, c.data, c.len);
      off += c.len;
      g_chunks.give(c.data, c.cap);
    }
    return out;
  }

  // Every descriptor is closed: calls back with the output (from the loop: async, from end():
  // directly).
  void deliver(bool from_loop) {
    if (delivered_) return;
    delivered_ = true;
    if (timer_ != nullptr) {
      uv_timer_stop(&timer_->handle);
      uv_close(reinterpret_cast<uv_handle_t*>(&timer_->handle), [](uv_handle_t* h) { delete static_cast<Timer*>(h->data); });
      timer_ = nullptr;
      release();
    }
    // The callback closes over the run's process, which holds this object: kept, it would keep
    // both alive for ever (a reference from native code is a root for the collector).
    on_exceeded_.Reset();
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    int truncated = (out_[0].truncated ? 1 : 0) | (out_[1].truncated ? 2 : 0);
    Napi::Value out = take(env, out_[0]);
    Napi::Value err = take(env, out_[1]);
    Napi::FunctionReference cb = std::move(done_);
    Napi::Number bits = Napi::Number::New(env, truncated);
    if (!from_loop) {
      cb.Call({out, err, bits});
      return;
    }
    try {
      cb.MakeCallback(env.Global(), {out, err, bits}, *context_);
    } catch (const Napi::Error& e) {
      e.ThrowAsJavaScriptException();
    }
  }

  Stream out_[2];
  int in_fd_ = -1;
  Poll* in_poll_ = nullptr;
  std::string pending_;
  size_t pending_off_ = 0;
  Timer* timer_ = nullptr;
  uv_loop_t* loop_ = nullptr;
  uint64_t limit_ = 0;
  uint64_t used_ = 0;
  bool exceeded_ = false;
  bool ending_ = false;
  bool delivered_ = false;
  int active_ = 0;
  uint64_t quiet_ns_ = 0;
  uint64_t max_ns_ = 0;
  uint64_t began_ns_ = 0;
  uint64_t last_data_ns_ = 0;
  Napi::FunctionReference on_exceeded_;
  Napi::FunctionReference done_;
  std::unique_ptr<Napi::AsyncContext> context_;
};

}  // namespace

Napi::Function DefineRunPipes(Napi::Env env) { return RunPipes::Define(env); }

}  // namespace sandcell
