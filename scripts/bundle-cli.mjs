// `npm run build`'s second step: the `sandcell` command (src/cli/command.ts) as one script,
// dist/cli/command.cjs, which the bin (src/cli/main.ts) runs through V8's code cache. A command
// line is a process of its own, so it need not share the library's modules with anyone: bundled,
// a run reads two files instead of ~150, and zod's unused parts (its 64 locales, which every zod
// entry re-exports) drop out. Each command's modules still run only when that command does
// (esbuild wraps what a dynamic import reaches in a function called at that import). The
// library's entries (dist/index.js and the rest) stay tsc's modules, so a caller's own zod is
// the one they use. CommonJS, because Node 20 can give V8's code cache to a script but not to an
// ES module.
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

import { build } from 'esbuild';

import { prebuiltModule } from './prebuild-seccomp.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const SRC = join(ROOT, 'src');

/** The bundle, beside the bin that runs it. */
const OUT_FILE = join(ROOT, 'dist', 'cli', 'command.cjs');
/** The bin (package.json's `bin`). */
const BIN_FILE = join(ROOT, 'dist', 'cli', 'main.js');

const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8'));
// Only zod is bundled (it is what a run loads); the other dependencies are required by the
// commands that use them, as they are, from node_modules.
const external = [...Object.keys(pkg.dependencies ?? {}), ...Object.keys(pkg.peerDependencies ?? {})].filter((d) => d !== 'zod');

/** The bundle's own URL, set by its first line (a module's own `require` may be another). */
const BUNDLE_URL = '__sandcellBundleUrl';

const ZOD_IMPORT = /^import \{ z \} from 'zod';$/m;

/** The module whose programs the build compiles (scripts/prebuild-seccomp.mjs): its source holds none. */
const PREBUILT = join(SRC, 'seccomp', 'prebuilt.ts');

/**
 * Our sources as the bundle needs them:
 * - `import { z } from 'zod'` binds zod's namespace as a value, which keeps every export of it
 *   (the locales included); `import * as z` of the same module lets each `z.object` resolve to
 *   the one function, so the rest is shaken out.
 * - `import.meta.url` (which a script has not) is the module's own place in dist/, where tsc puts
 *   it: the addon, the init and package.json are found from there, as the library finds them.
 * - src/seccomp/prebuilt.ts is the presets' programs as this build compiles them, as in dist/.
 */
const sources = {
  name: 'sandcell-sources',
  setup(b) {
    const zodNamespace = join(ROOT, 'node_modules', 'zod', 'v4', 'classic', 'external.js');
    b.onLoad({ filter: /\.ts$/ }, async (args) => {
      if (!args.path.startsWith(SRC + '/')) return undefined;
      if (args.path === PREBUILT) return { contents: await prebuiltModule(), loader: 'js' };
      let text = await readFile(args.path, 'utf8');
      if (/from 'zod'/.test(text.replace(ZOD_IMPORT, '').replace(/^import type .* from 'zod';$/gm, ''))) {
        throw new Error(`${relative(ROOT, args.path)}: imports zod otherwise than \`import { z } from 'zod'\`: teach scripts/bundle-cli.mjs that form`);
      }
      text = text.replace(ZOD_IMPORT, `import * as z from ${JSON.stringify(zodNamespace)};`);
      const distFile = join(ROOT, 'dist', relative(SRC, args.path).replace(/\.ts$/, '.js'));
      const fromBundle = relative(dirname(OUT_FILE), distFile);
      text = text.replaceAll('import.meta.url', `new URL(${JSON.stringify(fromBundle)}, ${BUNDLE_URL}).href`);
      return { contents: text, loader: 'ts' };
    });
  },
};

const result = await build({
  absWorkingDir: ROOT,
  entryPoints: [join(SRC, 'cli', 'command.ts')],
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  // A dependency's import() becomes a require(): a script run by node:vm has no module loader
  // of its own to import with.
  supported: { 'dynamic-import': false },
  outfile: OUT_FILE,
  banner: { js: `var ${BUNDLE_URL} = require('node:url').pathToFileURL(__filename);` },
  external,
  plugins: [sources],
  // The bin reads the bundle as Latin-1 (no UTF-8 to decode, a string of one byte a character):
  // it must be ASCII. esbuild escapes strings, templates and names; see the write below for the rest.
  charset: 'ascii',
  // As tsc's maps: an internal error's stack, read with --enable-source-maps, names src/ lines.
  sourcemap: true,
  sourcesContent: false,
  logLevel: 'warning',
  write: false,
});

// What esbuild leaves unescaped is in comments and regular expression literals, where `\uXXXX`
// (a surrogate pair beyond the first plane) means the same character.
for (const out of result.outputFiles) {
  const text = out.path === OUT_FILE ? out.text.replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`) : out.text;
  await writeFile(out.path, text);
}

// The bin is CommonJS too, in place of tsc's ES module: an ES module entry starts Node's ES module
// loader, which costs a fresh process more than the rest of the bin does. dist/cli/package.json
// makes the directory a CommonJS scope, so tsc's ES modules of src/cli (each in the bundle
// already, and none imported by the library) are removed from it.
await build({
  absWorkingDir: ROOT,
  entryPoints: [join(SRC, 'cli', 'main.ts')],
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  outfile: BIN_FILE,
  banner: { js: `var ${BUNDLE_URL} = require('node:url').pathToFileURL(__filename);` },
  plugins: [sources],
  sourcemap: true,
  sourcesContent: false,
  logLevel: 'warning',
});
const kept = new Set([BIN_FILE, `${BIN_FILE}.map`, OUT_FILE, `${OUT_FILE}.map`]);
for (const name of await readdir(dirname(OUT_FILE))) {
  const file = join(dirname(OUT_FILE), name);
  if (!kept.has(file) && !name.startsWith('command.cjs.cache')) await rm(file);
}
await writeFile(join(dirname(OUT_FILE), 'package.json'), '{ "type": "commonjs" }\n');
