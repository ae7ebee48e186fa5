/**
 * What the bench's images section measures with: a root filesystem of the host's own programs
 * (/bin/sh, /bin/true and the libraries ldd names), as one directory and as a three-layer OCI
 * image (libraries, programs, /etc) imported into a temp store; and a synthetic layer of
 * incompressible files to time imports by.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

import { create } from 'tar';

const PROGRAMS = ['sh', 'true', 'cat'];

/** The program file (not a shell builtin of the same name). */
function which(name: string): string {
  for (const dir of ['/usr/bin', '/bin', '/usr/sbin', '/sbin']) {
    if (existsSync(join(dir, name))) return join(dir, name);
  }
  throw new Error(`${name} not found`);
}

function sharedObjects(program: string): string[] {
  const out = execFileSync('ldd', [program], { encoding: 'utf8' });
  return [...out.matchAll(/^\s*(?:\S+ => )?(\/\S+) \(0x[0-9a-f]+\)$/gm)].map((m) => m[1]!);
}

function put(root: string, inImage: string, host: string): void {
  const to = join(root, inImage);
  mkdirSync(dirname(to), { recursive: true });
  copyFileSync(realpathSync(host), to);
  chmodSync(to, 0o755);
}

/** Three layer dirs (libs, bin, etc) and their union as one dir, below `dir`. */
export function hostRootfsLayers(dir: string): { layers: string[]; union: string } {
  const layers = ['libs', 'bin', 'etc'].map((n) => join(dir, n));
  const union = join(dir, 'union');
  const libs = new Set<string>();
  for (const name of PROGRAMS) {
    const host = realpathSync(which(name));
    for (const target of [layers[1]!, union]) put(target, `/bin/${name}`, host);
    for (const lib of sharedObjects(host)) libs.add(lib);
  }
  for (const lib of libs) {
    const inImage = lib.startsWith('/usr/lib/') ? lib.slice(4) : lib;
    for (const target of [layers[0]!, union]) put(target, inImage, lib);
  }
  for (const target of [layers[2]!, union]) {
    mkdirSync(join(target, 'etc'), { recursive: true });
    writeFileSync(join(target, 'etc', 'passwd'), 'root:x:0:0:root:/:/bin/sh\nsandbox:x:65534:65534:sandbox:/work:/bin/sh\n');
    writeFileSync(join(target, 'etc', 'group'), 'root:x:0:\nsandbox:x:65534:\n');
  }
  execFileSync('chmod', ['-R', 'a+rX', dir]);
  // As rootfs/busybox.sh leaves a directory image: owned by the box's root.
  execFileSync('chown', ['-R', '100000:100000', union]);
  return { layers, union };
}

const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** An OCI layout at `out` whose layers are the tars of `layerDirs` (bottom first), uncompressed. */
export async function ociLayout(out: string, layerDirs: string[], ref: string): Promise<string> {
  const blobs = join(out, 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  const putBlob = (b: Buffer): string => {
    const d = sha(b);
    writeFileSync(join(blobs, d.slice(7)), b);
    return d;
  };
  const layers: { digest: string; size: number }[] = [];
  for (const [i, d] of layerDirs.entries()) {
    const file = join(out, `layer-${i}.tar`);
    await create({ cwd: d, file, portable: true }, ['.']);
    const bytes = readFileSync(file);
    layers.push({ digest: putBlob(bytes), size: bytes.length });
  }
  const config = Buffer.from(JSON.stringify({ config: { Env: ['PATH=/bin'] }, rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) } }));
  const c = putBlob(config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: c, size: config.length },
      layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...l })),
    }),
  );
  const m = putBlob(manifest);
  writeFileSync(join(out, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  writeFileSync(join(out, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: m, size: manifest.length, annotations: { 'org.opencontainers.image.ref.name': ref } }] }));
  return out;
}

/** A rootfs tarball of `mib` MiB of incompressible data in 1 MiB files. */
export async function bulkTar(dir: string, mib: number): Promise<string> {
  const files = join(dir, 'bulk');
  mkdirSync(files, { recursive: true });
  const names: string[] = [];
  for (let i = 0; i < mib; i++) {
    writeFileSync(join(files, `f${i}`), randomBytes(1 << 20));
    names.push(`f${i}`);
  }
  const file = join(dir, 'bulk.tar');
  await create({ cwd: files, file, portable: true }, names);
  return file;
}
