// `oz-worker service install | uninstall | status`: registers the worker with
// the platform's service manager (systemd on Linux, launchd on macOS).
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { homedir, userInfo } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { Option, type Command } from 'commander';
import { DEFAULT_SHUTDOWN_GRACE_MS } from '../config/worker-config.js';
import { LAUNCHD_LABEL, launchdPlist, SYSTEMD_UNIT_NAME, systemdUnit, type ServiceSpec } from './units.js';

/** The side effects a service command needs; tests provide a recording fake. */
export interface ServiceHost {
  platform: NodeJS.Platform;
  writeFile(path: string, text: string): Promise<void>;
  removeFile(path: string): Promise<void>;
  run(command: string, args: string[]): Promise<{ ok: boolean; output: string }>;
  print(text: string): void;
  /** Whether an account of that name exists here. */
  userExists(name: string): Promise<boolean>;
  /** Why this machine's service manager cannot be used, or undefined when it can. */
  serviceManagerMissing(): string | undefined;
}

/** A service command asked for something that cannot be done; exit 2 with this message. */
export class ServiceUsageError extends Error {}

export const realServiceHost: ServiceHost = {
  platform: process.platform,
  async writeFile(path, text) {
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, text, { mode: 0o644 });
  },
  async removeFile(path) {
    await rm(path, { force: true });
  },
  async run(command, args) {
    try {
      const { stdout, stderr } = await promisify(execFile)(command, args);
      return { ok: true, output: `${stdout}${stderr}` };
    } catch (error) {
      const e = error as { stdout?: string; stderr?: string; message: string };
      return { ok: false, output: `${e.stdout ?? ''}${e.stderr ?? ''}` || e.message };
    }
  },
  print: (text) => process.stdout.write(text.endsWith('\n') ? text : `${text}\n`),
  async userExists(name) {
    try {
      await promisify(execFile)('id', ['-u', name]);
      return true;
    } catch {
      return false;
    }
  },
  serviceManagerMissing() {
    if (process.platform === 'darwin') return undefined;
    // systemd creates this directory at boot; containers and WSL without systemd lack it.
    return existsSync('/run/systemd/system') ? undefined : 'systemd is not running on this machine (no /run/systemd/system)';
  },
};

export interface ServiceOptions {
  user?: string;
  configFile?: string;
  apiKeyFile?: string;
  dryRun?: boolean;
  /** Whose unit to print with --dry-run (default: this machine's). */
  platform?: 'linux' | 'darwin';
}

/** The service manager's commands that install, in order. */
function installSteps(kind: 'launchd' | 'systemd', unitPath: string): Array<[string, string[]]> {
  return kind === 'launchd'
    ? [['launchctl', ['bootstrap', 'system', unitPath]]]
    : [
        ['systemctl', ['daemon-reload']],
        ['systemctl', ['enable', '--now', SYSTEMD_UNIT_NAME]],
      ];
}

/** Where each platform keeps the unit file and the worker's files. */
export function serviceLayout(platform: NodeJS.Platform, options: ServiceOptions, binPath: string, nodePath: string) {
  const user = options.user ?? userInfo().username;
  if (platform === 'darwin') {
    const home = user === userInfo().username ? homedir() : `/Users/${user}`;
    const support = join(home, 'Library', 'Application Support', 'oz-worker');
    const spec: ServiceSpec = {
      nodePath,
      binPath,
      user,
      configFile: options.configFile ?? join(support, 'config.yaml'),
      apiKeyFile: options.apiKeyFile ?? join(support, 'api-key'),
      writablePaths: [support],
      logFile: join(home, 'Library', 'Logs', 'oz-worker', 'worker.log'),
      graceSeconds: DEFAULT_SHUTDOWN_GRACE_MS / 1000,
    };
    return { kind: 'launchd' as const, unitPath: `/Library/LaunchDaemons/${LAUNCHD_LABEL}.plist`, text: launchdPlist(spec), spec };
  }
  const spec: ServiceSpec = {
    nodePath,
    binPath,
    user,
    configFile: options.configFile ?? '/etc/oz-worker/config.yaml',
    apiKeyFile: options.apiKeyFile ?? '/etc/oz-worker/api-key',
    writablePaths: ['/var/lib/oz-worker', '/var/lib/oz'],
    logFile: '',
    graceSeconds: DEFAULT_SHUTDOWN_GRACE_MS / 1000,
  };
  return { kind: 'systemd' as const, unitPath: `/etc/systemd/system/${SYSTEMD_UNIT_NAME}`, text: systemdUnit(spec), spec };
}

