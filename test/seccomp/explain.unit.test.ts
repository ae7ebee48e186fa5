import { describe, expect, it } from 'vitest';
import { ARCHES } from '../../src/seccomp/arch.js';
import { compile } from '../../src/seccomp/compile.js';
import { describeReturn, explain } from '../../src/seccomp/explain.js';
import { presets } from '../../src/seccomp/presets.js';
import { withoutTerminalRules } from '../../src/seccomp/policy.js';
import { halvesPolicy } from './policies.js';

describe.each(ARCHES)('explain on %s', (arch) => {
  it('prints the size, the foreign-ABI treatment and every range', () => {
    const text = explain(presets.default, arch);
    const size = compile(presets.default, arch).instructions;
    expect(text).toContain(`seccomp policy for ${arch}`);
    expect(text).toContain(`${size} BPF instructions`);
    expect(text).toMatch(/other architectures.*: kill-process/);
    // an allow-list: whatever no rule names, known to the tables or not, gets ENOSYS
    expect(text).toMatch(/default: errno ENOSYS \(38\) \(every number no rule names/);
    expect(text).toMatch(new RegExp(`the \\d+ calls of the ${arch} table: \\d+ allow, \\d+ errno EPERM \\(1\\), \\d+ errno ENOSYS \\(38\\), \\d+ with argument checks`));
    expect(text).toMatch(/…-4294967295 +everything else: errno ENOSYS \(38\)/);
    expect(text).toMatch(/clone:\n\s+if \(arg0 & 0x7e020000\) == 0x0 → allow {2}\(rule \d+\)\n\s+otherwise → errno EPERM \(1\)/);
    expect(text).toMatch(/\bclone3\b[^\n]*: errno ENOSYS \(38\)/);
    expect(text).toMatch(/memfd_secret[^\n]*: errno ENOSYS \(38\)/);
    for (const call of ['socket', 'socketpair'])
      expect(text).toMatch(new RegExp(`\\b${call}\\b[^\\n]*:\\n(\\s+if .* → allow .*\\n){3}\\s+otherwise → errno EAFNOSUPPORT \\(97\\)`));
    // the terminal rules are marked, and the policy without them described
    expect(text).toMatch(/ioctl:\n\s+if \(arg1 & 0xffffffff\) == 0x5412 → errno EPERM \(1\) {2}\(rule \d+, terminal\)\n\s+if \(arg1 & 0xffffffff\) == 0x541c → errno EPERM \(1\) {2}\(rule \d+, terminal\)/);
    const without = compile(withoutTerminalRules(presets.default), arch).instructions;
    expect(text).toMatch(new RegExp(`rules marked terminal \\(\\d+, \\d+\\): .* gets the policy without them: ${without} instructions, the \\d+ calls: \\d+ allow, .*\\d+ with argument checks`));
    expect(explain(withoutTerminalRules(presets.default), arch)).not.toMatch(/terminal/);
    // every allowed name is printed, none hidden behind an ellipsis
    expect(text).not.toMatch(/ … /);
    for (const name of ['read', 'futex', 'epoll_pwait', 'inotify_add_watch', 'mq_open']) expect(text).toMatch(new RegExp(`\\b${name}\\b[^\\n]*(\\n {18}[^\\n]*)*: allow`));
  });

  it('shows placeholders and kill', () => {
    const text = explain(presets.judge, arch);
    expect(text).toMatch(/placeholders: \$execPath\.hi at instruction \d+, \$execPath\.lo at instruction \d+/);
    expect(text).toMatch(/execve:\n\s+if arg0 == \$execPath → allow/);
    expect(text).toMatch(/default: kill \(user-notif/);
    expect(explain(presets.judge, arch, { killAction: 'kill-process' })).toMatch(/default: kill-process/);
  });

  it('shows every operator', () => {
    const text = explain(halvesPolicy, arch);
    for (const s of ['arg0 <= 0x2', 'arg0 > 0x100000000', 'arg2 < 0x100000000', 'arg2 >= 0xffffffff00000001', '(arg3 & 0xff000000ff) == 0x1000000020', 'arg5 != 0x0', 'arg0 == 0xffffffffffffff9c'])
      expect(text).toContain(s);
  });
});

it('describes return values', () => {
  expect(describeReturn(0x7fff0000)).toBe('allow');
  expect(describeReturn(0x50001)).toBe('errno EPERM (1)');
  expect(describeReturn(0x50000 | 300)).toBe('errno 300');
  expect(describeReturn(0x80000000)).toBe('kill-process');
  expect(describeReturn(0x7ffc0000)).toBe('log');
});
