/* Spin forever on the CPU. */
int main(void) {
  for (volatile unsigned long i = 0;; i++) {
  }
}
