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
// The slow parts (the type check, the CLI's help texts, the console commands one after another)
// start together before the first test and overlap; each test waits for its own.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadProfiles } from '../../src/profiles/index.js';
import { requireRoot } from '../helpers/host.js';
import { blocksOf, commandsOf, documentationFiles, outputMatches, sandcellCommandsOf, type Block } from './markdown.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = join(ROOT, 'dist', 'cli', 'main.js');

const blocks: Block[] = documentationFiles(ROOT).flatMap((f) => blocksOf(f, readFileSync(join(ROOT, f), 'utf8')));
const where = (b: Block) => `${b.file}:${b.line}`;

const typeChecked = blocks.filter((b) => b.lang === 'ts' && b.marker !== 'fragment');
const consoles = blocks.filter((b) => b.lang === 'console');

interface Ran {
  /** The exit status, null when it did not exit (killed at its timeout). */
  status: number | null;
  stdout: string;
  stderr: string;
}

function execute(file: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; timeout: number }): Promise<Ran> {
  return new Promise((resolve) =>
    execFile(file, args, { ...options, encoding: 'utf8', maxBuffer: 64 << 20 }, (e, stdout, stderr) =>
      resolve({ status: e === null ? 0 : typeof e.code === 'number' ? e.code : null, stdout, stderr }),
    ),
  );
}

let tmp: string;
let typeCheck: Promise<string[]>;
let helps: Promise<{ main: Ran; verbs: Map<string, Ran> }>;
/** The console commands' runs, by `page:line`. */
const consoleRuns = new Map<string, Promise<Ran>>();

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'sandcell-docs-'));
  // The user's project: the package and Node's types installed beside their code.
  mkdirSync(join(tmp, 'project', 'node_modules', '@types'), { recursive: true });
  symlinkSync(ROOT, join(tmp, 'project', 'node_modules', 'sandcell'));
  symlinkSync(join(ROOT, 'node_modules', '@types', 'node'), join(tmp, 'project', 'node_modules', '@types', 'node'));
  writeFileSync(join(tmp, 'project', 'package.json'), '{ "type": "module" }\n');
  mkdirSync(join(tmp, 'bin'));
  symlinkSync(CLI, join(tmp, 'bin', 'sandcell'));
  typeCheck = typeErrors(join(tmp, 'project'), typeChecked);
  helps = helpTexts();
  // One after another, in the pages' order, as a reader types them.
  if (process.getuid?.() === 0) {
    let previous: Promise<unknown> = Promise.resolve();
    for (const b of consoles) {
      for (const c of commandsOf(b)) {
        const ran = previous.then(() => shell(c.command));
        consoleRuns.set(`${b.file}:${c.line}`, ran);
        previous = ran;
      }
    }
  }
});
afterAll(async () => {
  // Nothing started here may still be writing into the directory.
  await Promise.all([typeCheck, helps, ...consoleRuns.values()]);
  rmSync(tmp, { recursive: true, force: true });
}, 300_000);

/**
 * Type errors of the given blocks, each as `page:line: message`, checked as one program by the
 * package's own `tsc` (in a process of its own, beside the other checks) in the user's project.
 */
async function typeErrors(dir: string, checked: readonly Block[]): Promise<string[]> {
  const files = checked.map((b, k) => {
    const name = `block-${k}.ts`;
    // `export {}`: every block a module of its own (top-level await, names of its own).
    writeFileSync(join(dir, name), `${b.body.join('\n')}\nexport {};\n`);
    return name;
  });
  const compilerOptions = {
    target: 'ES2022',
    module: 'NodeNext',
    moduleResolution: 'NodeNext',
    lib: ['es2023', 'esnext.disposable'],
    types: ['node'],
    strict: true,
    noEmit: true,
    skipLibCheck: true,
  };
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions, files }));
  const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  const r = await execute(process.execPath, [tsc, '-p', 'tsconfig.json', '--pretty', 'false'], { cwd: dir, timeout: 240_000 });
  // `file(line,col): error TSnnnn: message`, a message's chain on the indented lines below it.
  const errors: string[] = [];
  for (const text of r.stdout.split('\n')) {
    if (text.trim() === '') continue;
    if (/^\s/.test(text) && errors.length > 0) {
      errors[errors.length - 1] += `\n${text.trim()}`;
      continue;
    }
    const at = /^(.+?)\((\d+),\d+\): error (TS\d+: .*)$/.exec(text);
    const k = at ? files.indexOf(at[1] as string) : -1;
    const b = checked[k];
    errors.push(at && b ? `${b.file}:${b.line + Number(at[2])}: ${at[3]}` : text);
  }
  // An exit without a diagnostic (tsc itself failed) is an error too.
  if (r.status !== 0 && errors.length === 0) errors.push(`tsc exited with ${r.status}: ${r.stderr}`);
  return errors;
}

