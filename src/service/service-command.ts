// `oz-worker service install | uninstall | status`: registers the worker with
// the platform's service manager (systemd on Linux, launchd on macOS).
import { join, resolve } from 'node:path';
import { Option, type Command } from 'commander';
import { commandHint } from '../local/command-hint.js';
import { binScript, packageRoot } from '../local/package-root.js';
import { realServiceHost, type ServiceAccount, type ServiceHost } from './host.js';
import { LAUNCHD_PLIST_PATH, launchdInstallPlan, launchdJobRunning, launchdLocations, type LaunchdFacts } from './launchd-install.js';
import { stableNodePath, type NodePathChoice } from './node-path.js';
import { carryOut, InstallRefused, stepAsShell, StepFailed, type InstallPlan, type Step } from './plan.js';
import {
  parseSystemdVersion,
  readConfiguredPaths,
  SETTLE_MS,
  SYSTEMD_UNIT_PATH,
  systemdInstallPlan,
  workerArgsProblem,
  type SystemdFacts,
} from './systemd-install.js';
import { LAUNCHD_LABEL, SERVICE_USER, SYSTEMD_CONFIG_DIR, SYSTEMD_STATE_DIR, SYSTEMD_UNIT_NAME } from './units.js';

/** A service command asked for something that cannot be done; exit 2 with this message. */
export class ServiceUsageError extends Error {}

export interface ServiceOptions {
  user?: string;
  configFile?: string;
  apiKeyFile?: string;
  dryRun?: boolean;
  /** Whose unit to print with --dry-run (default: this machine's). */
  platform?: 'linux' | 'darwin';
}

/** Where the running oz-worker is: the files a unit names. */
export interface Installation {
  binPath: string;
  /** process.execPath */
  nodePath: string;
  packageDir: string;
}

const NO_LOGIN_SHELLS = ['/usr/sbin/nologin', '/sbin/nologin'];

/** Node for the unit: the stable form of execPath, when it really leads to the same binary. */
async function nodeFor(host: ServiceHost, execPath: string, local: boolean): Promise<NodePathChoice> {
  const choice = stableNodePath(execPath);
  if (!local || choice.path === execPath) return choice;
  const [stable, running] = await Promise.all([host.realPath(choice.path), host.realPath(execPath)]);
  if (stable !== undefined && stable === running) return choice;
  return {
    path: execPath,
    pinned: `${choice.path} does not lead to the running Node (${execPath}), so the service names that exact binary; run service install again after upgrading Node`,
  };
}

async function exists(host: ServiceHost, path: string): Promise<boolean> {
  try {
    return (await host.pathInfo(path)) !== undefined;
  } catch {
    return true; // there, but not ours to look at (a --dry-run without root)
  }
}

/** A file: URI for Documentation= (space-separated, % is a specifier there): none for a path it cannot carry. */
export function documentationUris(path: string): string[] {
  return /^[\w./@+-]+$/.test(path) ? [`file:${path}`] : [];
}

async function systemdFacts(host: ServiceHost, options: ServiceOptions, workerArgs: string[], where: Installation, local: boolean): Promise<SystemdFacts> {
  const name = options.user ?? SERVICE_USER;
  const named = options.user !== undefined;
  const placeholder: ServiceAccount = { name, uid: -1, gid: -1, home: `/home/${name}` };
  const account = local ? await host.lookUpUser(name) : named ? placeholder : undefined;
  const configFile = options.configFile ?? `${SYSTEMD_CONFIG_DIR}/config.yaml`;
  const keyFile = options.apiKeyFile ?? `${SYSTEMD_CONFIG_DIR}/api-key`;
  const version = local ? parseSystemdVersion((await host.run('systemctl', ['--version'])).output) : undefined;
  const serviceDoc = join(where.packageDir, 'docs', 'service.md');
  let noLoginShell = '/bin/false';
  for (const shell of NO_LOGIN_SHELLS) {
    if (!local || (await exists(host, shell))) {
      noLoginShell = shell;
      break;
    }
  }
  return {
    user: { name, named, account },
    systemdVersion: version,
    configFile,
    config: await readConfiguredPaths(host, configFile, workerArgs),
    keyFile,
    keyExists: await exists(host, keyFile),
    node: await nodeFor(host, where.nodePath, local),
    binPath: where.binPath,
    documentation: documentationUris((await exists(host, serviceDoc)) ? serviceDoc : join(where.packageDir, 'README.md')),
    workerArgs,
    noLoginShell,
  };
}

