import { describe, expect, it } from 'vitest';
import { type SeccompPolicy, SeccompPolicyError, actionValue, parsePolicy, parseU64, withoutTerminalRules } from '../../src/seccomp/policy.js';
import { presetNames, presets } from '../../src/seccomp/presets.js';

function issuePath(input: unknown): string {
  try {
    parsePolicy(input);
  } catch (e) {
    expect(e).toBeInstanceOf(SeccompPolicyError);
    return (e as SeccompPolicyError).path;
  }
  throw new Error('parsePolicy accepted it');
}

describe('parsePolicy', () => {
  it('accepts presets, and their JSON round trip', () => {
    for (const n of presetNames) {
      expect(parsePolicy(presets[n])).toEqual(presets[n]);
      expect(parsePolicy(JSON.parse(JSON.stringify(presets[n])))).toEqual(presets[n]);
    }
  });

  it('accepts every action form and value form', () => {
    const p: SeccompPolicy = parsePolicy({
      defaultAction: { errno: 'EPERM' },
      rules: [
        { syscall: 'read', action: 'allow' },
        { syscall: ['write', 'close'], action: { errno: 13 }, args: [{ index: 5, op: 'ge', value: '0xffffffffffffffff' }] },
        { syscall: 'mmap', action: 'log', args: [{ index: 0, op: 'masked-eq', value: 1n, mask: '18446744073709551615' }] },
        { syscall: 'openat', action: 'notify', args: [{ index: 0, op: 'eq', value: -100 }] },
        { syscall: 'execve', action: 'kill', optional: true, args: [{ index: 0, op: 'ne', value: { placeholder: 'execPath' } }] },
      ],
    });
    expect(p.rules).toHaveLength(5);
  });

  it.each([
    [{ defaultAction: 'allow' }, 'rules'],
    [{ defaultAction: 'deny', rules: [] }, 'defaultAction'],
    [{ defaultAction: 'allow', rules: [], extra: 1 }, ''],
    [{ defaultAction: { errno: 'EWHAT' }, rules: [] }, 'defaultAction'],
    [{ defaultAction: { errno: 5000 }, rules: [] }, 'defaultAction.errno'],
    [{ defaultAction: 'allow', rules: [{ syscall: 'Read', action: 'allow' }] }, 'rules.0.syscall'],
    [{ defaultAction: 'allow', rules: [{ syscall: [], action: 'allow' }] }, 'rules.0.syscall'],
    [{ defaultAction: 'allow', rules: [{ syscall: 'read', action: 'trap' }] }, 'rules.0.action'],
    [{ defaultAction: 'allow', rules: [{ syscall: 'read', action: 'allow' }, { syscall: 'read', action: 'allow', args: [{ index: 6, op: 'eq', value: 1 }] }] }, 'rules.1.args.0.index'],
    [{ defaultAction: 'allow', rules: [{ syscall: 'read', action: 'allow', args: [{ index: 0, op: 'like', value: 1 }] }] }, 'rules.0.args.0.op'],
    [{ defaultAction: 'allow', rules: [{ syscall: 'read', action: 'allow', args: [{ index: 0, op: 'eq', value: '0x1ffffffffffffffff' }] }] }, 'rules.0.args.0.value'],
    [{ defaultAction: 'allow', rules: [{ syscall: 'read', action: 'allow', args: [{ index: 0, op: 'eq', value: 1.5 }] }] }, 'rules.0.args.0.value'],
    [{ defaultAction: 'allow', rules: [{ syscall: 'read', action: 'allow', args: [{ index: 0, op: 'eq', value: 'ten' }] }] }, 'rules.0.args.0.value'],
    [{ defaultAction: 'allow', rules: [{ syscall: 'read', action: 'allow', args: [{ index: 0, op: 'masked-eq', value: 1 }] }] }, 'rules.0.args.0.mask'],
    [{ defaultAction: 'allow', rules: [{ syscall: 'read', action: 'allow', args: [{ index: 0, op: 'eq', value: 1, mask: 1 }] }] }, 'rules.0.args.0.mask'],
    [{ defaultAction: 'allow', rules: [{ syscall: 'read', action: 'allow', args: [{ index: 0, op: 'gt', value: { placeholder: 'execPath' } }] }] }, 'rules.0.args.0.value'],
    [{ defaultAction: 'allow', rules: [{ syscall: 'read', action: 'allow', args: [{ index: 0, op: 'eq', value: { placeholder: 'other' } }] }] }, 'rules.0.args.0.value'],
    [{ defaultAction: 'allow', rules: [{ syscall: 'ioctl', action: 'kill', terminal: 'yes' }] }, 'rules.0.terminal'],
  ])('refuses %j at %s', (input, path) => {
    expect(issuePath(input)).toBe(path);
  });

  it('names the field path in the message', () => {
    expect(() => parsePolicy({ defaultAction: 'allow', rules: [{ syscall: 'read', action: 'allow', args: [{ index: 0, op: 'like', value: 1 }] }] })).toThrow(
      /rules\.0\.args\.0\.op/,
    );
  });
});

