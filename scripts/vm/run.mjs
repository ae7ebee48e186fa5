#!/usr/bin/env node
// `npm run test:vm`: sandcell's box, cgroup, seccomp, security and sandbox suites on a second
// kernel with a pure cgroup v2 hierarchy. Boots Debian's kernel package in a KVM guest whose root
// is this machine's root, shared read-only over virtio-9p (the worktree, node, gcc and python3
// come from there), runs scripts/vm/guest.sh inside, prints the guest's serial console and exits
// with the guest's result.
//
//   node scripts/vm/run.mjs           the suites (as root, and rootless: test/box/rootless.test.ts)
//   node scripts/vm/run.mjs --bench   bench/vm-v2.ts in the guest instead
//   node scripts/vm/run.mjs FILE...   only these test files
//
// Needs root and /dev/kvm. SANDCELL_VM_ACCEL=tcg runs the same guest under QEMU's software
// emulation on a machine without /dev/kvm: many times slower, asked for by name, never chosen
// silently. SANDCELL_VM_TIMEOUT (seconds) bounds the guest's life.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, openSync, readSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const PACKAGES = ['qemu-system-x86', 'linux-image-amd64'];
/** The modules the guest loads from the initramfs; their dependencies come from modules.dep. */
const MODULES = ['virtio_pci', '9pnet_virtio', '9p', 'overlay'];
const bench = process.argv.includes('--bench');
/** Test files named on the command line run instead of the default suites (for a quicker look). */
const files = process.argv.slice(2).filter((a) => !a.startsWith('--'));
for (const f of files) if (!/^[\w./-]+$/.test(f)) die(`not a test file path: ${f}`);
const accel = process.env.SANDCELL_VM_ACCEL ?? 'kvm';
const timeoutS = Number(process.env.SANDCELL_VM_TIMEOUT ?? (accel === 'kvm' ? 1800 : 5400));

function die(msg) {
  console.error(`test:vm: ${msg}`);
  process.exit(2);
}

if (process.getuid() !== 0) die('needs root (apt-get, and a 9p share of / with passthrough ownership)');
if (accel === 'kvm') {
  if (!existsSync('/dev/kvm')) {
    die('/dev/kvm is missing: this machine cannot run the KVM guest (no hardware virtualisation, or the kvm module is not loaded). ' +
      'Not skipped: the cgroup v2 suites did not run. SANDCELL_VM_ACCEL=tcg runs them under software emulation instead.');
  }
} else if (accel === 'tcg') {
  console.log('test:vm: SANDCELL_VM_ACCEL=tcg: no KVM, the guest runs under QEMU software emulation (slow; timing figures are not comparable)');
} else {
  die(`SANDCELL_VM_ACCEL must be kvm or tcg, got ${accel}`);
}
if (!Number.isFinite(timeoutS) || timeoutS <= 0) die(`SANDCELL_VM_TIMEOUT must be a positive number of seconds, got ${process.env.SANDCELL_VM_TIMEOUT}`);

