// How failures read: the text of any thrown value, and the one zod-issue
// formatter with each caller's wording (the wire decoder's, the HTTP API's,
// the config file's own are asserted in their suites).
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { errorMessage } from '../../src/errors/error-message.js';
import { describeZodIssues, zodProblems } from '../../src/errors/zod-issues.js';

describe('errorMessage', () => {
  it.each<[string, unknown, string]>([
    ['an Error', new Error('boom'), 'boom'],
    ['an Error subclass', new TypeError('bad type'), 'bad type'],
    ['a string', 'plain text', 'plain text'],
    ['a number', 42, '42'],
    ['undefined', undefined, 'undefined'],
  ])('gives the text of %s', (_name, error, text) => {
    expect(errorMessage(error)).toBe(text);
  });
});

describe('describeZodIssues', () => {
  const schema = z.strictObject({ name: z.string(), owner: z.strictObject({ type: z.enum(['TEAM', 'USER']) }) });
  const issues = (value: unknown) => {
    const result = schema.safeParse(value);
    if (result.success) throw new Error('expected issues');
    return result.error.issues;
  };

  it('lists each issue after its dotted path, on one line', () => {
    expect(describeZodIssues(issues({ name: 1, owner: { type: 'X' } }))).toBe(
      'name: Invalid input: expected string, received number; owner.type: Invalid option: expected one of "TEAM"|"USER"',
    );
  });

  it('leaves out the path of a top-level issue', () => {
    expect(describeZodIssues(issues('text'))).toBe('Invalid input: expected object, received string');
  });

  it('describes at most `limit` issues, in the caller’s words', () => {
    const text = describeZodIssues(issues({ extra: 1 }), { limit: 2, describe: (issue) => issue.code });
    expect(text).toBe('name: invalid_type; owner: invalid_type');
  });

  it('splits unknown keys into one problem at each key’s path when asked', () => {
    const value = { name: 'n', owner: { type: 'TEAM' }, a: 1, b: 2 };
    expect(zodProblems(issues(value)).map((p) => p.path)).toEqual([[]]);
    expect(zodProblems(issues(value), { splitUnknownKeys: true, describe: (_issue, path) => `unknown ${path.join('.')}` })).toEqual([
      { path: ['a'], message: 'unknown a' },
      { path: ['b'], message: 'unknown b' },
    ]);
  });
});
