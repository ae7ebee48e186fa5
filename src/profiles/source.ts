/**
 * A declaration file (sandcell.yaml, a problem file) read with its positions kept, so that every
 * complaint about it names the file, the line and the path of the field: `sandcell.yaml:12:
 * profiles.cpp.limits.memory: must be a size ...`.
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

import { isMap, isPair, isScalar, LineCounter, parseDocument, type Document } from 'yaml';
import type { z } from 'zod';

import { formatOptionPath } from '../errors.js';

export type PathPart = string | number;

/** One thing wrong with a declaration file, where it is. */
export interface DeclarationIssue {
  readonly file: string;
  /** 1-based; 0 when the file itself (not a place in it) is the problem. */
  readonly line: number;
  /** Dotted path of the field, e.g. `profiles.cpp.limits.memory`. */
  readonly path: string;
  readonly message: string;
}

/** A declaration file is not valid: nothing was run. */
export class DeclarationError extends Error {
  override readonly name = 'DeclarationError';
  readonly issues: readonly DeclarationIssue[];

  constructor(issues: readonly DeclarationIssue[]) {
    const sorted = [...issues].sort((a, b) => (a.file === b.file ? a.line - b.line : a.file < b.file ? -1 : 1));
    super(sorted.map(formatIssue).join('\n'));
    this.issues = sorted;
  }
}

function formatIssue(i: DeclarationIssue): string {
  const where = i.line > 0 ? `${i.file}:${i.line}` : i.file;
  return `${where}: ${i.path ? `${i.path}: ` : ''}${i.message}`;
}

/** A parsed declaration: its plain value and the means to say where a path of it was written. */
export class Source {
  readonly file: string;
  readonly value: unknown;
  private readonly doc: Document;
  private readonly lines: LineCounter;

  private constructor(file: string, doc: Document, lines: LineCounter) {
    this.file = file;
    this.doc = doc;
    this.lines = lines;
    this.value = doc.toJS({ maxAliasCount: 100 }) as unknown;
  }

  /** Reads and parses `path`; a YAML syntax error is a DeclarationError at its line. */
  static read(path: string): Source {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (e) {
      throw new DeclarationError([{ file: basename(path), line: 0, path: '', message: `cannot be read (${(e as Error).message})` }]);
    }
    return Source.parse(text, basename(path));
  }

  static parse(text: string, file: string): Source {
    const lines = new LineCounter();
    const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: true });
    if (doc.errors.length > 0) {
      throw new DeclarationError(
        doc.errors.map((e) => ({ file, line: e.linePos?.[0].line ?? 0, path: '', message: e.message.split('\n')[0] ?? e.message })),
      );
    }
    return new Source(file, doc, lines);
  }

  /** The line where `path` (or, when it is missing, its nearest written parent) is; `key` names a key of that map. */
  lineOf(path: readonly PathPart[], key?: string): number {
    for (let n = path.length; n >= 0; n--) {
      const node = this.doc.getIn(path.slice(0, n), true) as unknown;
      if (node === undefined) continue;
      if (n === path.length && key !== undefined && isMap(node)) {
        const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && p.key.value === key);
        const range = pair && isScalar(pair.key) ? pair.key.range : null;
        if (range) return this.lines.linePos(range[0]).line;
      }
      const range = (node as { range?: [number, number, number] | null }).range;
      if (range) return this.lines.linePos(range[0]).line;
    }
    return 1;
  }

  issue(path: readonly PathPart[], message: string, key?: string): DeclarationIssue {
    return { file: this.file, line: this.lineOf(path, key), path: formatOptionPath(key === undefined ? path : [...path, key]), message };
  }

  /** Zod's issues for the value at `base`, placed in the file. */
  zodIssues(error: z.ZodError, base: readonly PathPart[] = []): DeclarationIssue[] {
    return error.issues.flatMap((i) => {
      const path = [...base, ...(i.path as PathPart[])];
      if (i.code === 'unrecognized_keys') return i.keys.map((k) => this.issue(path, 'is not a known field', k));
      if (i.code === 'invalid_type' && / received undefined$/.test(i.message)) return [this.issue(path, 'is missing')];
      return [this.issue(path, i.message)];
    });
  }
}
