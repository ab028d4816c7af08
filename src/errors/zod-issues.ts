// The one formatter of zod validation issues. Every caller gets the same
// traversal and layout (`path: problem; path: problem`, a top-level problem
// without a path); what differs between the wire decoder, the HTTP API, the
// gateway's log and the config file is only how one issue is worded, which
// each passes in.
import type { z } from 'zod';

export type ZodIssue = z.core.$ZodIssue;
/** An issue's path; symbol keys (which no schema here uses) are left out. */
export type IssuePath = (string | number)[];

export interface IssueProblem {
  path: IssuePath;
  message: string;
}

export interface IssueWording {
  /** Describe at most this many issues (default: all). */
  limit?: number;
  /**
   * One problem per unknown key, at the key's own path, instead of one per
   * object (the config file points at each key's line).
   */
  splitUnknownKeys?: boolean;
  /** The text of one issue at its path (default: zod's message). */
  describe?: (issue: ZodIssue, path: IssuePath) => string;
}

/** The issues as problems: a path and a text each, in zod's order. */
export function zodProblems(issues: readonly ZodIssue[], wording: IssueWording = {}): IssueProblem[] {
  const describe = wording.describe ?? ((issue: ZodIssue) => issue.message);
  const problems: IssueProblem[] = [];
  for (const issue of issues.slice(0, wording.limit ?? issues.length)) {
    const path = issue.path.filter((part): part is string | number => typeof part !== 'symbol');
    if (wording.splitUnknownKeys && issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) problems.push({ path: [...path, key], message: describe({ ...issue, keys: [key] }, [...path, key]) });
      continue;
    }
    problems.push({ path, message: describe(issue, path) });
  }
  return problems;
}

/** `owner.type: must be "TEAM" or "USER"; name: is missing`: the issues on one line. */
export function describeZodIssues(issues: readonly ZodIssue[], wording: IssueWording = {}): string {
  return zodProblems(issues, wording)
    .map(({ path, message }) => (path.length > 0 ? `${path.join('.')}: ${message}` : message))
    .join('; ');
}
