/**
 * Real programs some suites talk to (a Redis server, image tools), from Debian's packages. The
 * README's test command must pass on a fresh machine, so the root suites' global setup installs
 * the missing ones with apt-get before any test starts, and says so; it fails loudly, naming the
 * package, when it cannot.
 */
import { execFileSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

export interface Peer {
  /** The program the tests run. */
  readonly program: string;
  /** The Debian package that provides it. */
  readonly package: string;
  /** Which tests need it (printed when it is installed). */
  readonly for: string;
}

export const PEERS: readonly Peer[] = [
  { program: 'curl', package: 'curl', for: 'test/network (clients of the egress proxy in boxes), test/daemon (curl over the Unix socket, the README examples)' },
  { program: 'python3', package: 'python3', for: 'test/network (urllib through the egress proxy, servers of published ports), test/daemon/parity (a client with only the standard library)' },
  { program: 'buildah', package: 'buildah', for: 'test/images (images made by a real tool)' },
  { program: 'skopeo', package: 'skopeo', for: 'test/images (oci-archive to OCI layout)' },
  { program: 'umoci', package: 'umoci', for: 'test/images (the reference unpacking of an image)' },
  { program: 'redis-server', package: 'redis-server', for: 'the farm suites (test/cluster) and bench section 15' },
  { program: 'systemd-analyze', package: 'systemd', for: 'test/daemon/service (verify of contrib/sandcell.service; systemd is not started)' },
  { program: 'unshare', package: 'util-linux', for: "test/daemon/service (the unit's ExecStart in a mount namespace)" },
  { program: 'stunnel4', package: 'stunnel4', for: 'test/daemon/client-tls (a TLS terminator in front of a daemon on TCP)' },
];

function onPath(program: string): boolean {
  const dirs = (process.env.PATH ?? '').split(delimiter).concat(['/usr/sbin', '/sbin', '/usr/bin']);
  return dirs.some((dir) => {
    try {
      accessSync(join(dir, program), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

function aptGet(args: string[]): void {
  execFileSync('apt-get', args, { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
}

export function ensurePeers(peers: readonly Peer[] = PEERS): void {
  const missing = peers.filter((p) => !onPath(p.program));
  if (missing.length === 0) return;
  const packages = [...new Set(missing.map((p) => p.package))];
  for (const p of missing) console.warn(`sandcell tests: ${p.program} is missing (needed by ${p.for}); installing Debian's ${p.package}`);
  try {
    try {
      aptGet(['install', '-y', '--no-install-recommends', ...packages]);
    } catch {
      // A fresh machine often has no package lists yet.
      aptGet(['update']);
      aptGet(['install', '-y', '--no-install-recommends', ...packages]);
    }
  } catch (e) {
    throw new Error(`the tests need ${packages.join(', ')} from Debian and apt-get could not install them (${(e as Error).message}); install them by hand and rerun`);
  }
  const still = missing.filter((p) => !onPath(p.program));
  if (still.length > 0) throw new Error(`installed ${packages.join(', ')} but ${still.map((p) => p.program).join(', ')} is still not on PATH`);
}
