// `oz-worker service install | uninstall | status`: the plan built from what is
// on the machine (table tests of the pure planners), what a run does in what
// order on a recording host, and the command line through the real bin.
import { spawnSync } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { CommandResult, PathInfo, ServiceAccount, ServiceHost } from '../../src/service/host.js';
import { launchdInstallPlan, type LaunchdFacts } from '../../src/service/launchd-install.js';
import { stepAsShell, type Step } from '../../src/service/plan.js';
import { installService, serviceStatus, uninstallService, type Installation } from '../../src/service/service-command.js';
import { configuredPaths, flagValue, systemdInstallPlan, workerArgsProblem, type SystemdFacts } from '../../src/service/systemd-install.js';

const ROOT = resolve(import.meta.dirname, '../..');
const WHERE: Installation = {
  binPath: '/usr/lib/node_modules/oz-worker/bin/oz-worker.js',
  nodePath: '/usr/bin/node',
  packageDir: '/usr/lib/node_modules/oz-worker',
};
const ROOT_ACCOUNT: ServiceAccount = { name: 'root', uid: 0, gid: 0, home: '/root' };

const FACTS: SystemdFacts = {
  user: { name: 'oz-worker', named: false, account: undefined },
  systemdVersion: 252,
  configFile: '/etc/oz-worker/config.yaml',
  config: { backend: 'direct', workspaceRoot: '/var/lib/oz/workspaces', targetDir: undefined },
  keyFile: '/etc/oz-worker/api-key',
  keyExists: true,
  node: { path: '/usr/bin/node' },
  binPath: WHERE.binPath,
  documentation: ['file:/usr/lib/node_modules/oz-worker/README.md'],
  workerArgs: [],
  noLoginShell: '/usr/sbin/nologin',
};

const kinds = (steps: Step[]) =>
  steps.map((step) =>
    step.kind === 'run'
      ? `${step.command} ${step.args.join(' ')}`
      : step.kind === 'write' || step.kind === 'verify-running'
        ? step.kind
        : `${step.kind} ${'path' in step ? step.path : step.name}`,
  );

