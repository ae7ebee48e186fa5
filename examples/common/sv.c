/* Opens a network socket, which the judge's filter does not allow: security violation. */
#include <sys/socket.h>
int main(void) {
  return socket(AF_INET, SOCK_STREAM, 0) < 0;
}
