/* Kernel attack surface a box must not reach: keyrings, bpf, perf events, modules, userfaultfd,
 * io_uring, kexec. A call that fails with anything but EPERM/ENOSYS/EACCES got past the filter
 * and the capability checks, and counts as reached. */
#include "attack.h"
#include <linux/bpf.h>
#include <linux/io_uring.h>
#include <linux/perf_event.h>
#include <fcntl.h>
#include <sys/syscall.h>

static void reached(const char *what, long rc) {
  int e = errno;
  if (rc >= 0) hole(what, "succeeded (rc=%ld)", rc);
  else if (e == EPERM || e == ENOSYS || e == EACCES) note(what, "%s", strerrorname_np(e));
  else hole(what, "reached the kernel (%s)", strerrorname_np(e));
}

int main(void) {
  reached("add_key", syscall(SYS_add_key, "user", "sandcell", "x", 1, -3 /* session keyring */));
  reached("keyctl(GET_KEYRING_ID)", syscall(SYS_keyctl, 0, -3, 1));
  struct bpf_insn prog[] = {{.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 0, .imm = 0}, {.code = BPF_JMP | BPF_EXIT}};
  union bpf_attr attr = {0};
  attr.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
  attr.insns = (unsigned long)prog;
  attr.insn_cnt = 2;
  attr.license = (unsigned long)"GPL";
  reached("bpf(PROG_LOAD)", syscall(SYS_bpf, BPF_PROG_LOAD, &attr, sizeof attr));
  struct perf_event_attr pe = {.type = PERF_TYPE_SOFTWARE, .size = sizeof pe, .config = PERF_COUNT_SW_CPU_CLOCK,
                               .disabled = 1, .exclude_kernel = 1, .exclude_hv = 1};
  reached("perf_event_open(self)", syscall(SYS_perf_event_open, &pe, 0, -1, -1, 0));
  int devnull = open("/dev/null", O_RDONLY);
  reached("finit_module", syscall(SYS_finit_module, devnull, "", 0));
  reached("init_module", syscall(SYS_init_module, "\x7f" "ELF", 4, ""));
  reached("delete_module", syscall(SYS_delete_module, "sandcell_none", 0));
  reached("userfaultfd(user mode)", syscall(SYS_userfaultfd, O_CLOEXEC | 1 /* UFFD_USER_MODE_ONLY */));
  struct io_uring_params p = {0};
  reached("io_uring_setup", syscall(SYS_io_uring_setup, 4, &p));
  reached("kexec_load", syscall(SYS_kexec_load, 0, 0, NULL, 0));
  return finish();
}
