import { describe, expect, it } from 'vitest';
import { commandPrefix, shellWord, type HintSurroundings } from '../../src/local/command-hint.js';

const global: HintSurroundings = {
  npmCommand: undefined,
  ozWorkerOnPath: '/usr/lib/node_modules/oz-worker/bin/oz-worker.js',
  nodeOnPath: '/usr/bin/node',
  ourBin: '/usr/lib/node_modules/oz-worker/bin/oz-worker.js',
  ourNode: '/usr/bin/node',
  packageRoot: '/usr/lib/node_modules/oz-worker',
  cwd: '/home/ann',
  globalInstall: true,
};
const clone: HintSurroundings = {
  ...global,
  ozWorkerOnPath: undefined,
  ourBin: '/home/ann/oz-worker/bin/oz-worker.js',
  ourNode: '/home/ann/oz-worker/node_modules/node/bin/node',
  packageRoot: '/home/ann/oz-worker',
  cwd: '/home/ann/oz-worker/docs',
  globalInstall: false,
};

describe('commandPrefix', () => {
  it.each<[string, HintSurroundings, string]>([
    ['a global install, typed in the shell', global, 'oz-worker'],
    ['a global install started through npm', { ...global, npmCommand: 'exec' }, 'npx oz-worker'],
    [
      'a global install whose PATH node is another (older) one',
      { ...global, nodeOnPath: '/opt/node20/bin/node' },
      'npx -p node@24 node /usr/lib/node_modules/oz-worker/bin/oz-worker.js',
    ],
    ['a clone, inside it', clone, 'npx oz-worker'],
    ['a clone, from elsewhere', { ...clone, cwd: '/tmp' }, 'npx --prefix /home/ann/oz-worker oz-worker'],
    ['a clone in a directory with a space', { ...clone, packageRoot: '/home/ann/my code', cwd: '/tmp' }, "npx --prefix '/home/ann/my code' oz-worker"],
    ['a clone whose bin another oz-worker on PATH shadows', { ...clone, ozWorkerOnPath: '/usr/bin/oz-worker' }, 'npx oz-worker'],
    ['installed in a project, inside it', { ...clone, packageRoot: '/srv/app/node_modules/oz-worker', cwd: '/srv/app' }, 'npx oz-worker'],
    ['installed in a project, from elsewhere', { ...clone, packageRoot: '/srv/app/node_modules/oz-worker', cwd: '/srv' }, 'npx --prefix /srv/app oz-worker'],
    ['npx from the registry', { ...clone, packageRoot: '/home/ann/.npm/_npx/5f1a/node_modules/oz-worker', cwd: '/tmp' }, 'npx oz-worker'],
  ])('%s → %s', (_name, where, expected) => {
    expect(commandPrefix(where)).toBe(expected);
  });

  it('quotes shell words only where needed', () => {
    expect(shellWord('task')).toBe('task');
    expect(shellWord("it's")).toBe("'it'\\''s'");
    expect(shellWord('a b')).toBe("'a b'");
  });
});
