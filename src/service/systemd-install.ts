// `service install` on Linux: the system user, the files it must read, the
// directories it writes, the unit, and systemd's commands, as one plan.
import { dirname, posix } from 'node:path';
import { errorMessage } from '../errors/error-message.js';
import { ConfigError } from '../config/errors.js';
import type { FileConfig } from '../config/file-schema.js';
import { parseConfigText } from '../config/load-file.js';
import { DEFAULT_SHUTDOWN_GRACE_MS, DEFAULT_WORKSPACE_ROOT } from '../config/worker-config.js';
import type { ServiceAccount, ServiceHost } from './host.js';
import type { NodePathChoice } from './node-path.js';
import { InstallRefused, type InstallPlan, type Step } from './plan.js';
import {
  CREDENTIAL_KEY_PATH,
  keyDeliveryFor,
  SERVICE_USER,
  SYSTEMD_CONFIG_DIR,
  SYSTEMD_STATE_DIR,
  SYSTEMD_UNIT_NAME,
  systemdUnit,
  writableDirectories,
  type SystemdSpec,
} from './units.js';

export const SYSTEMD_UNIT_PATH = `/etc/systemd/system/${SYSTEMD_UNIT_NAME}`;
/** A fresh worker that fails on its configuration exits within this; a running one is still up. */
export const SETTLE_MS = 3_000;

/** The parts of the config file (and worker flags) that decide what the unit must make writable. */
export interface ConfiguredPaths {
  backend: string;
  workspaceRoot: string;
  targetDir: string | undefined;
}

/** The value of `--name v` / `--name=v` in worker arguments (the last one wins, as for the worker). */
export function flagValue(args: readonly string[], name: string): string | undefined {
  let value: string | undefined;
  args.forEach((arg, i) => {
    if (arg === name && i + 1 < args.length) value = args[i + 1];
    else if (arg.startsWith(`${name}=`)) value = arg.slice(name.length + 1);
  });
  return value;
}

/** Backend, workspace root and target directory as the worker will resolve them (flag > file > default). */
export function configuredPaths(file: FileConfig | undefined, workerArgs: readonly string[]): ConfiguredPaths {
  const block = (['direct', 'docker', 'kubernetes', 'command'] as const).find((name) => file?.backend?.[name] !== undefined);
  const backend = flagValue(workerArgs, '--backend') || block || 'docker';
  const direct = file?.backend?.direct;
  const targetDir = flagValue(workerArgs, '--target-dir') || direct?.target_dir || undefined;
  return { backend, workspaceRoot: flagValue(workerArgs, '--workspace-root') || direct?.workspace_root || DEFAULT_WORKSPACE_ROOT, targetDir };
}

/** Flags the unit sets itself, or that must never be written into a unit file. */
const OWNED_FLAGS: ReadonlyArray<[string, string]> = [
  ['--api-key', 'the key would be written into the unit file, readable by everyone; keep it in the key file (--api-key-file)'],
  ['--api-key-file', 'give it to service install itself: service install --api-key-file <path>'],
  ['--config-file', 'give it to service install itself: service install --config-file <path>'],
  ['--state-dir', `the unit keeps the worker's journal in ${SYSTEMD_STATE_DIR}`],
];

/** Why these worker arguments cannot go into the unit, or undefined. */
export function workerArgsProblem(args: readonly string[]): string | undefined {
  if (args.length > 0 && !args[0]!.startsWith('-'))
    return `${JSON.stringify(args[0])} is not a worker flag; worker flags go after --, e.g. service install -- --log-level debug`;
  for (const [flag, why] of OWNED_FLAGS) {
    if (args.some((arg) => arg === flag || arg.startsWith(`${flag}=`))) return `${flag} cannot be passed to the service's worker: ${why}`;
  }
  return undefined;
}

/** Everything the plan depends on, found before anything changes. */
export interface SystemdFacts {
  /** The account, and whether it was named with --user (a named account must exist; the default one is created). */
  user: { name: string; named: boolean; account: ServiceAccount | undefined };
  systemdVersion: number | undefined;
  configFile: string;
  /** The config's paths, or why the file could not be used. */
  config: ConfiguredPaths | { problem: string };
  keyFile: string;
  keyExists: boolean;
  node: NodePathChoice;
  binPath: string;
  documentation: string[];
  workerArgs: string[];
  /** The shell that refuses logins on this system. */
  noLoginShell: string;
}

