// The fenced code blocks of the project's own documentation, as examples a test can check.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The pages a user reads: README.md, SECURITY.md and docs/*.md (docs/api is generated from the types). */
export function documentationFiles(root: string): string[] {
  const docs = readdirSync(join(root, 'docs'), { withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith('.md'))
    .map((e) => `docs/${e.name}`)
    .sort();
  return ['README.md', 'SECURITY.md', ...docs];
}

export interface Block {
  /** The page, relative to the repository. */
  file: string;
  /** The 1-based line of the opening fence. */
  line: number;
  /** The fence's language (`ts`, `sh`, `console`, ...), '' when none is given. */
  lang: string;
  /** What an `<!-- example: ... -->` comment on the line before the fence says, else null. */
  marker: string | null;
  /** The lines between the fences, their indentation up to the fence's removed. */
  body: string[];
}

const MARKER = /^\s*<!--\s*example:\s*(.*?)\s*-->\s*$/;

/** Every fenced block of a page (``` fences, indented ones inside list items included). */
export function blocksOf(file: string, text: string): Block[] {
  const lines = text.split('\n');
  const out: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)```\s*([\w-]*)\s*$/.exec(lines[i] as string);
    if (!open) continue;
    const indent = (open[1] as string).length;
    const body: string[] = [];
    let j = i + 1;
    while (j < lines.length && !/^\s*```\s*$/.test(lines[j] as string)) body.push((lines[j++] as string).slice(indent));
    if (j === lines.length) throw new Error(`${file}:${i + 1}: a code block that is never closed`);
    const before = i > 0 ? MARKER.exec(lines[i - 1] as string) : null;
    out.push({ file, line: i + 1, lang: open[2] as string, marker: before ? (before[1] as string) : null, body });
    i = j;
  }
  return out;
}

/** One command of a `console` block (`$ ` lines) and the output documented under it. */
export interface ConsoleCommand {
  line: number;
  command: string;
  output: string[];
}

/**
 * A `console` block as a transcript: each `$ ` line is a command (a line ending in `\` goes on
 * to the next), the lines up to the next command are what it prints (stdout and stderr).
 */
export function commandsOf(block: Block): ConsoleCommand[] {
  const out: ConsoleCommand[] = [];
  for (let k = 0; k < block.body.length; k++) {
    const text = block.body[k] as string;
    if (text.startsWith('$ ')) {
      let command = text.slice(2);
      const line = block.line + 1 + k;
      while (command.endsWith('\\') && k + 1 < block.body.length) command = `${command.slice(0, -1)}\n${block.body[++k] as string}`;
      out.push({ line, command, output: [] });
    } else if (out.length > 0) {
      (out[out.length - 1] as ConsoleCommand).output.push(text);
    } else {
      throw new Error(`${block.file}:${block.line + 1 + k}: a console block starts with a command ("$ ..."), not output`);
    }
  }
  return out;
}

/**
 * Whether the output matches what the documentation shows: line by line, trailing blanks
 * ignored; a line that is `...` alone stands for any number of lines, and `...` within a line
 * for any text.
 */
export function outputMatches(documented: readonly string[], actual: readonly string[]): boolean {
  const want = documented.map((l) => l.trimEnd());
  const got = actual.map((l) => l.trimEnd());
  while (got.length > 0 && got[got.length - 1] === '') got.pop();
  while (want.length > 0 && want[want.length - 1] === '') want.pop();
  const line = (w: string, g: string) =>
    new RegExp(`^${w.split('...').map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`).test(g);
  const memo = new Map<string, boolean>();
  const match = (i: number, j: number): boolean => {
    const key = `${i},${j}`;
    const known = memo.get(key);
    if (known !== undefined) return known;
    let r: boolean;
    if (i === want.length) r = j === got.length;
    else if (want[i] === '...') r = match(i + 1, j) || (j < got.length && match(i, j + 1));
    else r = j < got.length && line(want[i] as string, got[j] as string) && match(i + 1, j + 1);
    memo.set(key, r);
    return r;
  };
  return match(0, 0);
}

/**
 * The `sandcell` commands a shell line names (`sandcell run ...`, `npx sandcell image import ...`),
 * each with its verb and the `--flags` given before `--` or the end of the command.
 */
export function sandcellCommandsOf(line: string): { verb: string; flags: string[] }[] {
  const code = line.replace(/(^|\s)#.*$/, '');
  const out: { verb: string; flags: string[] }[] = [];
  for (const part of code.split(/&&|\|\||[;|]/)) {
    const words = part.trim().split(/\s+/);
    const at = words.findIndex((w, k) => w === 'sandcell' && (k === 0 || ['npx', 'sudo', 'exec'].includes(words[k - 1] as string) || /^[A-Z_]+=/.test(words[k - 1] as string)));
    if (at < 0 || words[at + 1] === undefined || words[at + 1]?.startsWith('-')) continue;
    const flags: string[] = [];
    for (const w of words.slice(at + 2)) {
      if (w === '--') break;
      const m = /^(--[a-z][a-z-]*)/.exec(w);
      if (m) flags.push(m[1] as string);
    }
    out.push({ verb: words[at + 1] as string, flags });
  }
  return out;
}
