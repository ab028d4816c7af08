// The command blocks of the pages a newcomer follows (the README and the install
// pages), as the tests that run them read them. A ```sh block is run by
// test/integration/readme.test.ts; a mark after `sh` in the info string says why
// a block is run elsewhere or not at all (GitHub shows every one as shell).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from './worker-process.js';

/** Pages whose command blocks are run, relative to the repository. */
export const RUN_PAGES = ['README.md', 'docs/local-server.md', 'docs/install-kubernetes.md'] as const;

/** Marks a block may carry, and what each means. */
export const BLOCK_MARKS = {
  /** Run by test/integration/readme.test.ts. */
  '': 'run by test/integration/readme.test.ts',
  cluster: 'run on the test cluster by test/real/install-pages.test.ts',
  registry: 'not run: pushes to or pulls from your own registry',
  root: 'not run: changes this machine as root (a service, /etc)',
} as const;

export type BlockMark = keyof typeof BLOCK_MARKS;

export interface CommandBlock {
  page: string;
  /** The info string's words after `sh`, joined (empty for a plain ```sh block). */
  mark: string;
  /** Its command lines, whitespace collapsed, comments kept (a comment is the line's promise); blank and comment-only lines dropped. */
  lines: string[];
}

export const normalise = (line: string): string => line.trim().replace(/\s+/g, ' ');

export function commandBlocks(page: string, text = readFileSync(join(REPO_ROOT, page), 'utf8')): CommandBlock[] {
  return [...text.matchAll(/^```sh([^\n]*)\n([\s\S]*?)^```/gm)].map((match) => ({
    page,
    mark: match[1]!.trim(),
    lines: match[2]!
      .split('\n')
      .filter((line) => line.trim() !== '' && !line.trim().startsWith('#'))
      .map(normalise),
  }));
}

/** Every command block of the pages that are run. */
export const RUN_BLOCKS: readonly CommandBlock[] = RUN_PAGES.flatMap((page) => commandBlocks(page));

/** The distinct lines of the blocks with `mark`, across the pages. */
export function linesMarked(mark: BlockMark): string[] {
  return [...new Set(RUN_BLOCKS.filter((block) => block.mark === mark).flatMap((block) => block.lines))];
}
