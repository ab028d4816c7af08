// Go duration strings mean what they meant to the Go worker, in both directions.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatGoDuration, InvalidDurationError, parseGoDuration } from '../../src/config/go-duration.js';

describe('parseGoDuration', () => {
  it.each([
    ['0', 0],
    ['-0', 0],
    ['300ms', 300],
    ['1.5h', 5_400_000],
    ['2h45m', 9_900_000],
    ['1h0m0s', 3_600_000],
    ['1m30s', 90_000],
    ['60s', 60_000],
    ['.5s', 500],
    ['1.s', 1_000],
    ['+5s', 5_000],
    ['-1.5s', -1_500],
    ['1us', 0.001],
    ['1\u00b5s', 0.001],
    ['1\u03bcs', 0.001],
    ['100ns', 0.0001],
    ['1h1ms', 3_600_001],
  ])('%s is %d ms', (text, ms) => {
    expect(parseGoDuration(text)).toBeCloseTo(ms, 9);
  });

  it.each([
    ['60', 'time: missing unit in duration "60"'],
    ['1.5.5s', 'time: missing unit in duration "1.5.5s"'],
    ['', 'time: invalid duration ""'],
    ['-', 'time: invalid duration "-"'],
    ['s', 'time: invalid duration "s"'],
    ['.s', 'time: invalid duration ".s"'],
    ['1h-5m', 'time: unknown unit "h-" in duration "1h-5m"'],
    ['1d', 'time: unknown unit "d" in duration "1d"'],
    ['1 s', 'time: unknown unit " s" in duration "1 s"'],
    ['5S', 'time: unknown unit "S" in duration "5S"'],
    ['9999999999h', 'time: invalid duration "9999999999h"'],
  ])("rejects %j with Go's message", (text, message) => {
    expect(() => parseGoDuration(text)).toThrow(InvalidDurationError);
    expect(() => parseGoDuration(text)).toThrow(message);
  });
});

describe('formatGoDuration', () => {
  it.each([
    [0, '0s'],
    [50, '50ms'],
    [1.5, '1.5ms'],
    [0.001, '1\u00b5s'],
    [0.0001, '100ns'],
    [1_500, '1.5s'],
    [30_000, '30s'],
    [60_000, '1m0s'],
    [60_500, '1m0.5s'],
    [90_000, '1m30s'],
    [3_600_000, '1h0m0s'],
    [9_900_000, '2h45m0s'],
    [-1_500, '-1.5s'],
    [100 * 3_600_000, '100h0m0s'],
  ])('%d ms is %s', (ms, text) => {
    expect(formatGoDuration(ms)).toBe(text);
  });

  it('round-trips through parseGoDuration', () => {
    fc.assert(
      fc.property(fc.integer({ min: -1e12, max: 1e12 }), (ms) => {
        expect(parseGoDuration(formatGoDuration(ms))).toBe(ms);
      }),
    );
  });
});
