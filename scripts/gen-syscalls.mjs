#!/usr/bin/env node
// Regenerates src/seccomp/tables/{x86_64,aarch64}.ts from the Linux UAPI headers installed on this
// machine (package linux-libc-dev). Plain Node, no build step:
//
//   node scripts/gen-syscalls.mjs [--include /usr/include] [--check]
//
// x86_64:  <include>/x86_64-linux-gnu/asm/unistd_64.h (a flat list of `#define __NR_x N`).
// aarch64: <include>/asm-generic/unistd.h, preprocessed the way arm64's uapi <asm/unistd.h> does:
//          64-bit (__BITS_PER_LONG == 64, no __SYSCALL_COMPAT) with __ARCH_WANT_RENAMEAT,
//          __ARCH_WANT_NEW_STAT, __ARCH_WANT_SET_GET_RLIMIT, __ARCH_WANT_TIME32_SYSCALLS,
//          __ARCH_WANT_SYS_CLONE3 and __ARCH_WANT_MEMFD_SECRET defined (not
//          __ARCH_WANT_SYNC_FILE_RANGE2, not __ARCH_WANT_STAT64, not __ARCH_NOMMU). On a 64-bit ABI
//          the TIME32 guard is `defined(__ARCH_WANT_TIME32_SYSCALLS) || __BITS_PER_LONG != 32`, so
//          it does not change the table either way. `__NR3264_*` numbers get their 64-bit names
//          (fcntl, statfs, fstatfs, truncate, ftruncate, lseek, sendfile, newfstatat, fstat, mmap,
//          fadvise64) through the aliases at the end of the header.
//
// --check exits non-zero if the committed tables differ from what the headers give. The headers'
// version in the Source line is left out of the comparison: a point release of linux-libc-dev
// changes it without changing a number, and the check is about the numbers.
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const outDir = join(here, '..', 'src', 'seccomp', 'tables');

const argv = process.argv.slice(2);
const includeIdx = argv.indexOf('--include');
const include = includeIdx >= 0 ? argv[includeIdx + 1] : '/usr/include';
const check = argv.includes('--check');

/**
 * A deliberately small C preprocessor: #if/#ifdef/#ifndef/#elif/#else/#endif, #define/#undef of
 * object-like macros, `defined`, integer comparisons and logical operators. Function-like macros
 * and #include are ignored (the unistd headers only use them for __SYSCALL(), which we skip).
 * Returns the macro table after processing the file.
 */
function preprocess(text, predefined) {
  const macros = new Map(Object.entries(predefined));
  const stack = []; // { active: bool, taken: bool, parentActive: bool }
  const active = () => stack.length === 0 || stack[stack.length - 1].active;
  // Join continuation lines, drop comments.
  const src = text.replace(/\/\*[\s\S]*?\*\//g, ' ').replace(/\\\n/g, ' ');
  for (const raw of src.split('\n')) {
    const line = raw.trim();
    if (!line.startsWith('#')) continue;
    const m = /^#\s*(\w+)\s*(.*)$/.exec(line);
    if (!m) continue;
    const [, directive, rest] = m;
    switch (directive) {
      case 'ifdef':
      case 'ifndef': {
        const name = rest.trim().split(/\s+/)[0];
        const cond = directive === 'ifdef' ? macros.has(name) : !macros.has(name);
        const parentActive = active();
        stack.push({ active: parentActive && cond, taken: cond, parentActive });
        break;
      }
      case 'if': {
        const parentActive = active();
        const cond = parentActive && evaluate(rest, macros);
        stack.push({ active: cond, taken: cond, parentActive });
        break;
      }
      case 'elif': {
        const top = stack[stack.length - 1];
        if (!top) throw new Error('#elif without #if');
        const cond = !top.taken && top.parentActive && evaluate(rest, macros);
        top.active = cond;
        top.taken = top.taken || cond;
        break;
      }
      case 'else': {
        const top = stack[stack.length - 1];
        if (!top) throw new Error('#else without #if');
        top.active = top.parentActive && !top.taken;
        top.taken = true;
        break;
      }
      case 'endif':
        if (!stack.pop()) throw new Error('#endif without #if');
        break;
      case 'define': {
        if (!active()) break;
        const d = /^(\w+)(\([^)]*\))?\s*(.*)$/.exec(rest);
        if (!d || d[2]) break; // function-like macro: not needed
        macros.set(d[1], d[3].trim());
        break;
      }
      case 'undef':
        if (active()) macros.delete(rest.trim());
        break;
      default:
        break; // #include, #error, #pragma: irrelevant here
    }
  }
  if (stack.length !== 0) throw new Error('unterminated #if');
  return macros;
}

function resolveValue(value, macros, depth = 0) {
  if (depth > 20) throw new Error(`macro recursion resolving ${value}`);
  const v = value.trim().replace(/^\((.*)\)$/, '$1').trim();
  if (/^(0x[0-9a-f]+|\d+)$/i.test(v)) return Number(v);
  if (/^\w+$/.test(v) && macros.has(v)) return resolveValue(macros.get(v), macros, depth + 1);
  // `(__NR_SYSCALL_BASE + 5)` style: not used by these headers.
  return undefined;
}

