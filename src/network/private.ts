/**
 * Private networks: a bridge in a network namespace of sandcell's own, and a veth pair per box
 * (one end on the bridge, the other the box's `eth0`). Nothing of a network is in the host's
 * namespace: the namespace is held by a bind mount of its nsfs file, its bridge and veth ends live
 * in it, and the boxes' ends live in the boxes' namespaces.
 *
 * A network is shared across the host's processes through its directory,
 * `/run/sandcell/networks/<name>/`: `network.json` (subnet, owner), `ns` (the namespace), `hosts`
 * (bound read-only at every member's /etc/hosts, rewritten in place as members with a hostname come
 * and go) and `members/<n>` (one file per box, made with O_EXCL: the address `<subnet>.<n>` is
 * taken by whoever creates it). A box's veth pair is made over rtnetlink by the addon
 * (native/netlink.cc) on a worker thread, while the box waits for its program; the network itself
 * (rarely made) by `unshare --net=<file>` and iproute2's `ip`, run in its namespace by util-linux's
 * `nsenter`, and released by `umount`.
 */
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { promisify } from 'node:util';

import { SandboxNetworkError, SandboxOptionsError } from '../errors.js';
import type { NativeSpawned } from '../native.js';

/** Loaded by the first network made or listed: a run with no private network never needs child_process. */
let execFileAsync: Promise<(typeof import('node:child_process').execFile)['__promisify__']> | undefined;
function runner(): NonNullable<typeof execFileAsync> {
  execFileAsync ??= import('node:child_process').then((cp) => promisify(cp.execFile));
  return execFileAsync;
}

export const NETWORKS_DIR = '/run/sandcell/networks';
const BRIDGE = 'br0';
/** First and last host number of a box on the /24 (.1 is left free, as a gateway would be). */
const FIRST_HOST = 2;
const LAST_HOST = 254;

/** A network name: what may be a directory name and an option value, never a mode's name. */
export const NETWORK_NAME = /^[a-z0-9][a-z0-9_-]{0,31}$/;
export const RESERVED_NAMES = new Set(['none', 'loopback', 'host']);
export const HOSTNAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i;

export interface NetworkInfo {
  name: string;
  /** `a.b.c.0/24`. */
  subnet: string;
  /** The process whose exit ends the network (null: it lives until removed). */
  ownerPid: number | null;
  /** The boxes on it now. */
  members: { hostname: string | null; address: string; pid: number }[];
}

export interface CreateNetworkOptions {
  /** A private /24 (`10.x.y.0/24`, `172.16-31.x.0/24`, `192.168.x.0/24`); default: the first free one of 10.213.0.0/16, 172.30.0.0/16, 192.168.213-255.0/24 that no host route covers and no other network uses. */
  subnet?: string;
  /** Keep the network when this process ends (what the CLI makes); default: it is removed when its owner process is gone. */
  persistent?: boolean;
}

interface Meta {
  name: string;
  subnet: string;
  owner: Identity | null;
  /** Tells a network from one made again under the same name. */
  created: string;
}

interface Identity {
  pid: number;
  start: string;
}

interface MemberRecord extends Identity {
  hostname: string | null;
  /** A box built ahead that no run has taken yet: it holds an address, not the network. */
  waiting?: boolean;
}

function dirOf(name: string): string {
  return `${NETWORKS_DIR}/${name}`;
}

/** The hosts file bound at /etc/hosts in a box on this network. */
export function hostsFileOf(name: string): string {
  return `${dirOf(name)}/hosts`;
}

