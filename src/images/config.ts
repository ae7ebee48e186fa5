/**
 * What a run takes from a stored image's config, as `docker run` takes it: `Env` under the
 * caller's env, `WorkingDir` as the default cwd, `Entrypoint` + `Cmd` as the default program,
 * `User` as the program's ids: a number, or a name the image's own /etc/passwd and /etc/group
 * resolve (never the host's). What cannot be applied is refused, naming the image and the field.
 */
import { closeSync, fstatSync, lstatSync, openSync, readSync, constants as fsConstants, type Stats } from 'node:fs';
import { join } from 'node:path';

import { overlayIsOpaque } from '../native.js';

import { ImageError } from './errors.js';
import type { ImageInfo, StorePaths } from './store.js';

/** An image config field that cannot be applied to a run: `image` is the reference the run gave, `field` the config's key. */
export class ImageConfigError extends ImageError {
  override readonly name = 'ImageConfigError';
  readonly image: string;
  readonly field: string;

  constructor(image: string, field: string, value: string, reason: string) {
    super('BAD_CONFIG', `image ${JSON.stringify(image)}: config ${field} ${JSON.stringify(value)}: ${reason}`);
    this.image = image;
    this.field = field;
  }
}

export interface ImageRunDefaults {
  /** The layers' directories, uppermost first (one overlay). */
  layers: string[];
  env: Record<string, string>;
  workingDir: string | null;
  /** The program when the run names none: `Entrypoint`, then `Cmd` unless the run gives args. */
  entrypoint: string[];
  cmd: string[];
  /** `User` as the image spells it (null: none); `resolveImageUser` reads it, when the run gives no user of its own. */
  user: string | null;
}

const MAX_ID = 0xfffffffe;
/** An account database larger than this is not an image's /etc/passwd: it is refused, not read. */
const MAX_DB_BYTES = 4 * 1024 * 1024;

/**
 * A file of the image as the overlay shows it: the uppermost layer that has it (or a whiteout of
 * it, or of its directory) decides, and a directory a layer made opaque hides what the layers
 * under it have there. null: no such file. A symlink is not followed: it would be resolved
 * against the host's root, not the image's.
 */
function imageEntry(layers: readonly string[], rel: string): { path: string; stats: Stats } | { refused: string } | null {
  const parts = rel.split('/');
  for (const root of layers) {
    let hidesLower = false;
    for (let n = 1; n <= parts.length; n++) {
      const path = join(root, ...parts.slice(0, n));
      let st;
      try {
        st = lstatSync(path);
      } catch {
        break;
      }
      // A 0/0 character device is how a layer says "deleted" (overlayfs's whiteout).
      if (st.isCharacterDevice()) return null;
      if (n < parts.length) {
        if (!st.isDirectory()) return { refused: `/${parts.slice(0, n).join('/')} is not a directory in the image` };
        hidesLower ||= overlayIsOpaque(path);
        continue;
      }
      return { path, stats: st };
    }
    if (hidesLower) return null;
  }
  return null;
}

function imageFile(layers: readonly string[], rel: string): { path: string } | { refused: string } | null {
  const e = imageEntry(layers, rel);
  if (e === null || 'refused' in e || e.stats.isFile()) return e;
  return { refused: `/${rel} is not a regular file in the image` };
}

/** Whether the image has the directory `path` (absolute), as its overlay shows it. */
export function imageHasDir(layers: readonly string[], path: string): boolean {
  const e = imageEntry(layers, path.split('/').filter((p) => p !== '').join('/'));
  return e !== null && !('refused' in e) && e.stats.isDirectory();
}

