# An ordinary Python program: threads, file I/O in /tmp, a pipe to a child, fork.
import os, subprocess, sys, threading

print("hello from Python", flush=True)
sums = [0] * 4
def work(i):
    sums[i] = sum(k * (i + 1) for k in range(1, 1001))
ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
for t in ts: t.start()
for t in ts: t.join()
print("threads", sum(sums))
with open("/tmp/py-file.txt", "w") as f: f.write("written in /tmp\n")
with open("/tmp/py-file.txt") as f: print("file", f.read(), end="")
out = subprocess.run(["/bin/echo", "child via pipe"], stdout=subprocess.PIPE, check=True).stdout.decode()
print("pipe", out, end="")
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(r); os.write(w, b"forked"); os._exit(0)
os.close(w)
data = os.read(r, 64).decode()
_, st = os.waitpid(pid, 0)
print("fork", data, os.waitstatus_to_exitcode(st), flush=True)
