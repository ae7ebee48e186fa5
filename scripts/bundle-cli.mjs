// `npm run build`'s second step: the `sandcell` command as one bundle, written over tsc's
// dist/cli/main.js (the package's bin). A command line is a process of its own, so it need not
// share the library's modules with anyone: bundled, a one-shot run reads a few files instead of
// ~150, and zod's unused parts (its 64 locales, which every zod entry re-exports) drop out. Each
// command's lazy imports stay lazy: they become chunks beside the entry, loaded when that
// command runs. The library's entries (dist/index.js and the rest) stay tsc's modules, so a
// caller's own zod is the one they use.
import { readFile, readdir, rm } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

import { build } from 'esbuild';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const SRC = join(ROOT, 'src');

/** The bundle's files: the entry and its chunks, all in one directory. */
export const OUT_DIR = join(ROOT, 'dist', 'cli');
const CHUNK_PREFIX = 'bundle-';

const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8'));
// Only zod is bundled (it is what a run loads); the other dependencies are loaded by the commands
// that use them, as they are, from node_modules.
const external = [...Object.keys(pkg.dependencies ?? {}), ...Object.keys(pkg.peerDependencies ?? {})].filter((d) => d !== 'zod');

const ZOD_IMPORT = /^import \{ z \} from 'zod';$/m;

/**
 * Our sources as the bundle needs them:
 * - `import { z } from 'zod'` binds zod's namespace as a value, which keeps every export of it
 *   (the locales included); `import * as z` of the same module lets each `z.object` resolve to
 *   the one function, so the rest is shaken out.
 * - `import.meta.url` is the module's own place in dist/, where tsc puts it: the addon, the init
 *   and package.json are found from there, as the library finds them.
 */
const sources = {
  name: 'sandcell-sources',
  setup(b) {
    const zodNamespace = join(ROOT, 'node_modules', 'zod', 'v4', 'classic', 'external.js');
    b.onLoad({ filter: /\.ts$/ }, async (args) => {
      if (!args.path.startsWith(SRC + '/')) return undefined;
      let text = await readFile(args.path, 'utf8');
      if (/from 'zod'/.test(text.replace(ZOD_IMPORT, '').replace(/^import type .* from 'zod';$/gm, ''))) {
        throw new Error(`${relative(ROOT, args.path)}: imports zod otherwise than \`import { z } from 'zod'\`: teach scripts/bundle-cli.mjs that form`);
      }
      text = text.replace(ZOD_IMPORT, `import * as z from ${JSON.stringify(zodNamespace)};`);
      const distFile = join(ROOT, 'dist', relative(SRC, args.path).replace(/\.ts$/, '.js'));
      const fromBundle = relative(OUT_DIR, distFile);
      text = text.replaceAll('import.meta.url', `new URL(${JSON.stringify(fromBundle)}, import.meta.url).href`);
      return { contents: text, loader: 'ts' };
    });
  },
};

/** esbuild's options for the bundle (`outdir` given by the caller). */
export function bundleOptions(outdir) {
  return {
    absWorkingDir: ROOT,
    entryPoints: [join(SRC, 'cli', 'main.ts')],
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    outdir,
    entryNames: '[name]',
    chunkNames: `${CHUNK_PREFIX}[name]-[hash]`,
    external,
    plugins: [sources],
    // As tsc's maps: an internal error's stack, read with --enable-source-maps, names src/ lines.
    sourcemap: true,
    sourcesContent: false,
    logLevel: 'warning',
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  // Chunks are named by their hash: a previous build's would stay behind.
  for (const f of await readdir(OUT_DIR)) if (f.startsWith(CHUNK_PREFIX)) await rm(join(OUT_DIR, f));
  await build({ ...bundleOptions(OUT_DIR), allowOverwrite: true });
}
