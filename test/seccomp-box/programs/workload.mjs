// An ordinary Node.js program: worker threads, fs in /tmp, a child process through a pipe.
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { Worker } from 'node:worker_threads';

console.log('hello from Node.js');
const code = "const { parentPort, workerData } = require('node:worker_threads'); let s = 0; for (let k = 1; k <= 1000; k++) s += k * (workerData + 1); parentPort.postMessage(s);";
const sums = await Promise.all([0, 1, 2, 3].map((i) => new Promise((resolve, reject) => {
  const w = new Worker(code, { eval: true, workerData: i });
  w.once('message', resolve);
  w.once('error', reject);
})));
console.log('threads', sums.reduce((a, b) => a + b, 0));
writeFileSync('/tmp/node-file.txt', 'written in /tmp\n');
console.log('file', (await readFile('/tmp/node-file.txt', 'utf8')).trimEnd(), readFileSync('/tmp/node-file.txt', 'utf8') === 'written in /tmp\n');
console.log('pipe', execFileSync('/bin/echo', ['child via pipe'], { encoding: 'utf8' }).trimEnd());
const r = spawnSync('/bin/sh', ['-c', 'exit 3']);
console.log('child exit', r.status);
