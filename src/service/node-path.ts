// Which Node binary a service definition should name. `process.execPath` is
// the resolved binary, and on Homebrew that is a versioned Cellar path that
// `brew upgrade node` removes; the formula's `opt` link follows upgrades.
// Version managers keep each version until it is removed, and have no path
// that is both stable and independent of the caller's shell: those stay
// pinned, and the installer says so.

export interface NodePathChoice {
  /** The path the service definition names. */
  path: string;
  /** When the path names one Node version that may go away: what to do then. */
  pinned?: string;
}

/** Version managers recognised by where they keep each version's binary. */
const VERSION_MANAGERS: ReadonlyArray<[RegExp, string]> = [
  [/\/\.nvm\/versions\/node\/[^/]+\/bin\/node$/, 'nvm'],
  [/\/fnm\/node-versions\/[^/]+\/installation\/bin\/node$/, 'fnm'],
  [/\/\.volta\/tools\/image\/node\/[^/]+\/bin\/node$/, 'Volta'],
  [/\/\.asdf\/installs\/nodejs\/[^/]+\/bin\/node$/, 'asdf'],
  [/\/mise\/installs\/node\/[^/]+\/bin\/node$/, 'mise'],
  [/\/n\/versions\/node\/[^/]+\/bin\/node$/, 'n'],
];

const HOMEBREW_CELLAR = /^(.+)\/Cellar\/([^/]+)\/[^/]+\/bin\/node$/;

/**
 * The Node path for a service, from the running binary's path. Homebrew (any
 * prefix: /opt/homebrew, /usr/local, Linuxbrew) maps to `<prefix>/opt/<formula>/bin/node`;
 * everything else is kept, with a note when a version manager owns it.
 */
export function stableNodePath(execPath: string): NodePathChoice {
  const brew = HOMEBREW_CELLAR.exec(execPath);
  if (brew) return { path: `${brew[1]}/opt/${brew[2]}/bin/node` };
  for (const [pattern, manager] of VERSION_MANAGERS) {
    if (pattern.test(execPath)) {
      return {
        path: execPath,
        pinned: `the service runs this exact Node (${execPath}, installed by ${manager}); if you remove that version, run \`service install\` again with the new one`,
      };
    }
  }
  return { path: execPath };
}
