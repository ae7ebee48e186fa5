/* Never asks: waits for the interactor, which waits for it. */
#include <stdio.h>
int main(void) {
  while (getchar() != EOF) {
  }
  return 0;
}
