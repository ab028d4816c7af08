// `service install` on macOS: a LaunchDaemon that runs the worker as its
// owner, with the log directory made before launchd opens the log file.
import { join } from 'node:path';
import { DEFAULT_SHUTDOWN_GRACE_MS } from '../config/worker-config.js';
import type { ServiceAccount } from './host.js';
import type { NodePathChoice } from './node-path.js';
import { InstallRefused, type InstallPlan } from './plan.js';
import { LAUNCHD_LABEL, launchdPlist } from './units.js';

export const LAUNCHD_PLIST_PATH = `/Library/LaunchDaemons/${LAUNCHD_LABEL}.plist`;

/** The worker's files under the owner's home. */
export function launchdLocations(home: string) {
  const support = join(home, 'Library', 'Application Support', 'oz-worker');
  return {
    support,
    configFile: join(support, 'config.yaml'),
    apiKeyFile: join(support, 'api-key'),
    logDir: join(home, 'Library', 'Logs', 'oz-worker'),
  };
}

export interface LaunchdFacts {
  user: { name: string; account: ServiceAccount | undefined };
  /** Home when the account could not be looked up (a --platform darwin dry run elsewhere). */
  assumedHome: string;
  configFile: string | undefined;
  apiKeyFile: string | undefined;
  configExists: boolean;
  keyExists: boolean;
  node: NodePathChoice;
  binPath: string;
  workerArgs: string[];
}

export function launchdInstallPlan(facts: LaunchdFacts, dryRun: boolean): InstallPlan {
  const notes: string[] = [];
  const refuse = (message: string) => {
    if (!dryRun) throw new InstallRefused(message);
    notes.push(`not ready yet: ${message}`);
  };
  const { name: user, account } = facts.user;
  if (!account && !dryRun) throw new InstallRefused(`there is no user '${user}' on this Mac; name the account the worker runs as with --user`);
  const where = launchdLocations(account?.home ?? facts.assumedHome);
  const configFile = facts.configFile ?? where.configFile;
  const apiKeyFile = facts.apiKeyFile ?? where.apiKeyFile;
  if (!facts.configExists) refuse(`no config file at ${configFile}; write the worker's config there first (see docs/service.md) or pass --config-file`);
  if (!facts.keyExists) refuse(`no API key file at ${apiKeyFile}; put the worker's key there first (mode 0600) or pass --api-key-file`);
  const logFile = join(where.logDir, 'worker.log');
  const unitText = launchdPlist({
    nodePath: facts.node.path,
    binPath: facts.binPath,
    configFile,
    stateDir: where.support,
    workerArgs: facts.workerArgs,
    apiKeyFile,
    user,
    logFile,
    graceSeconds: DEFAULT_SHUTDOWN_GRACE_MS / 1000,
  });
  if (facts.node.pinned) notes.push(facts.node.pinned);
  return {
    user,
    group: 'staff',
    unitPath: LAUNCHD_PLIST_PATH,
    unitText,
    notes,
    footer: [`log: ${logFile}`],
    steps: [
      { kind: 'mkdir', path: where.logDir, mode: 0o755, owner: 'user', done: `created ${where.logDir}, owned by ${user}` },
      { kind: 'own', path: apiKeyFile, owner: 'user', mode: 0o600, done: `${apiKeyFile}: ${user}'s alone (0600)` },
      {
        kind: 'write',
        path: LAUNCHD_PLIST_PATH,
        text: unitText,
        mode: 0o644,
        done: `wrote ${LAUNCHD_PLIST_PATH}: runs as ${user}, journal in ${where.support}`,
      },
      // A job loaded by an earlier install must go before the new definition can load.
      { kind: 'run', command: 'launchctl', args: ['bootout', `system/${LAUNCHD_LABEL}`], mayFail: true },
      {
        kind: 'run',
        command: 'launchctl',
        args: ['bootstrap', 'system', LAUNCHD_PLIST_PATH],
        done: 'loaded into launchd: starts at boot, restarted whenever it exits',
      },
      { kind: 'verify-running', unit: LAUNCHD_LABEL, done: `started: ${LAUNCHD_LABEL} is running`, logFile },
    ],
  };
}

/** `launchctl print system/<label>` → whether the job runs now. */
export function launchdJobRunning(output: string): boolean {
  return /^\s*state = running\s*$/m.test(output);
}
