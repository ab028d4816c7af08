import { describe, expect, it } from 'vitest';
import { closestName, editDistance } from '../../src/cli/suggest.js';

const COMMANDS = ['service', 'server', 'local', 'task', 'plan', 'doctor'];

describe('closestName', () => {
  it.each([
    ['locl', 'local'],
    ['lcoal', 'local'],
    ['sever', 'server'],
    ['servce', 'service'],
    ['TASK', 'task'],
    ['docter', 'doctor'],
    ['pln', 'plan'],
    ['frobnicate', undefined],
    ['x', undefined],
  ])('%s → %s', (word, expected) => {
    expect(closestName(word, COMMANDS)).toBe(expected);
  });

  it('counts a swap of neighbours as one edit', () => {
    expect(editDistance('lcoal', 'local')).toBe(1);
    expect(editDistance('', 'abc')).toBe(3);
  });
});
