// Where the worker keeps its files, by platform convention: XDG directories on
// Linux, ~/Library/Application Support on macOS.
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { createHash } from 'node:crypto';
import { join, resolve } from 'node:path';
import { DEFAULT_WORKSPACE_ROOT } from './worker-config.js';

export interface PlatformDirs {
  /** Holds config.yaml and the API key file. */
  configDir: string;
  /** Holds the local server's database, keys, journals and other state (never workspaces). */
  stateDir: string;
  /** Holds the direct backend's default workspaces for a user's own worker. */
  dataDir: string;
}

export function platformDirs(
  platform: NodeJS.Platform = process.platform,
  env: Readonly<Record<string, string | undefined>> = process.env,
  home: string = homedir(),
): PlatformDirs {
  if (platform === 'darwin') {
    const support = join(home, 'Library', 'Application Support', 'oz-worker');
    return { configDir: support, stateDir: support, dataDir: support };
  }
  const config = env.XDG_CONFIG_HOME || join(home, '.config');
  const state = env.XDG_STATE_HOME || join(home, '.local', 'state');
  const data = env.XDG_DATA_HOME || join(home, '.local', 'share');
  return { configDir: join(config, 'oz-worker'), stateDir: join(state, 'oz-worker'), dataDir: join(data, 'oz-worker') };
}

/** Who runs the worker, where: what the default workspace root depends on. */
export interface HostIdentity {
  platform: NodeJS.Platform;
  home: string;
  /** undefined where the platform has no uids. */
  uid: number | undefined;
}

export const thisHost = (): HostIdentity => ({ platform: process.platform, home: homedir(), uid: process.getuid?.() });

export interface WorkspaceRootContext extends HostIdentity {
  env: Readonly<Record<string, string | undefined>>;
}

/**
 * The direct backend's workspace root when neither --workspace-root nor the
 * config file names one: the Go worker's /var/lib/oz/workspaces for root and
 * for a systemd service (whose unit makes /var/lib/oz writable and the home
 * read-only), the user's data directory otherwise, so that a plain user's
 * first run does not fail on a directory it may not create.
 */
export function defaultWorkspaceRoot(context: WorkspaceRootContext): string {
  const systemdService = Boolean(context.env.INVOCATION_ID);
  if (context.uid === 0 || (systemdService && context.platform !== 'darwin')) return DEFAULT_WORKSPACE_ROOT;
  return join(platformDirs(context.platform, context.env, context.home).dataDir, 'workspaces');
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
