// Redaction of exported task logs (the Go worker's internal/tasklogs/redaction.go
// rules): which forms of a secret are found, and what a record becomes.
import { describe, expect, it } from 'vitest';
import {
  goJsonEscape,
  goQueryEscape,
  MAX_INPUT_BYTES,
  MAX_OUTPUT_BYTES,
  MAX_VARIANT_BYTES,
  MAX_VARIANTS,
  REDACTED,
  Redactor,
} from '../../src/observability/task-logs/redaction.js';
import { LineWriter, MAX_LINE_BYTES } from '../../src/observability/task-logs/line-writer.js';

const redactor = (...values: string[]): Redactor => {
  const r = new Redactor();
  r.add(values);
  return r;
};

describe('Go escapes', () => {
  // Expected values printed by Go 1.26's url.QueryEscape and json.Marshal.
  it.each([
    ["a b+c/é~_.-*'!()", 'a+b%2Bc%2F%C3%A9~_.-%2A%27%21%28%29', "a b+c/é~_.-*'!()"],
    ['quote"secret', 'quote%22secret', 'quote\\"secret'],
    ['tab\there\nnl\r\\', 'tab%09here%0Anl%0D%5C', 'tab\\there\\nnl\\r\\\\'],
    ['<x>&\u2028\u2029', '%3Cx%3E%26%E2%80%A8%E2%80%A9', '\\u003cx\\u003e\\u0026\\u2028\\u2029'],
    ['\x01\x1f\x7f', '%01%1F%7F', '\\u0001\\u001f\x7f'],
    ['emoji😀', 'emoji%F0%9F%98%80', 'emoji😀'],
    ['back\bform\f', 'back%08form%0C', 'back\\bform\\f'],
  ])('%j → query %j, JSON %j', (value, query, json) => {
    expect(goQueryEscape(value)).toBe(query);
    expect(goJsonEscape(value)).toBe(json);
  });

  it('writes an unpaired surrogate as Go writes invalid UTF-8', () => {
    expect(goJsonEscape('a\ud800b')).toBe('a\\ufffdb');
  });
});

