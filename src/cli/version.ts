/**
 * `sandcell --version` (this package's version, as tools print it) and `sandcell version`
 * (with SANDCELL_HOST set, the daemon's as well: what a client talks to can differ from what it
 * was installed with).
 */
import { readFileSync } from 'node:fs';

import { UsageError } from './usage.js';

function ownVersion(): string {
  return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

export async function versionCommand(verb: string, rest: readonly string[]): Promise<number> {
  if (rest.length > 0) throw new UsageError(`${verb} takes no arguments`);
  process.stdout.write(`sandcell ${ownVersion()}\n`);
  const host = process.env.SANDCELL_HOST;
  if (verb === 'version' && host) {
    const { onDaemon, remoteEngine } = await import('./remote.js');
    const engine = remoteEngine(host);
    try {
      const v = await onDaemon(host, () => engine.version());
      process.stdout.write(`daemon ${v.version} (api ${v.api}) at ${host}\n`);
    } finally {
      engine.close();
    }
  }
  return 0;
}
