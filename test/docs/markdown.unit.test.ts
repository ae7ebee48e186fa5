// How test/docs reads a page: its blocks, a console transcript, documented output, sandcell commands.
import { describe, expect, it } from 'vitest';

import { blocksOf, commandsOf, outputMatches, sandcellCommandsOf } from './markdown.js';

describe('blocksOf', () => {
  it('finds fenced blocks with their language, line and marker, indented ones included', () => {
    const page = ['# t', '<!-- example: fragment -->', '```ts', 'a;', '```', '', '- item', '', '  ```sh', '  ls /', '  ```', '```', 'x', '```'].join('\n');
    expect(blocksOf('p.md', page)).toEqual([
      { file: 'p.md', line: 3, lang: 'ts', marker: 'fragment', body: ['a;'] },
      { file: 'p.md', line: 9, lang: 'sh', marker: null, body: ['ls /'] },
      { file: 'p.md', line: 12, lang: '', marker: null, body: ['x'] },
    ]);
  });

  it('refuses a block that is never closed', () => {
    expect(() => blocksOf('p.md', '```ts\nx\n')).toThrow('p.md:1');
  });
});

describe('commandsOf', () => {
  it('splits a transcript into commands and their output, continuation lines joined', () => {
    const [b] = blocksOf('p.md', ['```console', '$ echo a \\', '  b', 'a b', '$ true', '```'].join('\n'));
    expect(commandsOf(b!)).toEqual([
      { line: 2, command: 'echo a \n  b', output: ['a b'] },
      { line: 5, command: 'true', output: [] },
    ]);
  });

  it('refuses output before any command', () => {
    const [b] = blocksOf('p.md', '```console\nhi\n```');
    expect(() => commandsOf(b!)).toThrow('p.md:2');
  });
});

describe('outputMatches', () => {
  it('matches line by line, trailing blanks and final empty lines aside', () => {
    expect(outputMatches(['a', 'b'], ['a  ', 'b', ''])).toBe(true);
    expect(outputMatches(['a', 'b'], ['a', 'c'])).toBe(false);
    expect(outputMatches(['a'], ['a', 'b'])).toBe(false);
  });

  it('`...` alone stands for any lines, within a line for any text', () => {
    expect(outputMatches(['a', '...', 'z'], ['a', 'z'])).toBe(true);
    expect(outputMatches(['a', '...', 'z'], ['a', 'b', 'c', 'z'])).toBe(true);
    expect(outputMatches(['a', '...', 'z'], ['a', 'b'])).toBe(false);
    expect(outputMatches(['  compile  ok  ...'], ['  compile  ok  1.35s'])).toBe(true);
    expect(outputMatches(['x (...)'], ['x [1]'])).toBe(false);
  });
});

describe('sandcellCommandsOf', () => {
  it('finds each sandcell command of a line with its verb and the flags before --', () => {
    expect(sandcellCommandsOf(`sudo npx sandcell serve --policy p.json --parallelism=2   # --not-a-flag`)).toEqual([{ verb: 'serve', flags: ['--policy', '--parallelism'] }]);
    expect(sandcellCommandsOf(`SANDCELL_HOST=unix:///s npx sandcell run --wall 2s -- /bin/sh --x`)).toEqual([{ verb: 'run', flags: ['--wall'] }]);
    expect(sandcellCommandsOf(`sandcell image rm a && sandcell image prune --json`)).toEqual([
      { verb: 'image', flags: [] },
      { verb: 'image', flags: ['--json'] },
    ]);
    expect(sandcellCommandsOf(`apt-get install sandcell-tools; cat sandcell.yaml`)).toEqual([]);
  });
});
