/**
 * Every route of the daemon, once: the router dispatches on this table and the OpenAPI
 * document is generated from it, so neither can name a route the other lacks.
 */
import type { z } from 'zod';

import { boxIdJson, boxListJson, boxRequest, boxRunRequest, errorJson, fileIdJson, healthJson, resultJson, runRequest, versionJson } from './schemas.js';

type Body = { json: z.ZodType } | { binary: true } | { text: true } | { none: true };

export interface Route {
  method: 'GET' | 'POST' | 'DELETE';
  /** OpenAPI's template: `{name}` is one path segment. */
  path: string;
  /** Names the handler (and the OpenAPI operationId). */
  operation: string;
  summary: string;
  request?: { json: z.ZodType } | { binary: true };
  /** Success replies; every route may also answer with the error shape. */
  responses: Record<number, { description: string } & Body>;
}

export const ROUTES = [
  { method: 'GET', path: '/v1/version', operation: 'version', summary: "The daemon's version, API version and features", responses: { 200: { description: 'the version', json: versionJson } } },
  {
    method: 'GET',
    path: '/v1/health',
    operation: 'health',
    summary: 'Whether the daemon takes work, and how much runs and waits',
    responses: { 200: { description: 'serving', json: healthJson }, 503: { description: 'draining', json: healthJson } },
  },
  { method: 'GET', path: '/v1/openapi.json', operation: 'openapi', summary: 'This document', responses: { 200: { description: 'an OpenAPI 3.1 document', text: true } } },
  { method: 'GET', path: '/metrics', operation: 'metrics', summary: 'Prometheus metrics', responses: { 200: { description: 'Prometheus text format 0.0.4', text: true } } },
  {
    method: 'POST',
    path: '/v1/run',
    operation: 'run',
    summary: 'run(): a program in a new box, to its end',
    request: { json: runRequest },
    responses: { 200: { description: "run()'s result", json: resultJson } },
  },
  {
    method: 'GET',
    path: '/v1/ws',
    operation: 'spawn',
    summary:
      'spawn() over a WebSocket: send {type:"spawn",options}, then stdin, stdin-end and kill frames; receive started, stdout, stderr, then exit or error. Or many runs over one connection: send {type:"run",id,options} frames (a /v1/run body each); receive {type:"result",id,result} or {type:"error",id,...} for each',
    responses: {
      101: { description: 'switching to the WebSocket protocol', none: true },
      426: { description: 'not a WebSocket upgrade request', json: errorJson },
    },
  },
  { method: 'POST', path: '/v1/boxes', operation: 'createBox', summary: 'Sandbox.create(): a living box', request: { json: boxRequest }, responses: { 201: { description: 'the box', json: boxIdJson } } },
  { method: 'GET', path: '/v1/boxes', operation: 'listBoxes', summary: "The client's living boxes", responses: { 200: { description: 'the boxes', json: boxListJson } } },
  { method: 'DELETE', path: '/v1/boxes/{id}', operation: 'destroyBox', summary: 'box.destroy()', responses: { 204: { description: 'destroyed', none: true } } },
  {
    method: 'POST',
    path: '/v1/boxes/{id}/run',
    operation: 'boxRun',
    summary: 'box.run(): a program in a living box',
    request: { json: boxRunRequest },
    responses: { 200: { description: "box.run()'s result", json: resultJson } },
  },
  { method: 'POST', path: '/v1/files', operation: 'putFile', summary: 'Stores bytes to name by id in later requests', request: { binary: true }, responses: { 201: { description: 'stored', json: fileIdJson } } },
  { method: 'GET', path: '/v1/files/{id}', operation: 'getFile', summary: 'The bytes of a stored file', responses: { 200: { description: 'the bytes', binary: true } } },
  { method: 'DELETE', path: '/v1/files/{id}', operation: 'deleteFile', summary: 'Removes a stored file', responses: { 204: { description: 'removed', none: true } } },
] as const satisfies readonly Route[];

export type Operation = (typeof ROUTES)[number]['operation'];

/** Each method's routes with their segments (a literal, or the name of a parameter, `{name}`), worked out once. */
const compiled = new Map<string, { route: Route; segments: { literal: string; param: string | null }[] }[]>();
for (const r of ROUTES as readonly Route[]) {
  const segments = r.path
    .split('/')
    .filter((s) => s !== '')
    .map((s) => ({ literal: s, param: /^\{(\w+)\}$/.exec(s)?.[1] ?? null }));
  const of = compiled.get(r.method);
  if (of) of.push({ route: r, segments });
  else compiled.set(r.method, [{ route: r, segments }]);
}

/** The route for a method and decoded path segments, with its parameters; null when none matches. */
export function matchRoute(method: string, parts: string[]): { route: Route; params: Record<string, string> } | null {
  for (const c of compiled.get(method) ?? []) {
    if (c.segments.length !== parts.length) continue;
    let params: Record<string, string> | null = null;
    let ok = true;
    for (let i = 0; i < parts.length && ok; i++) {
      const s = c.segments[i] as { literal: string; param: string | null };
      if (s.param !== null) (params ??= {})[s.param] = parts[i] as string;
      else ok = s.literal === parts[i];
    }
    if (ok) return { route: c.route, params: params ?? {} };
  }
  return null;
}
