// The allow list's rules and its two checks: what a program may ask for, and which address a
// name may lead to (never a special one unless the list names it).
import { describe, expect, it } from 'vitest';

import { SandboxOptionsError } from '../../src/errors.js';
import { AllowList, isSpecialAddress, parseAllowRule, type AllowRule } from '../../src/network/allow.js';
import { resolveOptions } from '../../src/options.js';

const list = (...rules: string[]): AllowList => new AllowList(rules.map((r) => parseAllowRule(r) as AllowRule));

describe('allow rules', () => {
  it('parses names, wildcards, addresses and ports', () => {
    expect(parseAllowRule('API.example.com:443')).toEqual({ host: 'api.example.com', kind: 'name', port: 443 });
    expect(parseAllowRule('*.example.com:*')).toEqual({ host: 'example.com', kind: 'wildcard', port: null });
    expect(parseAllowRule('127.0.0.1:8125')).toEqual({ host: '127.0.0.1', kind: 'address', port: 8125 });
    expect(parseAllowRule('[::1]:80')).toEqual({ host: '::1', kind: 'address', port: 80 });
  });

  it('refuses what is not a rule, saying why', () => {
    for (const bad of ['example.com', 'example.com:0', 'example.com:70000', '999.1.1.1:80', 'a b:80', '[nope]:80', ':80', 'x..y:1']) {
      expect(typeof parseAllowRule(bad)).toBe('string');
    }
  });

  it('admits a destination by name, subdomain or exact address, on its port', () => {
    const l = list('api.example.com:443', '*.cdn.example.com:*', '127.0.0.1:8125');
    expect(l.admits('api.example.com', 443)).toBe(true);
    expect(l.admits('API.EXAMPLE.COM.', 443)).toBe(true);
    expect(l.admits('api.example.com', 80)).toBe(false);
    expect(l.admits('evil.api.example.com', 443)).toBe(false);
    expect(l.admits('a.b.cdn.example.com', 1)).toBe(true);
    expect(l.admits('cdn.example.com', 1)).toBe(false);
    expect(l.admits('127.0.0.1', 8125)).toBe(true);
    expect(l.admits('127.0.0.2', 8125)).toBe(false);
    // An address is never admitted by a name rule, and a name never by an address rule.
    expect(list('localhost:80').admits('127.0.0.1', 80)).toBe(false);
    expect(list('127.0.0.1:80').admits('localhost', 80)).toBe(false);
  });

  it("lets a name reach public addresses only, unless the list names the address", () => {
    const l = list('api.example.com:443', '10.1.2.3:443');
    expect(l.reaches('93.184.216.34', 443)).toBe(true);
    for (const a of ['127.0.0.1', '10.0.0.1', '192.168.1.1', '172.16.0.1', '169.254.169.254', '100.64.0.1', '0.0.0.0', '::1', 'fe80::1', 'fd00::1', '::ffff:127.0.0.1', '224.0.0.1']) {
      expect(isSpecialAddress(a)).toBe(true);
      expect(l.reaches(a, 443)).toBe(false);
    }
    expect(l.reaches('10.1.2.3', 443)).toBe(true);
    expect(l.reaches('10.1.2.3', 80)).toBe(false);
  });
});

describe('network options', () => {
  it('an allow list gives the proxy, its environment and its default limits', () => {
    const o = resolveOptions({ command: ['x'], network: { allow: ['example.com:443'] }, env: { http_proxy: 'mine' } });
    expect(o.network).toBe('none');
    expect(o.egress?.limits).toEqual({ connections: 64, bytesIn: 1024 ** 3, bytesOut: 1024 ** 3 });
    expect(o.env).toMatchObject({ http_proxy: 'mine', https_proxy: 'http://127.0.0.1:3128', ALL_PROXY: 'socks5h://127.0.0.1:3128' });
    expect(resolveOptions({ command: ['x'], network: 'none' }).egress).toBeNull();
  });

  it('names the field and the reason of a bad network', () => {
    const issues = (network: unknown): string[] => {
      try {
        resolveOptions({ command: ['x'], network });
      } catch (e) {
        expect(e).toBeInstanceOf(SandboxOptionsError);
        return (e as SandboxOptionsError).issues.map((i) => `${i.path}: ${i.message}`);
      }
      throw new Error('accepted');
    };
    expect(issues('Bogus!')).toEqual(["network: must be 'none', 'loopback', 'host', the name of a private network (1-32 of a-z 0-9 _ -) or { allow, publish, limits }"]);
    expect(issues({ allow: ['nope'] })).toEqual([expect.stringMatching(/^network\.allow\[0\]: "nope" must be 'host:port'/)]);
    expect(issues({ limits: { connections: 2 } })).toEqual(['network.limits: bound the egress proxy: give network.allow too']);
    expect(issues({ publish: [{ box: 80, host: 'example.com:80' }] })).toEqual([
      "network.publish[0].host: must be 'address:port' with an IP address (127.0.0.1:18000, [::1]:18000) or a port number",
    ]);
    expect(issues({ publish: [{ box: 0 }] })[0]).toMatch(/^network/);
  });
});
