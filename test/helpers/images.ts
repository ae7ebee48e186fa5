/**
 * A root filesystem image the tests build from the host's own programs, in a temp dir they remove:
 * the host's /bin/sh and a few coreutils with the shared libraries `ldd` lists for them, at the
 * paths their loader looks in. Nothing to install beyond what `npm ci` needs (rootfs/busybox.sh
 * is the recipe for users who have busybox; the suite does not depend on it).
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, mkdirSync, mkdtempSync, readdirSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

import { HOST_ID_BASE } from '../../src/plan/ids.js';

export interface Image {
  dir: string;
  /** Its top-level entries, sorted: what `ls /` shows in a box on it, besides the box's own. */
  topLevel: string[];
  remove(): void;
}

/** What the tests run in an image, besides the shell's builtins (echo, test). */
const TOOLS = ['ls', 'cat', 'rm', 'touch', 'dd'];

/** Top-level dirs a box adds to an image's: the kernel's, /tmp, and /work, its working directory. */
export const BOX_TOP_LEVEL = ['dev', 'proc', 'tmp', 'work'];

function which(name: string): string {
  return execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim();
}

/**
 * The shared objects a program loads, as absolute paths: `libc.so.6 => /lib/.../libc.so.6 (0x…)`
 * and the loader itself, `/lib64/ld-linux-x86-64.so.2 (0x…)`; the vDSO has no file.
 */
function sharedObjects(program: string): string[] {
  const out = execFileSync('ldd', [program], { encoding: 'utf8' });
  return [...out.matchAll(/^\s*(?:\S+ => )?(\/\S+) \(0x[0-9a-f]+\)$/gm)].map((m) => m[1]!);
}

/**
 * On a merged /usr, `ldd` may name a library below /usr/lib that the loader also finds below
 * /lib: the image keeps it there, so that the box's /usr stays absent and shows it is not the host's.
 */
function pathInImage(hostPath: string): string {
  return hostPath.startsWith('/usr/lib/') ? hostPath.slice('/usr'.length) : hostPath;
}

function copyInto(dir: string, hostPath: string, imagePath: string): void {
  const to = join(dir, imagePath);
  mkdirSync(dirname(to), { recursive: true });
  copyFileSync(realpathSync(hostPath), to);
  chmodSync(to, 0o755);
}

function chownTree(path: string, id: number): void {
  chownSync(path, id, id);
  for (const e of readdirSync(path, { withFileTypes: true })) {
    if (e.isDirectory()) chownTree(join(path, e.name), id);
    else chownSync(join(path, e.name), id, id);
  }
}

export function buildImage(): Image {
  const base = mkdtempSync(join(tmpdir(), 'sandcell-image-'));
  const remove = (): void => rmSync(base, { recursive: true, force: true });
  try {
    // The box's init runs as an unprivileged host id: it must be able to reach the image.
    chmodSync(base, 0o755);
    const dir = join(base, 'image');
    const programs = new Map([['/bin/sh', which('sh')], ...TOOLS.map((t): [string, string] => [`/bin/${t}`, which(t)])]);
    const libs = new Set<string>();
    for (const [imagePath, hostPath] of programs) {
      copyInto(dir, hostPath, imagePath);
      for (const lib of sharedObjects(realpathSync(hostPath))) libs.add(lib);
    }
    for (const lib of libs) copyInto(dir, lib, pathInImage(lib));
    mkdirSync(join(dir, 'etc'));
    writeFileSync(join(dir, 'etc', 'passwd'), 'root:x:0:0:root:/:/bin/sh\nsandbox:x:65534:65534:sandbox:/work:/bin/sh\n');
    writeFileSync(join(dir, 'etc', 'group'), 'root:x:0:\nsandbox:x:65534:\n');
    execFileSync('chmod', ['-R', 'a+rX', dir]);
    // Owned by the host id the box's root maps to, so that a program running as root in the box
    // owns the image's files, as on a real system: with `writable` it can change anything, and the
    // changes land in the box's overlay, never here.
    chownTree(dir, HOST_ID_BASE);
    return { dir, topLevel: readdirSync(dir).sort(), remove };
  } catch (e) {
    remove();
    throw e;
  }
}

/** A listing of every path below `dir` with its size, mode and owner, to show an image was not changed. */
export function snapshot(dir: string): string {
  return execFileSync('find', [dir, '-printf', '%P %s %m %y %U:%G\n'], { encoding: 'utf8' }).split('\n').sort().join('\n');
}
