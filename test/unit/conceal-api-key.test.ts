// Taking the worker's key out of its environment block.
import { describe, expect, it } from 'vitest';
import { entryRanges, variablesHoldingKey } from '../../src/cli/conceal-api-key.js';

describe('variablesHoldingKey', () => {
  it('names WARP_API_KEY and any variable holding the key itself', () => {
    expect(variablesHoldingKey({ WARP_API_KEY: 'k1', COPY: 'k1', OTHER: 'x', EMPTY: undefined }, 'k1')).toEqual(['WARP_API_KEY', 'COPY']);
    expect(variablesHoldingKey({ OTHER: 'x' }, '')).toEqual([]);
  });
});

describe('entryRanges', () => {
  it('finds whole NAME=value entries by name, not names that merely start the same', () => {
    const block = Buffer.from('A=1\0WARP_API_KEY=secret\0WARP_API_KEY_FILE=/k\0B=WARP_API_KEY=x');
    const ranges = entryRanges(block, new Set(['WARP_API_KEY']));
    expect(ranges.map(([from, to]) => block.toString('utf8', from, to))).toEqual(['WARP_API_KEY=secret']);
  });
});
