/**
 * Images made by real tools (buildah, skopeo, umoci from Debian) from the host's own programs
 * (test/helpers/images.ts), in temp dirs the tests remove; and a temp image store.
 *
 * The two-layer image: layer 1 is the base (sh and a few coreutils) plus /data/{keep,gone}.txt,
 * /opq/a.txt; layer 2 deletes /data/gone.txt, replaces /opq (rm -rf, mkdir: buildah's overlay
 * storage writes it as an opaque directory) with /opq/c.txt, adds a file owned by 65534, and sets
 * Env FOO=bar and WorkingDir /srv. buildah runs with a temp --root/--runroot, so nothing stays on
 * the machine; its overlay driver (not vfs) is what records the opaque directory.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { ImageStore } from '../../src/images/index.js';
import { buildImage } from '../helpers/images.js';

export function sh(cmd: string, args: string[], opts: { cwd?: string } = {}): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...opts });
}

export interface TempStore {
  root: string;
  store: ImageStore;
  remove(): void;
}

/** A store in a temp dir, also made the default (SANDCELL_STORE) so that `run({ image: name })` finds it. */
export function tempStore(): TempStore {
  const base = mkdtempSync(join(tmpdir(), 'sandcell-store-'));
  chmodSync(base, 0o755);
  const root = join(base, 'store');
  for (const d of ['layers', 'images', 'tmp']) mkdirSync(join(root, d), { recursive: true });
  const before = process.env.SANDCELL_STORE;
  process.env.SANDCELL_STORE = root;
  return {
    root,
    store: new ImageStore(root),
    remove() {
      if (before === undefined) delete process.env.SANDCELL_STORE;
      else process.env.SANDCELL_STORE = before;
      rmSync(base, { recursive: true, force: true });
    },
  };
}

/** The base root filesystem, owned by 0 as an image built anywhere would be. */
export function baseRootfs(into: string): void {
  const image = buildImage();
  try {
    sh('cp', ['-a', `${image.dir}/.`, into]);
  } finally {
    image.remove();
  }
  sh('chown', ['-R', '0:0', into]);
}

export interface ToolImages {
  work: string;
  dockerArchive: string;
  ociArchive: string;
  ociLayout: string;
  /** umoci's own unpacking of the OCI layout: what the image's root is, by a real tool. */
  unpacked: string;
  remove(): void;
}

/**
 * A temp dir with a base rootfs in `base` and a buildah store of its own: `build` fills the base,
 * builds and pushes with `buildah` (whose containers and images are removed after it), and
 * returns what it made. The dir goes with `remove()`, or at once if anything fails.
 */
function withBuildah<T>(prefix: string, build: (work: string, base: string, buildah: (...args: string[]) => string) => T): T & { work: string; remove(): void } {
  const work = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(work, 0o755);
  const remove = (): void => rmSync(work, { recursive: true, force: true });
  try {
    const base = join(work, 'base');
    mkdirSync(base);
    baseRootfs(base);
    const b = ['--root', join(work, 'root'), '--runroot', join(work, 'run'), '--storage-driver', 'overlay'];
    let made: T;
    try {
      made = build(work, base, (...args: string[]): string => sh('buildah', [...b, ...args]).trim());
    } finally {
      sh('buildah', [...b, 'rm', '-a']);
      sh('buildah', [...b, 'rmi', '-a', '-f']);
    }
    return { ...made, work, remove };
  } catch (e) {
    remove();
    throw e;
  }
}

export function buildahTwoLayer(): ToolImages {
  const images = withBuildah('sandcell-buildah-', (work, base, buildah) => {
    mkdirSync(join(base, 'data'));
    mkdirSync(join(base, 'opq'));
    writeFileSync(join(base, 'data', 'keep.txt'), 'keep\n');
    writeFileSync(join(base, 'data', 'gone.txt'), 'gone\n');
    writeFileSync(join(base, 'opq', 'a.txt'), 'a\n');
    const c1 = buildah('from', 'scratch');
    buildah('copy', c1, `${base}/.`, '/');
    buildah('commit', '-q', c1, 'sandcell-test-base');
    const c2 = buildah('from', 'sandcell-test-base');
    const mnt = buildah('mount', c2);
    rmSync(join(mnt, 'data', 'gone.txt'));
    rmSync(join(mnt, 'opq'), { recursive: true });
    mkdirSync(join(mnt, 'opq'));
    writeFileSync(join(mnt, 'opq', 'c.txt'), 'c\n');
    // buildah copy makes everything root's; a file changed in the mount keeps its owner.
    writeFileSync(join(mnt, 'data', 'nobody.txt'), 'n\n');
    chownSync(join(mnt, 'data', 'nobody.txt'), 65534, 65534);
    buildah('unmount', c2);
    buildah('config', '--env', 'FOO=bar', '--workingdir', '/srv', c2);
    buildah('commit', '-q', c2, 'sandcell-test-two');
    buildah('push', '-q', 'sandcell-test-two', `docker-archive:${join(work, 'docker.tar')}:sandcell/two:1`);
    buildah('push', '-q', 'sandcell-test-two', `oci-archive:${join(work, 'oci.tar')}:two`);
    return {};
  });
  const { work } = images;
  try {
    sh('skopeo', ['copy', '-q', `oci-archive:${join(work, 'oci.tar')}:two`, `oci:${join(work, 'layout')}:two`]);
    sh('umoci', ['unpack', '--image', `${join(work, 'layout')}:two`, join(work, 'unpacked')]);
  } catch (e) {
    images.remove();
    throw e;
  }
  return {
    ...images,
    dockerArchive: join(work, 'docker.tar'),
    ociArchive: join(work, 'oci.tar'),
    ociLayout: join(work, 'layout'),
    unpacked: join(work, 'unpacked', 'rootfs'),
  };
}