async function launchdFacts(host: ServiceHost, options: ServiceOptions, workerArgs: string[], where: Installation, local: boolean): Promise<LaunchdFacts> {
  // A LaunchDaemon runs as the Mac's owner, who installs it with sudo.
  const name = options.user ?? host.env.SUDO_USER ?? host.currentUser();
  const account = local ? await host.lookUpUser(name) : undefined;
  const home = account?.home ?? `/Users/${name}`;
  const defaults = launchdLocations(home);
  return {
    user: { name, account },
    assumedHome: home,
    configFile: options.configFile,
    apiKeyFile: options.apiKeyFile,
    configExists: await exists(host, options.configFile ?? defaults.configFile),
    keyExists: await exists(host, options.apiKeyFile ?? defaults.apiKeyFile),
    node: await nodeFor(host, where.nodePath, local),
    binPath: where.binPath,
    workerArgs,
  };
}

/** After start: whether the worker is still up, or its last log lines when it is not. */
async function systemdStillRunning(host: ServiceHost, unit: string): Promise<string | undefined> {
  await host.sleep(SETTLE_MS);
  const show = await host.run('systemctl', ['show', unit, '--property=ActiveState,SubState']);
  if (/^ActiveState=active$/m.test(show.output) && /^SubState=running$/m.test(show.output)) return undefined;
  const log = await host.run('journalctl', ['--unit', unit, '--lines', '20', '--no-pager', '--output', 'cat']);
  const state = show.output.trim().replace(/\n/g, ', ');
  return `${unit} did not stay up (${state || 'no state'}); its last log lines:\n${log.output.trim()}`;
}

async function launchdStillRunning(host: ServiceHost, label: string, logFile: string | undefined): Promise<string | undefined> {
  await host.sleep(SETTLE_MS);
  const print = await host.run('launchctl', ['print', `system/${label}`]);
  if (launchdJobRunning(print.output)) return undefined;
  return `${label} did not stay up; see ${logFile ? `its log: ${logFile}` : `launchctl print system/${label}`}`;
}

function printDryRun(host: ServiceHost, plan: InstallPlan): void {
  host.print(`# would write ${plan.unitPath}\n${plan.unitText}`);
  const commands = plan.steps.filter((step) => step.kind !== 'write').map((step) => stepAsShell(step, plan.user, plan.group));
  host.print(`# then, as root:\n${commands.join('\n')}`);
  for (const note of plan.notes) host.print(`# note: ${note}`);
}

function bullet(lines: readonly string[]): string {
  return lines.map((line) => `  - ${line.replace(/\n/g, '\n    ')}`).join('\n');
}

export async function installService(host: ServiceHost, options: ServiceOptions, where: Installation, workerArgs: string[] = []): Promise<number> {
  const platform = options.platform ?? host.platform;
  const local = platform === host.platform;
  if (!local && !options.dryRun) {
    throw new ServiceUsageError(`--platform ${platform} only prints that platform's unit; add --dry-run (this machine is ${host.platform})`);
  }
  const argsProblem = workerArgsProblem(workerArgs);
  if (argsProblem) throw new ServiceUsageError(argsProblem);
  const systemd = platform !== 'darwin';
  let plan: InstallPlan;
  try {
    plan = systemd
      ? systemdInstallPlan(await systemdFacts(host, options, workerArgs, where, local), Boolean(options.dryRun))
      : launchdInstallPlan(await launchdFacts(host, options, workerArgs, where, local), Boolean(options.dryRun));
  } catch (error) {
    if (error instanceof InstallRefused) throw new ServiceUsageError(error.message);
    throw error;
  }
  if (options.dryRun) {
    printDryRun(host, plan);
    return 0;
  }
  if (!host.isRoot()) {
    throw new ServiceUsageError(
      `service install changes the system (${plan.unitPath}${systemd ? ', a system user' : ''}); run it as root: sudo ${commandHint('service install')}`,
    );
  }
  let done: string[];
  try {
    done = await carryOut(host, plan, (step: Extract<Step, { kind: 'verify-running' }>) =>
      systemd ? systemdStillRunning(host, step.unit) : launchdStillRunning(host, step.unit, step.logFile),
    );
  } catch (error) {
    if (!(error instanceof StepFailed)) throw error;
    host.print(`✘ ${error.message}`);
    if (error.done.length > 0) host.print(`  Done before that:\n${bullet(error.done)}`);
    host.print(`  Fix the problem, then run ${commandHint('service install')} again (it picks up where things are).`);
    return 1;
  }
  host.print(`✔ Installed ${systemd ? SYSTEMD_UNIT_NAME : LAUNCHD_LABEL}\n${bullet([...done, ...plan.notes.map((note) => `note: ${note}`)])}`);
  host.print(`  ${[...plan.footer, `status: ${commandHint('service status')}`, `remove: sudo ${commandHint('service uninstall')}`].join(' · ')}`);
  return 0;
}

