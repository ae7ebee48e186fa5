/* Capabilities: none held, none gainable (capset, setuid to root, a setuid-root binary), and
 * no_new_privs set. */
#include "attack.h"
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

int main(void) {
  struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct c[2];
  syscall(SYS_capget, &h, c);
  for (int i = 0; i < 2; i++)
    if (c[i].effective || c[i].permitted || c[i].inheritable) hole("capabilities", "held: eff %x prm %x inh %x", c[i].effective, c[i].permitted, c[i].inheritable);
  for (int cap = 0; cap <= 63; cap++)
    if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) == 1) {
      hole("bounding set", "holds capability %d", cap);
      break;
    }
  for (int cap = 0; cap <= 63; cap++)
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, cap, 0, 0) == 1) hole("ambient", "holds capability %d", cap);
  c[0].effective = c[0].permitted = ~0u;
  c[1].effective = c[1].permitted = ~0u;
  expect_fail("capset(all)", syscall(SYS_capset, &h, c));
  if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1) hole("no_new_privs", "not set");
  else note("no_new_privs", "set");
  if (getuid() == 0 || geteuid() == 0) hole("uid", "runs as root of its namespace");
  expect_fail("setuid(0)", setuid(0));
  expect_fail("setgid(0)", setgid(0));
  return finish();
}
