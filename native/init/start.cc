// What a C library would have given the init: its entry point, a clone that runs a function on a
// new stack, the memory functions the compiler emits calls to, and an allocator. The init runs no
// constructors and has no thread-local storage, so _start only aligns the stack and calls in.
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>

#include "init.h"
#include "sys.h"

// _start(): the kernel leaves argc, argv and the environment on the stack; the init reads none.
// sandcell_clone(flags, stack_top, fn, arg): clone(2) with `stack_top` as the child's stack; the
// child calls fn(arg) there and exits with its result (exit, not exit_group: a thread ends alone).
// fn and arg ride on the new stack, since the child has nothing else of the caller's.
#if defined(__x86_64__)
__asm__(R"(
  .text
  .global _start
  .type _start, @function
_start:
  xor %ebp, %ebp
  and $-16, %rsp
  call sandcell_main
  hlt

  .global sandcell_clone
  .type sandcell_clone, @function
sandcell_clone:
  and $-16, %rsi
  sub $16, %rsi
  mov %rdx, 0(%rsi)
  mov %rcx, 8(%rsi)
  xor %edx, %edx
  xor %r10d, %r10d
  xor %r8d, %r8d
  mov $)" "56" R"(, %eax
  syscall
  test %rax, %rax
  jnz 1f
  xor %ebp, %ebp
  pop %rax
  pop %rdi
  call *%rax
  mov %eax, %edi
  mov $)" "60" R"(, %eax
  syscall
  hlt
1:
  ret
)");
static_assert(__NR_clone == 56 && __NR_exit == 60, "x86_64 system call numbers");
#elif defined(__aarch64__)
__asm__(R"(
  .text
  .global _start
  .type _start, %function
_start:
  mov x29, xzr
  mov x30, xzr
  mov x0, sp
  and x0, x0, #-16
  mov sp, x0
  bl sandcell_main
  brk #0

  .global sandcell_clone
  .type sandcell_clone, %function
sandcell_clone:
  and x1, x1, #-16
  stp x2, x3, [x1, #-16]!
  mov x2, xzr
  mov x3, xzr
  mov x4, xzr
  mov x8, #)" "220" R"(
  svc #0
  cbnz x0, 1f
  ldp x2, x0, [sp], #16
  mov x29, xzr
  mov x30, xzr
  blr x2
  mov x8, #)" "93" R"(
  svc #0
  brk #0
1:
  ret
)");
static_assert(__NR_clone == 220 && __NR_exit == 93, "aarch64 system call numbers");
#else
#error "sandcell supports x86_64 and aarch64"
#endif

// GCC may emit calls to memcpy, memmove, memset and memcmp in any program, freestanding or not
// (struct copies, zeroing), and the init calls memcpy and strlen itself. x86_64 has string
// instructions for the bulk; elsewhere words, then bytes. The empty asm in each loop keeps the
// compiler from recognising the loop as the very call it implements.
extern "C" {

namespace {
using UnalignedWord = uint64_t __attribute__((may_alias, aligned(1)));
}

void* memcpy(void* dst, const void* src, size_t n) {
#if defined(__x86_64__)
  void* d = dst;
  __asm__ volatile("rep movsb" : "+D"(d), "+S"(src), "+c"(n) : : "memory");
#else
  auto* d = static_cast<unsigned char*>(dst);
  const auto* s = static_cast<const unsigned char*>(src);
  for (; n >= 8; n -= 8, d += 8, s += 8) {
    *reinterpret_cast<UnalignedWord*>(d) = *reinterpret_cast<const UnalignedWord*>(s);
    __asm__ volatile("" ::: "memory");
  }
  for (size_t i = 0; i < n; i++) {
    d[i] = s[i];
    __asm__ volatile("" ::: "memory");
  }
#endif
  return dst;
}

void* memmove(void* dst, const void* src, size_t n) {
  auto* d = static_cast<unsigned char*>(dst);
  const auto* s = static_cast<const unsigned char*>(src);
  if (d <= s || d >= s + n) return memcpy(dst, src, n);
  for (size_t i = n; i-- > 0;) {
    d[i] = s[i];
    __asm__ volatile("" ::: "memory");
  }
  return dst;
}

void* memset(void* dst, int c, size_t n) {
#if defined(__x86_64__)
  void* d = dst;
  __asm__ volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
#else
  auto* d = static_cast<unsigned char*>(dst);
  for (size_t i = 0; i < n; i++) {
    d[i] = static_cast<unsigned char>(c);
    __asm__ volatile("" ::: "memory");
  }
#endif
  return dst;
}

int memcmp(const void* x, const void* y, size_t n) {
  const auto* a = static_cast<const unsigned char*>(x);
  const auto* b = static_cast<const unsigned char*>(y);
  for (size_t i = 0; i < n; i++) {
    if (a[i] != b[i]) return a[i] < b[i] ? -1 : 1;
    __asm__ volatile("" ::: "memory");
  }
  return 0;
}

size_t strlen(const char* s) {
  size_t n = 0;
  while (s[n] != 0) {
    n++;
    __asm__ volatile("" ::: "memory");
  }
  return n;
}

}  // extern "C"

namespace sandcell::init {
namespace {

// The allocator's current chunk. Nothing is ever freed: the init allocates the plan (twice for a
// box built ahead), a few paths per mount and the program's argv, then execs or exits.
char* chunk_next = nullptr;
size_t chunk_left = 0;
constexpr size_t kChunk = 1 << 20;

}  // namespace

void* allocate(size_t n) {
  n = (n + 15) & ~static_cast<size_t>(15);
  if (n > chunk_left) {
    // Reserved, not committed: only the pages written count, against the box's memory.
    size_t size = n > kChunk ? (n + 4095) & ~static_cast<size_t>(4095) : kChunk;
    long p = sys::mmap(size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE);
    if (p < 0) fail("init memory", static_cast<int>(-p));
    chunk_next = reinterpret_cast<char*>(p);
    chunk_left = size;
  }
  char* out = chunk_next;
  chunk_next += n;
  chunk_left -= n;
  return out;
}

}  // namespace sandcell::init