const installed = (pkg) => {
  try {
    return execFileSync('dpkg-query', ['-W', '-f=${Status}', pkg], { encoding: 'utf8' }).includes('install ok installed');
  } catch {
    return false;
  }
};
const missing = PACKAGES.filter((p) => !installed(p));
if (missing.length > 0) {
  console.log(`test:vm: installing Debian packages with apt-get (about 100 MB): ${missing.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  execFileSync('apt-get', ['update'], { stdio: 'inherit', env });
  execFileSync('apt-get', ['install', '-y', '--no-install-recommends', ...missing], { stdio: 'inherit', env });
} else {
  console.log(`test:vm: Debian packages present: ${PACKAGES.join(' ')}`);
}

/** The newest Debian kernel with both its image and its modules installed. */
function kernel() {
  const versions = readdirSync('/lib/modules')
    .filter((v) => existsSync(`/boot/vmlinuz-${v}`) && existsSync(`/lib/modules/${v}/modules.dep`))
    .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  const v = versions.at(-1);
  if (!v) die('no kernel with /boot/vmlinuz-<v> and /lib/modules/<v>/modules.dep (linux-image-amd64 did not install one?)');
  return v;
}

/** Every module `names` needs, dependencies before their users, from modules.dep. */
function moduleOrder(version) {
  const dir = `/lib/modules/${version}`;
  const deps = new Map();
  for (const line of readFileSync(join(dir, 'modules.dep'), 'utf8').split('\n')) {
    const i = line.indexOf(':');
    if (i < 0) continue;
    deps.set(line.slice(0, i), line.slice(i + 1).trim().split(/\s+/).filter(Boolean));
  }
  const byName = new Map([...deps.keys()].map((p) => [basename(p).replace(/\.ko(\.[a-z]+)?$/, '').replace(/-/g, '_'), p]));
  const order = [];
  const visit = (path) => {
    if (order.includes(path)) return;
    for (const d of deps.get(path) ?? []) visit(d);
    order.push(path);
  };
  for (const name of MODULES) {
    const path = byName.get(name);
    if (!path) die(`module ${name} not in ${dir}/modules.dep (built into this kernel? then drop it from MODULES)`);
    visit(path);
  }
  for (const p of order) if (!p.endsWith('.ko')) die(`${p}: compressed modules are not supported by the guest init`);
  return order.map((p) => join(dir, p));
}

/** A newc cpio archive (what the kernel unpacks as its initramfs). */
function cpio(entries) {
  const parts = [];
  let ino = 1;
  const pad4 = (n) => (4 - (n % 4)) % 4;
  const hex = (n) => n.toString(16).padStart(8, '0');
  const add = (name, mode, data) => {
    const nameBuf = Buffer.from(`${name}\0`);
    const fields = [ino++, mode, 0, 0, 1, 0, data.length, 0, 0, 0, 0, nameBuf.length, 0];
    const header = Buffer.from(`070701${fields.map(hex).join('')}`);
    parts.push(header, nameBuf, Buffer.alloc(pad4(header.length + nameBuf.length)), data, Buffer.alloc(pad4(data.length)));
  };
  for (const e of entries) add(e.name, e.mode, e.data ?? Buffer.alloc(0));
  add('TRAILER!!!', 0, Buffer.alloc(0));
  return Buffer.concat(parts);
}

const version = kernel();
const work = mkdtempSync(join(tmpdir(), 'sandcell-vm-'));
let qemu;
const cleanup = () => {
  if (qemu && qemu.exitCode === null && qemu.signalCode === null) qemu.kill('SIGKILL');
  rmSync(work, { recursive: true, force: true });
};
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));

console.log(`test:vm: kernel ${version}; building the guest's init and initramfs in ${work}`);
execFileSync('gcc', ['-static', '-O2', '-Wall', '-Wextra', '-Werror', '-o', join(work, 'init'), join(ROOT, 'scripts/vm/init.c')], { stdio: 'inherit' });
const mods = moduleOrder(version);
const DIR = 0o040755;
const FILE = 0o100644;
const initramfs = cpio([
  ...['dev', 'proc', 'lower', 'rw', 'newroot', 'modules'].map((name) => ({ name, mode: DIR })),
  { name: 'init', mode: 0o100755, data: readFileSync(join(work, 'init')) },
  ...mods.map((m) => ({ name: `modules/${basename(m)}`, mode: FILE, data: readFileSync(m) })),
  { name: 'modules/order', mode: FILE, data: Buffer.from(mods.map((m) => basename(m)).join('\n') + '\n') },
]);
writeFileSync(join(work, 'initramfs.cpio'), initramfs);
console.log(`test:vm: initramfs ${(initramfs.length / 1024).toFixed(0)} KiB: init + ${mods.map((m) => basename(m, '.ko')).join(' ')}`);

// What the guest runs comes from this worktree through the shared root: build it here first.
console.log('test:vm: building the TypeScript (the guest reads dist/ and the addon from this worktree)');
execFileSync('npm', ['run', 'build', '--silent'], { cwd: ROOT, stdio: 'inherit' });
if (bench) execFileSync('npx', ['tsc', '-p', 'tsconfig.bench.json'], { cwd: ROOT, stdio: 'inherit' });
if (![`build/Release/sandcell.node`, `prebuilds/linux-${process.arch}/sandcell.node`].some((f) => existsSync(join(ROOT, f)))) {
  die('no addon: neither build/Release/ nor prebuilds/ has sandcell.node (run npm ci first)');
}

const log = join(work, 'console.log');
const append = [
  'console=ttyS0',
  'panic=-1',
  'cgroup_no_v1=all',
  'systemd.unified_cgroup_hierarchy=1',
  `sandcell.dir=${ROOT}`,
  `sandcell.mode=${bench ? 'bench' : 'test'}`,
  `sandcell.accel=${accel}`,
  ...(files.length > 0 ? [`sandcell.files=${files.join(',')}`] : []),
].join(' ');
const args = [
  '-machine', 'q35',
  ...(accel === 'kvm' ? ['-enable-kvm', '-cpu', 'host'] : ['-accel', 'tcg,thread=multi', '-cpu', 'max']),
  '-smp', '2',
  '-m', '4G',
  '-nographic',
  '-no-reboot',
  '-monitor', 'none',
  '-serial', `file:${log}`,
  '-kernel', `/boot/vmlinuz-${version}`,
  '-initrd', join(work, 'initramfs.cpio'),
  '-append', append,
  '-virtfs', 'local,path=/,mount_tag=hostroot,security_model=passthrough,readonly=on,multidevs=remap',
];
console.log(`test:vm: qemu-system-x86_64 ${args.join(' ')}`);
const started = Date.now();
qemu = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'inherit', 'inherit'] });
console.log(`test:vm: qemu pid ${qemu.pid}; the guest is killed (by that pid) after ${timeoutS} s`);
let timedOut = false;
const timer = setTimeout(() => {
  timedOut = true;
  qemu.kill('SIGKILL');
}, timeoutS * 1000);

// The console as it comes: the suites take minutes, and a hang should be visible as one.
let printed = 0;
const pump = () => {
  if (!existsSync(log)) return;
  const size = statSync(log).size;
  if (size <= printed) return;
  const fd = openSync(log, 'r');
  const buf = Buffer.alloc(size - printed);
  readSync(fd, buf, 0, buf.length, printed);
  closeSync(fd);
  printed = size;
  process.stdout.write(buf.toString('utf8').replace(/\r/g, ''));
};
const poll = setInterval(pump, 500);
qemu.on('exit', (code, signal) => {
  clearTimeout(timer);
  clearInterval(poll);
  pump();
  const text = existsSync(log) ? readFileSync(log, 'utf8') : '';
  const m = /SANDCELL-VM-EXIT (\d+)/.exec(text);
  const secs = ((Date.now() - started) / 1000).toFixed(0);
  if (timedOut) {
    console.error(`\ntest:vm: FAILED: the guest did not finish within ${timeoutS} s (killed qemu pid ${qemu.pid})`);
    process.exit(1);
  }
  if (!m) {
    console.error(`\ntest:vm: FAILED: the guest ended (qemu ${signal ?? `exit ${code}`}) after ${secs} s without reporting a result`);
    process.exit(1);
  }
  const result = Number(m[1]);
  console.log(`\ntest:vm: the guest ${result === 0 ? 'passed' : `FAILED (exit ${result})`} after ${secs} s on ${version} (${accel})`);
  process.exit(result);
});
