/**
 * `sandcell run` as a client of a daemon: with SANDCELL_HOST set (`unix:///path/to.sock`, a
 * socket path, or `http://host:port` with SANDCELL_TOKEN or SANDCELL_TOKEN_FILE) the run happens
 * there; the command line, output and exit status stay the same.
 */
import { readFileSync } from 'node:fs';

import { connect, type Engine } from '../client/index.js';
import type { BytesRunner } from './run.js';
import { UnreachableDaemonError } from './usage.js';

/** The daemon at SANDCELL_HOST, with the token SANDCELL_TOKEN or SANDCELL_TOKEN_FILE gives. */
export function remoteEngine(host: string): Engine {
  const tokenFile = process.env.SANDCELL_TOKEN_FILE;
  const token = process.env.SANDCELL_TOKEN ?? (tokenFile ? readFileSync(tokenFile, 'utf8').trim() : undefined);
  return connect(host.startsWith('/') ? { socket: host } : { url: host, ...(token !== undefined ? { token } : {}) });
}

/**
 * A call to the daemon at `host`; a connection that could not be made (no socket there, refused,
 * no permission) says so as the command's error, not as an internal one.
 */
export async function onDaemon<T>(host: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.syscall !== 'connect') throw e;
    throw new UnreachableDaemonError(`cannot reach the daemon at ${host} (SANDCELL_HOST): ${err.message}; is sandcell serve running there?`, { cause: e });
  }
}

export function remoteRunner(host: string): BytesRunner {
  const engine = remoteEngine(host);
  return async (options) => {
    try {
      return await onDaemon(host, () => engine.run(options));
    } finally {
      engine.close();
    }
  };
}
