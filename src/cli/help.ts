export const MAIN_HELP = `sandcell — run a program in a Linux sandbox it cannot leave

Usage:
  sandcell run [options] -- <command> [args...]   run a program in a new box
  sandcell judge <problem.yaml> --submission <f>  judge a submission (sandcell judge --help)
  sandcell image import|ls|rm|prune|build         the image store: import docker/OCI archives, run
                                                  them with --image <name> (sandcell image --help)
  sandcell schema [config|problem]                print the JSON Schema of sandcell.yaml or a problem file
  sandcell seccomp explain <preset|policy.json>   print the decision table of a seccomp policy
  sandcell network create|ls|rm <name>            private networks between boxes (root only;
                                                  sandcell network --help)
  sandcell serve [options]                        the engine as a daemon on a Unix socket
                                                  (sandcell serve --help); with SANDCELL_HOST
                                                  set, sandcell run runs there
  sandcell worker --redis <url> [options]         a node of a farm on Redis (sandcell worker --help)
  sandcell service <verb> --redis <url> ...       a farm's services: create, scale, rm, ls, call
                                                  (sandcell service --help)
  sandcell version                                this version, and with SANDCELL_HOST the daemon's
  sandcell --help | sandcell run --help | sandcell --version

The box: fresh user, PID, mount, network, IPC, UTS and cgroup namespaces; the host's /usr, /bin
and /lib bound read-only under a new root; a writable /tmp and /work; no capabilities; a seccomp
filter; cgroup limits where the host allows them. Needs root (or delegated cgroups) on Linux.

Exit status: the program's own, 128+signal when it was killed (137 when a limit ended it),
125 when the box could not be built, 126/127 when the command could not be run / was not found.
`;

export const RUN_HELP = `Usage: sandcell run [options] -- <command> [args...]
       sandcell run [options] --image <name> [-- <args>...]

With a stored image, as docker run: no operands run its Entrypoint and Cmd; operands replace its
Cmd and follow its Entrypoint; its Env, WorkingDir and User are the defaults of --env, --cwd and
the program's ids.

Limits:
  --time <dur>         CPU time of the whole process tree (e.g. 1s, 1500ms)
  --wall <dur>         wall-clock time (with --collect: default 5m)
  --memory <size>      memory of the whole box, tmpfs files included (default 512MiB)
  --pids <n>           tasks (processes and threads) alive at once (default 256); fork/clone fail with EAGAIN
                       past it, the program is not killed (sandcell's own init counts as one)
  --stack <size>       stack of the main thread (judges set it equal to --memory)
  --output <size>      stdout and stderr together (default 64MiB)
  --file-size <size>   largest file the program may write (default 64MiB)
  --open-files <n>     open file descriptors per process (default 256)
  --tmpfs <size>       size of each writable tmpfs: /tmp, /work, /dev/shm (default 64MiB, one inode per 4KiB)
  --cpus <n>           CPU bandwidth as a number of CPUs (e.g. 0.5)

The box:
  --bind <host>[:<inside>][:ro|:rw]   make a host path visible; read-only unless :rw (repeatable)
  --mount tmpfs:<inside>[:<size>]     an extra tmpfs (repeatable)
  --image <dir|name>   a root filesystem instead of the host's /usr etc.: a directory (an absolute
                       path), or the name of a stored image (sandcell image ls)
  --entrypoint <prog>  with --image: run <prog> with the operands instead of the image's
                       Entrypoint and Cmd ('' : the operands are the whole command)
  --writable           with --image: a copy-on-write layer over it, discarded with the box
  --file <name>=@<path>  put a copy of a host file, with its permission bits, in the working
                       directory before the run (repeatable)
  --collect <pattern>  read files back from the working directory after the run (repeatable;
                       * and ? match within a name); symlinks and special files are refused
  --collect-to <dir>   where collected files are written (default: the current directory)
  --cwd <dir>          working directory inside (default /work)
  --env <K=V>          environment variable (repeatable); the environment is empty otherwise,
                       but for a safe PATH
  --network <mode>     none (default: own network namespace, loopback only) | loopback | host |
                       the name of a private network (sandcell network create; root only)
  --hostname <h>       the box's hostname; on a private network, the name others reach it by
  --allow <host:port>  egress to this destination only, through sandcell's proxy (repeatable;
                       host a name, *.name, an address; port a number or *); http_proxy,
                       https_proxy and ALL_PROXY name it; connections are in the result
  --publish [<addr>:]<host port>:<box port>
                       the host listens (127.0.0.1 unless <addr>) and carries connections to the
                       box's port on its loopback (repeatable); host port 0: a free one, said
                       on stderr as the box starts
  --seccomp <p>        default (default) | judge | none | a policy JSON file
  --cgroup-parent <p>  cgroup under which the box's cgroups are made
  --profile <name>     start from a profile of sandcell.yaml; the flags given here win
  --config <file>      the file of the profiles (default: ./sandcell.yaml)

Output:
  --report <file>      write the result JSON there
  --json               print the whole result JSON (with the captured output) on stdout
                       instead of passing the program's output through

Sizes: 65536, 64KiB, 256MiB, 1GB. Durations: 1500 (ms), 1500ms, 2s, 1m.
`;
