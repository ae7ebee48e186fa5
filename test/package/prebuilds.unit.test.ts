// The prebuilt binaries committed under prebuilds/ are what `npm install sandcell` runs: they must
// be built from this checkout's native sources, for the arch their directory names, and the init
// must be static (a box has no host libraries to load it with).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { nativeSourcesHash, ROOT } from '../../scripts/native-sources.mjs';

const EM_X86_64 = 62;
const EM_AARCH64 = 183;
const PT_INTERP = 3;

interface Elf {
  class64: boolean;
  littleEndian: boolean;
  type: number;
  machine: number;
  interpreter: boolean;
}

function readElf(path: string): Elf {
  const b = readFileSync(path);
  expect(b.subarray(0, 4).toString('latin1'), `${path} is an ELF file`).toBe('\x7fELF');
  const phoff = Number(b.readBigUInt64LE(32));
  const phentsize = b.readUInt16LE(54);
  const phnum = b.readUInt16LE(56);
  let interpreter = false;
  for (let i = 0; i < phnum; i++) interpreter ||= b.readUInt32LE(phoff + i * phentsize) === PT_INTERP;
  return { class64: b[4] === 2, littleEndian: b[5] === 1, type: b.readUInt16LE(16), machine: b.readUInt16LE(18), interpreter };
}

const manifest = JSON.parse(readFileSync(join(ROOT, 'prebuilds', 'manifest.json'), 'utf8')) as { sources: string; targets: string[] };

describe('prebuilds', () => {
  it('were built from the native sources of this checkout', () => {
    expect(manifest.sources === nativeSourcesHash(), 'prebuilds are stale: run npm run prebuilds').toBe(true);
  });

  it('cover linux-x64 and linux-arm64', () => {
    expect(manifest.targets).toEqual(['linux-x64', 'linux-arm64']);
  });

  it.each([
    ['linux-x64', EM_X86_64],
    ['linux-arm64', EM_AARCH64],
  ])('%s: the addon is a 64-bit little-endian shared object and the init a static executable for that arch', (target, machine) => {
    const addon = readElf(join(ROOT, 'prebuilds', target, 'sandcell.node'));
    expect(addon).toMatchObject({ class64: true, littleEndian: true, type: 3, machine });
    const init = readElf(join(ROOT, 'prebuilds', target, 'sandcell-init'));
    expect(init).toMatchObject({ class64: true, littleEndian: true, type: 2, machine, interpreter: false });
  });
});