export async function installService(host: ServiceHost, options: ServiceOptions, binPath: string, nodePath: string): Promise<number> {
  const platform = options.platform ?? host.platform;
  if (platform !== host.platform && !options.dryRun) {
    throw new ServiceUsageError(`--platform ${platform} only prints that platform's unit; add --dry-run (this machine is ${host.platform})`);
  }
  if (options.user !== undefined && platform === host.platform && !(await host.userExists(options.user))) {
    throw new ServiceUsageError(
      `there is no user '${options.user}' on this machine; create it first (e.g. useradd --system ${options.user}) or pick another --user`,
    );
  }
  const layout = serviceLayout(platform, options, binPath, nodePath);
  const steps = installSteps(layout.kind, layout.unitPath);
  if (options.dryRun) {
    host.print(`# would write ${layout.unitPath}\n${layout.text}`);
    host.print(`# then run, as root:\n${steps.map(([command, args]) => `${command} ${args.join(' ')}`).join('\n')}`);
    return 0;
  }
  await host.writeFile(layout.unitPath, layout.text);
  for (const [command, args] of steps) {
    const result = await host.run(command, args);
    if (!result.ok) {
      host.print(`✘ ${command} ${args.join(' ')} failed: ${result.output.trim()}\n  Run it yourself (as root) once the problem is fixed.`);
      return 1;
    }
  }
  host.print(
    `✔ Installed ${layout.unitPath}\n  The worker reads ${layout.spec.configFile} and its API key from ${layout.spec.apiKeyFile} (mode 0600, owned by ${layout.spec.user}).`,
  );
  return 0;
}

export async function uninstallService(host: ServiceHost, options: ServiceOptions, binPath: string, nodePath: string): Promise<number> {
  const layout = serviceLayout(host.platform, options, binPath, nodePath);
  if (options.dryRun) {
    host.print(`# would stop the service and remove ${layout.unitPath}`);
    return 0;
  }
  if (layout.kind === 'launchd') await host.run('launchctl', ['bootout', `system/${LAUNCHD_LABEL}`]);
  else await host.run('systemctl', ['disable', '--now', SYSTEMD_UNIT_NAME]);
  await host.removeFile(layout.unitPath);
  if (layout.kind === 'systemd') await host.run('systemctl', ['daemon-reload']);
  host.print(`✔ Removed ${layout.unitPath}`);
  return 0;
}

export async function serviceStatus(host: ServiceHost, options: ServiceOptions, binPath: string, nodePath: string): Promise<number> {
  const missing = host.serviceManagerMissing();
  if (missing) {
    host.print(`${missing}: no oz-worker service to show; run the worker in the foreground or under your own supervisor`);
    return 3;
  }
  const layout = serviceLayout(host.platform, options, binPath, nodePath);
  const result =
    layout.kind === 'launchd'
      ? await host.run('launchctl', ['print', `system/${LAUNCHD_LABEL}`])
      : await host.run('systemctl', ['status', '--no-pager', SYSTEMD_UNIT_NAME]);
  host.print(result.output.trim() || (result.ok ? 'running' : 'not installed'));
  return result.ok ? 0 : 3;
}

export function registerServiceCommands(program: Command, host: ServiceHost = realServiceHost): void {
  const binPath = resolve(process.argv[1] ?? 'oz-worker');
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
      .description('write the service definition and start it')
      .option('--user <name>', 'account the service runs as (default: you); it must exist')
      .option('--config-file <path>', 'config file the service reads', absolute)
      .option('--api-key-file <path>', 'file holding the API key', absolute),
  )
    .addOption(new Option('--platform <platform>', "with --dry-run: print this platform's definition instead of this machine's").choices(['linux', 'darwin']))
    .action((options: ServiceOptions) => usageErrors(() => installService(host, options, binPath, process.execPath)));
  dryRun(service.command('uninstall').description('stop the service and remove its definition')).action((options: ServiceOptions) =>
    usageErrors(() => uninstallService(host, options, binPath, process.execPath)),
  );
  service
    .command('status')
    .description("show the service manager's view of the worker")
    .action(() => usageErrors(() => serviceStatus(host, {}, binPath, process.execPath)));
}
