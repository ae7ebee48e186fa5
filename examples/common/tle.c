/* Never ends: time limit exceeded. */
int main(void) {
  volatile unsigned long n = 0;
  for (;;) n++;
}