export interface ConfiguredImages {
  work: string;
  /** docker-archives by what their config says, all of one layer but `newEtc` (two). */
  archives: Record<'app' | 'numeric' | 'ghost' | 'badGroup' | 'cmdOnly' | 'nothing' | 'newEtc', string>;
  remove(): void;
}

/**
 * Images whose config says what `docker run` applies, set by buildah: Env, WorkingDir /app (a
 * script in it), User, Entrypoint and Cmd. The base's /etc/passwd and /etc/group name `app`
 * (1000:1000) and the group `staff` (50).
 *   app       User app, Entrypoint [/bin/sh, /app/entry.sh], Cmd [from-cmd]
 *   numeric   User 1234:staff
 *   ghost     User ghost (in no /etc/passwd)
 *   badGroup  User app:nogroup
 *   cmdOnly   no Entrypoint, Cmd [/bin/sh, -c, echo cmd-only]
 *   nothing   no Entrypoint, no Cmd
 *   newEtc    User app, Cmd [/bin/sh, -c, cat /etc/passwd], on a second layer whose /etc is
 *             made anew (opaque) with a group file only
 * entry.sh prints its arguments, its ids (from /proc/self/status), its cwd and $GREETING.
 */
export function buildahConfigured(only?: (keyof ConfiguredImages['archives'])[]): ConfiguredImages {
  return withBuildah('sandcell-buildah-cfg-', (work, base, buildah) => {
    mkdirSync(join(base, 'etc'), { recursive: true });
    writeFileSync(join(base, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/app:/bin/sh\n');
    writeFileSync(join(base, 'etc', 'group'), 'root:x:0:\nstaff:x:50:\napp:x:1000:\n');
    mkdirSync(join(base, 'app'));
    writeFileSync(
      join(base, 'app', 'entry.sh'),
      'echo "args: $*"\nwhile read -r k v rest; do case $k in Uid:|Gid:) echo "$k $v";; esac; done < /proc/self/status\npwd\necho "GREETING=$GREETING"\n',
    );
    const archives = {} as ConfiguredImages['archives'];
    const c = buildah('from', 'scratch');
    buildah('copy', c, `${base}/.`, '/');
    const commit = (container: string, key: keyof ConfiguredImages['archives'], ...config: string[]): void => {
      buildah('config', ...config, container);
      if (only && !only.includes(key)) return;
      buildah('commit', '-q', container, `sandcell-test-${key.toLowerCase()}`);
      archives[key] = join(work, `${key}.tar`);
      buildah('push', '-q', `sandcell-test-${key.toLowerCase()}`, `docker-archive:${archives[key]}:sandcell/${key.toLowerCase()}:1`);
    };
    commit(c, 'app', '--env', 'GREETING=hi', '--env', 'PATH=/bin:/usr/bin', '--workingdir', '/app', '--user', 'app', '--entrypoint', '["/bin/sh", "/app/entry.sh"]', '--cmd', '["from-cmd"]');
    commit(c, 'numeric', '--user', '1234:staff');
    commit(c, 'ghost', '--user', 'ghost');
    commit(c, 'badGroup', '--user', 'app:nogroup');
    commit(c, 'cmdOnly', '--user', '', '--entrypoint', '[]', '--cmd', '["/bin/sh", "-c", "echo cmd-only"]');
    commit(c, 'nothing', '--entrypoint', '[]', '--cmd', '[]');
    if (!only || only.includes('newEtc')) {
      // A second layer that makes /etc anew with a group file only (buildah's overlay storage
      // records the directory as opaque): the passwd of the layer under it is hidden, in the box
      // and in the lookup of User.
      buildah('commit', '-q', c, 'sandcell-test-etc-base');
      const upper = buildah('from', 'sandcell-test-etc-base');
      const mnt = buildah('mount', upper);
      rmSync(join(mnt, 'etc'), { recursive: true });
      mkdirSync(join(mnt, 'etc'));
      writeFileSync(join(mnt, 'etc', 'group'), 'app:x:1000:\n');
      buildah('unmount', upper);
      commit(upper, 'newEtc', '--user', 'app', '--cmd', '["/bin/sh", "-c", "cat /etc/passwd"]');
    }
    return { archives };
  });
}