function readDb(path: string): string {
  const fd = openSync(path, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
  try {
    const size = fstatSync(fd).size;
    if (size > MAX_DB_BYTES) throw new Error(`larger than ${MAX_DB_BYTES} bytes`);
    const buf = Buffer.alloc(size);
    let off = 0;
    while (off < size) {
      const n = readSync(fd, buf, off, size - off, off);
      if (n === 0) break;
      off += n;
    }
    return buf.toString('utf8', 0, off);
  } finally {
    closeSync(fd);
  }
}

const numeric = (s: string): number | null => (/^\d{1,10}$/.test(s) && Number(s) <= MAX_ID ? Number(s) : null);

/** The ids `User` names: `user`, `uid`, `user:group`, `uid:gid` and the mixed forms, as runc reads them. */
export function resolveImageUser(ref: string, spec: string, layers: readonly string[]): { uid: number; gid: number } {
  const refuse = (reason: string): never => {
    throw new ImageConfigError(ref, 'User', spec, reason);
  };
  const colon = spec.indexOf(':');
  const userPart = colon === -1 ? spec : spec.slice(0, colon);
  const groupPart = colon === -1 ? null : spec.slice(colon + 1);
  if (userPart === '' || groupPart === '') refuse('expected user, uid, user:group or uid:gid');
  const db = (rel: string, needed: boolean): string[][] | null => {
    const f = imageFile(layers, rel);
    if (f === null) return needed ? refuse(`names an account, and the image has no /${rel}`) : null;
    if ('refused' in f) return needed ? refuse(f.refused) : null;
    let text: string;
    try {
      text = readDb(f.path);
    } catch (e) {
      return refuse(`/${rel} of the image cannot be read: ${(e as Error).message}`);
    }
    return text.split('\n').filter((l) => l !== '' && !l.startsWith('#')).map((l) => l.split(':'));
  };
  const uidGiven = numeric(userPart);
  if (uidGiven === null && /^\d+$/.test(userPart)) refuse(`uid ${userPart} is larger than ${MAX_ID}`);
  // A name must be in the image's passwd; a number need not be (its gid then comes from it if listed, else 0).
  const passwd = db('etc/passwd', uidGiven === null);
  const entry = uidGiven === null ? passwd?.find((p) => p[0] === userPart) : passwd?.find((p) => numeric(p[2] ?? '') === uidGiven);
  if (uidGiven === null && entry === undefined) refuse(`no user ${JSON.stringify(userPart)} in the image's /etc/passwd`);
  const uid = uidGiven ?? numeric(entry?.[2] ?? '');
  if (uid === null) return refuse(`the image's /etc/passwd gives ${JSON.stringify(userPart)} no numeric uid`);
  let gid: number | null;
  if (groupPart === null) {
    gid = entry ? numeric(entry[3] ?? '') : 0;
    if (gid === null) refuse(`the image's /etc/passwd gives ${JSON.stringify(userPart)} no numeric gid`);
  } else {
    gid = numeric(groupPart);
    if (gid === null) {
      if (/^\d+$/.test(groupPart)) refuse(`gid ${groupPart} is larger than ${MAX_ID}`);
      const group = db('etc/group', true)!.find((g) => g[0] === groupPart);
      if (group === undefined) refuse(`no group ${JSON.stringify(groupPart)} in the image's /etc/group`);
      gid = numeric(group![2] ?? '');
      if (gid === null) refuse(`the image's /etc/group gives ${JSON.stringify(groupPart)} no numeric gid`);
    }
  }
  return { uid, gid: gid! };
}

/** Everything a run takes from the stored image `info`. */
export function imageRunDefaults(paths: StorePaths, info: ImageInfo): ImageRunDefaults {
  const layers = info.layers.map((l) => paths.layerRoot(l)).reverse();
  const env: Record<string, string> = {};
  for (const e of info.config.env) env[e.slice(0, e.indexOf('='))] = e.slice(e.indexOf('=') + 1);
  return {
    layers,
    env,
    workingDir: info.config.workingDir,
    entrypoint: info.config.entrypoint ?? [],
    cmd: info.config.cmd ?? [],
    user: info.config.user,
  };
}
