// `oz-worker service install | uninstall | status`: registers the worker with
// the platform's service manager (systemd on Linux, launchd on macOS).
import { execFile } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { homedir, userInfo } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import type { Command } from 'commander';
import { DEFAULT_SHUTDOWN_GRACE_MS } from '../config/worker-config.js';
import { LAUNCHD_LABEL, launchdPlist, SYSTEMD_UNIT_NAME, systemdUnit, type ServiceSpec } from './units.js';

/** The side effects a service command needs; tests provide a recording fake. */
export interface ServiceHost {
  platform: NodeJS.Platform;
  writeFile(path: string, text: string): Promise<void>;
  removeFile(path: string): Promise<void>;
  run(command: string, args: string[]): Promise<{ ok: boolean; output: string }>;
  print(text: string): void;
}

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
};

export interface ServiceOptions {
  user?: string;
  configFile?: string;
  apiKeyFile?: string;
  dryRun?: boolean;
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
  const layout = serviceLayout(host.platform, options, binPath, nodePath);
  if (options.dryRun) {
    host.print(`# would write ${layout.unitPath}\n${layout.text}`);
    return 0;
  }
  await host.writeFile(layout.unitPath, layout.text);
  const steps: Array<[string, string[]]> =
    layout.kind === 'launchd'
      ? [['launchctl', ['bootstrap', 'system', layout.unitPath]]]
      : [
          ['systemctl', ['daemon-reload']],
          ['systemctl', ['enable', '--now', SYSTEMD_UNIT_NAME]],
        ];
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
  const common = (command: Command) =>
    command
      .option('--user <name>', 'account the service runs as (default: you)')
      .option('--config-file <path>', 'config file the service reads')
      .option('--api-key-file <path>', 'file holding the API key')
      .option('--dry-run', 'print what would be written and run, change nothing');
  const exitWith = (code: number) => {
    process.exitCode = code;
  };
  common(service.command('install').description('write the service definition and start it')).action(async (options: ServiceOptions) =>
    exitWith(await installService(host, options, binPath, process.execPath)),
  );
  common(service.command('uninstall').description('stop the service and remove its definition')).action(async (options: ServiceOptions) =>
    exitWith(await uninstallService(host, options, binPath, process.execPath)),
  );
  common(service.command('status').description("show the service manager's view of the worker")).action(async (options: ServiceOptions) =>
    exitWith(await serviceStatus(host, options, binPath, process.execPath)),
  );
}
