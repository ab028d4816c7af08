// The README and docs/ link to each other by file and heading: every relative
// link must name a file that exists and, with a #fragment, a heading of that page
// (GitHub's anchors), so moving a section cannot strand a link.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../support/worker-process.js';

const PAGES = [
  'README.md',
  ...readdirSync(join(REPO_ROOT, 'docs'))
    .filter((name) => name.endsWith('.md'))
    .map((name) => `docs/${name}`),
];

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
function anchorOf(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/`/g, '')
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

function anchors(page: string): Set<string> {
  const text = readFileSync(join(REPO_ROOT, page), 'utf8').replace(/^```[\s\S]*?^```/gm, '');
  return new Set([...text.matchAll(/^#{1,6} (.+)$/gm)].map((match) => anchorOf(match[1]!)));
}

describe('links between the docs', () => {
  it('computes anchors as GitHub does', () => {
    expect(anchorOf("Upgrading from the Go worker's chart")).toBe('upgrading-from-the-go-workers-chart');
    expect(anchorOf('9. Differences from the Go worker')).toBe('9-differences-from-the-go-worker');
    expect(anchorOf('`oz-worker doctor`')).toBe('oz-worker-doctor');
  });

  for (const page of PAGES) {
    it(`${page}: every relative link leads to a file, and every #fragment to a heading`, () => {
      const text = readFileSync(join(REPO_ROOT, page), 'utf8').replace(/^```[\s\S]*?^```/gm, '');
      const broken: string[] = [];
      for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        if (/^[a-z]+:/.test(target!)) continue;
        const [file, fragment] = target!.split('#');
        const path = file ? relative(REPO_ROOT, join(REPO_ROOT, dirname(page), file)) : page;
        if (!existsSync(join(REPO_ROOT, path))) broken.push(`${target}: no file ${path}`);
        else if (fragment && path.endsWith('.md') && !anchors(path).has(fragment)) broken.push(`${target}: no heading #${fragment} in ${path}`);
      }
      expect(broken).toEqual([]);
    });
  }
});
