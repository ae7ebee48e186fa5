#pragma once

#include <napi.h>

namespace sandcell {

// RunPipes: a run's stdio as run() keeps it, handled on the event loop's own poller with no
// JavaScript per chunk. Output: each of our read ends (stdout, stderr; -1 for none) is read as it
// comes, both spending from one budget: bytes past it are read and dropped, the
// stream that was writing is marked truncated and `onExceeded` is called once. Input: feed(fd,
// bytes) writes the bytes to the program's stdin pipe (one write when the pipe holds them, the
// rest as the pipe drains) and closes it. end(quietMs, maxMs, done) closes the input and reads
// what is left in the output pipes; once both are at end of file, or output has paused for
// quietMs, or maxMs have passed, every descriptor is closed and `done(stdout, stderr, truncated)`
// is called with a Buffer per stream (undefined when empty) and a bit per truncated stream (1:
// stdout, 2: stderr). The object owns every descriptor it is given.
Napi::Function DefineRunPipes(Napi::Env env);

}  // namespace sandcell
