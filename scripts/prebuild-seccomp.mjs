// `npm run build`'s step after tsc: the built-in seccomp presets compiled by this build's compiler
// (dist/seccomp/compile.js, from the same tables and presets), for every architecture it knows,
// with and without the rules marked `terminal`, written over tsc's dist/seccomp/prebuilt.js (whose
// source holds none). A process running a preset then loads its program instead of compiling it;
// scripts/bundle-cli.mjs puts the same module in the command's bundle (from `prebuiltModule`).
import { writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const DIST = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'seccomp');
/** The module this script writes. */
const PREBUILT_FILE = join(DIST, 'prebuilt.js');

const load = (name) => import(pathToFileURL(join(DIST, name)).href);

/** The programs by key, as src/seccomp/prebuilt.ts's `PREBUILT` holds them. */
async function prebuiltPrograms() {
  const [{ ARCHES }, { compilePresetVariant, prebuiltKey }, { presetNames }] = await Promise.all([load('arch.js'), load('compile.js'), load('presets.js')]);
  const programs = {};
  // `none` has no program: the box loads no filter for it.
  for (const name of presetNames.filter((n) => n !== 'none')) {
    for (const arch of ARCHES) {
      for (const terminal of [true, false]) {
        const r = compilePresetVariant(name, arch, terminal);
        programs[prebuiltKey(name, arch, terminal)] = { program: r.program.toString('base64'), instructions: r.instructions, placeholders: r.placeholders };
      }
    }
  }
  return programs;
}

/** dist/seccomp/prebuilt.js's text: the module of src/seccomp/prebuilt.ts with the programs in it. */
export async function prebuiltModule() {
  const entries = Object.entries(await prebuiltPrograms()).map(([key, p]) => `  ${JSON.stringify(key)}: ${JSON.stringify(p)},`);
  return `// Written by scripts/prebuild-seccomp.mjs: the built-in presets as this build's compiler compiled them.
export const PREBUILT = Object.freeze({
${entries.join('\n')}
});
`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await writeFile(PREBUILT_FILE, await prebuiltModule());
