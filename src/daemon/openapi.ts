/**
 * The OpenAPI 3.1 document of the daemon, generated from its route table and the zod schemas it
 * validates with. Schemas are given as the client writes them (zod's input side): sizes and
 * durations as numbers or strings such as "256MiB" and "2s". Checks zod cannot express in JSON
 * Schema (a path without '..', a size that parses) are the daemon's, and are answered with 400.
 */
import { z } from 'zod';

import { ROUTES, type Route } from './routes.js';
import { clientFrame, errorJson, serverFrame } from './schemas.js';
import { API_VERSION } from './wire.js';

function jsonSchema(schema: z.ZodType): Record<string, unknown> {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any', target: 'draft-2020-12' }) as Record<string, unknown>;
  return rest;
}

const ERROR_REF = { $ref: '#/components/schemas/Error' };

function content(body: Route['responses'][number] | NonNullable<Route['request']>): Record<string, unknown> | undefined {
  if ('json' in body) return { 'application/json': { schema: jsonSchema(body.json) } };
  if ('binary' in body) return { 'application/octet-stream': { schema: { type: 'string', contentMediaType: 'application/octet-stream' } } };
  if ('text' in body) return { 'text/plain': { schema: { type: 'string' } } };
  return undefined;
}

function operation(r: Route): Record<string, unknown> {
  const params = [...r.path.matchAll(/\{(\w+)\}/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } }));
  const responses: Record<string, unknown> = {};
  for (const [status, body] of Object.entries(r.responses)) {
    const c = content(body);
    responses[status] = { description: body.description, ...(c ? { content: c } : {}) };
  }
  responses.default = { description: 'an error: 400 bad options or JSON, 401, 403 policy, 404, 413, 415, 429 queue full, 500 setup failed, 503 draining', content: { 'application/json': { schema: ERROR_REF } } };
  return {
    operationId: r.operation,
    summary: r.summary,
    ...(params.length > 0 ? { parameters: params } : {}),
    ...(r.request ? { requestBody: { required: true, content: content(r.request) } } : {}),
    responses,
  };
}

export function openApiDocument(version: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of ROUTES as readonly Route[]) (paths[r.path] ??= {})[r.method.toLowerCase()] = operation(r);
  return {
    openapi: '3.1.0',
    info: { title: 'sandcell daemon', version, description: `API v${API_VERSION} of \`sandcell serve\`` },
    servers: [{ url: 'http://sandcell', description: 'the Unix socket (curl --unix-socket), or the TCP address with a bearer token' }],
    security: [{}, { bearer: [] }],
    paths,
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      schemas: {
        Error: jsonSchema(errorJson),
        SpawnClientFrame: jsonSchema(clientFrame),
        SpawnServerFrame: jsonSchema(serverFrame),
      },
    },
  };
}