/** A process's start time (field 22 of /proc/<pid>/stat): a pid alone may have been reused. */
function startOf(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

function alive(id: Identity): boolean {
  return startOf(id.pid) === id.start;
}

function identity(pid: number): Identity {
  const start = startOf(pid);
  if (start === null) throw new SandboxNetworkError('setup', '', `process ${pid} is gone`);
  return { pid, start };
}

const TOOL_DIRS = ['/usr/sbin', '/sbin', '/usr/bin', '/bin'];
const tools = new Map<string, string>();

/** The absolute path of a tool a network needs, or a typed error naming it and its package. */
function tool(name: 'ip' | 'nsenter' | 'unshare' | 'umount', network: string): string {
  const known = tools.get(name);
  if (known) return known;
  const found = TOOL_DIRS.map((d) => `${d}/${name}`).find((p) => existsSync(p));
  if (!found) {
    const pkg = name === 'ip' ? 'iproute2' : 'util-linux';
    throw new SandboxNetworkError('tool-missing', network, `private networks need \`${name}\` (${pkg}), found in none of ${TOOL_DIRS.join(', ')}`);
  }
  tools.set(name, found);
  return found;
}

async function exec(network: string, file: string, args: string[], input?: string): Promise<void> {
  try {
    const child = (await runner())(file, args, { timeout: 10_000 });
    if (input !== undefined) child.child.stdin?.end(input);
    await child;
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new SandboxNetworkError('setup', network, `${file} ${args.join(' ')}: ${(err.stderr ?? '').trim() || err.message}`);
  }
}

/** Runs `ip -batch -` in the network namespace at `nsPath`. */
function ipIn(network: string, nsPath: string, commands: string[]): Promise<void> {
  return exec(network, tool('nsenter', network), [`--net=${nsPath}`, tool('ip', network), '-batch', '-'], commands.join('\n') + '\n');
}

function requireRoot(network: string): void {
  if (process.geteuid?.() !== 0) {
    throw new SandboxNetworkError(
      'root-required',
      network,
      'private networks need root (a network namespace, a bridge and veth pairs are made with CAP_NET_ADMIN); without root, boxes reach each other through published ports and allow lists',
    );
  }
}

function checkName(name: unknown, path = 'name'): string {
  if (typeof name !== 'string' || !NETWORK_NAME.test(name) || RESERVED_NAMES.has(name)) {
    throw new SandboxOptionsError([{ path, message: `must be 1-32 of a-z 0-9 _ - starting with a letter or digit, and not none/loopback/host (got ${JSON.stringify(name)})` }]);
  }
  return name;
}

function readMeta(name: string): Meta | null {
  try {
    return JSON.parse(readFileSync(`${dirOf(name)}/network.json`, 'utf8')) as Meta;
  } catch {
    return null;
  }
}

function readMembers(name: string): Map<number, MemberRecord> {
  const out = new Map<number, MemberRecord>();
  let entries: string[];
  try {
    entries = readdirSync(`${dirOf(name)}/members`);
  } catch {
    return out;
  }
  for (const e of entries) {
    try {
      out.set(Number(e), JSON.parse(readFileSync(`${dirOf(name)}/members/${e}`, 'utf8')) as MemberRecord);
    } catch {
      // Being written or removed right now: not a member yet, or no longer.
    }
  }
  return out;
}

function prefixOf(subnet: string): string {
  return subnet.slice(0, subnet.lastIndexOf('.'));
}

/** Rewrites the hosts file in place (same inode: the boxes' bind mounts see it). */
function writeHosts(name: string, subnet: string): void {
  const lines = ['127.0.0.1\tlocalhost', '::1\tlocalhost ip6-localhost ip6-loopback'];
  for (const [n, m] of [...readMembers(name)].sort((a, b) => a[0] - b[0])) {
    if (m.hostname !== null && alive(m)) lines.push(`${prefixOf(subnet)}.${n}\t${m.hostname}`);
  }
  try {
    writeFileSync(hostsFileOf(name), lines.join('\n') + '\n');
  } catch {
    // The network was removed meanwhile.
  }
}

/** The boxes on a network whose program runs (or ran: a living box between runs). */
function liveMembers(name: string): NetworkInfo['members'] {
  const meta = readMeta(name);
  if (!meta) return [];
  return [...readMembers(name)].filter(([, m]) => alive(m) && m.waiting !== true).map(([n, m]) => ({ hostname: m.hostname, address: `${prefixOf(meta.subnet)}.${n}`, pid: m.pid }));
}

/** IPv4 `a.b.c.d/len` as [network, mask] numbers. */
function cidr(s: string): [number, number] | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:\/(\d{1,2}))?$/.exec(s);
  if (!m) return null;
  const octets = m.slice(1, 5).map(Number);
  const len = m[5] === undefined ? 32 : Number(m[5]);
  if (octets.some((o) => o > 255) || len > 32) return null;
  const addr = octets.reduce((a, o) => a * 256 + o, 0);
  const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
  return [(addr & mask) >>> 0, mask];
}

