// What every phase of the init uses: the report channel, a few careful I/O helpers and the
// strings it builds from the plan's.
#include <linux/capability.h>
#include <sys/prctl.h>

#include "init.h"
#include "sys.h"

namespace sandcell::init {
namespace {

// `s` into `out` (of `size` bytes, NUL included), cut short to fit, as snprintf("%s") would.
void copy_cut(char* out, size_t size, const char* s) {
  size_t n = 0;
  while (n + 1 < size && s[n] != 0) {
    out[n] = s[n];
    n++;
  }
  out[n] = 0;
}

}  // namespace

bool Str::starts_with(const char* prefix) const {
  size_t k = strlen(prefix);
  if (k > n) return false;
  for (size_t i = 0; i < k; i++)
    if (p[i] != prefix[i]) return false;
  return true;
}

bool Str::operator==(const char* s) const { return strlen(s) == n && starts_with(s); }

Str join(const char* a, const char* b, const char* c, const char* d, const char* e) {
  const char* parts[] = {a, b, c, d, e};
  size_t lengths[5];
  size_t total = 0;
  for (int i = 0; i < 5; i++) total += lengths[i] = strlen(parts[i]);
  char* out = static_cast<char*>(allocate(total + 1));
  size_t off = 0;
  for (int i = 0; i < 5; i++) {
    memcpy(out + off, parts[i], lengths[i]);
    off += lengths[i];
  }
  out[total] = 0;
  return {out, static_cast<uint32_t>(total)};
}

Str prefix(Str s, size_t n) {
  char* out = static_cast<char*>(allocate(n + 1));
  memcpy(out, s.p, n);
  out[n] = 0;
  return {out, static_cast<uint32_t>(n)};
}

Decimal::Decimal(uint64_t v) {
  p = buf + sizeof buf - 1;
  *p = 0;
  do *--p = static_cast<char>('0' + v % 10);
  while ((v /= 10) != 0);
}

[[noreturn]] void fail(const char* stage, int err) {
  wire::Report f{};
  f.kind = wire::kSetupFailed;
  f.err = err;
  copy_cut(f.stage, sizeof f.stage, stage);
  sys::write(wire::kReportFd, &f, sizeof f);
  sys::exit_group(127);
}

long send_note(wire::ReportKind kind, const char* stage, int fd) {
  wire::Report note{};
  note.kind = kind;
  copy_cut(note.stage, sizeof note.stage, stage);
  long n = fdpass::send_fds(wire::kReportFd, &note, sizeof note, &fd, 1);
  return n < 0 ? n : 0;
}

long read_exact(int fd, char* buf, size_t n) {
  size_t off = 0;
  while (off < n) {
    long r = sys::read(fd, buf + off, n - off);
    if (r == -EINTR) continue;
    if (r < 0) return r;
    if (r == 0) return -EPIPE;
    off += static_cast<size_t>(r);
  }
  return 0;
}

long write_all(int fd, const char* p, size_t n) {
  size_t off = 0;
  while (off < n) {
    long w = sys::write(fd, p + off, n - off);
    if (w == -EINTR) continue;
    if (w < 0) return w;
    off += static_cast<size_t>(w);
  }
  return 0;
}

int drop_bounding_set() {
  // Up to the first capability this kernel does not know (EINVAL): no read of cap_last_cap.
  for (unsigned long cap = 0; cap < 64; cap++) {
    long r = sys::prctl(PR_CAPBSET_DROP, cap);
    if (r == -EINVAL) return 0;
    if (r < 0) return static_cast<int>(-r);
  }
  return 0;
}

int clear_caps() {
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  return static_cast<int>(-sys::capset(&hdr, data));
}

}  // namespace sandcell::init
