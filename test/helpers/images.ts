/** Root filesystem images the tests build with the recipes in rootfs/, in temp dirs they remove. */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOTFS = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'rootfs');

export interface Image {
  dir: string;
  remove(): void;
}

/** The busybox image (needs Debian's busybox-static; CI installs it). */
export function buildBusyboxImage(): Image {
  const base = mkdtempSync(join(tmpdir(), 'sandcell-image-'));
  // The box's init runs as an unprivileged host id: it must be able to reach the image.
  chmodSync(base, 0o755);
  const dir = join(base, 'busybox');
  execFileSync('sh', [join(ROOTFS, 'busybox.sh'), dir], { stdio: 'inherit' });
  return { dir, remove: () => rmSync(base, { recursive: true, force: true }) };
}

/** A listing of every path below `dir` with its size and mode, to show an image was not changed. */
export function snapshot(dir: string): string {
  return execFileSync('find', [dir, '-printf', '%P %s %m %y\n'], { encoding: 'utf8' }).split('\n').sort().join('\n');
}