function overlaps(a: [number, number], b: [number, number]): boolean {
  const mask = (a[1] & b[1]) >>> 0;
  return (a[0] & mask) >>> 0 === (b[0] & mask) >>> 0;
}

const PRIVATE = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16'].map((c) => cidr(c) as [number, number]);

/** Every IPv4 prefix the host routes (any table), its addresses included: a network's subnet must be none of them. */
async function hostPrefixes(network: string): Promise<[number, number][]> {
  const out: [number, number][] = [];
  for (const args of [['-j', '-4', 'route', 'show', 'table', 'all'], ['-j', '-4', 'addr', 'show']]) {
    let stdout: string;
    try {
      ({ stdout } = await (await runner())(tool('ip', network), args, { timeout: 10_000 }));
    } catch (e) {
      throw new SandboxNetworkError('setup', network, `reading the host's routes: ${(e as Error).message}`);
    }
    for (const r of JSON.parse(stdout || '[]') as { dst?: string; addr_info?: { local: string; prefixlen: number }[] }[]) {
      if (r.dst !== undefined && r.dst !== 'default') {
        const c = cidr(r.dst);
        if (c) out.push(c);
      }
      for (const a of r.addr_info ?? []) {
        const c = cidr(`${a.local}/${a.prefixlen}`);
        if (c) out.push(c);
      }
    }
  }
  return out;
}

function* candidates(): Generator<string> {
  for (let i = 0; i < 256; i++) yield `10.213.${i}.0/24`;
  for (let i = 0; i < 256; i++) yield `172.30.${i}.0/24`;
  for (let i = 213; i < 256; i++) yield `192.168.${i}.0/24`;
}

async function chooseSubnet(name: string, wanted: string | undefined): Promise<string> {
  const taken = [...(await hostPrefixes(name))];
  const others = listDirs().flatMap((n) => {
    const c = cidr(readMeta(n)?.subnet ?? '');
    return c ? [c] : [];
  });
  if (wanted !== undefined) {
    const c = cidr(wanted);
    if (!c || !wanted.endsWith('.0/24') || !PRIVATE.some((p) => overlaps(p, c) && p[1] <= c[1])) {
      throw new SandboxOptionsError([{ path: 'subnet', message: `must be a private /24 such as 10.213.7.0/24 (got ${JSON.stringify(wanted)})` }]);
    }
    if (taken.some((t) => overlaps(t, c))) throw new SandboxNetworkError('subnet-taken', name, `${wanted} overlaps a route or address of the host`);
    if (others.some((t) => overlaps(t, c))) throw new SandboxNetworkError('subnet-taken', name, `${wanted} is used by another sandcell network`);
    return wanted;
  }
  for (const s of candidates()) {
    const c = cidr(s) as [number, number];
    if (!taken.some((t) => overlaps(t, c)) && !others.some((t) => overlaps(t, c))) return s;
  }
  throw new SandboxNetworkError('subnet-taken', name, 'every candidate /24 overlaps a host route or another network: give `subnet`');
}

function listDirs(): string[] {
  try {
    return readdirSync(NETWORKS_DIR);
  } catch {
    return [];
  }
}

/** Unmounts the namespace (if held) and removes the directory: what was made by createNetwork. */
async function destroy(name: string): Promise<void> {
  const ns = `${dirOf(name)}/ns`;
  // Lazily: a box being built ahead may hold the namespace's file open while its veth pair is
  // made; the namespace goes with the last such reference, and that box is never used (see claim).
  if (mountedAt(ns)) await exec(name, tool('umount', name), ['--lazy', ns]);
  rmSync(dirOf(name), { recursive: true, force: true });
}

function mountedAt(path: string): boolean {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[4] === path);
}

let swept = false;

/**
 * Removes the networks whose owner process has ended (and the half-made ones it left): the next
 * sandcell process that uses networks, or that starts its first box as root, does it. Only
 * directories below /run/sandcell/networks with sandcell's network.json are looked at.
 */
