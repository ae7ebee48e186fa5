#!/bin/bash
# Runs inside the test guest (scripts/vm/init.c starts it in this worktree, as root, with the
# host's root read-only below a tmpfs). Lays out cgroup v2 the way a host with a delegating
# service manager does, prints what the kernel offers, runs the suites one directory at a time
# (or bench/vm-v2.ts) and exits non-zero when any failed.
set -u
# One compound command, parsed whole before it runs: the file is read through the share and may
# change on the host while the suites run.
{
arg() { tr ' ' '\n' </proc/cmdline | sed -n "s/^$1=//p" | tail -1; }
mode=$(arg sandcell.mode)
files=$(arg sandcell.files | tr ',' ' ')
export SANDCELL_VM_ACCEL=$(arg sandcell.accel)

ls -d /proc/1 /proc/self/cgroup || { echo "== FAILED: /proc is not mounted"; exit 1; }
echo "== guest: $(uname -srm), $(nproc) CPUs, $(awk '/MemTotal/ {print $2 " kB"}' /proc/meminfo)"
echo "== /proc/self/cgroup:"
cat /proc/self/cgroup
echo "== /sys/fs/cgroup/cgroup.controllers:"
cat /sys/fs/cgroup/cgroup.controllers
grep -w cgroup2 /proc/self/mounts
if awk '$3 == "cgroup" { found = 1 } END { exit !found }' /proc/self/mounts; then
  echo "== FAILED: a cgroup v1 hierarchy is mounted; this guest is meant to be pure v2"
  exit 1
fi

# The root cgroup lends memory, cpu and pids to its children, as systemd does at boot; the
# suites' Node processes stay in the root cgroup (exempt from the no-internal-processes rule),
# so sandcell's default parent (its own cgroup) has the controllers. A delegated subtree, as a
# service with Delegate=yes gets it, is made too: its controllers are listed but not yet enabled
# below it, and the service lives in a leaf of it; test/vm/v2-delegated.test.ts uses it.
echo "+memory +cpu +pids" >/sys/fs/cgroup/cgroup.subtree_control || exit 1
mkdir -p /sys/fs/cgroup/sandcell-vm.service/main
echo "== /sys/fs/cgroup/cgroup.subtree_control: $(cat /sys/fs/cgroup/cgroup.subtree_control)"
echo "== delegated: /sys/fs/cgroup/sandcell-vm.service controllers: $(cat /sys/fs/cgroup/sandcell-vm.service/cgroup.controllers)"
for f in memory.peak pids.peak memory.oom.group cgroup.kill memory.swap.max cpu.stat; do
  [ -e "/sys/fs/cgroup/sandcell-vm.service/$f" ] && echo "== has $f" || echo "== lacks $f"
done
export SANDCELL_TEST_CGROUP_PARENT=/sys/fs/cgroup/sandcell-vm.service/sandcell
export SANDCELL_TEST_DELEGATED_LEAF=/sys/fs/cgroup/sandcell-vm.service/main
export SANDCELL_IN_VM=1

if [ "$mode" = bench ]; then
  echo "== bench/vm-v2.ts (measured in the guest, accel $SANDCELL_VM_ACCEL)"
  node --expose-gc dist-bench/vm-v2.js
  exit $?
fi

suites=${files:-"test/vm test/cgroup-box test/box test/seccomp-box test/security test/sandbox"}
failed=0
summary=""
for s in $suites; do
  echo "== SUITE $s"
  out=/tmp/suite.log
  # One worker per vCPU; the precision suite (test/cgroup-box/cpu.test.ts) runs after the rest, alone.
  npx vitest run "$s" --maxWorkers=2 --reporter=default 2>&1 | tee "$out"
  rc=${PIPESTATUS[0]}
  counts=$(sed 's/\x1b\[[0-9;]*m//g' "$out" | grep -E '^ +Tests ' | tail -1 | sed 's/^ *Tests *//')
  summary="$summary
SUITE-RESULT $s: rc=$rc $counts"
  [ "$rc" = 0 ] || failed=1
done
echo "== SUMMARY$summary"
exit $failed
}
