// Service definitions: valid for their service manager, matching what ships
// under deploy/, and `service install --dry-run` prints them without side effects.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse as parsePlist } from 'plist';
import { describe, expect, it } from 'vitest';
import { installService, serviceLayout, serviceStatus, type ServiceHost } from '../../src/service/service-command.js';
import { launchdPlist, systemdUnit, type ServiceSpec } from '../../src/service/units.js';

const ROOT = resolve(import.meta.dirname, '../..');

/** The specs the files under deploy/ are written from. */
const SHIPPED_SYSTEMD: ServiceSpec = {
  nodePath: '/usr/bin/node',
  binPath: '/usr/lib/node_modules/oz-worker/bin/oz-worker.js',
  configFile: '/etc/oz-worker/config.yaml',
  apiKeyFile: '/etc/oz-worker/api-key',
  user: 'oz',
  writablePaths: ['/var/lib/oz-worker', '/var/lib/oz'],
  logFile: '',
  graceSeconds: 25,
};
const SHIPPED_LAUNCHD: ServiceSpec = {
  nodePath: '/usr/local/bin/node',
  binPath: '/usr/local/lib/node_modules/oz-worker/bin/oz-worker.js',
  configFile: '/Users/YOUR_USER/Library/Application Support/oz-worker/config.yaml',
  apiKeyFile: '/Users/YOUR_USER/Library/Application Support/oz-worker/api-key',
  user: 'YOUR_USER',
  writablePaths: [],
  logFile: '/Users/YOUR_USER/Library/Logs/oz-worker/worker.log',
  graceSeconds: 25,
};

function recordingHost(platform: NodeJS.Platform): ServiceHost & { writes: string[]; runs: string[]; printed: string[] } {
  const host = {
    platform,
    writes: [] as string[],
    runs: [] as string[],
    printed: [] as string[],
    async writeFile(path: string) {
      host.writes.push(path);
    },
    async removeFile() {},
    async run(command: string, args: string[]) {
      host.runs.push([command, ...args].join(' '));
      return { ok: true, output: '' };
    },
    print(text: string) {
      host.printed.push(text);
    },
    async userExists(name: string) {
      return name !== 'nobody-here';
    },
    serviceManagerMissing: (): string | undefined => undefined,
  };
  return host;
}

