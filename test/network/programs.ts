/** Programs the network suites run in boxes (python3 from the host's /usr). */

/** A TCP echo server on port 8000 of the box's every address, answering "web says <what it got>"; says "up" once it listens. */
export const ECHO_SERVER = [
  'import socket',
  's = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("0.0.0.0", 8000)); s.listen()',
  'print("up", flush=True)',
  'while True:',
  '    c, _ = s.accept(); d = c.recv(100); c.sendall(b"web says " + d); c.close()',
].join('\n');
