// The examples of README.md, SECURITY.md and docs/*.md, checked as a user would meet them:
// - every `ts` block type-checks as a module of the user's own, importing the package by its name
//   (`sandcell`, `sandcell/client`, ...) from the declarations in dist/ that `npm test` builds;
//   all blocks in one program. A block marked `<!-- example: fragment -->` is not checked.
// - every `console` block is run: each `$ ` line in `sh` from the repository's root, with the
//   package's `sandcell` command on the PATH (`npx sandcell` runs that same command), and what it
//   prints (stdout and stderr) must be what the block shows after it (`...` stands for any lines,
//   or any text within a line); it must exit 0. Only safe, self-contained commands go there.
// - every `sandcell <verb>` of a `sh` or `console` block or of inline code names a verb that
//   exists and only flags its `--help` lists; every `json` block parses, every `yaml` block that
//   is a sandcell.yaml (`sandcell: 1`) loads; every file of the repository a page names
//   (`src/...`, ...) exists, and every camelCase name of its inline code (`setWarmBoxes`,
//   `cgroupParent`) is in the sources.
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadProfiles } from '../../src/profiles/index.js';
import { requireRoot } from '../helpers/host.js';
import { blocksOf, commandsOf, documentationFiles, outputMatches, sandcellCommandsOf, type Block } from './markdown.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = join(ROOT, 'dist', 'cli', 'main.js');

const blocks: Block[] = documentationFiles(ROOT).flatMap((f) => blocksOf(f, readFileSync(join(ROOT, f), 'utf8')));
const where = (b: Block) => `${b.file}:${b.line}`;

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'sandcell-docs-'));
  // The user's project: the package and Node's types installed beside their code.
  mkdirSync(join(tmp, 'project', 'node_modules', '@types'), { recursive: true });
  symlinkSync(ROOT, join(tmp, 'project', 'node_modules', 'sandcell'));
  symlinkSync(join(ROOT, 'node_modules', '@types', 'node'), join(tmp, 'project', 'node_modules', '@types', 'node'));
  writeFileSync(join(tmp, 'project', 'package.json'), '{ "type": "module" }\n');
  mkdirSync(join(tmp, 'bin'));
  symlinkSync(CLI, join(tmp, 'bin', 'sandcell'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Type errors of the given blocks, each as `page:line: message`, checked as one program. */
function typeErrors(dir: string, checked: readonly Block[]): string[] {
  const files = checked.map((b, k) => {
    const name = join(dir, `block-${k}.ts`);
    // `export {}`: every block a module of its own (top-level await, names of its own).
    writeFileSync(name, `${b.body.join('\n')}\nexport {};\n`);
    return name;
  });
  const program = ts.createProgram(files, {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    lib: ['lib.es2023.d.ts', 'lib.esnext.disposable.d.ts'],
    types: ['node'],
    strict: true,
    noEmit: true,
    skipLibCheck: true,
  });
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const text = ts.flattenDiagnosticMessageText(d.messageText, '\n');
    if (!d.file || d.start === undefined) return text;
    const k = files.indexOf(d.file.fileName);
    if (k < 0) return `${d.file.fileName}: ${text}`;
    const { line } = d.file.getLineAndCharacterOfPosition(d.start);
    const b = checked[k] as Block;
    return `${b.file}:${b.line + 1 + line}: ${text}`;
  });
}