/** `sandcell --help`, and each verb's `--help` that a page's commands name, all at once. */
async function helpTexts(): Promise<{ main: Ran; verbs: Map<string, Ran> }> {
  const cli = (args: string[]) => execute(process.execPath, [CLI, ...args], { timeout: 60_000 });
  const verbs = [...new Set(documentedCommands().map((c) => c.verb))];
  const [main, ...own] = await Promise.all([cli(['--help']), ...verbs.map((v) => cli([v, '--help']))]);
  return { main: main!, verbs: new Map(verbs.map((v, k) => [v, own[k]!])) };
}

/** Every `sandcell` command of a `sh` or `console` block, or of the prose's inline code, and where. */
function documentedCommands(): { verb: string; flags: string[]; at: string }[] {
  const lines = blocks.filter((b) => b.lang === 'sh' || b.lang === 'console').flatMap((b) =>
    b.body.map((text, k) => ({ text: b.lang === 'console' ? (text.startsWith('$ ') ? text.slice(2) : '') : text, at: `${b.file}:${b.line + 1 + k}` })),
  );
  // And the commands prose names in inline code (`sandcell network create judge-net`).
  for (const file of documentationFiles(ROOT)) {
    readFileSync(join(ROOT, file), 'utf8').split('\n').forEach((text, k) => {
      for (const [, code] of text.matchAll(/`((?:npx )?sandcell [^`]+)`/g)) lines.push({ text: code!, at: `${file}:${k + 1}` });
    });
  }
  return lines.flatMap(({ text, at }) => sandcellCommandsOf(text).map((c) => ({ ...c, at })));
}

/** A console command in `sh` from the repository's root, the package's `sandcell` first on the PATH. */
function shell(command: string): Promise<Ran> {
  return execute('/bin/sh', ['-c', `exec 2>&1\n${command.replace(/(^|[\s;&|(])npx sandcell /g, '$1sandcell ')}`], {
    cwd: ROOT,
    timeout: 120_000,
    env: { ...process.env, PATH: `${join(tmp, 'bin')}:${process.env.PATH ?? '/usr/bin:/bin'}`, NODE_DEBUG: '' },
  });
}

/** Whether a path with `*` in its last part (`test/security/attacks/*.c`) names any file. */
function globMatches(path: string): boolean {
  const dir = join(ROOT, dirname(path));
  const name = new RegExp(`^${path.slice(path.lastIndexOf('/') + 1).split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
  return existsSync(dir) && readdirSync(dir).some((e) => name.test(e));
}

describe('documentation examples', () => {
  it('every TypeScript block type-checks against the package as a user imports it', { timeout: 300_000 }, async () => {
    expect(typeChecked.length).toBeGreaterThan(10);
    expect(await typeCheck).toEqual([]);
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

  it('every sandcell command of a shell block or inline code names a verb that exists and flags it takes', { timeout: 300_000 }, async () => {
    const commands = documentedCommands();
    const { main, verbs } = await helps;
    expect(main.status, main.stderr).toBe(0);
    // A verb is one the main help lists; its flags are those of its own --help, if it has one.
    const help = new Map(
      [...verbs].map(([v, own]) => [v, !new RegExp(`^\\s+sandcell ${v}\\b`, 'm').test(main.stdout) ? '' : own.status === 0 ? own.stdout : main.stdout]),
    );
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

  it('there are console examples to run', () => {
    expect(consoles.length).toBeGreaterThan(0);
  });
  describe.each(consoles.map((b) => [where(b), b] as const))('console block %s', (_, block) => {
    it.each(commandsOf(block).map((c) => [c.command, c] as const))('$ %s', async (_c, c) => {
      requireRoot();
      const at = `${block.file}:${c.line}`;
      const r = await consoleRuns.get(at)!;
      expect(r.status, `${at}: the exit status of the command, which printed:\n${r.stdout}`).toBe(0);
      // Shown as a difference when it does not match.
      if (!outputMatches(c.output, r.stdout.split('\n'))) expect(r.stdout.trimEnd(), `${at}: its output`).toBe(c.output.join('\n'));
    }, 300_000);
  });
});