describe('terminal rules', () => {
  it('withoutTerminalRules leaves out the marked rules only, in order; a policy without any is returned as it is', () => {
    const policy = parsePolicy({
      defaultAction: { errno: 'ENOSYS' },
      rules: [
        { syscall: 'ioctl', action: { errno: 'EPERM' }, args: [{ index: 1, op: 'masked-eq', value: 0x5412, mask: '0xffffffff' }], terminal: true },
        { syscall: 'ioctl', action: { errno: 'EPERM' }, args: [{ index: 1, op: 'masked-eq', value: 0x5413, mask: '0xffffffff' }], terminal: false },
        { syscall: ['ioctl', 'read'], action: 'allow' },
      ],
    });
    expect(withoutTerminalRules(policy)).toEqual({ defaultAction: { errno: 'ENOSYS' }, rules: policy.rules.slice(1) });
    const plain: SeccompPolicy = { defaultAction: 'allow', rules: [{ syscall: 'ioctl', action: 'kill', args: [{ index: 1, op: 'eq', value: 0x5412 }] }] };
    expect(withoutTerminalRules(plain)).toBe(plain);
  });

  it('the presets mark exactly their TIOCSTI and TIOCLINUX rules', () => {
    for (const n of presetNames) {
      const marked = presets[n].rules.filter((r) => r.terminal === true);
      expect(marked.map((r) => [r.syscall, r.args?.[0]?.value])).toEqual(n === 'none' ? [] : [['ioctl', 0x5412], ['ioctl', 0x541c]]);
    }
  });
});

describe('values and actions', () => {
  it('parses 64-bit values', () => {
    expect(parseU64(0)).toBe(0n);
    expect(parseU64('0xFFFFFFFFFFFFFFFF')).toBe((1n << 64n) - 1n);
    expect(parseU64('18446744073709551615')).toBe((1n << 64n) - 1n);
    expect(parseU64(-1)).toBe((1n << 64n) - 1n);
    expect(parseU64(-100)).toBe((1n << 64n) - 100n);
    expect(parseU64(2n ** 64n)).toMatch(/64 bits/);
    expect(parseU64(2 ** 60)).toMatch(/safe integer/);
  });

  it('encodes actions', () => {
    expect(actionValue('allow')).toBe(0x7fff0000);
    expect(actionValue('log')).toBe(0x7ffc0000);
    expect(actionValue('notify')).toBe(0x7fc00000);
    expect(actionValue('kill')).toBe(0x7fc00000);
    expect(actionValue('kill', { killAction: 'kill-process' })).toBe(0x80000000);
    expect(actionValue({ errno: 'EPERM' })).toBe(0x50001);
    expect(actionValue({ errno: 'ENOSYS' })).toBe(0x50026);
    expect(actionValue({ errno: 'EAFNOSUPPORT' })).toBe(0x50061);
    expect(actionValue({ errno: 4095 })).toBe(0x50fff);
  });
});