describe('the systemd install plan', () => {
  it('a fresh machine: creates the system user, lets it read the config, keeps the key root-only, then writes, enables and starts the unit', () => {
    const plan = systemdInstallPlan(FACTS, false);
    expect(kinds(plan.steps)).toEqual([
      'create-user oz-worker',
      'own /etc/oz-worker',
      'own /etc/oz-worker/config.yaml',
      'check-access /usr/bin/node',
      'check-access /usr/lib/node_modules/oz-worker/bin/oz-worker.js',
      'own /etc/oz-worker/api-key',
      'write',
      'systemctl daemon-reload',
      'systemctl enable oz-worker.service',
      'systemctl restart oz-worker.service',
      'verify-running',
    ]);
    expect(plan.steps[0]).toMatchObject({ kind: 'create-user', name: 'oz-worker', home: '/var/lib/oz-worker', shell: '/usr/sbin/nologin' });
    expect(plan.steps.slice(1, 3)).toMatchObject([
      { owner: 'root-with-user-group', mode: 0o750 },
      { owner: 'root-with-user-group', mode: 0o640 },
    ]);
    expect(plan.steps[5]).toMatchObject({ owner: 'root', mode: 0o600 });
    expect(plan.unitText).toContain('\nUser=oz-worker\n');
    expect(plan.unitText).toContain('\nStateDirectory=oz-worker oz/workspaces\n');
  });

  it('dry run spells each step as the command to run by hand', () => {
    const plan = systemdInstallPlan(FACTS, true);
    expect(plan.steps.filter((step) => step.kind !== 'write').map((step) => stepAsShell(step, plan.user, plan.group))).toEqual([
      'useradd --system --user-group --home-dir /var/lib/oz-worker --no-create-home --shell /usr/sbin/nologin oz-worker',
      'chown root:oz-worker /etc/oz-worker && chmod 0750 /etc/oz-worker',
      'chown root:oz-worker /etc/oz-worker/config.yaml && chmod 0640 /etc/oz-worker/config.yaml',
      'runuser -u oz-worker -- test -x /usr/bin/node',
      'runuser -u oz-worker -- test -r /usr/lib/node_modules/oz-worker/bin/oz-worker.js',
      'chown root:root /etc/oz-worker/api-key && chmod 0600 /etc/oz-worker/api-key',
      'systemctl daemon-reload',
      'systemctl enable oz-worker.service',
      'systemctl restart oz-worker.service',
      '# check that oz-worker.service is still running a few seconds later',
    ]);
  });

  it('an existing service user is used as it is; a named one that does not exist is refused', () => {
    const existing = systemdInstallPlan(
      { ...FACTS, user: { name: 'oz-worker', named: false, account: { name: 'oz-worker', uid: 990, gid: 990, home: '/var/lib/oz-worker' } } },
      false,
    );
    expect(existing.steps.some((step) => step.kind === 'create-user')).toBe(false);
    expect(existing.notes).toContain('runs as the existing user oz-worker');
    expect(() => systemdInstallPlan({ ...FACTS, user: { name: 'alice', named: true, account: undefined } }, true)).toThrow(
      "there is no user 'alice' on this machine; create it first (e.g. useradd --system alice) or leave out --user to get the oz-worker system user",
    );
  });

  it('as root, nothing needs to be handed over or checked', () => {
    const plan = systemdInstallPlan({ ...FACTS, user: { name: 'root', named: true, account: ROOT_ACCOUNT } }, false);
    expect(kinds(plan.steps).filter((step) => step.startsWith('own') || step.startsWith('check'))).toEqual(['own /etc/oz-worker/api-key']);
    expect(plan.unitText).toContain('\nUser=root\n');
  });

  it('a config outside /etc/oz-worker is left alone but must be readable by the user', () => {
    const plan = systemdInstallPlan({ ...FACTS, configFile: '/home/alice/oz.yaml' }, false);
    expect(kinds(plan.steps)).toContain('check-access /home/alice/oz.yaml');
    expect(kinds(plan.steps).filter((step) => step.startsWith('own'))).toEqual(['own /etc/oz-worker/api-key']);
    const check = plan.steps.find((step) => step.kind === 'check-access' && step.path === '/home/alice/oz.yaml');
    expect(check).toMatchObject({ fix: expect.stringContaining('move it to /etc/oz-worker/config.yaml') });
  });

  it('a missing config or key file stops the install before anything changes (a dry run notes it)', () => {
    const problem = 'no config file at /etc/oz-worker/config.yaml; write it';
    expect(() => systemdInstallPlan({ ...FACTS, config: { problem } }, false)).toThrow(problem);
    expect(() => systemdInstallPlan({ ...FACTS, keyExists: false }, false)).toThrow(
      "no API key file at /etc/oz-worker/api-key; put the worker's key there first: printenv WARP_API_KEY | sudo install -m 0600 /dev/stdin /etc/oz-worker/api-key",
    );
    expect(systemdInstallPlan({ ...FACTS, keyExists: false, config: { problem } }, true).notes).toEqual([
      `not ready yet: ${problem}`,
      expect.stringMatching(/^not ready yet: no API key file/),
      expect.stringContaining('docker backend'),
    ]);
  });

  it('systemd older than 247: the key file itself goes to the service user (0600)', () => {
    const plan = systemdInstallPlan({ ...FACTS, systemdVersion: 239 }, false);
    expect(plan.steps.find((step) => step.kind === 'own' && step.path === '/etc/oz-worker/api-key')).toMatchObject({ owner: 'user', mode: 0o600 });
    expect(plan.unitText).not.toContain('LoadCredential=');
    expect(plan.unitText).toContain('Environment=WARP_API_KEY_FILE=/etc/oz-worker/api-key\n');
  });

  it('a workspace root outside /var/lib is created for the user and made writable; the docker backend needs no workspaces', () => {
    const plan = systemdInstallPlan({ ...FACTS, config: { backend: 'direct', workspaceRoot: '/srv/oz/ws', targetDir: undefined } }, false);
    expect(plan.steps.find((step) => step.kind === 'mkdir')).toEqual({
      kind: 'mkdir',
      path: '/srv/oz/ws',
      mode: 0o700,
      owner: 'user',
      done: 'created /srv/oz/ws, owned by oz-worker',
    });
    expect(plan.unitText).toContain('\nStateDirectory=oz-worker\n');
    expect(plan.unitText).toContain('\nReadWritePaths=/srv/oz/ws\n');
    const docker = systemdInstallPlan({ ...FACTS, config: { backend: 'docker', workspaceRoot: '/var/lib/oz/workspaces', targetDir: undefined } }, false);
    expect(docker.unitText).toContain('\nStateDirectory=oz-worker\n');
    expect(docker.notes).toContain('the docker backend needs the Docker socket: add oz-worker to the docker group (usermod -aG docker oz-worker) if it is not');
  });

  it.each([
    [{}, [], { backend: 'docker', workspaceRoot: '/var/lib/oz/workspaces', targetDir: undefined }],
    [{ backend: { direct: { workspace_root: '/srv/ws' } } }, [], { backend: 'direct', workspaceRoot: '/srv/ws', targetDir: undefined }],
    [
      { backend: { direct: { workspace_root: '/srv/ws' } } },
      ['--workspace-root', '/opt/ws'],
      { backend: 'direct', workspaceRoot: '/opt/ws', targetDir: undefined },
    ],
    [{}, ['--backend=direct', '--target-dir', '/srv/repo'], { backend: 'direct', workspaceRoot: '/var/lib/oz/workspaces', targetDir: '/srv/repo' }],
  ])('configured paths: file %j, flags %j', (file, args, expected) => {
    expect(configuredPaths(file as never, args)).toEqual(expected);
  });

  it('flag values: the last one wins, both spellings', () => {
    expect(flagValue(['--backend', 'docker', '--backend=direct'], '--backend')).toBe('direct');
    expect(flagValue(['--backend'], '--backend')).toBeUndefined();
  });

  it.each([
    [['--api-key', 'k'], "--api-key cannot be passed to the service's worker: the key would be written into the unit file, readable by everyone"],
    [['--api-key-file=/k'], "--api-key-file cannot be passed to the service's worker: give it to service install itself"],
    [['--state-dir', '/x'], "--state-dir cannot be passed to the service's worker: the unit keeps the worker's journal in /var/lib/oz-worker"],
    [['--log-level', 'debug'], undefined],
    [['debug'], '"debug" is not a worker flag; worker flags go after --'],
  ])('worker arguments %j', (args, problem) => {
    const found = workerArgsProblem(args);
    if (problem === undefined) expect(found).toBeUndefined();
    else expect(found).toContain(problem);
  });
});

