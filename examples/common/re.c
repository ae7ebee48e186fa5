/* Dereferences a null pointer: runtime error (SIGSEGV). */
int main(void) {
  volatile int *p = 0;
  return *p;
}