export async function sweepNetworks(): Promise<string[]> {
  swept = true;
  if (process.geteuid?.() !== 0) return [];
  const gone: string[] = [];
  for (const name of listDirs()) {
    if (!NETWORK_NAME.test(name)) continue;
    const meta = readMeta(name);
    if (!meta || meta.owner === null || alive(meta.owner)) continue;
    await destroy(name).then(
      () => gone.push(name),
      () => undefined,
    );
  }
  return gone;
}

async function sweepOnce(): Promise<void> {
  if (!swept) await sweepNetworks();
}

/** A network made by this process; `await using` removes it. */
export class Network implements AsyncDisposable {
  /** @internal */
  constructor(
    readonly name: string,
    readonly subnet: string,
    private readonly created: string,
  ) {}

  /** Removes the network (refused while boxes are on it); nothing if it is gone already. */
  async remove(): Promise<void> {
    if (readMeta(this.name)?.created !== this.created) return;
    await removeNetwork(this.name);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.remove();
  }
}

/** Makes a named private network (root only). See docs/networks.md. */
export async function createNetwork(name: string, opts: CreateNetworkOptions = {}): Promise<Network> {
  checkName(name);
  requireRoot(name);
  for (const t of ['ip', 'nsenter', 'unshare', 'umount'] as const) tool(t, name);
  await sweepNetworks();
  mkdirSync(NETWORKS_DIR, { recursive: true, mode: 0o755 });
  const subnet = await chooseSubnet(name, opts.subnet);
  try {
    mkdirSync(dirOf(name), { mode: 0o755 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new SandboxNetworkError('exists', name, `a network named ${name} exists`);
    throw e;
  }
  const meta: Meta = { name, subnet, owner: opts.persistent ? null : identity(process.pid), created: `${process.pid}-${Date.now()}-${Math.random()}` };
  try {
    // network.json first: a network half made by a process that died is swept like any other.
    writeFileSync(`${dirOf(name)}/network.json`, JSON.stringify(meta));
    mkdirSync(`${dirOf(name)}/members`);
    writeHosts(name, subnet);
    writeFileSync(`${dirOf(name)}/ns`, '');
    await exec(name, tool('unshare', name), [`--net=${dirOf(name)}/ns`, 'true']);
    await ipIn(name, `${dirOf(name)}/ns`, [`link add ${BRIDGE} type bridge`, `link set ${BRIDGE} up`]);
  } catch (e) {
    await destroy(name).catch(() => undefined);
    throw e;
  }
  return new Network(name, subnet, meta.created);
}

/** Removes a network; refused (`in-use`) while boxes are on it. */
export async function removeNetwork(name: string): Promise<void> {
  checkName(name);
  requireRoot(name);
  await sweepOnce();
  if (!readMeta(name)) throw new SandboxNetworkError('not-found', name, `no network named ${name}`);
  const members = liveMembers(name);
  if (members.length > 0) {
    const who = members.map((m) => `${m.hostname ?? 'a box'} (${m.address}, pid ${m.pid})`).join(', ');
    throw new SandboxNetworkError('in-use', name, `${members.length} box(es) use it: ${who}`);
  }
  await destroy(name);
}

/** The networks on this host. */
export async function listNetworks(): Promise<NetworkInfo[]> {
  await sweepNetworks();
  return listDirs().flatMap((name) => {
    const meta = readMeta(name);
    return meta ? [{ name, subnet: meta.subnet, ownerPid: meta.owner?.pid ?? null, members: liveMembers(name) }] : [];
  });
}

/** A box on a network: its address; `leave()` once the box has ended. */
export interface Membership {
  address: string;
  leave(): void;
}

/**
 * A box built ahead on a network, not yet taken by a run: its veth pair and address are made, its
 * member file says it waits. A waiting box does not keep its network from being removed; a run
 * that takes it after that finds the network gone (or made again) and has the box discarded.
 */
export interface PreparedMembership extends Membership {
  readonly network: string;
  /** Tells this network from one made again under its name. */
  readonly created: string;
  readonly subnet: string;
  readonly file: string;
  readonly record: MemberRecord;
}

/**
 * Puts a box (its init's pid; the box waits for its program) on a network: takes an address,
 * makes the veth pair (the box's end moved into its namespace as `eth0`, addressed, with the
 * subnet's route and no other) and lists its hostname.
 */
export async function joinNetwork(name: string, hostname: string | null, native: Pick<NativeSpawned, 'box' | 'pid'>): Promise<Membership> {
  return claim(await prepareMembership(name, native), hostname);
}

/** Removes a member file if it is still this box's (the network may have been made again since). */
function removeOwn(file: string, record: Identity): void {
  try {
    const held = JSON.parse(readFileSync(file, 'utf8')) as Identity;
    if (held.pid === record.pid && held.start === record.start) rmSync(file, { force: true });
  } catch {
    // Gone with its network, or being rewritten by its new owner.
  }
}

/** Takes an address for a box and makes its veth pair; the member file says it waits for a run. */
export async function prepareMembership(name: string, native: Pick<NativeSpawned, 'box' | 'pid'>): Promise<PreparedMembership> {
  const pid = native.pid;
  requireRoot(name);
  await sweepOnce();
  const meta = readMeta(name);
  if (!meta) throw new SandboxNetworkError('not-found', name, `no network named ${name}`);
  const record: MemberRecord = { ...identity(pid), hostname: null, waiting: true };
  const n = takeAddress(name, record);
  const address = `${prefixOf(meta.subnet)}.${n}`;
  const file = `${dirOf(name)}/members/${n}`;
  const prepared: PreparedMembership = {
    network: name,
    created: meta.created,
    subnet: meta.subnet,
    file,
    record,
    address,
    leave: () => removeOwn(file, record),
  };
  try {
    const ns = openSync(`${dirOf(name)}/ns`, 'r');
    let attached: Promise<void>;
    try {
      attached = native.box.netAttach(ns, `sc${pid}`, address, 24);
    } finally {
      // The addon's worker thread holds a duplicate of its own.
      closeSync(ns);
    }
    await attached;
  } catch (e) {
    prepared.leave();
    const err = e as { errno?: number; step?: string; message: string };
    throw new SandboxNetworkError('setup', name, `putting box ${pid} on it: ${err.message}`);
  }
  return prepared;
}

/**
 * A run takes a prepared box: the box is a member from now on, listed by its hostname (the hosts
 * file lists boxes with a hostname only: one without comes and goes unseen by it). Throws when
 * the network is not the one the box was put on any more, or the hostname is taken.
 */
export function claim(prepared: PreparedMembership, hostname: string | null): Membership {
  const { network: name, subnet, file, record } = prepared;
  if (readMeta(name)?.created !== prepared.created) {
    throw new SandboxNetworkError('not-found', name, `the network ${name} the box was built for was removed`);
  }
  if (hostname !== null && liveMembers(name).some((m) => m.hostname === hostname)) {
    prepared.leave();
    throw new SandboxNetworkError('hostname-taken', name, `a box named ${hostname} is on it already`);
  }
  writeFileSync(file, JSON.stringify({ pid: record.pid, start: record.start, hostname }));
  const leave = (): void => {
    removeOwn(file, record);
    if (hostname !== null) writeHosts(name, subnet);
  };
  if (hostname !== null) writeHosts(name, subnet);
  return { address: prepared.address, leave };
}

/** Takes a free host number by creating its member file; a file of a box that has ended is taken over. */
function takeAddress(name: string, record: MemberRecord): number {
  const span = LAST_HOST - FIRST_HOST + 1;
  const offset = Math.floor(Math.random() * span);
  for (let i = 0; i < span; i++) {
    const n = FIRST_HOST + ((offset + i) % span);
    const file = `${dirOf(name)}/members/${n}`;
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(file, 'wx', 0o644);
        try {
          writeSync(fd, JSON.stringify(record));
        } finally {
          closeSync(fd);
        }
        return n;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        const held = readMembers(name).get(n);
        if (!held || alive(held)) break;
        rmSync(file, { force: true });
      }
    }
  }
  throw new SandboxNetworkError('full', name, `all ${span} addresses are taken`);
}
