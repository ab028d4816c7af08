// Path flags behave like the Go worker's (kong `path` type): `~/` is the home
// directory and a relative path is made absolute against a base directory.
import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';

export interface PathBase {
  home: string;
  /** Directory a relative path is resolved against. */
  base: string;
}

export function expandPath(path: string, where: PathBase = { home: homedir(), base: process.cwd() }): string {
  if (path === '') return path;
  if (path === '~') return where.home;
  if (path.startsWith('~/')) return join(where.home, path.slice(2));
  return isAbsolute(path) ? path : resolve(where.base, path);
}
