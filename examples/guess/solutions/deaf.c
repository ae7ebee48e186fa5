/* Sleeps through everything: neither asks nor notices that the interactor has gone. */
#include <unistd.h>
int main(void) {
  for (;;) sleep(60);
}
