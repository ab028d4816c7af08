// Where the worker keeps its files, by platform convention: XDG directories on
// Linux, ~/Library/Application Support on macOS.
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { createHash } from 'node:crypto';
import { join, resolve } from 'node:path';

export interface PlatformDirs {
  /** Holds config.yaml and the API key file. */
  configDir: string;
  /** Holds the local server's database, keys, journals and other state (never workspaces). */
  stateDir: string;
}

export function platformDirs(
  platform: NodeJS.Platform = process.platform,
  env: Readonly<Record<string, string | undefined>> = process.env,
  home: string = homedir(),
): PlatformDirs {
  if (platform === 'darwin') {
    const support = join(home, 'Library', 'Application Support', 'oz-worker');
    return { configDir: support, stateDir: support };
  }
  const config = env.XDG_CONFIG_HOME || join(home, '.config');
  const state = env.XDG_STATE_HOME || join(home, '.local', 'state');
  return { configDir: join(config, 'oz-worker'), stateDir: join(state, 'oz-worker') };
}

/** The config file found at the platform location, when `--config-file` is not given. */
export function defaultConfigFile(dirs: PlatformDirs = platformDirs()): string | undefined {
  const path = join(dirs.configDir, 'config.yaml');
  return existsSync(path) ? path : undefined;
}

/**
 * Where `oz-worker local` puts the direct backend's workspaces: a cache
 * directory, outside the state directory, so an agent finds no keys or
 * database next to (or just above) its workspace. One folder per state
 * directory, so two local servers never share a task's workspace.
 */
export function localWorkspaceRoot(
  stateDir: string,
  platform: NodeJS.Platform = process.platform,
  env: Readonly<Record<string, string | undefined>> = process.env,
  home: string = homedir(),
): string {
  const cache = platform === 'darwin' ? join(home, 'Library', 'Caches') : env.XDG_CACHE_HOME || join(home, '.cache');
  const perStateDir = createHash('sha256').update(resolve(stateDir)).digest('hex').slice(0, 12);
  return join(cache, 'oz-worker', 'workspaces', perStateDir);
}
