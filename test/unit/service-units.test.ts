// Service definitions: valid for their service manager (systemd-analyze; a
// table of launchd.plist keys and types), matching what ships under deploy/,
// and naming a Node that survives upgrades.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse as parsePlist } from 'plist';
import { describe, expect, it } from 'vitest';
import { stableNodePath } from '../../src/service/node-path.js';
import { keyDeliveryFor, launchdPlist, systemdUnit, writableDirectories, type SystemdSpec } from '../../src/service/units.js';
import { SHIPPED_LAUNCHD, SHIPPED_SYSTEMD } from '../support/shipped-units.js';

const ROOT = resolve(import.meta.dirname, '../..');
const line = (unit: string, key: string): string[] => [...unit.matchAll(new RegExp(`^${key}=(.*)$`, 'gm'))].map((m) => m[1]!);

describe('systemd unit', () => {
  const unit = systemdUnit(SHIPPED_SYSTEMD);

  it('runs the worker as its user with its journal in the state directory systemd creates', () => {
    expect(line(unit, 'User')).toEqual(['oz-worker']);
    expect(line(unit, 'ExecStart')).toEqual([
      '/usr/bin/node /usr/lib/node_modules/oz-worker/bin/oz-worker.js --config-file /etc/oz-worker/config.yaml --state-dir /var/lib/oz-worker',
    ]);
    // Every writable directory exists before the namespace is set up (no 226/NAMESPACE) and belongs to User=.
    expect(line(unit, 'StateDirectory')).toEqual(['oz-worker oz/workspaces']);
    expect(line(unit, 'StateDirectoryMode')).toEqual(['0700']);
    expect(line(unit, 'ReadWritePaths')).toEqual([]);
  });

  it('hands over the key as a credential: the file stays root-only, the worker reads the copy', () => {
    expect(line(unit, 'LoadCredential')).toEqual(['api-key:/etc/oz-worker/api-key']);
    expect(line(unit, 'Environment')).toContain('WARP_API_KEY_FILE=/run/credentials/oz-worker.service/api-key');
    expect(unit).not.toMatch(/WARP_API_KEY=/);
  });

  it('on a systemd older than LoadCredential= (247) names the key file, which install gives to the user', () => {
    expect(keyDeliveryFor(246, '/k')).toEqual({ kind: 'owned-file', path: '/k' });
    expect(keyDeliveryFor(247, '/k')).toEqual({ kind: 'credential', sourceFile: '/k' });
    expect(keyDeliveryFor(undefined, '/k')).toEqual({ kind: 'credential', sourceFile: '/k' });
    const old = systemdUnit({ ...SHIPPED_SYSTEMD, key: keyDeliveryFor(239, '/etc/oz-worker/api-key') });
    expect(line(old, 'LoadCredential')).toEqual([]);
    expect(line(old, 'Environment')).toContain('WARP_API_KEY_FILE=/etc/oz-worker/api-key');
  });

  it('restarts on failure, stops with SIGTERM inside the grace period, and hardens without breaking the JIT', () => {
    expect(line(unit, 'Restart')).toEqual(['on-failure']);
    expect(line(unit, 'KillSignal')).toEqual(['SIGTERM']);
    expect(line(unit, 'TimeoutStopSec')).toEqual(['35']);
    for (const setting of ['NoNewPrivileges=yes', 'ProtectSystem=strict', 'ProtectHome=read-only', 'PrivateTmp=yes']) expect(unit).toContain(`\n${setting}\n`);
    expect(unit).not.toMatch(/^MemoryDenyWriteExecute=/m);
  });

  it('documents itself with the installed files, not an unpublished npm page', () => {
    expect(line(unit, 'Documentation')).toEqual(['file:/usr/lib/node_modules/oz-worker/README.md']);
    expect(unit).not.toContain('npmjs.com');
  });

  it('passes further worker flags after its own, quoting for systemd (% is a specifier there)', () => {
    const custom = systemdUnit({ ...SHIPPED_SYSTEMD, workerArgs: ['--log-level', 'debug', '-e', 'GREETING=50% "off"'] });
    expect(line(custom, 'ExecStart')[0]).toMatch(/--state-dir \/var\/lib\/oz-worker --log-level debug -e "GREETING=50%% \\"off\\""$/);
  });

  it.each([
    ['the default workspace root', ['/var/lib/oz-worker', '/var/lib/oz/workspaces'], ['oz-worker', 'oz/workspaces'], []],
    ['workspaces inside the state directory', ['/var/lib/oz-worker', '/var/lib/oz-worker/ws'], ['oz-worker'], []],
    ['workspaces elsewhere', ['/var/lib/oz-worker', '/srv/oz/ws/'], ['oz-worker'], ['/srv/oz/ws']],
    ['a shared target directory under a workspace root', ['/var/lib/oz-worker', '/srv/ws', '/srv/ws/repo'], ['oz-worker'], ['/srv/ws']],
  ])('writable directories: %s', (_name, paths, stateDirectories, readWritePaths) => {
    expect(writableDirectories(paths)).toEqual({ stateDirectories, readWritePaths });
  });

  it('is what ships in deploy/systemd/', () => {
    expect(readFileSync(join(ROOT, 'deploy/systemd/oz-worker.service'), 'utf8')).toBe(unit);
  });

  const analyze = spawnSync('systemd-analyze', ['--version']);
  if (analyze.status !== 0) console.log('systemd-analyze verify skipped: systemd-analyze is not installed here');
  it.skipIf(analyze.status !== 0).each([
    ['credential', SHIPPED_SYSTEMD.key],
    ['owned key file', keyDeliveryFor(239, '/etc/oz-worker/api-key')],
  ])('passes systemd-analyze verify (%s)', (_name, key) => {
    const dir = mkdtempSync(join(tmpdir(), 'oz-unit-'));
    try {
      const path = join(dir, 'oz-worker.service');
      const spec: SystemdSpec = {
        ...SHIPPED_SYSTEMD,
        key,
        nodePath: process.execPath,
        binPath: join(ROOT, 'bin/oz-worker.js'),
        user: 'root',
        writablePaths: ['/srv/oz-ws'],
      };
      writeFileSync(path, systemdUnit(spec));
      const result = spawnSync('systemd-analyze', ['verify', path], { encoding: 'utf8' });
      const problems = `${result.stderr}`
        .split('\n')
        .filter((text) => text.includes('oz-worker.service') && !/network-online|Failed to create|Cannot find unit|Unit .* not found/.test(text));
      expect(problems).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/**
 * launchd.plist(5): every key a job may carry, with its type. A key we write
 * must be here and typed as listed (`launchctl bootstrap` rejects or ignores
 * anything else).
 */
type PlistType = 'string' | 'boolean' | 'integer' | 'string[]' | 'dict<string>' | 'dict' | 'boolean|dict' | 'string|string[]' | 'dict|dict[]';
const LAUNCHD_KEYS: Record<string, PlistType> = {
  Label: 'string',
  Disabled: 'boolean',
  UserName: 'string',
  GroupName: 'string',
  inetdCompatibility: 'dict',
  LimitLoadToHosts: 'string[]',
  LimitLoadFromHosts: 'string[]',
  LimitLoadToSessionType: 'string|string[]',
  LimitLoadToHardware: 'dict',
  LimitLoadFromHardware: 'dict',
  Program: 'string',
  ProgramArguments: 'string[]',
  EnableGlobbing: 'boolean',
  EnableTransactions: 'boolean',
  EnablePressuredExit: 'boolean',
  OnDemand: 'boolean',
  ServiceIPC: 'boolean',
  KeepAlive: 'boolean|dict',
  RunAtLoad: 'boolean',
  RootDirectory: 'string',
  WorkingDirectory: 'string',
  EnvironmentVariables: 'dict<string>',
  Umask: 'integer',
  TimeOut: 'integer',
  ExitTimeOut: 'integer',
  ThrottleInterval: 'integer',
  InitGroups: 'boolean',
  WatchPaths: 'string[]',
  QueueDirectories: 'string[]',
  StartOnMount: 'boolean',
  StartInterval: 'integer',
  StartCalendarInterval: 'dict|dict[]',
  StandardInPath: 'string',
  StandardOutPath: 'string',
  StandardErrorPath: 'string',
  Debug: 'boolean',
  WaitForDebugger: 'boolean',
  SoftResourceLimits: 'dict',
  HardResourceLimits: 'dict',
  Nice: 'integer',
  ProcessType: 'string',
  AbandonProcessGroup: 'boolean',
  LowPriorityIO: 'boolean',
  LowPriorityBackgroundIO: 'boolean',
  MaterializeDatalessFiles: 'boolean',
  LaunchOnlyOnce: 'boolean',
  MachServices: 'dict',
  Sockets: 'dict',
  LaunchEvents: 'dict',
  SessionCreate: 'boolean',
  AssociatedBundleIdentifiers: 'string|string[]',
};

const isDict = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date);
const isStrings = (value: unknown) => Array.isArray(value) && value.every((item) => typeof item === 'string');

/** Whether a parsed value has the type; integers are also checked in the XML (`<integer>`, not `<real>`). */
function typed(value: unknown, type: PlistType, xmlElement: string): boolean {
  switch (type) {
    case 'string':
      return typeof value === 'string';
    case 'boolean':
      return typeof value === 'boolean';
    case 'integer':
      return Number.isInteger(value) && xmlElement === 'integer';
    case 'string[]':
      return isStrings(value);
    case 'dict<string>':
      return isDict(value) && Object.values(value).every((item) => typeof item === 'string');
    case 'dict':
      return isDict(value);
    case 'boolean|dict':
      return typeof value === 'boolean' || isDict(value);
    case 'string|string[]':
      return typeof value === 'string' || isStrings(value);
    case 'dict|dict[]':
      return isDict(value) || (Array.isArray(value) && value.every(isDict));
  }
}

/** The element each top-level key's value is written as. */
function topLevelElements(xml: string): Record<string, string> {
  const body = /<plist[^>]*>\s*<dict>([\s\S]*)<\/dict>\s*<\/plist>/.exec(xml)![1]!;
  const out: Record<string, string> = {};
  // Top-level entries are indented by two spaces in what we write.
  for (const match of body.matchAll(/^ {2}<key>([^<]+)<\/key>\n {2}<(\w+)/gm)) out[match[1]!] = match[2]!;
  return out;
}

describe('launchd plist', () => {
  const text = launchdPlist(SHIPPED_LAUNCHD);
  const parsed = parsePlist(text) as Record<string, unknown>;

  it('uses only launchd.plist keys, each with its type', () => {
    const elements = topLevelElements(text);
    expect(Object.keys(elements).sort()).toEqual(Object.keys(parsed).sort());
    for (const [key, value] of Object.entries(parsed)) {
      expect(LAUNCHD_KEYS[key], `${key} is not a launchd.plist key`).toBeDefined();
      expect(typed(value, LAUNCHD_KEYS[key]!, elements[key]!), `${key} should be ${LAUNCHD_KEYS[key]}`).toBe(true);
    }
  });

  it('the key check catches a misspelled or mistyped key', () => {
    const wrong = parsePlist(text.replace('<key>ExitTimeOut</key>', '<key>ExitTimeout</key>').replace('<integer>10</integer>', '<real>10.5</real>')) as Record<
      string,
      unknown
    >;
    expect(LAUNCHD_KEYS.ExitTimeout).toBeUndefined();
    expect(typed(wrong.ThrottleInterval, 'integer', 'real')).toBe(false);
    expect(Object.keys(wrong).filter((key) => !(key in LAUNCHD_KEYS))).toEqual(['ExitTimeout']);
  });

  it('runs the worker as its owner, restarts it, and logs where install made the directory', () => {
    expect(parsed).toMatchObject({
      Label: 'dev.oz.worker',
      RunAtLoad: true,
      KeepAlive: true,
      ExitTimeOut: 35,
      UserName: 'YOUR_USER',
      StandardOutPath: SHIPPED_LAUNCHD.logFile,
      EnvironmentVariables: { WARP_API_KEY_FILE: SHIPPED_LAUNCHD.apiKeyFile },
    });
    expect(parsed.ProgramArguments).toEqual([
      SHIPPED_LAUNCHD.nodePath,
      SHIPPED_LAUNCHD.binPath,
      '--config-file',
      SHIPPED_LAUNCHD.configFile,
      '--state-dir',
      SHIPPED_LAUNCHD.stateDir,
    ]);
  });

  it('escapes XML in paths', () => {
    const escaped = parsePlist(launchdPlist({ ...SHIPPED_LAUNCHD, configFile: '/tmp/a&b<c>.yaml' })) as { ProgramArguments: string[] };
    expect(escaped.ProgramArguments[3]).toBe('/tmp/a&b<c>.yaml');
  });

  it('is what ships in deploy/launchd/', () => {
    expect(readFileSync(join(ROOT, 'deploy/launchd/dev.oz.worker.plist'), 'utf8')).toBe(text);
  });
});

describe('the Node a service names', () => {
  it.each([
    ['Homebrew on Apple silicon', '/opt/homebrew/Cellar/node/24.1.0/bin/node', '/opt/homebrew/opt/node/bin/node'],
    ['Homebrew on Intel', '/usr/local/Cellar/node/24.1.0_1/bin/node', '/usr/local/opt/node/bin/node'],
    ['a versioned Homebrew formula (keg-only)', '/opt/homebrew/Cellar/node@22/22.12.0/bin/node', '/opt/homebrew/opt/node@22/bin/node'],
    ['Homebrew on Linux', '/home/linuxbrew/.linuxbrew/Cellar/node/24.1.0/bin/node', '/home/linuxbrew/.linuxbrew/opt/node/bin/node'],
    ['the official macOS installer', '/usr/local/bin/node', '/usr/local/bin/node'],
    ['a distribution package', '/usr/bin/node', '/usr/bin/node'],
    ['MacPorts', '/opt/local/bin/node', '/opt/local/bin/node'],
    ['the npm node package', '/srv/oz/.cache/node24/node_modules/node/bin/node', '/srv/oz/.cache/node24/node_modules/node/bin/node'],
  ])('%s: %s → %s', (_name, execPath, expected) => {
    expect(stableNodePath(execPath)).toEqual({ path: expected });
  });

  it.each([
    ['nvm', '/Users/ada/.nvm/versions/node/v24.1.0/bin/node'],
    ['fnm', '/Users/ada/Library/Application Support/fnm/node-versions/v24.1.0/installation/bin/node'],
    ['Volta', '/Users/ada/.volta/tools/image/node/24.1.0/bin/node'],
    ['asdf', '/home/ada/.asdf/installs/nodejs/24.1.0/bin/node'],
    ['mise', '/home/ada/.local/share/mise/installs/node/24.1.0/bin/node'],
    ['n', '/usr/local/n/versions/node/24.1.0/bin/node'],
  ])('%s keeps its version and says so', (manager, execPath) => {
    const choice = stableNodePath(execPath);
    expect(choice.path).toBe(execPath);
    expect(choice.pinned).toContain(`installed by ${manager}`);
    expect(choice.pinned).toContain('run `service install` again');
  });
});
