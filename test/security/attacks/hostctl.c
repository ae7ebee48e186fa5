/* Host-wide state: hostname, domain name, the clock, reboot, the kernel log, accounting, swap. Each
 * is set to a harmless value (the current time, the C-A-D setting off) so that even a hole does
 * no damage; the test also checks the host's hostname and clock from outside. */
#include "attack.h"
#include <linux/reboot.h>
#include <sys/klog.h>
#include <sys/reboot.h>
#include <sys/swap.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/timex.h>
#include <time.h>

int main(void) {
  expect_fail("sethostname", sethostname("sandcell-pwned", 14));
  expect_fail("setdomainname", setdomainname("pwned", 5));
  struct timeval tv;
  gettimeofday(&tv, NULL);
  expect_fail("settimeofday(now)", settimeofday(&tv, NULL));
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  expect_fail("clock_settime(now)", clock_settime(CLOCK_REALTIME, &ts));
  struct timex tx = {.modes = ADJ_OFFSET, .offset = 0};
  expect_fail("adjtimex(ADJ_OFFSET 0)", adjtimex(&tx));
  expect_fail("reboot(CAD_OFF)", syscall(SYS_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2, LINUX_REBOOT_CMD_CAD_OFF, 0));
  char buf[256];
  expect_fail("syslog(READ_ALL)", klogctl(3, buf, sizeof buf));
  expect_fail("acct", acct("/tmp/acct"));
  expect_fail("swapoff", swapoff("/tmp/none"));
  return finish();
}
