// Service definitions: valid for their service manager, matching what ships
// under deploy/, and `service install --dry-run` prints them without side effects.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse as parsePlist } from 'plist';
import { describe, expect, it } from 'vitest';
import { installService, serviceLayout, type ServiceHost } from '../../src/service/service-command.js';
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
    const out = execFileSync(process.execPath, [join(ROOT, 'bin/oz-worker.js'), 'service', 'install', '--dry-run', '--user', 'oz'], {
      encoding: 'utf8',
    });
    expect(out).toContain('[Service]');
  });
});
