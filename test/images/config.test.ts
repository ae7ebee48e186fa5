// An image's config applied as `docker run` applies it: Env, WorkingDir, User, Entrypoint and
// Cmd, set by buildah, run in real boxes; what cannot be applied is refused naming the field.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ImageConfigError } from '../../src/images/config.js';
import { run, Sandbox, SandboxOptionsError } from '../../src/index.js';
import { requireRoot } from '../helpers/host.js';
import { buildahConfigured, tempStore, type ConfiguredImages, type TempStore } from './helpers.js';

let images: ConfiguredImages;
let t: TempStore;
beforeAll(async () => {
  requireRoot();
  images = buildahConfigured();
  t = tempStore();
  for (const [name, archive] of Object.entries(images.archives)) await t.store.import(archive, { names: [name] });
}, 180_000);
afterAll(() => {
  t?.remove();
  images?.remove();
});

async function refusal(p: Promise<unknown>): Promise<string[]> {
  const e = await p.then(
    () => null,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(SandboxOptionsError);
  return (e as SandboxOptionsError).issues.map((i) => `${i.path}: ${i.message}`);
}

describe("an image's config", () => {
  it('is recorded as buildah wrote it', () => {
    const app = t.store.get('app')!;
    expect(app.config).toEqual({
      env: expect.arrayContaining(['GREETING=hi', 'PATH=/bin:/usr/bin']),
      workingDir: '/app',
      user: 'app',
      entrypoint: ['/bin/sh', '/app/entry.sh'],
      cmd: ['from-cmd'],
    });
  });

  it('no command: Entrypoint + Cmd run as User (from the image\'s /etc/passwd), in WorkingDir, with Env', async () => {
    const r = await run({ image: 'app' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe('ok');
    expect(r.stdout).toBe('args: from-cmd\nUid: 1000\nGid: 1000\n/app\nGREETING=hi\n');
  });

  it('args replace Cmd and keep Entrypoint; command replaces both; user, cwd and env given win', async () => {
    const a = await run({ image: 'app', args: ['one', 'two'] });
    expect(a.stdout).toBe('args: one two\nUid: 1000\nGid: 1000\n/app\nGREETING=hi\n');
    const c = await run({ image: 'app', command: ['/bin/sh', '-c', 'echo "$0 $*"'], args: ['x', 'y'] });
    expect(c.stdout).toBe('x y\n');
    const own = await run({ image: 'app', args: ['z'], user: { uid: 7, gid: 8 }, cwd: '/tmp', env: { GREETING: 'mine' } });
    expect(own.stdout).toBe('args: z\nUid: 7\nGid: 8\n/tmp\nGREETING=mine\n');
  });

  it('User as uid:group resolves the group in the image; Cmd alone is the program', async () => {
    const n = await run({ image: 'numeric', command: ['/bin/sh', '/app/entry.sh'] });
    expect(n.stdout).toContain('Uid: 1234\nGid: 50\n');
    const c = await run({ image: 'cmdOnly' });
    expect(c.stderr).toBe('');
    expect(c.stdout).toBe('cmd-only\n');
    // No User: sandcell's own default (65534), not root as docker's.
    const d = await run({ image: 'cmdOnly', command: ['/bin/sh', '-c', 'while read -r k v r; do case $k in Uid:) echo $v;; esac; done < /proc/self/status'] });
    expect(d.stdout).toBe('65534\n');
  });

  it("WorkingDir shows the image's files there; files given join them; writable makes it writable", async () => {
    const r = await run({ image: 'app', files: { 'given.txt': 'given\n' }, command: ['/bin/sh', '-c', 'ls; cat given.txt; touch new 2>/dev/null || echo read-only'] });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('entry.sh\ngiven.txt\ngiven\nread-only\n');
    const w = await run({ image: 'app', writable: true, user: { uid: 0, gid: 0 }, command: ['/bin/sh', '-c', 'touch new && ls'] });
    expect(w.stdout).toBe('entry.sh\nnew\n');
    // A cwd the caller names is a fresh tmpfs as in every box.
    const own = await run({ image: 'app', cwd: '/app', command: ['/bin/ls', '-A'] });
    expect(own.stdout).toBe('');
  });

  it('a box made from the image runs Entrypoint + Cmd, or its args, per run', async () => {
    const box = await Sandbox.create({ image: 'app' });
    try {
      expect((await box.run({})).stdout).toBe('args: from-cmd\nUid: 1000\nGid: 1000\n/app\nGREETING=hi\n');
      expect((await box.run({ args: ['again'] })).stdout).toContain('args: again\n');
    } finally {
      await box.destroy();
    }
  });

  it('what cannot be applied is refused, naming the image and the field', async () => {
    expect(await refusal(run({ image: 'ghost', command: ['/bin/sh', '-c', 'exit 0'] }))).toEqual([
      'image: image "ghost": config User "ghost": no user "ghost" in the image\'s /etc/passwd',
    ]);
    expect(await refusal(run({ image: 'badGroup', command: ['/bin/sh', '-c', 'exit 0'] }))).toEqual([
      'image: image "badGroup": config User "app:nogroup": no group "nogroup" in the image\'s /etc/group',
    ]);
    // /etc made anew in the top layer hides the passwd under it, in the lookup as in the box.
    expect(await refusal(run({ image: 'newEtc' }))).toEqual([
      'image: image "newEtc": config User "app": names an account, and the image has no /etc/passwd',
    ]);
    const shown = await run({ image: 'newEtc', user: { uid: 1000, gid: 1000 } });
    expect(shown.stderr).toBe('cat: /etc/passwd: No such file or directory\n');
    // A user given by the caller does not need the image's.
    const r = await run({ image: 'ghost', user: { uid: 5, gid: 5 }, command: ['/bin/sh', '-c', 'exit 0'] });
    expect(r.status).toBe('ok');
    expect(await refusal(run({ image: 'nothing' }))).toEqual(['command: must name a program: image "nothing" has no Entrypoint or Cmd']);
    expect(await refusal(run({}))).toEqual(['command: must name a program']);
    expect(await refusal(Sandbox.create({ image: 'app', args: ['x'] } as never))).toEqual(['args: are given per run: box.run({ args })']);
  });

  it('ImageConfigError carries the image and the field', async () => {
    const { resolveImageUser } = await import('../../src/images/config.js');
    const e = (() => {
      try {
        resolveImageUser('x', 'bob', []);
      } catch (x) {
        return x;
      }
      return null;
    })();
    expect(e).toBeInstanceOf(ImageConfigError);
    expect(e).toMatchObject({ image: 'x', field: 'User', code: 'BAD_CONFIG' });
    expect((e as Error).message).toBe('image "x": config User "bob": names an account, and the image has no /etc/passwd');
  });
});