/** The User= of an installed unit, to name what uninstall leaves behind. */
export function unitUser(text: string): string | undefined {
  return /^User=(.+)$/m.exec(text)?.[1]?.trim();
}

export async function uninstallService(host: ServiceHost, options: ServiceOptions): Promise<number> {
  const systemd = host.platform !== 'darwin';
  const unitPath = systemd ? SYSTEMD_UNIT_PATH : LAUNCHD_PLIST_PATH;
  if (options.dryRun) {
    host.print(`# would stop the service and remove ${unitPath}`);
    return 0;
  }
  if (!host.isRoot())
    throw new ServiceUsageError(`service uninstall changes the system (${unitPath}); run it as root: sudo ${commandHint('service uninstall')}`);
  let user: string | undefined;
  try {
    user = unitUser(await host.readText(unitPath));
  } catch {
    user = undefined;
  }
  if (systemd) await host.run('systemctl', ['disable', '--now', SYSTEMD_UNIT_NAME]);
  else await host.run('launchctl', ['bootout', `system/${LAUNCHD_LABEL}`]);
  await host.removeFile(unitPath);
  if (systemd) await host.run('systemctl', ['daemon-reload']);
  host.print(`✔ Stopped the worker and removed ${unitPath}`);
  if (systemd) {
    const kept = [user && user !== 'root' ? `the user ${user}` : undefined, SYSTEMD_CONFIG_DIR, `${SYSTEMD_STATE_DIR} (the journal)`, 'the workspaces'].filter(
      Boolean,
    );
    host.print(`  Kept ${kept.join(', ')}; remove them yourself if you no longer need them.`);
  }
  return 0;
}

export async function serviceStatus(host: ServiceHost): Promise<number> {
  const missing = host.serviceManagerMissing();
  if (missing) {
    host.print(`${missing}: no oz-worker service to show; run the worker in the foreground or under your own supervisor`);
    return 3;
  }
  const result =
    host.platform === 'darwin'
      ? await host.run('launchctl', ['print', `system/${LAUNCHD_LABEL}`])
      : await host.run('systemctl', ['status', '--no-pager', SYSTEMD_UNIT_NAME]);
  host.print(result.output.trim() || (result.ok ? 'running' : 'not installed'));
  return result.ok ? 0 : 3;
}

export function registerServiceCommands(program: Command, host: ServiceHost = realServiceHost): void {
  const where = (): Installation => ({ binPath: binScript(), nodePath: process.execPath, packageDir: packageRoot() });
  const service = program.command('service').description('run the worker as a background service (systemd on Linux, launchd on macOS)');
  const exitWith = (code: number) => {
    process.exitCode = code;
  };
  const usageErrors = async (action: () => Promise<number>): Promise<void> => {
    try {
      exitWith(await action());
    } catch (error) {
      if (!(error instanceof ServiceUsageError)) throw error;
      process.stderr.write(`oz-worker: error: ${error.message}\n`);
      exitWith(2);
    }
  };
  const absolute = (value: string): string => resolve(value);
  const dryRun = (command: Command) => command.option('--dry-run', 'print what would be written and run, change nothing');
  dryRun(
    service
      .command('install')
      .summary('write the service definition and start it')
      .description(
        `Write the service definition and start it, then say what was done. On Linux the worker runs as the system user ${SERVICE_USER} (created when missing), reads ${SYSTEMD_CONFIG_DIR}/config.yaml and, through systemd, ${SYSTEMD_CONFIG_DIR}/api-key, and keeps its journal in ${SYSTEMD_STATE_DIR}; on macOS it runs as you, logging to ~/Library/Logs/oz-worker. Arguments after -- go to the worker.`,
      )
      .argument('[worker-args...]', 'further worker flags, after --, e.g. -- --log-level debug')
      .option(
        '--user <name>',
        `account the service runs as (Linux default: ${SERVICE_USER}, created when missing; macOS default: you); a named account must exist`,
      )
      .option('--config-file <path>', `config file the service reads (Linux default: ${SYSTEMD_CONFIG_DIR}/config.yaml)`, absolute)
      .option('--api-key-file <path>', `file holding the API key (Linux default: ${SYSTEMD_CONFIG_DIR}/api-key)`, absolute),
  )
    .addOption(new Option('--platform <platform>', "with --dry-run: print this platform's definition instead of this machine's").choices(['linux', 'darwin']))
    .action((workerArgs: string[], options: ServiceOptions) => usageErrors(() => installService(host, options, where(), workerArgs)));
  dryRun(service.command('uninstall').description('stop the service and remove its definition (keeps the user, config, key and journal)')).action(
    (options: ServiceOptions) => usageErrors(() => uninstallService(host, options)),
  );
  service
    .command('status')
    .description("show the service manager's view of the worker")
    .action(() => usageErrors(() => serviceStatus(host)));
}
