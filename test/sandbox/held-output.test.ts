// A run in a living box whose stdout outlives it: the run passes its stdout to a process of
// another run in the same box, which keeps it open. box.run() must still resolve once the run
// has ended (with what the run wrote), not when that other process lets go.
import { setTimeout as sleep } from 'node:timers/promises';
import { beforeAll, describe, expect, it } from 'vitest';

import { Sandbox } from '../../src/index.js';
import { childPids, requireRoot } from '../helpers/host.js';

beforeAll(() => requireRoot());

const HOLDER = `import socket, time
s = socket.socket(socket.AF_UNIX)
s.bind('/tmp/holder.sock')
s.listen()
print('ready', flush=True)
c, _ = s.accept()
msg, fds, _, _ = socket.recv_fds(c, 16, 4)
c.close()
print('holding', len(fds), flush=True)
time.sleep(3600)`;

const SENDER = `import socket
c = socket.socket(socket.AF_UNIX)
c.connect('/tmp/holder.sock')
print('sent', flush=True)
socket.send_fds(c, [b'x'], [1])
c.recv(1)`;

describe('output held open by another run', () => {
  it("box.run() resolves with the run's output although another run keeps its stdout open", async () => {
    const box = await Sandbox.create({ limits: { processes: 32 } });
    try {
      const holder = await box.spawn({ command: ['/usr/bin/python3', '-u', '-c', HOLDER] });
      let heard = '';
      holder.stdout.on('data', (b: Buffer) => (heard += b.toString()));
      while (!heard.includes('ready')) await sleep(20);
      // The sender exits once the holder has its stdout (the holder then closes their connection).
      const result = await Promise.race([
        box.run({ command: ['/usr/bin/python3', '-c', SENDER], limits: { wallTime: '20s' } }),
        sleep(30_000).then(() => 'still waiting' as const),
      ]);
      expect(result).not.toBe('still waiting');
      if (result === 'still waiting') return;
      expect(heard).toContain('holding 1');
      expect(result.stdout).toBe('sent\n');
      expect(result.status).toBe('ok');
      holder.kill();
      await holder.wait();
    } finally {
      await box.destroy();
    }
    expect(await childPids()).toEqual([]);
  });
});
