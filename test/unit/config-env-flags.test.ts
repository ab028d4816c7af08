// -e and -v entries: never split on commas (unlike the Go worker), errors say how to fix them.
import { describe, expect, it } from 'vitest';
import { parseEnvFlags, parseVolumeFlags } from '../../src/config/env-flags.js';
import { ConfigError } from '../../src/config/errors.js';

const host = { FROM_HOST: 'host value', EMPTY_ON_HOST: '' };

describe('parseEnvFlags', () => {
  it.each<[string, string[], Record<string, string>]>([
    ['KEY=VALUE', ['A=b'], { A: 'b' }],
    ['a value with "=" in it', ['A=b=c'], { A: 'b=c' }],
    ['a value with commas kept whole', ['A=b,c=d'], { A: 'b,c=d' }],
    ['an explicitly empty value', ['A='], { A: '' }],
    ['a value with spaces', ['A=one two'], { A: 'one two' }],
    ['a bare KEY copied from the host', ['FROM_HOST'], { FROM_HOST: 'host value' }],
    ['a bare KEY unset on the host', ['NOT_ON_HOST'], { NOT_ON_HOST: '' }],
    ['a bare KEY empty on the host', ['EMPTY_ON_HOST'], { EMPTY_ON_HOST: '' }],
    ['a later duplicate winning', ['A=1', 'B=2', 'A=3'], { A: '3', B: '2' }],
    ['no entries', [], {}],
  ])('accepts %s', (_name, entries, expected) => {
    expect(parseEnvFlags(entries, host)).toEqual(expected);
  });

  it.each([
    ['an empty entry', '', 'invalid --env flag: empty value'],
    ['a missing key', '=value', 'invalid --env flag: missing key in "=value"'],
    ['a key with a space', 'MY KEY=1', 'invalid --env flag: key contains whitespace in "MY KEY=1"'],
    ['a key with a tab', 'MY\tKEY', 'invalid --env flag: key contains whitespace in "MY\\tKEY"'],
  ])('rejects %s with the Go text and a fix', (_name, entry, message) => {
    let error: unknown;
    try {
      parseEnvFlags([entry], host);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message.startsWith(message)).toBe(true);
    expect((error as ConfigError).message).toMatch(/use -e KEY=VALUE/);
  });
});

describe('parseVolumeFlags', () => {
  it('keeps entries whole and in order, commas included', () => {
    expect(parseVolumeFlags(['/a:/b', '/c:/d:ro,z', 'named:/data'])).toEqual(['/a:/b', '/c:/d:ro,z', 'named:/data']);
  });

  it.each([
    ['', /is empty/],
    ['/only-one-path', /HOST_PATH:CONTAINER_PATH/],
    ['/a:relative', /absolute container path/],
    ['/a:/b:ro:extra', /HOST_PATH:CONTAINER_PATH/],
    ['/a:/b:', /empty MODE/],
  ])('rejects %j', (entry, pattern) => {
    expect(() => parseVolumeFlags([entry])).toThrow(ConfigError);
    expect(() => parseVolumeFlags([entry])).toThrow(pattern);
  });
});
