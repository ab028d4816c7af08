// Files shipped with the package (the bin script, the example agent), found
// from this module's own location so they resolve the same from src/, dist/
// and a global or npx install, whatever symlinks led here.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function isOurPackage(dir: string): boolean {
  try {
    return (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string }).name === 'oz-worker';
  } catch {
    return false;
  }
}

export function packageRoot(from: string = fileURLToPath(import.meta.url)): string {
  for (let dir = dirname(from); ; dir = dirname(dir)) {
    if (isOurPackage(dir)) return dir;
    if (dirname(dir) === dir) throw new Error(`cannot find the oz-worker package around ${from}`);
  }
}

/** The executable entry point, for starting a worker as a child process. */
export const binScript = (): string => join(packageRoot(), 'bin', 'oz-worker.js');

/** The example agent: a stand-in that prints the command line it was given. */
export const standInAgentPath = (): string => join(packageRoot(), 'examples', 'echo-agent', 'oz');
