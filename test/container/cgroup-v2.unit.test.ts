// The cgroup v2 view a container gets (Docker on a v2 host: its own cgroup namespace, whose root
// is /sys/fs/cgroup, holding the container's processes, with no controller enabled for children).
// This machine's v2 hierarchy has no controllers, so the view is a fake tree: only the reason the
// driver gives is checked here.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

import { openCgroupDriver } from '../../src/cgroup/index.js';

const DELEGATE =
  'cgroup delegation is missing: give this process a writable cgroup v2 subtree with memory, pids and cpu in the cgroup.subtree_control of its parent ' +
  '(in a container: --cgroupns=private and a writable /sys/fs/cgroup, Docker: --security-opt writable-cgroups=true; under systemd: Delegate=yes) ' +
  'and pass an empty cgroup there as cgroupParent';

let tmp: string;
afterEach(() => rmSync(tmp, { recursive: true, force: true }));

/**
 * A cgroup2 mount at `<tmp>/cg` that is this process's cgroup (`0::/`), holding two processes.
 * The root of a cgroup namespace has `cgroup.type`, as every cgroup but the host's root has.
 */
function view(namespaceRoot: boolean) {
  tmp = mkdtempSync(join(tmpdir(), 'sandcell-v2view-'));
  const root = join(tmp, 'cg');
  mkdirSync(root);
  writeFileSync(join(root, 'cgroup.controllers'), 'cpuset cpu io memory hugetlb pids rdma misc\n');
  writeFileSync(join(root, 'cgroup.subtree_control'), '');
  writeFileSync(join(root, 'cgroup.procs'), '1\n7\n');
  if (namespaceRoot) writeFileSync(join(root, 'cgroup.type'), 'domain\n');
  writeFileSync(join(tmp, 'mountinfo'), `50 31 0:50 / ${root} ro,nosuid,nodev,noexec,relatime - cgroup2 cgroup rw,nsdelegate\n`);
  writeFileSync(join(tmp, 'self'), '0::/\n');
  return { root, mountinfo: join(tmp, 'mountinfo'), procSelfCgroup: join(tmp, 'self') };
}

describe("a container's cgroup v2 view", () => {
  it('the root of its cgroup namespace holds its processes: the reason names the rule and what to delegate', async () => {
    const v = view(true);
    const r = await openCgroupDriver({ mountinfo: v.mountinfo, procSelfCgroup: v.procSelfCgroup });
    expect(r).toEqual({
      driver: null,
      reason: `cgroup v2: ${v.root} does not enable memory, pids or cpu for its children (its cgroup.subtree_control is empty and it holds processes, so it cannot: no-internal-processes rule): ${DELEGATE}`,
    });
  });

  it("the host's root cgroup is exempt from the rule: the reason does not blame its processes", async () => {
    const v = view(false);
    const r = await openCgroupDriver({ mountinfo: v.mountinfo, procSelfCgroup: v.procSelfCgroup });
    expect(r).toEqual({ driver: null, reason: `cgroup v2: ${v.root} does not enable memory, pids or cpu for its children (its cgroup.subtree_control is empty): ${DELEGATE}` });
  });
});
