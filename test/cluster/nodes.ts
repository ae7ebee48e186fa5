/**
 * Nodes of a test farm: each a separate process running the built service agent
 * (fixtures/service-node.mjs), so `kill -9` of one is a node lost. Every node started here is
 * killed by pid at the end, and the cgroups it left are swept the way the library sweeps a dead
 * process's.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { cleanupOrphans } from '../../src/cgroup/index.js';

const NODE = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'service-node.mjs');

export interface TestNode {
  name: string;
  pid: number;
  proc: ChildProcess;
  log(): string;
  exited: Promise<void>;
}

const started: TestNode[] = [];

export async function startNode(socket: string, prefix: string, name: string, heartbeat: { interval: number; timeout: number }): Promise<TestNode> {
  const proc = spawn(process.execPath, [NODE, socket, prefix, name, String(heartbeat.interval), String(heartbeat.timeout)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  proc.stderr?.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const node: TestNode = { name, pid: proc.pid as number, proc, log: () => out, exited };
  started.push(node);
  await new Promise<void>((resolve, reject) => {
    const check = setInterval(() => {
      if (out.includes('ready\n')) {
        clearInterval(check);
        resolve();
      }
    }, 20);
    void exited.then(() => {
      clearInterval(check);
      reject(new Error(`node ${name} exited before it was ready:\n${out}`));
    });
  });
  return node;
}

/** SIGTERM (the agent closes) and wait. */
export async function stopNode(node: TestNode): Promise<void> {
  if (node.proc.exitCode === null && node.proc.signalCode === null) node.proc.kill('SIGTERM');
  await node.exited;
}

export async function killAllNodes(): Promise<void> {
  for (const n of started.splice(0)) {
    if (n.proc.exitCode === null && n.proc.signalCode === null) n.proc.kill('SIGKILL');
    await n.exited;
  }
  await cleanupOrphans();
}
