/**
 * Importing an image from what Docker and OCI tools write: a docker-archive (`docker save`,
 * `skopeo copy ... docker-archive:`), an oci-archive, an OCI image layout directory, a plain
 * rootfs tarball (gzip or not) or a directory. Archives holding an image are unpacked (with the
 * same hostile-archive rules as layers) into the store's tmp dir and read as a layout from there;
 * every blob read is checked against its digest, every layer against its diff id.
 */
import { createHash } from 'node:crypto';
import { closeSync, createReadStream, mkdirSync, openSync, readFileSync, readSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { create as tarCreate, Parser } from 'tar';

import { privileged } from '../privilege.js';
import { ImageError } from './errors.js';
import { DEFAULT_LIMITS, unpackFile, unpackStream, type UnpackLimits } from './layer.js';
import {
  checkImageName,
  commitLayer,
  hasLayer,
  hexOf,
  makeTmp,
  sweepTmp,
  withLock,
  writeImage,
  type ImageInfo,
  type ImageRunConfig,
  type StorePaths,
} from './store.js';

/** What an import or a build reports as it goes. */
export type ImageProgress =
  | { type: 'format'; format: string; source: string }
  | { type: 'layer-start'; index: number; count: number; digest: string; bytes: number | null }
  | { type: 'bytes'; index: number; count: number; digest: string; bytes: number; total: number | null }
  | { type: 'layer-done'; index: number; count: number; digest: string; diffId: string; reused: boolean; size: number }
  | { type: 'warning'; message: string }
  | { type: 'log'; line: string }
  | { type: 'done'; image: ImageInfo };

export interface ImportOptions {
  /** Names for the image (each moves here from any other image holding it). */
  names?: string[];
  /** Progress, as events. */
  onProgress?: (event: ImageProgress) => void;
  /** Bounds on each archive's uncompressed size and entries (default 64 GiB, 2 million). */
  limits?: Partial<UnpackLimits>;
}

type Format = 'docker-archive' | 'oci-archive' | 'oci-layout' | 'docker-dir' | 'rootfs-tar' | 'directory';

interface LayerSource {
  /** The blob file. */
  path: string;
  /** Its declared digest (verified), or null for a docker-archive's file named by path. */
  digest: string | null;
  mediaType: string;
  /** The diff id the config declares for it (verified after unpacking). */
  diffId: string;
  size: number | null;
  /** A layer this import already unpacked (a rootfs tarball's, a directory's). */
  unpacked?: string;
}

interface Resolved {
  configBytes: Buffer;
  layers: LayerSource[];
  names: string[];
}

const LAYER_TYPES = new Set([
  'application/vnd.oci.image.layer.v1.tar',
  'application/vnd.oci.image.layer.v1.tar+gzip',
  'application/vnd.oci.image.layer.v1.tar+zstd',
  'application/vnd.oci.image.layer.nondistributable.v1.tar',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  'application/vnd.docker.image.rootfs.diff.tar',
  'application/vnd.docker.image.rootfs.diff.tar.gzip',
  'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
]);
const INDEX_TYPES = new Set(['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json']);
const REF_NAME = 'org.opencontainers.image.ref.name';

const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

function fail(code: string, message: string): never {
  throw new ImageError(code, message);
}

function json<T>(bytes: Buffer, what: string): T {
  try {
    return JSON.parse(bytes.toString('utf8')) as T;
  } catch (e) {
    return fail('BAD_IMAGE', `${what} is not JSON: ${(e as Error).message}`);
  }
}

/** A path named inside an unpacked image, resolved, and kept inside it (symlinks included). */
function inside(dir: string, rel: string, what: string): string {
  const parts = rel.split('/').filter((p) => p !== '' && p !== '.');
  if (rel.startsWith('/') || parts.includes('..')) fail('BAD_IMAGE', `${what} ${JSON.stringify(rel)} leads outside the image`);
  const root = realpathSync(dir);
  let real: string;
  try {
    real = realpathSync(join(dir, ...parts));
  } catch {
    return fail('BAD_IMAGE', `${what} ${JSON.stringify(rel)} is missing from the image`);
  }
  if (real !== root && !real.startsWith(`${root}/`)) fail('BAD_IMAGE', `${what} ${JSON.stringify(rel)} leads outside the image`);
  if (!statSync(real).isFile()) fail('BAD_IMAGE', `${what} ${JSON.stringify(rel)} is not a file`);
  return real;
}

const MAX_JSON = 8 * 1024 * 1024;

function readSmall(path: string, what: string): Buffer {
  if (statSync(path).size > MAX_JSON) fail('BAD_IMAGE', `${what} is larger than ${MAX_JSON} bytes`);
  return readFileSync(path);
}

function blobPath(dir: string, digest: string): string {
  return inside(dir, `blobs/sha256/${hexOf(digest)}`, `blob ${digest}`);
}

function readBlob(dir: string, digest: string, what: string): Buffer {
  const bytes = readSmall(blobPath(dir, digest), what);
  if (sha256(bytes) !== digest) fail('DIGEST_MISMATCH', `${what} ${digest}: its bytes have digest ${sha256(bytes)}`);
  return bytes;
}

interface Descriptor {
  mediaType?: string;
  digest: string;
  size?: number;
  annotations?: Record<string, string>;
  platform?: { os?: string; architecture?: string; variant?: string };
}

const ARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };

