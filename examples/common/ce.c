/* Does not compile: compilation error. */
int main(void) {
  return missing_name;
}
