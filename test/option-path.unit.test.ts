// The one way sandcell names an option from its path: the library's errors, the daemon's
// refusals, a declaration file's issues and the farm's all read `limits.memory`, `binds[0].source`.
import { describe, expect, it } from 'vitest';

import { issuesOf, runRequest } from '../src/daemon/schemas.js';
import { formatOptionPath as fromErrors } from '../src/errors.js';
import { formatOptionPath, optionSchemas, parseOptions, SandboxOptionsError } from '../src/index.js';
import { Source } from '../src/profiles/index.js';

describe('formatOptionPath', () => {
  it.each([
    [[], ''],
    [['limits'], 'limits'],
    [['limits', 'memory'], 'limits.memory'],
    [['binds', 0, 'source'], 'binds[0].source'],
    [['files', 'a.b', 'mode'], 'files.a.b.mode'],
    [[0], '[0]'],
    [['mounts', 2, 3, 'x'], 'mounts[2][3].x'],
    [['network', Symbol('s')], 'network.Symbol(s)'],
  ] as [PropertyKey[], string][])('%j → %j', (path, text) => {
    expect(formatOptionPath(path)).toBe(text);
  });

  it('is the same function from sandcell and sandcell/errors', () => {
    expect(formatOptionPath).toBe(fromErrors);
  });

  it('names a field as the library, the daemon and a declaration file do, from one zod issue', () => {
    const input = { command: ['/bin/true'], binds: [{ source: 7 }], limits: { memory: 'lots' } };
    let library: readonly string[] = [];
    try {
      parseOptions('run', input);
    } catch (e) {
      library = (e as SandboxOptionsError).issues.map((i) => i.path);
    }
    const parsed = optionSchemas.run.safeParse(input);
    expect(parsed.success).toBe(false);
    const issues = parsed.success ? [] : parsed.error.issues;
    expect(library).toEqual(issues.map((i) => formatOptionPath(i.path)));
    expect(library).toEqual(expect.arrayContaining(['binds[0].source', 'limits.memory']));
    const wire = runRequest.safeParse(input);
    expect(wire.success ? [] : issuesOf(wire.error).map((i) => i.path)).toEqual(library);
    const source = Source.parse('profiles:\n  p:\n    binds:\n      - source: 7\n', 'sandcell.yaml');
    expect(source.issue(['profiles', 'p', 'binds', 0], 'is wrong', 'source').path).toBe('profiles.p.binds[0].source');
  });
});