/** The manifest an OCI layout offers: by ref name when asked, else the only one, this machine's platform in an index. */
function pickManifest(dir: string, manifests: Descriptor[], want: string[], where: string): { manifest: Descriptor; refName: string | null } {
  const named = manifests.filter((m) => want.some((w) => m.annotations?.[REF_NAME] === w || m.annotations?.[REF_NAME] === w.split(':').pop()));
  let choices = named.length > 0 ? named : manifests;
  if (choices.length > 1) {
    const arch = ARCH[process.arch] ?? process.arch;
    const here = choices.filter((m) => !m.platform || (m.platform.os === 'linux' && m.platform.architecture === arch));
    if (here.length > 0) choices = here;
  }
  if (choices.length === 0) fail('BAD_IMAGE', `${where} lists no manifest`);
  if (choices.length > 1) {
    const refs = choices.map((m) => m.annotations?.[REF_NAME] ?? m.digest).join(', ');
    fail('AMBIGUOUS', `${where} holds ${choices.length} images (${refs}): name one with --name`);
  }
  const m = choices[0]!;
  if (m.mediaType && INDEX_TYPES.has(m.mediaType)) {
    const index = json<{ manifests?: Descriptor[] }>(readBlob(dir, m.digest, 'image index'), `index ${m.digest}`);
    const arch = ARCH[process.arch] ?? process.arch;
    const forHere = (index.manifests ?? []).filter((d) => d.platform?.os === 'linux' && d.platform.architecture === arch);
    if (forHere.length === 0) fail('NO_PLATFORM', `index ${m.digest} has no image for linux/${arch}`);
    return { manifest: forHere[0]!, refName: m.annotations?.[REF_NAME] ?? null };
  }
  return { manifest: m, refName: m.annotations?.[REF_NAME] ?? null };
}

interface OciConfig {
  created?: string;
  config?: { Env?: string[]; WorkingDir?: string; User?: string; Entrypoint?: string[]; Cmd?: string[] };
  rootfs?: { type?: string; diff_ids?: string[] };
}

function diffIdsOf(config: OciConfig, count: number, where: string): string[] {
  const ids = config.rootfs?.diff_ids;
  if (!Array.isArray(ids) || ids.length !== count) fail('BAD_IMAGE', `${where}: the config lists ${ids?.length ?? 0} diff ids for ${count} layers`);
  ids.forEach((d) => hexOf(d));
  return ids;
}

function resolveOciLayout(dir: string, want: string[]): Resolved {
  const layout = json<{ imageLayoutVersion?: string }>(readSmall(inside(dir, 'oci-layout', 'oci-layout'), 'oci-layout'), 'oci-layout');
  if (!layout.imageLayoutVersion) fail('BAD_IMAGE', 'oci-layout has no imageLayoutVersion');
  const index = json<{ manifests?: Descriptor[] }>(readSmall(inside(dir, 'index.json', 'index.json'), 'index.json'), 'index.json');
  const { manifest: desc, refName } = pickManifest(dir, index.manifests ?? [], want, 'index.json');
  const manifest = json<{ config?: Descriptor; layers?: Descriptor[] }>(readBlob(dir, desc.digest, 'manifest'), `manifest ${desc.digest}`);
  if (!manifest.config) fail('BAD_IMAGE', `manifest ${desc.digest} has no config`);
  const configBytes = readBlob(dir, manifest.config.digest, 'config');
  const config = json<OciConfig>(configBytes, 'config');
  const layers = manifest.layers ?? [];
  const diffIds = diffIdsOf(config, layers.length, `manifest ${desc.digest}`);
  return {
    configBytes,
    names: refName && want.length === 0 ? [refName] : [],
    layers: layers.map((l, i) => {
      const mediaType = l.mediaType ?? '';
      if (!LAYER_TYPES.has(mediaType)) fail('UNSUPPORTED_LAYER', `layer ${l.digest} has media type ${JSON.stringify(mediaType)}, which is not a layer type this store reads`);
      return { path: blobPath(dir, l.digest), digest: l.digest, mediaType, diffId: diffIds[i]!, size: l.size ?? null };
    }),
  };
}