describe('the launchd install plan', () => {
  const MAC: LaunchdFacts = {
    user: { name: 'ada', account: { name: 'ada', uid: 501, gid: 20, home: '/Users/ada' } },
    assumedHome: '/Users/ada',
    configFile: undefined,
    apiKeyFile: undefined,
    configExists: true,
    keyExists: true,
    node: { path: '/opt/homebrew/opt/node/bin/node' },
    binPath: '/opt/homebrew/lib/node_modules/oz-worker/bin/oz-worker.js',
    workerArgs: [],
  };

  it('makes the log directory, owned by the user, before launchd loads the job', () => {
    const plan = launchdInstallPlan(MAC, false);
    expect(kinds(plan.steps)).toEqual([
      'mkdir /Users/ada/Library/Logs/oz-worker',
      'own /Users/ada/Library/Application Support/oz-worker/api-key',
      'write',
      'launchctl bootout system/dev.oz.worker',
      'launchctl bootstrap system /Library/LaunchDaemons/dev.oz.worker.plist',
      'verify-running',
    ]);
    expect(plan.steps[0]).toMatchObject({ owner: 'user', mode: 0o755 });
    expect(plan.steps[3]).toMatchObject({ mayFail: true });
    expect(plan.unitText).toContain('<string>/Users/ada/Library/Logs/oz-worker/worker.log</string>');
    expect(plan.unitText).toContain('<string>/opt/homebrew/opt/node/bin/node</string>');
  });

  it('needs an existing account, a config and a key (a dry run only notes the files)', () => {
    expect(() => launchdInstallPlan({ ...MAC, user: { name: 'bob', account: undefined } }, false)).toThrow("there is no user 'bob' on this Mac");
    expect(() => launchdInstallPlan({ ...MAC, configExists: false }, false)).toThrow(
      'no config file at /Users/ada/Library/Application Support/oz-worker/config.yaml',
    );
    expect(launchdInstallPlan({ ...MAC, keyExists: false }, true).notes).toEqual([expect.stringMatching(/^not ready yet: no API key file/)]);
  });
});