function evaluate(expr, macros) {
  let e = expr.replace(/defined\s*\(\s*(\w+)\s*\)/g, (_, n) => (macros.has(n) ? '1' : '0'));
  e = e.replace(/defined\s+(\w+)/g, (_, n) => (macros.has(n) ? '1' : '0'));
  e = e.replace(/\b[A-Za-z_]\w*\b/g, (n) => {
    const v = macros.has(n) ? resolveValue(macros.get(n), macros) : 0;
    return String(v ?? 0);
  });
  if (!/^[\d\s()|&!=<>+-]*$/.test(e)) throw new Error(`cannot evaluate #if ${expr}`);
  // eslint-disable-next-line no-new-func
  return Boolean(new Function(`return (${e});`)());
}

function syscallsFrom(macros) {
  const table = new Map();
  for (const [name, value] of macros) {
    if (!name.startsWith('__NR_') || name === '__NR_syscalls') continue;
    const nr = resolveValue(value, macros);
    if (nr === undefined) throw new Error(`cannot resolve ${name} = ${value}`);
    table.set(name.slice('__NR_'.length), nr);
  }
  return [...table.entries()].sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : 1));
}

function render(arch, sources, entries, notes) {
  const seen = new Map();
  for (const [name, nr] of entries) {
    if (seen.has(nr)) throw new Error(`${arch}: ${name} and ${seen.get(nr)} share number ${nr}`);
    seen.set(nr, name);
  }
  const ident = arch === 'x86_64' ? 'X86_64_SYSCALLS' : 'AARCH64_SYSCALLS';
  const lines = [
    '// GENERATED FILE, DO NOT EDIT. Regenerate with `node scripts/gen-syscalls.mjs`.',
    `// Source: ${sources.join(', ')}${notes ? `\n// ${notes}` : ''}`,
    `// ${entries.length} system calls, highest number ${entries[entries.length - 1][1]}.`,
    '',
    `/** System call numbers of the ${arch} Linux ABI, by name (generated from the UAPI headers). */`,
    `export const ${ident}: Readonly<Record<string, number>> = Object.freeze({`,
    ...entries.map(([name, nr]) => `  ${name}: ${nr},`),
    '});',
    '',
  ];
  return lines.join('\n');
}

function versionOf(includeDir) {
  try {
    const v = readFileSync(join(includeDir, 'linux', 'version.h'), 'utf8');
    const maj = /LINUX_VERSION_MAJOR\s+(\d+)/.exec(v)?.[1];
    const min = /LINUX_VERSION_PATCHLEVEL\s+(\d+)/.exec(v)?.[1];
    const sub = /LINUX_VERSION_SUBLEVEL\s+(\d+)/.exec(v)?.[1];
    return maj ? `Linux UAPI headers ${maj}.${min}.${sub}` : 'Linux UAPI headers';
  } catch {
    return 'Linux UAPI headers';
  }
}

const version = versionOf(include);
const x86Path = join(include, 'x86_64-linux-gnu', 'asm', 'unistd_64.h');
const genericPath = join(include, 'asm-generic', 'unistd.h');

const x86 = syscallsFrom(preprocess(readFileSync(x86Path, 'utf8'), {}));
const arm = syscallsFrom(
  preprocess(readFileSync(genericPath, 'utf8'), {
    __BITS_PER_LONG: '64',
    __ARCH_WANT_RENAMEAT: '',
    __ARCH_WANT_NEW_STAT: '',
    __ARCH_WANT_SET_GET_RLIMIT: '',
    __ARCH_WANT_TIME32_SYSCALLS: '',
    __ARCH_WANT_SYS_CLONE3: '',
    __ARCH_WANT_MEMFD_SECRET: '',
  }),
).filter(([name]) => !name.startsWith('arch_specific_syscall'));

const outputs = [
  ['x86_64.ts', render('x86_64', [`${x86Path} (${version})`], x86)],
  [
    'aarch64.ts',
    render(
      'aarch64',
      [`${genericPath} (${version})`],
      arm,
      'as arm64 includes it: 64-bit, __ARCH_WANT_{RENAMEAT,NEW_STAT,SET_GET_RLIMIT,TIME32_SYSCALLS,SYS_CLONE3,MEMFD_SECRET}',
    ),
  ],
];

function withoutVersion(text) {
  return text.replace(/\(Linux UAPI headers[^)]*\)/g, '(Linux UAPI headers)');
}

let stale = false;
for (const [file, text] of outputs) {
  const path = join(outDir, file);
  if (check) {
    let old = '';
    try {
      old = readFileSync(path, 'utf8');
    } catch {
      /* missing */
    }
    if (withoutVersion(old) !== withoutVersion(text)) {
      console.error(`${path} is out of date`);
      stale = true;
    }
  } else {
    writeFileSync(path, text);
    console.log(`wrote ${path}`);
  }
}
if (stale) process.exit(1);