function resolveDockerDir(dir: string, want: string[]): Resolved {
  const manifest = json<{ Config: string; RepoTags?: string[] | null; Layers: string[] }[]>(readSmall(inside(dir, 'manifest.json', 'manifest.json'), 'manifest.json'), 'manifest.json');
  if (!Array.isArray(manifest) || manifest.length === 0) fail('BAD_IMAGE', 'manifest.json lists no image');
  const named = manifest.filter((m) => want.some((w) => m.RepoTags?.includes(w)));
  const choices = named.length > 0 ? named : manifest;
  if (choices.length > 1) fail('AMBIGUOUS', `the archive holds ${choices.length} images (${choices.map((m) => (m.RepoTags ?? []).join(' ') || m.Config).join(', ')}): name one with --name`);
  const m = choices[0]!;
  const configBytes = readSmall(inside(dir, m.Config, 'config'), 'config');
  const named64 = /([0-9a-f]{64})(\.json)?$/.exec(m.Config);
  if (named64 && sha256(configBytes) !== `sha256:${named64[1]}`) fail('DIGEST_MISMATCH', `config ${m.Config}: its bytes have digest ${sha256(configBytes)}`);
  const config = json<OciConfig>(configBytes, 'config');
  const diffIds = diffIdsOf(config, m.Layers.length, 'manifest.json');
  return {
    configBytes,
    names: want.length === 0 ? (m.RepoTags ?? []) : [],
    layers: m.Layers.map((l, i) => {
      const digestName = /sha256\/([0-9a-f]{64})$/.exec(l);
      return { path: inside(dir, l, 'layer'), digest: digestName ? `sha256:${digestName[1]}` : null, mediaType: 'application/vnd.docker.image.rootfs.diff.tar', diffId: diffIds[i]!, size: null };
    }),
  };
}

function runConfigOf(config: OciConfig): ImageRunConfig {
  const c = config.config ?? {};
  const strings = (v: unknown): string[] | null => (Array.isArray(v) && v.every((x) => typeof x === 'string') ? (v as string[]) : null);
  const wd = typeof c.WorkingDir === 'string' && c.WorkingDir.startsWith('/') && c.WorkingDir !== '/' ? c.WorkingDir : null;
  return {
    env: (strings(c.Env) ?? []).filter((e) => e.indexOf('=') > 0),
    workingDir: wd,
    user: typeof c.User === 'string' && c.User !== '' ? c.User : null,
    entrypoint: strings(c.Entrypoint),
    cmd: strings(c.Cmd),
  };
}

function isTar(path: string): boolean {
  const fd = openSync(path, 'r');
  try {
    const block = Buffer.alloc(512);
    if (readSync(fd, block, 0, 512, 0) < 512) return false;
    return block.toString('latin1', 257, 262) === 'ustar';
  } finally {
    closeSync(fd);
  }
}

function detect(source: string): Format {
  const st = statSync(source);
  if (st.isDirectory()) {
    try {
      statSync(join(source, 'oci-layout'));
      return 'oci-layout';
    } catch {
      // not a layout
    }
    // An unpacked `docker save`: a manifest.json listing images by Config and Layers.
    try {
      const m = JSON.parse(readSmall(join(source, 'manifest.json'), 'manifest.json').toString('utf8')) as unknown;
      if (Array.isArray(m) && m.length > 0 && typeof (m[0] as { Config?: unknown }).Config === 'string') return 'docker-dir';
    } catch {
      // not an image's manifest: a root filesystem that happens to have one
    }
    return 'directory';
  }
  if (!st.isFile()) fail('BAD_SOURCE', `${source} is neither a file nor a directory`);
  return isTar(source) ? 'oci-archive' : 'rootfs-tar';
}