describe('systemd unit', () => {
  const unit = systemdUnit(SHIPPED_SYSTEMD);

  it('restarts on failure, stops with SIGTERM inside the grace period, and hardens without breaking the JIT', () => {
    expect(unit).toMatch(/^Restart=on-failure$/m);
    expect(unit).toMatch(/^KillSignal=SIGTERM$/m);
    expect(unit).toMatch(/^TimeoutStopSec=35$/m);
    expect(unit).toMatch(/^NoNewPrivileges=yes$/m);
    expect(unit).toMatch(/^ProtectSystem=strict$/m);
    expect(unit).toMatch(/^ProtectHome=read-only$/m);
    expect(unit).toMatch(/^PrivateTmp=yes$/m);
    expect(unit).toMatch(/^ReadWritePaths=\/var\/lib\/oz-worker \/var\/lib\/oz$/m);
    expect(unit).not.toMatch(/^MemoryDenyWriteExecute=/m);
    expect(unit).toMatch(/^Environment=WARP_API_KEY_FILE=\/etc\/oz-worker\/api-key$/m);
    expect(unit).not.toMatch(/WARP_API_KEY=/);
  });

  it('is what ships in deploy/systemd/', () => {
    expect(readFileSync(join(ROOT, 'deploy/systemd/oz-worker.service'), 'utf8')).toBe(unit);
  });

  const analyze = spawnSync('systemd-analyze', ['--version']);
  it.skipIf(analyze.status !== 0)('passes systemd-analyze verify', () => {
    const dir = mkdtempSync(join(tmpdir(), 'oz-unit-'));
    try {
      const path = join(dir, 'oz-worker.service');
      const bin = join(ROOT, 'bin/oz-worker.js');
      writeFileSync(path, systemdUnit({ ...SHIPPED_SYSTEMD, nodePath: process.execPath, binPath: bin, user: 'root' }));
      const result = spawnSync('systemd-analyze', ['verify', path], { encoding: 'utf8' });
      const problems = `${result.stderr}`
        .split('\n')
        .filter((line) => line.includes('oz-worker.service') && !/network-online|Failed to create|Cannot find unit|Unit .* not found/.test(line));
      expect(problems).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('launchd plist', () => {
  const text = launchdPlist(SHIPPED_LAUNCHD);

  it('parses as a property list with the daemon settings', () => {
    const parsed = parsePlist(text) as Record<string, unknown>;
    expect(parsed).toMatchObject({
      Label: 'dev.oz.worker',
      RunAtLoad: true,
      KeepAlive: true,
      ExitTimeOut: 35,
      UserName: 'YOUR_USER',
      StandardOutPath: SHIPPED_LAUNCHD.logFile,
      EnvironmentVariables: { WARP_API_KEY_FILE: SHIPPED_LAUNCHD.apiKeyFile },
    });
    expect(parsed.ProgramArguments).toEqual([SHIPPED_LAUNCHD.nodePath, SHIPPED_LAUNCHD.binPath, '--config-file', SHIPPED_LAUNCHD.configFile]);
  });

  it('escapes XML in paths', () => {
    const parsed = parsePlist(launchdPlist({ ...SHIPPED_LAUNCHD, configFile: '/tmp/a&b<c>.yaml' })) as { ProgramArguments: string[] };
    expect(parsed.ProgramArguments[3]).toBe('/tmp/a&b<c>.yaml');
  });

  it('is what ships in deploy/launchd/', () => {
    expect(readFileSync(join(ROOT, 'deploy/launchd/dev.oz.worker.plist'), 'utf8')).toBe(text);
  });
});

describe('service install', () => {
  it('--dry-run prints the unit and changes nothing', async () => {
    const host = recordingHost('linux');
    const code = await installService(host, { dryRun: true, user: 'oz' }, '/opt/oz/bin/oz-worker.js', '/usr/bin/node');
    expect(code).toBe(0);
    expect(host.writes).toEqual([]);
    expect(host.runs).toEqual([]);
    expect(host.printed.join('\n')).toContain('# would write /etc/systemd/system/oz-worker.service');
    expect(host.printed.join('\n')).toContain('ExecStart=/usr/bin/node /opt/oz/bin/oz-worker.js --config-file /etc/oz-worker/config.yaml');
  });

  it('--dry-run also prints the commands it would run', async () => {
    const host = recordingHost('linux');
    await installService(host, { dryRun: true }, '/opt/oz/bin/oz-worker.js', '/usr/bin/node');
    expect(host.printed.at(-1)).toBe('# then run, as root:\nsystemctl daemon-reload\nsystemctl enable --now oz-worker.service');
  });

  it('refuses a --user that does not exist, also with --dry-run', async () => {
    const host = recordingHost('linux');
    await expect(installService(host, { dryRun: true, user: 'nobody-here' }, '/b.js', '/usr/bin/node')).rejects.toThrow(
      "there is no user 'nobody-here' on this machine; create it first (e.g. useradd --system nobody-here) or pick another --user",
    );
    expect(host.printed).toEqual([]);
  });

  it('--platform darwin --dry-run on Linux prints the LaunchDaemon and launchctl; without --dry-run it refuses', async () => {
    const host = recordingHost('linux');
    await installService(host, { dryRun: true, platform: 'darwin', user: 'ada' }, '/opt/b.js', '/usr/local/bin/node');
    expect(host.printed.join('\n')).toContain('# would write /Library/LaunchDaemons/dev.oz.worker.plist');
    expect(host.printed.join('\n')).toContain('launchctl bootstrap system /Library/LaunchDaemons/dev.oz.worker.plist');
    await expect(installService(host, { platform: 'darwin' }, '/opt/b.js', '/usr/bin/node')).rejects.toThrow('add --dry-run');
    expect(host.writes).toEqual([]);
  });

  it('status without systemd says so in one line', async () => {
    const host = { ...recordingHost('linux'), serviceManagerMissing: () => 'systemd is not running on this machine (no /run/systemd/system)' };
    expect(await serviceStatus(host, {}, '/b.js', '/usr/bin/node')).toBe(3);
    expect(host.printed).toEqual([
      'systemd is not running on this machine (no /run/systemd/system): no oz-worker service to show; run the worker in the foreground or under your own supervisor',
    ]);
  });

  it('on Linux writes the unit, reloads and enables it', async () => {
    const host = recordingHost('linux');
    expect(await installService(host, { user: 'oz' }, '/opt/b.js', '/usr/bin/node')).toBe(0);
    expect(host.writes).toEqual(['/etc/systemd/system/oz-worker.service']);
    expect(host.runs).toEqual(['systemctl daemon-reload', 'systemctl enable --now oz-worker.service']);
  });

  it('on macOS writes a LaunchDaemon and bootstraps it', async () => {
    const host = recordingHost('darwin');
    expect(await installService(host, { user: 'ada' }, '/opt/b.js', '/usr/local/bin/node')).toBe(0);
    expect(host.writes).toEqual(['/Library/LaunchDaemons/dev.oz.worker.plist']);
    expect(host.runs).toEqual(['launchctl bootstrap system /Library/LaunchDaemons/dev.oz.worker.plist']);
    const layout = serviceLayout('darwin', { user: 'ada' }, '/opt/b.js', '/usr/local/bin/node');
    expect(layout.spec.configFile).toBe('/Users/ada/Library/Application Support/oz-worker/config.yaml');
  });

  it('runs through the real bin', () => {
    const out = execFileSync(process.execPath, [join(ROOT, 'bin/oz-worker.js'), 'service', 'install', '--dry-run', '--user', 'root'], {
      encoding: 'utf8',
    });
    expect(out).toContain('[Service]');
  });

  it('through the bin: relative --config-file made absolute, an unknown --user refused, status and uninstall show only their own flags', () => {
    const bin = join(ROOT, 'bin/oz-worker.js');
    const run = (args: string[]) => spawnSync(process.execPath, [bin, 'service', ...args], { cwd: tmpdir(), encoding: 'utf8' });
    const dry = run(['install', '--dry-run', '--config-file', 'conf/oz.yaml']);
    expect(dry.stdout).toContain(`--config-file ${join(realpathSync(tmpdir()), 'conf/oz.yaml')}`);
    expect(dry.stdout).toContain('systemctl enable --now oz-worker.service');
    const unknown = run(['install', '--dry-run', '--user', 'no-such-user-oz']);
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toMatch(/^oz-worker: error: there is no user 'no-such-user-oz' on this machine/);
    const mac = run(['install', '--dry-run', '--platform', 'darwin']);
    expect(mac.stdout).toContain('<key>Label</key>');
    const statusHelp = run(['status', '--help']).stdout;
    expect(statusHelp).not.toMatch(/--user|--config-file|--api-key-file|--dry-run/);
    const uninstallHelp = run(['uninstall', '--help']).stdout;
    expect(uninstallHelp).toContain('--dry-run');
    expect(uninstallHelp).not.toMatch(/--user|--config-file|--api-key-file/);
  });

  it.skipIf(existsSync('/run/systemd/system') || process.platform !== 'linux')('status on a Linux machine without systemd prints one line', () => {
    const out = spawnSync(process.execPath, [join(ROOT, 'bin/oz-worker.js'), 'service', 'status'], { encoding: 'utf8' });
    expect(out.status).toBe(3);
    expect(out.stdout.trim().split('\n')).toHaveLength(1);
    expect(out.stdout).toContain('systemd is not running on this machine');
  });
});
