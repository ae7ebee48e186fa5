// What refusalHint says for confinements this machine cannot make: it has no AppArmor, and its
// sysctls are the host's. The ones it can make are shown for real in container.test.ts; here the
// /proc facts are given.
import { describe, expect, it } from 'vitest';

import { type Confinement, type RootIds, refusalHint } from '../../src/privilege.js';

const ALL_CAPS = (1n << 41n) - 1n;
const ids: RootIds = { owner: { first: 0x70000000, count: 65536 }, box: [100000, 165536] };

function confinement(over: Partial<Confinement> & { sysctls?: Record<string, string> } = {}): Confinement {
  const { sysctls = {}, ...rest } = over;
  return {
    root: true,
    capEff: ALL_CAPS,
    seccompFilters: 0,
    apparmor: null,
    procCovered: [],
    uids: [[0, 4294967294]],
    sysctl: (name) => sysctls[name] ?? null,
    ...rest,
  };
}

describe('refusalHint', () => {
  it("names the AppArmor profile (Docker's docker-default) and what it must allow", () => {
    expect(refusalHint('make mounts private', 'EACCES', ids, confinement({ apparmor: 'docker-default' }))).toBe(
      'mount() refused with EACCES while this process is confined by the AppArmor profile docker-default: the profile must allow mount, umount, pivot_root and user namespaces ' +
        '(Docker: --security-opt apparmor=unconfined or such a profile; Kubernetes: securityContext.appArmorProfile)',
    );
  });

  it('puts the seccomp profile first when both confine (Docker applies both; the filter refuses first)', () => {
    expect(refusalHint('clone', 'EPERM', ids, confinement({ apparmor: 'docker-default', seccompFilters: 2 }))).toMatch(
      /^clone\(\) with CLONE_NEWUSER and the other CLONE_NEW\* flags refused with EPERM while this process runs under 2 seccomp filters /,
    );
  });

  it("names unshare() when the box's own mount, IPC, UTS or network namespace is refused", () => {
    expect(refusalHint('namespaces', 'EPERM', ids, confinement({ seccompFilters: 1 }))).toMatch(/^unshare\(\) refused with EPERM while this process runs under a seccomp filter /);
  });

  it('says nothing for root with every capability and no confinement: nothing of this is in the way', () => {
    expect(refusalHint('make mounts private', 'EPERM', ids, confinement())).toBeUndefined();
    expect(refusalHint('chdir /work', 'ENOENT', ids, confinement())).toBeUndefined();
  });

  it('tells container root without CAP_SYS_ADMIN that a sysctl denies it user namespaces, and to grant the capability', () => {
    const c = confinement({ capEff: ALL_CAPS & ~(1n << 21n), sysctls: { 'kernel.unprivileged_userns_clone': '0' } });
    expect(refusalHint('clone', 'EPERM', ids, c)).toBe('unprivileged user namespaces are disabled on this host (kernel.unprivileged_userns_clone=0): grant CAP_SYS_ADMIN');
  });

  it('keeps the rootless hints of a host without containers', () => {
    const rootless = (sysctls: Record<string, string>) => refusalHint('make mounts private', 'EACCES', { owner: undefined, box: ids.box }, confinement({ root: false, capEff: 0n, sysctls }));
    expect(rootless({ 'kernel.apparmor_restrict_unprivileged_userns': '1' })).toBe(
      'this host restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns=1): run as root, or allow them for node with an AppArmor profile',
    );
    expect(rootless({})).toBe('not running as root: the host may not allow unprivileged user namespaces');
  });

  it('names the user namespace count that is used up, when it is not 0', () => {
    expect(refusalHint('clone', 'ENOSPC', ids, confinement({ sysctls: { 'user.max_user_namespaces': '3' } }))).toBe(
      'no more user namespaces may be created here (user.max_user_namespaces=3, all in use): raise it',
    );
  });
});
