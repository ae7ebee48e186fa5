/**
 * `sandcell/images`: the image store. Import what Docker and OCI tools write, list, remove,
 * prune, build from a recipe; run an image by name with `run({ image: 'name' })`.
 * See docs/images.md.
 */
import { spawn as spawnProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mkdirSync, rmSync, chmodSync } from 'node:fs';
import { join, resolve } from 'node:path';

import { ImageError } from './errors.js';
import { importImage, type ImportOptions } from './import.js';
import { defaultStoreRoot, findImage, makeTmp, pruneLayers, readImages, removeRecord, StorePaths, withLock, writeImage, type ImageInfo } from './store.js';

export { ImageArchiveError, ImageError } from './errors.js';
export type { ImageProgress, ImportOptions } from './import.js';
export type { ImageInfo, ImageRunConfig } from './store.js';
export { checkImageName, defaultStoreRoot } from './store.js';

/** A build: a recipe (a shell script taking the directory to fill as its first argument) run on the host. */
export interface BuildOptions extends ImportOptions {
  /** Further arguments of the recipe, after the directory. */
  args?: string[];
}

/** The store at `root` (default: `defaultStoreRoot()`: SANDCELL_STORE, /var/lib/sandcell as root, else the user's data dir). */
export class ImageStore {
  readonly root: string;
  private readonly paths: StorePaths;

  constructor(root: string = defaultStoreRoot()) {
    this.root = resolve(root);
    this.paths = new StorePaths(this.root);
  }

  /** Imports a docker-archive, oci-archive, OCI layout dir, rootfs tarball or directory. */
  import(source: string, opts: ImportOptions = {}): Promise<ImageInfo> {
    return importImage(this.paths, resolve(source), opts);
  }

  /**
   * Runs `recipe` (`sh <recipe> <dir> [args...]`, as rootfs/debian.sh and rootfs/busybox.sh
   * take it) into a fresh directory of the store's tmp dir, imports that directory, removes it.
   * The recipe's output lines come as `log` events.
   */
  async build(recipe: string, opts: BuildOptions = {}): Promise<ImageInfo> {
    const tmp = makeTmp(this.paths);
    try {
      const dir = join(tmp, 'rootfs');
      mkdirSync(dir);
      chmodSync(tmp, 0o711);
      const child = spawnProcess('sh', [resolve(recipe), dir, ...(opts.args ?? [])], { stdio: ['ignore', 'pipe', 'pipe'] });
      for (const s of [child.stdout, child.stderr]) createInterface({ input: s }).on('line', (line) => opts.onProgress?.({ type: 'log', line }));
      const code = await new Promise<number | null>((res, rej) => {
        child.on('error', rej);
        child.on('close', (c) => res(c));
      });
      if (code !== 0) throw new ImageError('BUILD_FAILED', `recipe ${recipe} exited with status ${code}`);
      return await this.import(dir, opts);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }

  /** Every image, oldest import first. */
  list(): ImageInfo[] {
    return readImages(this.paths);
  }

  /** The image a name, id (`sha256:...`) or id prefix (12+ hex digits) names, or null. */
  get(ref: string): ImageInfo | null {
    return findImage(this.paths, ref);
  }

  /**
   * Removes a name; the image goes with its last name (or at once when named by id). Its layers
   * stay until `prune()`. Throws `ImageError` (`NOT_FOUND`) when nothing has that name.
   */
  async remove(ref: string): Promise<ImageInfo> {
    return withLock(this.paths, () => {
      const image = findImage(this.paths, ref);
      if (!image) throw new ImageError('NOT_FOUND', `no image ${JSON.stringify(ref)} in ${this.root}`);
      const names = image.names.filter((n) => n !== ref);
      if (image.names.includes(ref) && names.length > 0) writeImage(this.paths, { ...image, names }, false);
      else removeRecord(this.paths, image.id);
      return image;
    });
  }

  /** Removes every layer no image uses (and leftovers of imports whose process is gone). */
  prune(): Promise<{ layers: string[]; bytes: number }> {
    return withLock(this.paths, () => pruneLayers(this.paths));
  }
}