/** Top-level names of a plain tar (to tell an image archive from a rootfs tarball), stopping early. */
async function topLevelNames(path: string): Promise<Set<string>> {
  const names = new Set<string>();
  await new Promise<void>((resolve, reject) => {
    const p = new Parser({ zstd: false, brotli: false });
    p.on('entry', (e) => {
      const parts = e.path.split('/').filter((x: string) => x !== '' && x !== '.');
      if (parts.length === 1) names.add(parts[0]!);
      e.resume();
    });
    p.on('end', resolve);
    p.on('error', reject);
    createReadStream(path).on('error', reject).pipe(p);
  });
  return names;
}

/**
 * Imports `source` into the store at `paths`. Layers already stored are not unpacked again;
 * the image record appears only once every layer is in place.
 */
export async function importImage(paths: StorePaths, source: string, opts: ImportOptions = {}): Promise<ImageInfo> {
  const names = opts.names ?? [];
  names.forEach(checkImageName);
  const limits = { ...DEFAULT_LIMITS, ...(opts.limits ?? {}) };
  const emit = (e: ImageProgress): void => opts.onProgress?.(e);
  const warnings: string[] = [];
  try {
    statSync(source);
  } catch {
    return fail('BAD_SOURCE', `${source} does not exist`);
  }
  let format: Format = detect(source);
  const tmp = makeTmp(paths);
  try {
    await withLock(paths, () => sweepTmp(paths));
    let layoutDir = source;
    if (format === 'oci-archive') {
      const top = await topLevelNames(source);
      if (top.has('oci-layout') || top.has('manifest.json')) {
        layoutDir = join(tmp, 'archive');
        mkdirSync(layoutDir);
        emit({ type: 'format', format: top.has('oci-layout') ? 'oci-archive' : 'docker-archive', source });
        await unpackFile(source, { dir: layoutDir, layer: source, whiteouts: false, mapOwners: false, limits, warnings });
        format = top.has('oci-layout') ? 'oci-archive' : 'docker-archive';
      } else {
        format = 'rootfs-tar';
      }
    }
    if (format !== 'oci-archive' && format !== 'docker-archive') emit({ type: 'format', format, source });
    let resolved: Resolved;
    let record: Format = format;
    if (format === 'oci-archive' || format === 'oci-layout' || format === 'docker-archive' || format === 'docker-dir') {
      const hasLayout = (() => {
        try {
          statSync(join(layoutDir, 'oci-layout'));
          statSync(join(layoutDir, 'index.json'));
          return true;
        } catch {
          return false;
        }
      })();
      resolved = hasLayout ? resolveOciLayout(layoutDir, names) : resolveDockerDir(layoutDir, names);
      if (format === 'docker-dir') record = 'docker-archive';
    } else {
      resolved = await singleLayer(paths, tmp, source, format, limits, warnings, emit);
    }
    const config = json<OciConfig>(resolved.configBytes, 'config');
    const count = resolved.layers.length;
    const fresh = new Map<string, string>();
    for (const [index, l] of resolved.layers.entries()) {
      if (l.unpacked !== undefined) {
        if (!hasLayer(paths, l.diffId)) fresh.set(l.diffId, l.unpacked);
        continue;
      }
      const label = l.digest ?? l.diffId;
      emit({ type: 'layer-start', index, count, digest: label, bytes: l.size });
      if (hasLayer(paths, l.diffId) || fresh.has(l.diffId)) {
        emit({ type: 'layer-done', index, count, digest: label, diffId: l.diffId, reused: true, size: 0 });
        continue;
      }
      const dir = join(tmp, `layer-${index}`);
      mkdirSync(join(dir, 'root'), { recursive: true, mode: 0o755 });
      const total = l.size ?? statSync(l.path).size;
      const r = await unpackFile(l.path, {
        dir: join(dir, 'root'),
        layer: `layer ${label}`,
        mediaType: l.mediaType,
        whiteouts: true,
        mapOwners: privileged(),
        limits,
        warnings,
        onBytes: (bytes) => emit({ type: 'bytes', index, count, digest: label, bytes, total }),
      });
      if (l.digest !== null && r.digest !== l.digest) {
        throw new ImageError('DIGEST_MISMATCH', `layer ${l.digest}: its bytes have digest ${r.digest}`);
      }
      if (r.diffId !== l.diffId) {
        throw new ImageError('DIGEST_MISMATCH', `layer ${label}: its uncompressed tar has digest ${r.diffId}, the config says ${l.diffId}`);
      }
      writeFileSync(join(dir, 'layer.json'), JSON.stringify({ diffId: l.diffId, size: r.size, entries: r.entries }) + '\n');
      fresh.set(l.diffId, dir);
      emit({ type: 'layer-done', index, count, digest: label, diffId: l.diffId, reused: false, size: r.size });
    }
    for (const w of warnings) emit({ type: 'warning', message: w });
    const id = sha256(resolved.configBytes);
    const image = await withLock(paths, () => {
      for (const [diffId, dir] of fresh) commitLayer(paths, diffId, dir);
      const missing = resolved.layers.filter((l) => !hasLayer(paths, l.diffId));
      if (missing.length > 0) {
        fail('CONCURRENT_PRUNE', `layers ${missing.map((l) => l.diffId).join(', ')} were pruned while this import ran: import again`);
      }
      const info: ImageInfo = {
        id,
        names: [...new Set([...names, ...resolved.names.filter(isName)])],
        layers: resolved.layers.map((l) => l.diffId),
        size: resolved.layers.reduce((n, l) => n + layerBytes(paths, l.diffId), 0),
        created: typeof config.created === 'string' ? config.created : null,
        importedAt: new Date().toISOString(),
        format: record,
        config: runConfigOf(config),
      };
      writeImage(paths, info);
      return info;
    });
    emit({ type: 'done', image });
    return image;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

function isName(n: string): boolean {
  try {
    checkImageName(n);
    return true;
  } catch {
    return false;
  }
}

function layerBytes(paths: StorePaths, diffId: string): number {
  try {
    return (JSON.parse(readFileSync(join(paths.layer(diffId), 'layer.json'), 'utf8')) as { size: number }).size;
  } catch {
    return 0;
  }
}

/** A rootfs tarball or a directory as a one-layer image, with a config of its own. */
async function singleLayer(
  paths: StorePaths,
  tmp: string,
  source: string,
  format: Format,
  limits: UnpackLimits,
  warnings: string[],
  emit: (e: ImageProgress) => void,
): Promise<Resolved> {
  const dir = join(tmp, 'layer-0');
  mkdirSync(join(dir, 'root'), { recursive: true, mode: 0o755 });
  const label = source;
  emit({ type: 'layer-start', index: 0, count: 1, digest: label, bytes: format === 'directory' ? null : statSync(source).size });
  const common = { dir: join(dir, 'root'), layer: source, whiteouts: false, mapOwners: privileged(), boxRangeOwners: format === 'directory', limits, warnings };
  let r;
  if (format === 'directory') {
    const stream = tarCreate({ cwd: source, portable: false, noDirRecurse: false }, ['.']);
    let bytes = 0;
    stream.on('data', (c: Buffer) => {
      bytes += c.length;
      emit({ type: 'bytes', index: 0, count: 1, digest: label, bytes, total: null });
    });
    r = await unpackStream(Readable.from(stream as AsyncIterable<Buffer>), common);
  } else {
    const total = statSync(source).size;
    r = await unpackFile(source, { ...common, onBytes: (bytes) => emit({ type: 'bytes', index: 0, count: 1, digest: label, bytes, total }) });
  }
  writeFileSync(join(dir, 'layer.json'), JSON.stringify({ diffId: r.diffId, size: r.size, entries: r.entries }) + '\n');
  emit({ type: 'layer-done', index: 0, count: 1, digest: label, diffId: r.diffId, reused: hasLayer(paths, r.diffId), size: r.size });
  const configBytes = Buffer.from(
    JSON.stringify({
      architecture: ARCH[process.arch] ?? process.arch,
      os: 'linux',
      config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'] },
      rootfs: { type: 'layers', diff_ids: [r.diffId] },
    }),
  );
  return { configBytes, names: [], layers: [{ path: source, digest: null, mediaType: 'application/vnd.oci.image.layer.v1.tar', diffId: r.diffId, size: null, unpacked: dir }] };
}