/** A machine in memory: files, accounts, and the commands' answers; records what was done. */
function fakeHost(
  platform: NodeJS.Platform,
  options: {
    root?: boolean;
    accounts?: ServiceAccount[];
    files?: Record<string, string>;
    answers?: Record<string, CommandResult>;
    links?: Record<string, string>;
  } = {},
) {
  const accounts = new Map((options.accounts ?? []).map((account) => [account.name, account]));
  const files = new Map(Object.entries(options.files ?? {}));
  const actions: string[] = [];
  const printed: string[] = [];
  const answer = (command: string): CommandResult => options.answers?.[command] ?? { ok: true, output: '' };
  const host: ServiceHost & { actions: string[]; printed: string[] } = {
    platform,
    env: {},
    actions,
    printed,
    isRoot: () => options.root ?? true,
    currentUser: () => 'ada',
    lookUpUser: async (name) => accounts.get(name),
    pathInfo: async (path): Promise<PathInfo | undefined> =>
      files.has(path) || path.endsWith('nologin') ? { uid: 0, gid: 0, mode: 0o644, isDirectory: false } : undefined,
    realPath: async (path) => options.links?.[path] ?? path,
    readText: async (path) => {
      const text = files.get(path);
      if (text === undefined) throw Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' });
      return text;
    },
    writeFile: async (path, text, mode) => {
      files.set(path, text);
      actions.push(`write ${path} ${mode.toString(8)}`);
    },
    removeFile: async (path) => {
      files.delete(path);
      actions.push(`remove ${path}`);
    },
    makeDirectory: async (path, mode, owner) => {
      actions.push(`mkdir ${path} ${mode.toString(8)} ${owner?.uid}:${owner?.gid}`);
    },
    setOwnership: async (path, owner, mode) => {
      actions.push(`own ${path} ${owner.uid}:${owner.gid} ${mode.toString(8)}`);
    },
    run: async (command, args) => {
      const line = [command, ...args].join(' ');
      actions.push(line);
      if (command === 'useradd') accounts.set(args.at(-1)!, { name: args.at(-1)!, uid: 991, gid: 991, home: '/var/lib/oz-worker' });
      if (line === 'systemctl --version') return { ok: true, output: 'systemd 252 (252.39-1~deb12u2)\n+PAM +AUDIT' };
      if (line.startsWith('systemctl show')) return answer('systemctl show') ?? { ok: true, output: '' };
      return answer(line);
    },
    sleep: async () => undefined,
    print: (text) => printed.push(text),
    serviceManagerMissing: () => undefined,
  };
  return host;
}

const LINUX_FILES = { '/etc/oz-worker/config.yaml': 'worker_id: w\nbackend:\n  direct: {}\n', '/etc/oz-worker/api-key': 'k\n' };
const RUNNING = { 'systemctl show': { ok: true, output: 'ActiveState=active\nSubState=running\n' } };