describe('Redactor', () => {
  it.each([
    ['the value itself', ['s3cr3t-value'], 'token=s3cr3t-value;', 'token=[REDACTED];'],
    ['its query escape', ['a b/c&d'], 'url?k=a+b%2Fc%26d', 'url?k=[REDACTED]'],
    ['its Go JSON escape', ['quote"<secret>'], '{"k":"quote\\"\\u003csecret\\u003e"}', '{"k":"[REDACTED]"}'],
    ['its JavaScript JSON escape', ['quote"<secret>'], '{"k":"quote\\"<secret>"}', '{"k":"[REDACTED]"}'],
    ['each line of a multi-line value', ['first-secret\nsecond-secret'], 'first-secret', REDACTED],
    ['the second line of a CRLF value', ['first-secret\r\nsecond-secret'], 'x second-secret y', 'x [REDACTED] y'],
    ['the multi-line value JSON-escaped', ['first-secret\nsecond-secret'], '"first-secret\\nsecond-secret"', '"[REDACTED]"'],
    ['every occurrence', ['abc123'], 'abc123 abc123abc123', '[REDACTED] [REDACTED][REDACTED]'],
    ['the longest of overlapping values first', ['overlap', 'overlap-secret'], 'an overlap-secret and an overlap', 'an [REDACTED] and an [REDACTED]'],
    ['overlapping values whichever is registered first', ['overlap-secret', 'overlap'], 'overlap-secret', REDACTED],
    ['a value inside another one', ['inner', 'outer-inner-outer'], 'outer-inner-outer inner', '[REDACTED] [REDACTED]'],
    ['values that overlap at their ends', ['abcdef', 'defghi'], 'abcdefghi', '[REDACTED]ghi'],
    ['nothing for an empty value', [''], 'anything', 'anything'],
  ])('finds %s', (_what, values, input, expected) => {
    expect(redactor(...values).redactLine(input)).toBe(expected);
  });

  it('never scans replacement text again (Go test: secrets R E D A C T [ ])', () => {
    const r = redactor('R', 'E', 'D', 'A', 'C', 'T', '[', ']');
    expect(r.redactLine('R'.repeat(1024))).toBe(REDACTED.repeat(1024));
  });

  it('applies line pieces to raw lines only, unless the piece is also a whole value (either order)', () => {
    const pieces = redactor('first-secret\nsecond-secret');
    expect(pieces.redactStructured('{"phase":"first-secret"}')).toBe('{"phase":"first-secret"}');
    expect(pieces.redactLine('first-secret')).toBe(REDACTED);
    for (const order of [
      ['first-secret\nsecond-secret', 'first-secret'],
      ['first-secret', 'first-secret\nsecond-secret'],
    ]) {
      expect(redactor(...order).redactStructured('{"phase":"first-secret"}')).toBe(`{"phase":"${REDACTED}"}`);
    }
  });

  it('redacts a record whole when the input is over 64 KiB or the result over 16 KiB', () => {
    const r = redactor('needle-secret');
    expect(r.redactLine('x'.repeat(MAX_INPUT_BYTES + 1))).toBe(REDACTED);
    expect(r.redactLine('x'.repeat(MAX_OUTPUT_BYTES + 1))).toBe(REDACTED);
    expect(r.redactLine('x'.repeat(MAX_OUTPUT_BYTES))).toBe('x'.repeat(MAX_OUTPUT_BYTES));
    // Go test: R×65536 with secret R gives [REDACTED] (the result would be far over budget).
    expect(redactor('R').redactLine('R'.repeat(65536))).toBe(REDACTED);
    // A short secret whose replacement makes the record grow past the budget.
    expect(redactor('ab').redactLine('ab'.repeat(4000))).toBe(REDACTED);
  });

  it('redacts everything, for good, once a value is over 1 MiB', () => {
    const r = redactor('small-secret');
    expect(r.redactLine('unknown')).toBe('unknown');
    r.add(['x'.repeat(MAX_VARIANT_BYTES + 1)]);
    expect(r.overflow).toBe(true);
    expect(r.redactLine('unknown')).toBe(REDACTED);
    r.add(['more']);
    expect(r.redactStructured('{}')).toBe(REDACTED);
  });

  it('redacts everything once more than 4096 variants are registered', () => {
    const r = new Redactor();
    r.add(Array.from({ length: MAX_VARIANTS }, (_, i) => `value-${i}`));
    expect(r.overflow).toBe(false);
    r.add(['one-more']);
    expect(r.overflow).toBe(true);
    expect(r.redactLine('harmless')).toBe(REDACTED);
  });

  it('keeps working below the budget with many values', () => {
    const r = new Redactor();
    r.add(Array.from({ length: 1000 }, (_, i) => `value-${i}`));
    expect(r.overflow).toBe(false);
    expect(r.redactLine('a value-999 b value-1')).toBe('a [REDACTED] b [REDACTED]');
  });

  it('treats regular-expression characters in a value literally', () => {
    expect(redactor('a.c*(x)').redactLine('abc a.c*(x)')).toBe('abc [REDACTED]');
  });
});

describe('LineWriter', () => {
  const lines = (chunks: (string | Buffer)[], end = true): string[] => {
    const out: string[] = [];
    const writer = new LineWriter((line) => out.push(line));
    for (const chunk of chunks) writer.write(chunk);
    if (end) writer.end();
    return out;
  };

  it.each([
    ['whole lines', ['a\nb\n'], ['a', 'b']],
    ['lines split across chunks', ['ab', 'c\nd', 'e\n'], ['abc', 'de']],
    ['no empty lines', ['\n\na\n\n'], ['a']],
    ['a carriage return kept (split on \\n only)', ['a\r\nb\rc\n'], ['a\r', 'b\rc']],
    ['the unterminated last line at the end', ['a\nlast'], ['a', 'last']],
    ['a UTF-8 character split across chunks', [Buffer.from([0x61, 0xc3]), Buffer.from([0xa9, 0x0a])], ['aé']],
  ])('emits %s', (_what, chunks, expected) => {
    expect(lines(chunks)).toEqual(expected);
  });

  it('holds the unterminated line until the end', () => {
    expect(lines(['a\npartial'], false)).toEqual(['a']);
  });

  it('drops a line over 64 KiB whole, never a cut prefix, and goes on after it', () => {
    const long = 'x'.repeat(MAX_LINE_BYTES);
    expect(lines([`before\n${long}`, 'y-secret-tail\nafter\n'])).toEqual(['before', 'after']);
    expect(lines([`${long}z`])).toEqual([]);
    expect(lines([long, '\nok\n'])).toEqual([long, 'ok']);
  });

  it('ignores writes after the end', () => {
    const out: string[] = [];
    const writer = new LineWriter((line) => out.push(line));
    writer.write('a');
    writer.end();
    writer.write('b\n');
    writer.end();
    expect(out).toEqual(['a']);
  });
});
