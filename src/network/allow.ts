/**
 * The egress allow list: `host:port` rules and the check the proxy makes at connect time. A rule
 * names a host (`api.example.com`, `*.example.com` for its subdomains) or an address
 * (`127.0.0.1`, `[::1]`), and a port (or `*`). A name only ever reaches public addresses: a name
 * that resolves to a loopback, private, link-local or otherwise special address is refused unless
 * that address is itself on the list, so a name whose DNS answer changes (rebinding) cannot turn
 * the list into a way to the host or its private network.
 */
import { BlockList, isIP } from 'node:net';

export interface AllowRule {
  /** A lower-case name without a trailing dot, `*.suffix`, or an address (IPv6 without brackets). */
  host: string;
  kind: 'name' | 'wildcard' | 'address';
  /** null: any port. */
  port: number | null;
}

/** Parses one rule; a string is the reason it is not one. */
export function parseAllowRule(text: string): AllowRule | string {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:[\]\s]+):(\d{1,5}|\*)$/.exec(text);
  if (!m) return "must be 'host:port' (host a name, *.name, an IPv4 address or [IPv6]; port a number or *)";
  const port = m[2] === '*' ? null : Number(m[2]);
  if (port !== null && (port < 1 || port > 65535)) return 'port must be 1-65535 or *';
  let host = (m[1] as string).toLowerCase();
  if (host.startsWith('[')) {
    host = host.slice(1, -1);
    if (isIP(host) !== 6) return 'is not an IPv6 address in brackets';
    return { host, kind: 'address', port };
  }
  if (isIP(host) === 4) return { host, kind: 'address', port };
  if (/^\d+(\.\d+)*$/.test(host)) return 'is not a valid IPv4 address';
  const wildcard = host.startsWith('*.');
  const name = (wildcard ? host.slice(2) : host).replace(/\.$/, '');
  if (name.length === 0 || name.length > 253 || !name.split('.').every((l) => /^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$/.test(l))) {
    return 'is not a valid host name';
  }
  return { host: name, kind: wildcard ? 'wildcard' : 'name', port };
}

/**
 * Addresses a name never reaches unless the list names them: the host, private networks, special
 * ranges. One list per family: a BlockList checks an IPv4 address against IPv6 rules as its
 * IPv4-mapped form, so `::ffff:0:0/96` in a shared list would match every IPv4 address.
 */
const special4 = new BlockList();
const special6 = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const) {
  special4.addSubnet(net, prefix, 'ipv4');
}
for (const [net, prefix] of [
  ['::', 128],
  ['::1', 128],
  ['::ffff:0:0', 96],
  ['64:ff9b::', 96],
  ['100::', 64],
  ['2001:db8::', 32],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
] as const) {
  special6.addSubnet(net, prefix, 'ipv6');
}

/** Whether an address is one a name may not reach by itself (see `special`). */
export function isSpecialAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 0) return true;
  return family === 4 ? special4.check(address, 'ipv4') : special6.check(address, 'ipv6');
}

export class AllowList {
  constructor(readonly rules: readonly AllowRule[]) {}

  /** Whether a destination as the program named it (a name, or an address) may be asked for at all. */
  admits(host: string, port: number): boolean {
    const h = normalizeHost(host);
    const address = isIP(h) !== 0;
    return this.rules.some((r) => portMatches(r, port) && (address ? r.kind === 'address' && sameAddress(r.host, h) : nameMatches(r, h)));
  }

  /**
   * Whether the proxy may connect to `address` for a destination the program named `host`: an
   * address on the list always; a name's answer only when it is not a special address.
   */
  reaches(address: string, port: number): boolean {
    if (this.rules.some((r) => r.kind === 'address' && portMatches(r, port) && sameAddress(r.host, address))) return true;
    return !isSpecialAddress(address);
  }
}

/** Lower case, no brackets, no trailing dot. */
export function normalizeHost(host: string): string {
  const h = host.toLowerCase();
  return (h.startsWith('[') && h.endsWith(']') ? h.slice(1, -1) : h).replace(/\.$/, '');
}

function portMatches(r: AllowRule, port: number): boolean {
  return r.port === null || r.port === port;
}

function nameMatches(r: AllowRule, name: string): boolean {
  if (r.kind === 'name') return r.host === name;
  if (r.kind === 'wildcard') return name.endsWith(`.${r.host}`);
  return false;
}

function sameAddress(a: string, b: string): boolean {
  if (a === b) return true;
  const family = isIP(a);
  if (family === 0 || family !== isIP(b)) return false;
  const list = new BlockList();
  list.addAddress(a, family === 4 ? 'ipv4' : 'ipv6');
  return list.check(b, family === 4 ? 'ipv4' : 'ipv6');
}
