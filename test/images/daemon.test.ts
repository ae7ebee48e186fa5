// The daemon's policy names stored images: a client may run the ones it lists, by name, and no other.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { http, startDaemon, type TestDaemon } from '../daemon/daemon.js';
import { requireRoot } from '../helpers/host.js';
import { buildImage, type Image } from '../helpers/images.js';
import { tempStore, type TempStore } from './helpers.js';

let t: TempStore;
let base: Image;
let d: TestDaemon;

beforeAll(async () => {
  requireRoot();
  t = tempStore();
  base = buildImage();
  await t.store.import(base.dir, { names: ['offered'] });
  await t.store.import(base.dir, { names: ['not-offered'] });
  // The daemon inherits SANDCELL_STORE: it resolves names in the same store.
  d = await startDaemon({ policy: { images: ['offered'] } });
}, 60_000);
afterAll(async () => {
  if (d) expect(await d.stop()).toEqual({ code: 0, leftCgroups: [] });
  base?.remove();
  t?.remove();
});

describe('a policy naming stored images', () => {
  it('runs an offered image by name; refuses another name with 403 naming image', async () => {
    const ok = await http(d.socket, 'POST', '/v1/run', JSON.stringify({ image: 'offered', command: ['/bin/cat', '/etc/group'] }));
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body)).toMatchObject({ status: 'ok', stdout: 'root:x:0:\nsandbox:x:65534:\n' });
    const no = await http(d.socket, 'POST', '/v1/run', JSON.stringify({ image: 'not-offered', command: ['/bin/true'] }));
    expect(no.status).toBe(403);
    expect(JSON.parse(no.body)).toMatchObject({ error: { code: 'forbidden', field: 'image' } });
  });
});
