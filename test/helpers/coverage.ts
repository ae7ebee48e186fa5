/**
 * A Node process run with V8's coverage on (NODE_V8_COVERAGE): which scripts it ran and which of
 * their functions were called, for tests that show what a process does not load or compute.
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface ScriptCoverage {
  url: string;
  functions: { functionName: string; ranges: { count: number }[] }[];
}

/** `node <args>` with `env`, and V8's coverage of every script it ran. */
export function withCoverage(args: string[], env: NodeJS.ProcessEnv = process.env): { run: SpawnSyncReturns<string>; scripts: ScriptCoverage[] } {
  const dir = mkdtempSync(join(tmpdir(), 'sandcell-coverage-'));
  try {
    const run = spawnSync(process.execPath, args, { encoding: 'utf8', timeout: 30_000, env: { ...env, NODE_V8_COVERAGE: dir } });
    return { run, scripts: readdirSync(dir).flatMap((f) => (JSON.parse(readFileSync(join(dir, f), 'utf8')) as { result: ScriptCoverage[] }).result) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The names of the functions of `scripts` that were called at least once. */
export function functionsRan(scripts: readonly ScriptCoverage[]): string[] {
  return scripts.flatMap((s) => s.functions.filter((f) => f.ranges[0]!.count > 0).map((f) => f.functionName));
}
