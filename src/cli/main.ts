#!/usr/bin/env node
/**
 * The `sandcell` bin: starts the command (src/cli/command.ts), which the build bundled into one
 * script beside this file (scripts/bundle-cli.mjs), through V8's code cache. Node 20 caches no
 * compiled code for a fresh process, and a one-shot run is mostly a fresh process compiling the
 * engine: with the cache its functions are read back compiled instead.
 */
import { accessSync, constants, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Script } from 'node:vm';

/** The commands whose cache is their own (src/cli/command.ts); help, a mistyped command line and any other share one. */
const CACHED_APART = new Set(['run', 'serve', 'worker', 'service', 'judge', 'network', 'schema', 'image', 'seccomp']);

const bundle = fileURLToPath(new URL('./command.cjs', import.meta.url));
// V8 checks a cache against its source's length only. The key names the bundle's file as it is
// (any write to it moves its ctime, which no one can set back; a copy or a new package is
// another inode) and the Node version and arch the cache was made by. Hashing the text instead
// costs a fresh process more than the whole cache saves of some commands. Taken before the read:
// a bundle rewritten in between leaves this key older than the file, so the next process
// remakes the cache rather than taking one made from the other text.
const stat = statSync(bundle, { bigint: true });
const key = Buffer.from(`${process.version} ${process.arch} ${stat.dev} ${stat.ino} ${stat.size} ${stat.mtimeNs} ${stat.ctimeNs}\n`);
// The build writes the bundle in ASCII: its text is read without decoding UTF-8 (tens of ms).
const source = readFileSync(bundle, 'latin1');
// Beside the bundle, so only who may change the bundle may change the code it runs from. One per
// command: a cache holds the functions the process that made it compiled, and is kept until the
// bundle changes. Shared, it would be the first command's: after a `--help`, every run would take
// a cache without the engine in it and compile the engine anew.
const verb = process.argv[2];
const cacheFile = `${bundle}.cache${verb !== undefined && CACHED_APART.has(verb) ? `-${verb}` : ''}`;
let cached: Buffer | undefined;
try {
  const file = readFileSync(cacheFile);
  if (file.subarray(0, key.length).equals(key)) cached = file.subarray(key.length);
} catch {
  // No cache yet (or unreadable): the script compiles as it would without one.
}
const script = new Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, { filename: bundle, cachedData: cached });
const module = { exports: {} };
(script.runInThisContext() as (...args: unknown[]) => void)(module.exports, createRequire(bundle), module, bundle, dirname(bundle));

if (cached === undefined || script.cachedDataRejected) {
  // Made at exit, so it holds the functions this command compiled, not only the top level. A
  // package directory this user cannot write (a root install, a read-only image) keeps no cache.
  process.once('exit', () => {
    const temp = `${cacheFile}.${process.pid}`;
    try {
      // Serializing the cache takes milliseconds: not spent on a directory that refuses it.
      accessSync(dirname(cacheFile), constants.W_OK);
      writeFileSync(temp, Buffer.concat([key, script.createCachedData()]));
      renameSync(temp, cacheFile);
    } catch {
      rmSync(temp, { force: true });
    }
  });
}