/** Whether a path with `*` in its last part (`test/security/attacks/*.c`) names any file. */
function globMatches(path: string): boolean {
  const dir = join(ROOT, dirname(path));
  const name = new RegExp(`^${path.slice(path.lastIndexOf('/') + 1).split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
  return existsSync(dir) && readdirSync(dir).some((e) => name.test(e));
}

describe('documentation examples', () => {
  it('every TypeScript block type-checks against the package as a user imports it', () => {
    const checked = blocks.filter((b) => b.lang === 'ts' && b.marker !== 'fragment');
    expect(checked.length).toBeGreaterThan(10);
    expect(typeErrors(join(tmp, 'project'), checked)).toEqual([]);
  });

  it('every block is of a known kind, and markers are ones this test understands', () => {
    const kinds = new Set(['ts', 'sh', 'console', 'json', 'yaml', '']);
    expect(blocks.filter((b) => !kinds.has(b.lang)).map((b) => `${where(b)}: ${b.lang}`)).toEqual([]);
    expect(blocks.filter((b) => b.marker !== null && !(b.marker === 'fragment' && b.lang === 'ts')).map((b) => `${where(b)}: ${b.marker}`)).toEqual([]);
  });

  it('every file of the repository a page names exists', () => {
    const named = /(?<![\w/.-])((?:src|test|native|bench|scripts|rootfs|contrib|examples|docs|soak|prebuilds)\/[\w./*-]*[\w*/])(?![\w./*<-])/g;
    const missing: string[] = [];
    let seen = 0;
    for (const file of documentationFiles(ROOT)) {
      readFileSync(join(ROOT, file), 'utf8').split('\n').forEach((text, k) => {
        for (const [, path] of text.matchAll(named)) {
          seen++;
          const found = path!.includes('*') ? globMatches(path!) : existsSync(join(ROOT, path!));
          if (!found) missing.push(`${file}:${k + 1}: ${path}`);
        }
      });
    }
    expect(seen).toBeGreaterThan(100);
    expect(missing).toEqual([]);
  });

  it('every camelCase name of inline code is one the sources have (or one of another project, listed here)', () => {
    // Kubernetes' fields, which docs/containers.md names.
    const theirs = new Set(['localhostProfile', 'RuntimeDefault', 'allowPrivilegeEscalation']);
    const sources = ['src', 'native', 'scripts', 'bench', 'soak', 'rootfs', 'contrib', 'examples']
      .flatMap((d) => readdirSync(join(ROOT, d), { withFileTypes: true, recursive: true }).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name)))
      .concat([join(ROOT, 'package.json'), join(ROOT, 'binding.gyp')])
      .map((f) => readFileSync(f, 'utf8'))
      .join('\n');
    const unknown = new Set<string>();
    let seen = 0;
    for (const file of documentationFiles(ROOT)) {
      for (const [, code] of readFileSync(join(ROOT, file), 'utf8').matchAll(/`([^`\n]+)`/g)) {
        for (const [name] of code!.matchAll(/\b(?:[a-z]+|[A-Z][a-z]+)[A-Z][A-Za-z0-9]*\b/g)) {
          seen++;
          if (!theirs.has(name) && !sources.includes(name)) unknown.add(`${file}: ${name}`);
        }
      }
    }
    expect(seen).toBeGreaterThan(100);
    expect([...unknown]).toEqual([]);
  });

  it('every json block parses', () => {
    const bad = blocks.filter((b) => b.lang === 'json').flatMap((b) => {
      try {
        JSON.parse(b.body.join('\n'));
        return [];
      } catch (e) {
        return [`${where(b)}: ${(e as Error).message}`];
      }
    });
    expect(bad).toEqual([]);
  });

  it('every sandcell.yaml a page shows loads, its profiles resolved', () => {
    const files = blocks.filter((b) => b.lang === 'yaml' && b.body[0] === 'sandcell: 1');
    expect(files.length).toBeGreaterThan(0);
    const bad = files.flatMap((b, k) => {
      const file = join(tmp, `sandcell-${k}.yaml`);
      writeFileSync(file, b.body.join('\n'));
      try {
        const profiles = loadProfiles(file);
        // Each resolved (its `extends` chain, its options checked) as a run would take it.
        for (const name of profiles.names()) profiles.resolve(name);
        return profiles.names().length > 0 ? [] : [`${where(b)}: no profiles`];
      } catch (e) {
        return [`${where(b)}: ${(e as Error).message}`];
      }
    });
    expect(bad).toEqual([]);
  });

  it('every sandcell command of a shell block or inline code names a verb that exists and flags it takes', async () => {
    const cli = (args: string[]) =>
      new Promise<{ ok: boolean; stdout: string }>((resolve) =>
        execFile(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 30_000 }, (e, stdout) => resolve({ ok: e === null, stdout })),
      );
    const lines = blocks.filter((b) => b.lang === 'sh' || b.lang === 'console').flatMap((b) =>
      b.body.map((text, k) => ({ text: b.lang === 'console' ? (text.startsWith('$ ') ? text.slice(2) : '') : text, at: `${b.file}:${b.line + 1 + k}` })),
    );
    // And the commands prose names in inline code (`sandcell network create judge-net`).
    for (const file of documentationFiles(ROOT)) {
      readFileSync(join(ROOT, file), 'utf8').split('\n').forEach((text, k) => {
        for (const [, code] of text.matchAll(/`((?:npx )?sandcell [^`]+)`/g)) lines.push({ text: code!, at: `${file}:${k + 1}` });
      });
    }
    const commands = lines.flatMap(({ text, at }) => sandcellCommandsOf(text).map((c) => ({ ...c, at })));
    const verbs = [...new Set(commands.map((c) => c.verb))];
    const [main, ...own] = await Promise.all([cli(['--help']), ...verbs.map((v) => cli([v, '--help']))]);
    // A verb is one the main help lists; its flags are those of its own --help, if it has one.
    const help = new Map(verbs.map((v, k) => [v, !new RegExp(`^\\s+sandcell ${v}\\b`, 'm').test(main!.stdout) ? '' : own[k]!.ok ? own[k]!.stdout : main!.stdout]));
    const wrong: string[] = [];
    for (const { verb, flags, at } of commands) {
      const text = help.get(verb) as string;
      if (text === '') wrong.push(`${at}: sandcell ${verb}: no such command`);
      for (const f of flags) if (f !== '--help' && !new RegExp(`${f}(?![\\w-])`).test(text)) wrong.push(`${at}: sandcell ${verb} has no ${f}`);
    }
    const seen = commands.length;
    expect(seen).toBeGreaterThan(20);
    expect(wrong).toEqual([]);
  });

  const consoles = blocks.filter((b) => b.lang === 'console');
  it('there are console examples to run', () => {
    expect(consoles.length).toBeGreaterThan(0);
  });
  describe.each(consoles.map((b) => [where(b), b] as const))('console block %s', (_, block) => {
    it.each(commandsOf(block).map((c) => [c.command, c] as const))('$ %s', (_c, c) => {
      requireRoot();
      const r = spawnSync('/bin/sh', ['-c', `exec 2>&1\n${c.command.replace(/(^|[\s;&|(])npx sandcell /g, '$1sandcell ')}`], {
        cwd: ROOT,
        encoding: 'utf8',
        timeout: 120_000,
        env: { ...process.env, PATH: `${join(tmp, 'bin')}:${process.env.PATH ?? '/usr/bin:/bin'}`, NODE_DEBUG: '' },
      });
      const at = `${block.file}:${c.line}`;
      expect(r.status, `${at}: the exit status of the command, which printed:\n${r.stdout}`).toBe(0);
      // Shown as a difference when it does not match.
      if (!outputMatches(c.output, r.stdout.split('\n'))) expect(r.stdout.trimEnd(), `${at}: its output`).toBe(c.output.join('\n'));
    });
  });
});