describe('service install on a (recorded) Linux machine', () => {
  it('does the steps in order and reports each one', async () => {
    const host = fakeHost('linux', { files: LINUX_FILES, answers: RUNNING });
    expect(await installService(host, {}, WHERE)).toBe(0);
    expect(host.actions).toEqual([
      'systemctl --version',
      'useradd --system --user-group --home-dir /var/lib/oz-worker --no-create-home --shell /usr/sbin/nologin oz-worker',
      'own /etc/oz-worker 0:991 750',
      'own /etc/oz-worker/config.yaml 0:991 640',
      'runuser -u oz-worker -- test -x /usr/bin/node',
      'runuser -u oz-worker -- test -r /usr/lib/node_modules/oz-worker/bin/oz-worker.js',
      'own /etc/oz-worker/api-key 0:0 600',
      'write /etc/systemd/system/oz-worker.service 644',
      'systemctl daemon-reload',
      'systemctl enable oz-worker.service',
      'systemctl restart oz-worker.service',
      'systemctl show oz-worker.service --property=ActiveState,SubState',
    ]);
    const report = host.printed.join('\n');
    expect(report).toContain('✔ Installed oz-worker.service');
    expect(report).toContain('  - created the system user oz-worker (no login shell, home /var/lib/oz-worker)');
    expect(report).toContain(
      "  - /etc/oz-worker/api-key: root's alone (0600); systemd hands oz-worker a copy at each start (LoadCredential=, /run/credentials/oz-worker.service/api-key)",
    );
    expect(report).toContain('  - started: oz-worker.service is running');
    expect(report).toContain('logs: journalctl -u oz-worker.service -f');
  });

  it('a worker that does not stay up: says so with its last log lines, exit 1', async () => {
    const host = fakeHost('linux', {
      files: LINUX_FILES,
      answers: {
        'systemctl show': { ok: true, output: 'ActiveState=activating\nSubState=auto-restart\n' },
        'journalctl --unit oz-worker.service --lines 20 --no-pager --output cat': {
          ok: true,
          output: 'oz-worker: error: config file …: unknown key "wokrer_id"\n',
        },
      },
    });
    expect(await installService(host, {}, WHERE)).toBe(1);
    expect(host.printed[0]).toBe(
      '✘ oz-worker.service did not stay up (ActiveState=activating, SubState=auto-restart); its last log lines:\noz-worker: error: config file …: unknown key "wokrer_id"',
    );
    expect(host.printed[1]).toContain('  Done before that:\n  - created the system user oz-worker');
  });

  it('a user that cannot read the bin stops before the unit is written', async () => {
    const host = fakeHost('linux', {
      files: LINUX_FILES,
      answers: { 'runuser -u oz-worker -- test -r /usr/lib/node_modules/oz-worker/bin/oz-worker.js': { ok: false, output: '' } },
    });
    expect(await installService(host, {}, WHERE)).toBe(1);
    expect(host.actions.some((action) => action.startsWith('write'))).toBe(false);
    expect(host.printed[0]).toBe(
      '✘ oz-worker cannot read /usr/lib/node_modules/oz-worker/bin/oz-worker.js; install oz-worker where every user can read it (npm install -g, or a release tarball unpacked under /opt) and run service install from there',
    );
  });

  it('without root: refused before anything changes, naming sudo', async () => {
    const host = fakeHost('linux', { root: false, files: LINUX_FILES });
    await expect(installService(host, {}, WHERE)).rejects.toThrow(
      /^service install changes the system \(\/etc\/systemd\/system\/oz-worker.service, a system user\); run it as root: sudo .*service install$/,
    );
    expect(host.actions).toEqual(['systemctl --version']);
  });

  it('--dry-run prints the unit and the commands, changes nothing, and notes what is missing', async () => {
    const host = fakeHost('linux', { root: false });
    expect(await installService(host, { dryRun: true }, WHERE, ['--log-level', 'debug'])).toBe(0);
    expect(host.actions).toEqual(['systemctl --version']);
    const out = host.printed.join('\n');
    expect(out).toContain('# would write /etc/systemd/system/oz-worker.service');
    expect(out).toContain(
      'ExecStart=/usr/bin/node /usr/lib/node_modules/oz-worker/bin/oz-worker.js --config-file /etc/oz-worker/config.yaml --state-dir /var/lib/oz-worker --log-level debug',
    );
    expect(out).toContain('# then, as root:\nuseradd --system');
    expect(out).toContain('# note: not ready yet: no config file at /etc/oz-worker/config.yaml');
  });

  it('uninstall stops, removes and reloads, and names what it kept', async () => {
    const host = fakeHost('linux', { files: { '/etc/systemd/system/oz-worker.service': '[Service]\nUser=oz-worker\n' } });
    expect(await uninstallService(host, {})).toBe(0);
    expect(host.actions).toEqual(['systemctl disable --now oz-worker.service', 'remove /etc/systemd/system/oz-worker.service', 'systemctl daemon-reload']);
    expect(host.printed[1]).toBe(
      '  Kept the user oz-worker, /etc/oz-worker, /var/lib/oz-worker (the journal), the workspaces; remove them yourself if you no longer need them.',
    );
  });

  it('status without systemd says so in one line', async () => {
    const host = { ...fakeHost('linux'), serviceManagerMissing: () => 'systemd is not running on this machine (no /run/systemd/system)' };
    expect(await serviceStatus(host)).toBe(3);
    expect(host.printed).toEqual([
      'systemd is not running on this machine (no /run/systemd/system): no oz-worker service to show; run the worker in the foreground or under your own supervisor',
    ]);
  });
});

