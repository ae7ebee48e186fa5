// GET /v1/openapi.json: an OpenAPI 3.1 document that lists exactly the routes the daemon answers
// (its router's own table), with the error shape, and whose request schemas reject what the
// daemon rejects. The schemas are checked here by a small JSON Schema evaluator of the keywords
// the document uses; a keyword it does not know fails the test rather than passing silently.
import { describe, expect, it } from 'vitest';

import { ROUTES } from '../../src/daemon/routes.js';
import { issuesOf, runRequest } from '../../src/daemon/schemas.js';
import { requireRoot } from '../helpers/host.js';
import { http, startDaemon } from './daemon.js';

type Schema = Record<string, unknown>;

const KNOWN = new Set([
  'type', 'properties', 'required', 'additionalProperties', 'items', 'anyOf', 'oneOf', 'allOf', 'enum', 'const',
  'minItems', 'maxItems', 'minLength', 'maxLength', 'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum',
  'pattern', 'propertyNames', 'description', 'default', 'format', '$ref',
]);

function typeOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

function valid(s: Schema, v: unknown, root: Schema): boolean {
  for (const k of Object.keys(s)) if (!KNOWN.has(k)) throw new Error(`the test's evaluator does not know the keyword ${k}`);
  if (typeof s.$ref === 'string') {
    const target = s.$ref.replace(/^#\//, '').split('/').reduce<unknown>((o, p) => (o as Schema)[p], root) as Schema;
    if (!valid(target, v, root)) return false;
  }
  if (s.type !== undefined) {
    const types = Array.isArray(s.type) ? s.type : [s.type];
    const t = typeOf(v);
    if (!types.some((x) => x === t || (x === 'number' && t === 'integer'))) return false;
  }
  if (s.enum !== undefined && !(s.enum as unknown[]).includes(v)) return false;
  if ('const' in s && s.const !== v) return false;
  if (Array.isArray(s.anyOf) && !s.anyOf.some((x: Schema) => valid(x, v, root))) return false;
  if (Array.isArray(s.oneOf) && s.oneOf.filter((x: Schema) => valid(x, v, root)).length !== 1) return false;
  if (Array.isArray(s.allOf) && !s.allOf.every((x: Schema) => valid(x, v, root))) return false;
  if (typeof v === 'string') {
    if (typeof s.minLength === 'number' && v.length < s.minLength) return false;
    if (typeof s.maxLength === 'number' && v.length > s.maxLength) return false;
    if (typeof s.pattern === 'string' && !new RegExp(s.pattern, 'u').test(v)) return false;
  }
  if (typeof v === 'number') {
    if (typeof s.minimum === 'number' && v < s.minimum) return false;
    if (typeof s.maximum === 'number' && v > s.maximum) return false;
    if (typeof s.exclusiveMinimum === 'number' && v <= s.exclusiveMinimum) return false;
    if (typeof s.exclusiveMaximum === 'number' && v >= s.exclusiveMaximum) return false;
  }
  if (Array.isArray(v)) {
    if (typeof s.minItems === 'number' && v.length < s.minItems) return false;
    if (typeof s.maxItems === 'number' && v.length > s.maxItems) return false;
    if (s.items !== undefined && !v.every((x) => valid(s.items as Schema, x, root))) return false;
  }
  if (typeOf(v) === 'object') {
    const o = v as Record<string, unknown>;
    const props = (s.properties ?? {}) as Record<string, Schema>;
    if (Array.isArray(s.required) && !s.required.every((k: string) => k in o)) return false;
    for (const [k, x] of Object.entries(o)) {
      if (s.propertyNames !== undefined && !valid(s.propertyNames as Schema, k, root)) return false;
      if (k in props) {
        if (!valid(props[k] as Schema, x, root)) return false;
      } else if (s.additionalProperties === false) return false;
      else if (typeof s.additionalProperties === 'object' && !valid(s.additionalProperties as Schema, x, root)) return false;
    }
  }
  return true;
}

describe('GET /v1/openapi.json', () => {
  it('is OpenAPI 3.1 listing every route of the router and nothing else, each with the error shape', async () => {
    requireRoot();
    const d = await startDaemon();
    const r = await http(d.socket, 'GET', '/v1/openapi.json');
    expect(r.status).toBe(200);
    const doc = JSON.parse(r.body) as { openapi: string; paths: Record<string, Record<string, { operationId: string; responses: Record<string, unknown> }>>; components: { schemas: Record<string, Schema> } };
    expect(doc.openapi).toBe('3.1.0');
    const documented = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`));
    const routed = ROUTES.map((x) => `${x.method} ${x.path}`);
    expect(documented.sort()).toEqual([...routed].sort());
    for (const ops of Object.values(doc.paths)) {
      for (const op of Object.values(ops)) expect(op.responses.default).toEqual({ description: expect.any(String), content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } });
    }
    const errorSchema = doc.components.schemas.Error as Schema;
    expect(valid(errorSchema, { error: { code: 'forbidden', message: 'network: no', field: 'network' } }, doc)).toBe(true);
    expect(valid(errorSchema, { message: 'no' }, doc)).toBe(false);

    // The table is the router: every route in it is answered (by its handler, not "no route"),
    // and a method it does not list for a path is not.
    for (const route of ROUTES) {
      const path = route.path.replace('{id}', route.path.startsWith('/v1/files') ? `sha256:${'0'.repeat(64)}` : 'box-none');
      const res = await http(d.socket, route.method, path, route.method === 'POST' ? '' : undefined, route.method === 'POST' ? { 'content-type': 'text/plain' } : {});
      expect({ route: `${route.method} ${route.path}`, noRoute: res.body.includes('no route') }).toEqual({ route: `${route.method} ${route.path}`, noRoute: false });
    }
    expect(JSON.parse((await http(d.socket, 'GET', '/v1/run')).body)).toMatchObject({ error: { code: 'not-found', message: 'no route GET /v1/run' } });
    expect(JSON.parse((await http(d.socket, 'PUT', '/v1/boxes/x')).body)).toMatchObject({ error: { code: 'not-found' } });
    expect(await d.stop()).toEqual({ code: 0, leftCgroups: [] });
  });

  it("the run request schema accepts what the daemon runs and rejects bad bodies the daemon rejects", { timeout: 120_000 }, async () => {
    requireRoot();
    const d = await startDaemon();
    const doc = JSON.parse((await http(d.socket, 'GET', '/v1/openapi.json')).body) as Schema & { paths: Record<string, Record<string, { requestBody: { content: Record<string, { schema: Schema }> } }>> };
    const runSchema = doc.paths['/v1/run']?.post?.requestBody.content['application/json']?.schema as Schema;
    expect(runSchema).toBeDefined();

    const good = {
      command: ['/bin/sh', '-c', 'cat; cat a.txt'],
      stdin: { base64: Buffer.from('in ').toString('base64') },
      limits: { wallTime: '5s', memory: 256 * 1024 * 1024 },
      files: { 'a.txt': { data: 'file', mode: 0o644 } },
      network: 'none',
    };
    expect(valid(runSchema, good, doc)).toBe(true);
    const ran = await http(d.socket, 'POST', '/v1/run', JSON.stringify(good));
    expect(ran.status).toBe(200);
    expect(JSON.parse(ran.body)).toMatchObject({ status: 'ok', stdout: 'in file' });

    const bad: [string, Record<string, unknown>, string][] = [
      ['an unknown option', { command: ['/bin/true'], bogus: 1 }, ''],
      ['a command that is a string', { command: '/bin/true' }, 'command'],
      ['no program', { command: [] }, 'command'],
      ['stdin as a number', { command: ['/bin/true'], stdin: 42 }, 'stdin'],
      ['stdin that is not base64', { command: ['/bin/true'], stdin: { base64: '%%%' } }, 'stdin.base64'],
      ['a network mode that does not exist', { command: ['/bin/true'], network: 'Wi-Fi!' }, 'network'],
      ['a file mode over 0777', { command: ['/bin/true'], files: { f: { data: 'x', mode: 4096 } } }, 'files.f.mode'],
      ['a uid out of range', { command: ['/bin/true'], user: { uid: -1 } }, 'user.uid'],
      // Two faults, one in a wire form and one in an option: both are named, in the schema's order.
      ['stdin as a number and a memory limit that is a boolean', { command: ['/bin/true'], stdin: 42, limits: { memory: true } }, 'limits.memory'],
      // A file id that is well formed but stored nowhere, beside a bad option: the option is the error.
      ['a bad option beside an unknown file id', { command: ['/bin/true'], limits: { memory: true }, stdin: { fileId: `sha256:${'0'.repeat(64)}` } }, 'limits.memory'],
    ];
    for (const [what, body, field] of bad) {
      expect({ what, schemaAccepts: valid(runSchema, body, doc) }).toEqual({ what, schemaAccepts: false });
      const res = await http(d.socket, 'POST', '/v1/run', JSON.stringify(body));
      expect({ what, status: res.status }).toEqual({ what, status: 400 });
      expect(JSON.parse(res.body)).toMatchObject({ error: { code: 'invalid-options', field } });
      // Every issue the request schema finds, and only those, whichever check found the fault first.
      const wire = runRequest.safeParse(body);
      expect({ what, issues: (JSON.parse(res.body) as { error: { issues: unknown } }).error.issues }).toEqual({ what, issues: wire.success ? null : issuesOf(wire.error) });
    }
    expect(await d.stop()).toEqual({ code: 0, leftCgroups: [] });
  });
});
