/**
 * `sandcell run` as a client of a daemon: with SANDCELL_HOST set (`unix:///path/to.sock`, a
 * socket path, or `http://host:port` with SANDCELL_TOKEN or SANDCELL_TOKEN_FILE) the run happens
 * there; the command line, output and exit status stay the same.
 */
import { readFileSync } from 'node:fs';

import { connect } from '../client/index.js';
import type { RunOptions, RunResult } from '../index.js';

export function remoteRunner(host: string): (options: RunOptions) => Promise<RunResult> {
  const tokenFile = process.env.SANDCELL_TOKEN_FILE;
  const token = process.env.SANDCELL_TOKEN ?? (tokenFile ? readFileSync(tokenFile, 'utf8').trim() : undefined);
  const engine = connect(host.startsWith('/') ? { socket: host } : { url: host, ...(token !== undefined ? { token } : {}) });
  return async (options) => {
    try {
      return await engine.run(options);
    } finally {
      engine.close();
    }
  };
}
