// What the prebuilt binaries are built from, as one hash: `npm run prebuild` records it beside
// them and a test compares it with the sources of the checkout, so stale binaries cannot ship.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));

function files(dir) {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(join(dir, e.name)) : [join(dir, e.name)],
  );
}

/** sha256 over native/** and binding.gyp: each path and its bytes, in sorted path order. */
export function nativeSourcesHash() {
  const hash = createHash('sha256');
  for (const path of [...files('native'), 'binding.gyp'].sort()) {
    hash.update(`${path}\0`);
    hash.update(readFileSync(join(ROOT, path)));
    hash.update('\0');
  }
  return hash.digest('hex');
}