describe('service install on a (recorded) Mac', () => {
  const ADA: ServiceAccount = { name: 'ada', uid: 501, gid: 20, home: '/Users/ada' };
  const support = '/Users/ada/Library/Application Support/oz-worker';
  const files = { [`${support}/config.yaml`]: 'worker_id: ada-mac\n', [`${support}/api-key`]: 'k\n' };

  it('run with sudo: for the user who ran sudo, log directory first, then the LaunchDaemon', async () => {
    const cellar = '/opt/homebrew/Cellar/node/24.1.0/bin/node';
    const host = {
      ...fakeHost('darwin', {
        accounts: [ADA],
        files,
        answers: { 'launchctl print system/dev.oz.worker': { ok: true, output: '\tstate = running\n' } },
        links: { '/opt/homebrew/opt/node/bin/node': cellar },
      }),
      env: { SUDO_USER: 'ada' },
    };
    expect(await installService(host, {}, { ...WHERE, nodePath: cellar })).toBe(0);
    expect(host.actions).toEqual([
      'mkdir /Users/ada/Library/Logs/oz-worker 755 501:20',
      `own ${support}/api-key 501:20 600`,
      'write /Library/LaunchDaemons/dev.oz.worker.plist 644',
      'launchctl bootout system/dev.oz.worker',
      'launchctl bootstrap system /Library/LaunchDaemons/dev.oz.worker.plist',
      'launchctl print system/dev.oz.worker',
    ]);
    const plist = await host.readText('/Library/LaunchDaemons/dev.oz.worker.plist');
    expect(plist).toContain('<string>/opt/homebrew/opt/node/bin/node</string>');
    expect(plist).not.toContain('Cellar');
  });

  it('a Homebrew opt link that leads elsewhere: the running binary is named, with a note', async () => {
    const host = { ...fakeHost('darwin', { accounts: [ADA], files }), env: { SUDO_USER: 'ada' } };
    await installService(host, { dryRun: true }, { ...WHERE, nodePath: '/opt/homebrew/Cellar/node/24.1.0/bin/node' });
    const out = host.printed.join('\n');
    expect(out).toContain('<string>/opt/homebrew/Cellar/node/24.1.0/bin/node</string>');
    expect(out).toContain('# note: /opt/homebrew/opt/node/bin/node does not lead to the running Node');
  });

  it('--platform darwin --dry-run on Linux prints the LaunchDaemon; without --dry-run it refuses', async () => {
    const host = fakeHost('linux');
    await installService(host, { dryRun: true, platform: 'darwin', user: 'ada' }, WHERE);
    expect(host.printed.join('\n')).toContain('# would write /Library/LaunchDaemons/dev.oz.worker.plist');
    expect(host.printed.join('\n')).toContain('launchctl bootstrap system /Library/LaunchDaemons/dev.oz.worker.plist');
    await expect(installService(host, { platform: 'darwin' }, WHERE)).rejects.toThrow('add --dry-run');
  });
});

describe('through the bin', () => {
  const bin = join(ROOT, 'bin/oz-worker.js');
  const run = (args: string[]) => spawnSync(process.execPath, [bin, 'service', ...args], { cwd: tmpdir(), encoding: 'utf8' });

  it('--dry-run: relative --config-file made absolute, worker flags after --, owned flags refused', () => {
    const dry = run(['install', '--dry-run', '--config-file', 'conf/oz.yaml', '--', '--log-level', 'debug']);
    expect(dry.status).toBe(0);
    expect(dry.stdout).toContain(`--config-file ${join(realpathSync(tmpdir()), 'conf/oz.yaml')} --state-dir /var/lib/oz-worker --log-level debug`);
    expect(dry.stdout).toContain('systemctl enable oz-worker.service');
    const key = run(['install', '--dry-run', '--', '--api-key', 'secret']);
    expect(key.status).toBe(2);
    expect(key.stderr).toMatch(/^oz-worker: error: --api-key cannot be passed to the service's worker/);
  });

  it('an unknown --user is refused; status and uninstall show only their own flags', () => {
    const unknown = run(['install', '--dry-run', '--user', 'no-such-user-oz']);
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toMatch(/^oz-worker: error: there is no user 'no-such-user-oz' on this machine/);
    expect(run(['install', '--dry-run', '--platform', 'darwin']).stdout).toContain('<key>Label</key>');
    expect(run(['status', '--help']).stdout).not.toMatch(/--user|--config-file|--api-key-file|--dry-run/);
    const uninstallHelp = run(['uninstall', '--help']).stdout;
    expect(uninstallHelp).toContain('--dry-run');
    expect(uninstallHelp).not.toMatch(/--user|--config-file|--api-key-file/);
  });
});
