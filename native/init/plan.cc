// The plan's decoder: wire.h's encode() read back field by field, each length checked against
// what is left and each count against its bound, into memory of the init's own (strings copied
// with a NUL after them, so each is a C string too).
#include "init.h"

namespace sandcell::init {
namespace {

class Reader {
 public:
  Reader(const char* p, size_t n) : p_(p), n_(n) {}
  bool u32(uint32_t* v) { return raw(v, 4); }
  bool u64(uint64_t* v) { return raw(v, 8); }
  bool str(Str* s) {
    uint32_t len;
    if (!u32(&len) || len > n_ - off_) return false;
    *s = prefix({p_ + off_, len}, len);
    off_ += len;
    return true;
  }
  // A count, at most `max`, and room for that many items. The room is claimed only once the
  // bytes left could hold them (`min_bytes` each), so a count the bytes cannot back costs nothing.
  template <typename T>
  bool list(List<T>* v, uint32_t max, size_t min_bytes) {
    uint32_t count;
    if (!u32(&count) || count > max || count * min_bytes > n_ - off_) return false;
    v->items = allocate_array<T>(count);
    v->size = count;
    for (auto& x : *v) x = T{};
    return true;
  }
  bool strs(List<Str>* v, uint32_t max) {
    if (!list(v, max, 4)) return false;
    for (auto& s : *v)
      if (!str(&s)) return false;
    return true;
  }
  bool u32s(List<uint32_t>* v, uint32_t max) {
    if (!list(v, max, 4)) return false;
    for (auto& x : *v)
      if (!u32(&x)) return false;
    return true;
  }
  bool done() const { return off_ == n_; }

 private:
  bool raw(void* v, size_t k) {
    if (k > n_ - off_) return false;
    memcpy(v, p_ + off_, k);
    off_ += k;
    return true;
  }
  const char* p_;
  size_t n_;
  size_t off_ = 0;
};

}  // namespace

bool decode(const char* bytes, size_t n, Plan* plan) {
  Reader r(bytes, n);
  uint32_t magic;
  if (!r.u32(&magic) || magic != wire::kPlanMagic) return false;
  if (!r.u32(&plan->flags) || !r.u32(&plan->uid) || !r.u32(&plan->gid)) return false;
  if (!r.str(&plan->hostname) || !r.str(&plan->staging) || !r.strs(&plan->layers, wire::kMaxLayers) ||
      !r.str(&plan->root_tmpfs) || !r.str(&plan->cwd))
    return false;
  if (!r.strs(&plan->argv, 1u << 16) || !r.strs(&plan->env, 1u << 16)) return false;
  if (!r.list(&plan->mounts, 4096, 28)) return false;
  for (auto& m : plan->mounts) {
    if (!r.u32(&m.kind) || !r.u32(&m.flags) || !r.u32(&m.mode) || !r.u32(&m.owner)) return false;
    if (!r.str(&m.source) || !r.str(&m.target) || !r.str(&m.data)) return false;
  }
  if (!r.list(&plan->rlimits, 64, 20)) return false;
  for (auto& l : plan->rlimits)
    if (!r.u32(&l.resource) || !r.u64(&l.soft) || !r.u64(&l.hard)) return false;
  if (!r.str(&plan->seccomp)) return false;
  if (!r.u32s(&plan->exec_path_lo, 4096) || !r.u32s(&plan->exec_path_hi, 4096)) return false;
  uint64_t insns = plan->seccomp.n / 8;
  const List<uint32_t>* patched[] = {&plan->exec_path_lo, &plan->exec_path_hi};
  for (const auto* list : patched)
    for (uint32_t x : *list)
      if (x >= insns) return false;
  return r.done();
}

}  // namespace sandcell::init
