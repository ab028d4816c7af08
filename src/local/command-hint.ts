// How to spell an oz-worker command so that it runs where the user is. In a
// clone `oz-worker` is not on PATH (and `node bin/oz-worker.js` may pick an old
// system Node), while `npx oz-worker` finds the project's bin and its own Node;
// after a global install `oz-worker` is what the user typed. Every hint we
// print goes through commandHint().
import { existsSync, realpathSync, statSync } from 'node:fs';
import { delimiter, join, sep } from 'node:path';
import { binScript, packageRoot } from './package-root.js';

export interface HintSurroundings {
  /** Set by npm for `npx`, `npm start`, `npm run …` (npm_command). */
  npmCommand: string | undefined;
  /** Where `oz-worker` on PATH really leads (symlinks resolved), if anywhere. */
  ozWorkerOnPath: string | undefined;
  /** Where `node` on PATH really leads, if anywhere. */
  nodeOnPath: string | undefined;
  /** This process's bin script and Node, symlinks resolved. */
  ourBin: string;
  ourNode: string;
  /** The package's own directory, and the working directory. */
  packageRoot: string;
  cwd: string;
  /** Installed with `npm install -g`: the directory above node_modules is no project. */
  globalInstall: boolean;
}

const within = (dir: string, root: string): boolean => dir === root || dir.startsWith(root.endsWith(sep) ? root : root + sep);

/** The project whose `npx` finds this package: the clone itself, or the project it is installed in. */
function owningProject(packageRoot: string): string {
  const marker = `${sep}node_modules${sep}`;
  const at = packageRoot.lastIndexOf(marker);
  return at < 0 ? packageRoot : packageRoot.slice(0, at);
}

/** One argument as a POSIX shell reads it back. */
export function shellWord(value: string): string {
  return /^[\w@%+=:,./-]+$/.test(value) ? value : `'${value.replaceAll("'", "'\\''")}'`;
}

/**
 * `oz-worker` when typing it in the user's shell runs this very install with
 * this Node; `npx oz-worker` otherwise (a clone, a project-local install, or a
 * user who started us through npm), with --prefix when the user stands outside
 * the project that holds this package.
 */
export function commandPrefix(where: HintSurroundings): string {
  const installedOnPath = where.ozWorkerOnPath === where.ourBin && where.nodeOnPath === where.ourNode;
  if (where.npmCommand === undefined && installedOnPath) return 'oz-worker';
  // npx's own cache fetches the package again from anywhere.
  if (where.packageRoot.includes(`${sep}_npx${sep}`)) return 'npx oz-worker';
  if (where.globalInstall) {
    // `oz-worker` reaches this install but with an older Node on PATH: run this install with a Node 24 npx fetches.
    return where.ozWorkerOnPath === where.ourBin && where.npmCommand === undefined ? `npx -p node@24 node ${shellWord(where.ourBin)}` : 'npx oz-worker';
  }
  const project = owningProject(where.packageRoot);
  return within(where.cwd, project) ? 'npx oz-worker' : `npx --prefix ${shellWord(project)} oz-worker`;
}

function findOnPath(name: string, pathVariable: string | undefined): string | undefined {
  for (const dir of (pathVariable ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, name);
    try {
      if (statSync(candidate).isFile()) return realpathSync(candidate);
    } catch {
      // not here
    }
  }
  return undefined;
}

function realpathOr(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}

export function hintSurroundings(env: NodeJS.ProcessEnv = process.env): HintSurroundings {
  const root = realpathOr(packageRoot());
  return {
    npmCommand: env.npm_command || undefined,
    ozWorkerOnPath: findOnPath('oz-worker', env.PATH),
    nodeOnPath: findOnPath('node', env.PATH),
    ourBin: realpathOr(binScript()),
    ourNode: realpathOr(process.execPath),
    packageRoot: root,
    cwd: realpathOr(process.cwd()),
    globalInstall: root.includes(`${sep}node_modules${sep}`) && !existsSync(join(owningProject(root), 'package.json')),
  };
}

let cachedPrefix: string | undefined;

/** `commandHint('task list')` → "npx oz-worker task list" in a clone, "oz-worker task list" when installed. */
export function commandHint(args = ''): string {
  cachedPrefix ??= commandPrefix(hintSurroundings());
  return args === '' ? cachedPrefix : `${cachedPrefix} ${args}`;
}
