// `npm run prebuilds`: builds the addon and the static init for every platform the package ships
// binaries for (prebuilds/linux-<arch>/), cross-compiling where the host is another arch, and
// records the hash of the sources they were built from (prebuilds/manifest.json).
// Builds run in a scratch directory, so the checkout's own build/ (a developer's build from
// source, which the loader prefers) is left as it was.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { nativeSourcesHash, ROOT } from './native-sources.mjs';

/** GNU triplet prefix of each shipped arch's toolchain (Debian's g++-<triplet> packages). */
const TARGETS = { x64: 'x86_64-linux-gnu', arm64: 'aarch64-linux-gnu' };
const BINARIES = ['sandcell.node', 'sandcell-init'];

function toolchain(arch) {
  if (arch === process.arch) return { CC: 'gcc', CXX: 'g++', STRIP: 'strip' };
  const t = TARGETS[arch];
  const tools = { CC: `${t}-gcc`, CXX: `${t}-g++`, AR: `${t}-ar`, LINK: `${t}-g++`, STRIP: `${t}-strip` };
  try {
    execFileSync(tools.CXX, ['--version'], { stdio: 'ignore' });
  } catch {
    throw new Error(`prebuilds: no ${tools.CXX} for the linux-${arch} binaries: apt-get install g++-${t.replaceAll('_', '-')}`);
  }
  return tools;
}

const hash = nativeSourcesHash();
const scratch = mkdtempSync(join(tmpdir(), 'sandcell-prebuilds-'));
try {
  for (const arch of Object.keys(TARGETS)) {
    const tools = toolchain(arch);
    const dir = join(scratch, arch);
    mkdirSync(dir);
    copyFileSync(join(ROOT, 'binding.gyp'), join(dir, 'binding.gyp'));
    symlinkSync(join(ROOT, 'native'), join(dir, 'native'));
    // binding.gyp finds node-addon-api's headers with require() from its own directory.
    symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
    console.log(`prebuilds: linux-${arch} with ${tools.CXX}`);
    try {
      execFileSync('node-gyp', ['rebuild', `--arch=${arch}`], { cwd: dir, stdio: 'inherit', env: { ...process.env, ...tools } });
    } catch (e) {
      // npm puts its own node-gyp on the PATH of the scripts it runs.
      if (e.code === 'ENOENT') throw new Error('prebuilds: node-gyp is not on PATH: run this as npm run prebuilds');
      throw e;
    }
    const out = join(ROOT, 'prebuilds', `linux-${arch}`);
    rmSync(out, { recursive: true, force: true });
    mkdirSync(out, { recursive: true });
    for (const name of BINARIES) {
      copyFileSync(join(dir, 'build', 'Release', name), join(out, name));
      // Symbols are for debugging a build from source; the shipped copies need none.
      execFileSync(tools.STRIP, ['--strip-unneeded', join(out, name)]);
      console.log(`prebuilds: prebuilds/linux-${arch}/${name} ${statSync(join(out, name)).size} bytes`);
    }
  }
  writeFileSync(join(ROOT, 'prebuilds', 'manifest.json'), `${JSON.stringify({ sources: hash, targets: Object.keys(TARGETS).map((a) => `linux-${a}`) }, null, 2)}\n`);
  console.log(`prebuilds: sources ${hash}`);
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