/** The steps, the unit and the notes, from the facts alone. Throws InstallRefused (only when not a dry run). */
export function systemdInstallPlan(facts: SystemdFacts, dryRun: boolean): InstallPlan {
  const notes: string[] = [];
  const refuse = (message: string) => {
    if (!dryRun) throw new InstallRefused(message);
    notes.push(`not ready yet: ${message}`);
  };
  const { name: user, named, account } = facts.user;
  if (named && !account) {
    throw new InstallRefused(
      `there is no user '${user}' on this machine; create it first (e.g. useradd --system ${user}) or leave out --user to get the ${SERVICE_USER} system user`,
    );
  }
  if ('problem' in facts.config) refuse(facts.config.problem);
  if (!facts.keyExists) {
    refuse(`no API key file at ${facts.keyFile}; put the worker's key there first: printenv WARP_API_KEY | sudo install -m 0600 /dev/stdin ${facts.keyFile}`);
  }
  const paths = 'problem' in facts.config ? configuredPaths(undefined, facts.workerArgs) : facts.config;
  const isRoot = account?.uid === 0;
  const key = keyDeliveryFor(facts.systemdVersion, facts.keyFile);
  const writable = paths.backend === 'direct' ? [paths.workspaceRoot, ...(paths.targetDir ? [paths.targetDir] : [])] : [];
  const spec: SystemdSpec = {
    nodePath: facts.node.path,
    binPath: facts.binPath,
    configFile: facts.configFile,
    stateDir: SYSTEMD_STATE_DIR,
    workerArgs: facts.workerArgs,
    key,
    user,
    writablePaths: writable,
    documentation: facts.documentation,
    graceSeconds: DEFAULT_SHUTDOWN_GRACE_MS / 1000,
  };
  const unitText = systemdUnit(spec);
  const steps: Step[] = [];

  if (!account) {
    steps.push({
      kind: 'create-user',
      name: user,
      home: SYSTEMD_STATE_DIR,
      shell: facts.noLoginShell,
      done: `created the system user ${user} (no login shell, home ${SYSTEMD_STATE_DIR})`,
    });
  } else {
    notes.push(`runs as the existing user ${user}`);
  }

  const configDir = dirname(facts.configFile);
  if (!isRoot) {
    if (configDir === SYSTEMD_CONFIG_DIR) {
      steps.push(
        { kind: 'own', path: configDir, owner: 'root-with-user-group', mode: 0o750 },
        {
          kind: 'own',
          path: facts.configFile,
          owner: 'root-with-user-group',
          mode: 0o640,
          done: `${facts.configFile}: root's, readable by ${user} (${configDir} 0750, the file 0640)`,
        },
      );
    } else {
      steps.push({
        kind: 'check-access',
        path: facts.configFile,
        access: 'read',
        fix: `${user} cannot read ${facts.configFile}; move it to ${SYSTEMD_CONFIG_DIR}/config.yaml (service install then lets ${user} read it) or make it readable to ${user}`,
      });
    }
    steps.push(
      {
        kind: 'check-access',
        path: facts.node.path,
        access: 'execute',
        fix: `${user} cannot run ${facts.node.path}; install Node where every user can run it (e.g. /usr/local/bin or a distribution package), then run service install with that node`,
      },
      {
        kind: 'check-access',
        path: facts.binPath,
        access: 'read',
        fix: `${user} cannot read ${facts.binPath}; install oz-worker where every user can read it (npm install -g, or a release tarball unpacked under /opt) and run service install from there`,
      },
    );
  }

  if (key.kind === 'credential') {
    steps.push({
      kind: 'own',
      path: facts.keyFile,
      owner: 'root',
      mode: 0o600,
      done: `${facts.keyFile}: root's alone (0600); systemd hands ${user} a copy at each start (LoadCredential=, ${CREDENTIAL_KEY_PATH})`,
    });
  } else {
    steps.push({
      kind: 'own',
      path: facts.keyFile,
      owner: 'user',
      mode: 0o600,
      done: `${facts.keyFile}: ${user}'s alone (0600; this systemd ${facts.systemdVersion} predates LoadCredential=)`,
    });
  }

  const dirs = writableDirectories([SYSTEMD_STATE_DIR, ...writable]);
  const managed = dirs.stateDirectories.map((name) => posix.join('/var/lib', name));
  for (const path of dirs.readWritePaths) {
    if (path === paths.targetDir) continue; // the operator's shared directory: the worker checks it at start
    steps.push({ kind: 'mkdir', path, mode: 0o700, owner: 'user', done: `created ${path}, owned by ${user}` });
  }
  steps.push(
    {
      kind: 'write',
      path: SYSTEMD_UNIT_PATH,
      text: unitText,
      mode: 0o644,
      done: `wrote ${SYSTEMD_UNIT_PATH}: runs as ${user}; journal in ${SYSTEMD_STATE_DIR}${writable.length > 0 ? `; workspaces in ${paths.workspaceRoot}` : ''} (${managed.join(', ')} created by systemd, owned by ${user})`,
    },
    { kind: 'run', command: 'systemctl', args: ['daemon-reload'] },
    { kind: 'run', command: 'systemctl', args: ['enable', SYSTEMD_UNIT_NAME], done: 'enabled at boot; restarts on failure' },
    { kind: 'run', command: 'systemctl', args: ['restart', SYSTEMD_UNIT_NAME] },
    { kind: 'verify-running', unit: SYSTEMD_UNIT_NAME, done: `started: ${SYSTEMD_UNIT_NAME} is running` },
  );

  if (paths.backend === 'docker') {
    notes.push(`the docker backend needs the Docker socket: add ${user} to the docker group (usermod -aG docker ${user}) if it is not`);
  }
  if (facts.node.pinned) notes.push(facts.node.pinned);
  return {
    user,
    group: account ? `"$(id -gn ${user})"` : user,
    unitPath: SYSTEMD_UNIT_PATH,
    unitText,
    steps,
    notes,
    footer: [`logs: journalctl -u ${SYSTEMD_UNIT_NAME} -f`],
  };
}

/** `systemctl --version` → 252; undefined when it does not answer. */
export function parseSystemdVersion(output: string): number | undefined {
  const match = /^systemd (\d+)/m.exec(output);
  return match ? Number(match[1]) : undefined;
}

/** Reads the config's paths, or says why the file cannot be used. */
export async function readConfiguredPaths(
  host: ServiceHost,
  configFile: string,
  workerArgs: readonly string[],
): Promise<ConfiguredPaths | { problem: string }> {
  let text: string;
  try {
    text = await host.readText(configFile);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT')
      return {
        problem: `no config file at ${configFile}; write the worker's config there first (worker_id, backend; see docs/service.md) or pass --config-file`,
      };
    return { problem: `could not read ${configFile}: ${errorMessage(error)}` };
  }
  try {
    return configuredPaths(parseConfigText(text, configFile), workerArgs);
  } catch (error) {
    if (error instanceof ConfigError) return { problem: error.message };
    throw error;
  }
}
