// Flags over config file over defaults, and the start-up checks a user meets
// before anything connects.
import { describe, expect, it } from 'vitest';
import type { ConfigError } from '../../src/config/errors.js';
import type { FileConfig } from '../../src/config/file-schema.js';
import { parseConfigText } from '../../src/config/load-file.js';
import {
  apiKeyFileSource,
  keyFilePermissionWarning,
  resolveApiKey,
  resolveWorkerConfig,
  type HostEnv,
  type ReadSecretFile,
  type WorkerFlags,
} from '../../src/config/resolve.js';
import {
  DEFAULT_CANCEL_GRACE_MS,
  DEFAULT_SERVER_ROOT_URL,
  DEFAULT_SHUTDOWN_GRACE_MS,
  DEFAULT_WEB_SOCKET_URL,
  type WorkerConfig,
} from '../../src/config/worker-config.js';
import { asBackend, configErrorMessage } from '../support/test-config.js';

const HOST: HostEnv = { WARP_API_KEY: 'env-key', HOME_VAR: 'from host' };
const noSecrets: ReadSecretFile = (path) => {
  throw Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' });
};

/** Commander's view of a plain command line: cleanup on, info logging. */
const baseFlags: WorkerFlags = { cleanup: true, logLevel: 'info' };

function resolve(flags: WorkerFlags, file?: FileConfig | string, hostEnv: HostEnv = HOST, readSecret: ReadSecretFile = noSecrets): WorkerConfig {
  const fileConfig = typeof file === 'string' ? parseConfigText(file, '/cfg.yaml') : file;
  return resolveWorkerConfig({ ...baseFlags, ...flags }, fileConfig, hostEnv, readSecret);
}

describe('defaults', () => {
  it('fills everything not given', () => {
    expect(resolve({ workerId: 'w' })).toEqual({
      apiKey: 'env-key',
      workerId: 'w',
      webSocketUrl: DEFAULT_WEB_SOCKET_URL,
      serverRootUrl: DEFAULT_SERVER_ROOT_URL,
      sessionSharingServerUrl: '',
      logLevel: 'info',
      backend: 'docker',
      backendLabel: '',
      cleanup: true,
      maxConcurrentTasks: 0,
      oneShot: false,
      collectTaskLogs: true,
      idleOnComplete: '',
      operatorEnv: {},
      shutdownGraceMs: DEFAULT_SHUTDOWN_GRACE_MS,
      cancelGraceMs: DEFAULT_CANCEL_GRACE_MS,
      docker: { volumes: [], pullPolicy: 'Always' },
      device: undefined,
      stateDir: expect.stringMatching(/oz-worker$/),
      connectionTuning: {},
      exitWithParent: false,
    } satisfies WorkerConfig);
  });

  it('keeps the journal in --state-dir, else $OZ_WORKER_STATE_DIR, else the platform state directory', () => {
    expect(resolveWorkerConfig({ workerId: 'w', stateDir: '/flag' }, undefined, { ...HOST, OZ_WORKER_STATE_DIR: '/env' }, noSecrets).stateDir).toBe('/flag');
    expect(resolveWorkerConfig({ workerId: 'w' }, undefined, { ...HOST, OZ_WORKER_STATE_DIR: '/env' }, noSecrets).stateDir).toBe('/env');
    if (process.platform === 'linux') {
      expect(resolveWorkerConfig({ workerId: 'w' }, undefined, { ...HOST, XDG_STATE_HOME: '/xdg' }, noSecrets).stateDir).toBe('/xdg/oz-worker');
    }
  });

  it('defaults the log level when commander gave none', () => {
    expect(resolveWorkerConfig({ workerId: 'w' }, undefined, HOST, noSecrets).logLevel).toBe('info');
  });
});

describe('flag > file > default', () => {
  const file = parseConfigText(
    [
      'worker_id: file-worker',
      'cleanup: false',
      'max_concurrent_tasks: 3',
      'idle_on_complete: 10m',
      'shutdown_grace_period: 40s',
      'backend:',
      '  direct:',
      '    target_dir: /file/target',
      '',
    ].join('\n'),
    '/cfg.yaml',
  );

  it.each<[string, WorkerFlags, FileConfig | undefined, (config: WorkerConfig) => unknown, unknown]>([
    ['worker id from the flag', { workerId: 'flag-worker' }, file, (c) => c.workerId, 'flag-worker'],
    ['worker id from the file', {}, file, (c) => c.workerId, 'file-worker'],
    ['max concurrent tasks from the flag', { maxConcurrentTasks: '7' }, file, (c) => c.maxConcurrentTasks, 7],
    ['max concurrent tasks 0 from the flag (unlimited)', { maxConcurrentTasks: '0' }, file, (c) => c.maxConcurrentTasks, 0],
    ['max concurrent tasks from the file', {}, file, (c) => c.maxConcurrentTasks, 3],
    ['max concurrent tasks default', { workerId: 'w' }, undefined, (c) => c.maxConcurrentTasks, 0],
    ['idle-on-complete from the flag', { idleOnComplete: '5m' }, file, (c) => c.idleOnComplete, '5m'],
    ['idle-on-complete from the file', {}, file, (c) => c.idleOnComplete, '10m'],
    ['idle-on-complete default', { workerId: 'w' }, undefined, (c) => c.idleOnComplete, ''],
    ['target dir from the flag', { targetDir: '/flag/target' }, file, (c) => asBackend(c, 'direct').direct.targetDir, '/flag/target'],
    ['target dir from the file', {}, file, (c) => asBackend(c, 'direct').direct.targetDir, '/file/target'],
    ['shutdown grace from the flag', { shutdownGracePeriod: '1m30s' }, file, (c) => c.shutdownGraceMs, 90_000],
    ['shutdown grace from the file', {}, file, (c) => c.shutdownGraceMs, 40_000],
    ['shutdown grace default', { workerId: 'w' }, undefined, (c) => c.shutdownGraceMs, 25_000],
    ['no cleanup from the file', {}, file, (c) => c.cleanup, false],
    ['no cleanup from the flag', { workerId: 'w', cleanup: false }, undefined, (c) => c.cleanup, false],
    ['cleanup default', { workerId: 'w' }, undefined, (c) => c.cleanup, true],
    ['backend from the flag', { workerId: 'w', backend: 'direct' }, undefined, (c) => c.backend, 'direct'],
    ['backend from the file', {}, file, (c) => c.backend, 'direct'],
    ['web socket URL from the flag', { workerId: 'w', webSocketUrl: 'ws://127.0.0.1:9000/ws' }, undefined, (c) => c.webSocketUrl, 'ws://127.0.0.1:9000/ws'],
    ['server root URL from the flag', { workerId: 'w', serverRootUrl: 'http://127.0.0.1:8080' }, undefined, (c) => c.serverRootUrl, 'http://127.0.0.1:8080'],
    [
      'session sharing URL from the flag',
      { workerId: 'w', sessionSharingServerUrl: 'ws://127.0.0.1:8081' },
      undefined,
      (c) => c.sessionSharingServerUrl,
      'ws://127.0.0.1:8081',
    ],
    ['log level from the flag', { workerId: 'w', logLevel: 'debug' }, undefined, (c) => c.logLevel, 'debug'],
  ])('%s', (_name, flags, fileConfig, pick, expected) => {
    expect(pick(resolve(flags, fileConfig))).toEqual(expected);
  });

  it('keeps cleanup on when only the file turns it on (the flag can only turn it off)', () => {
    expect(resolve({ workerId: 'w' }, { cleanup: true }).cleanup).toBe(true);
    expect(resolve({ workerId: 'w', cleanup: false }, { cleanup: true }).cleanup).toBe(false);
  });

  it('lists file volumes before -v volumes', () => {
    const config = resolve({ workerId: 'w', volumes: ['/flag:/flag'] }, { backend: { docker: { volumes: ['/file:/file:ro'] } } });
    expect(asBackend(config, 'docker').docker.volumes).toEqual(['/file:/file:ro', '/flag:/flag']);
  });

  it('takes the direct keys from the file', () => {
    const config = resolve(
      {},
      'worker_id: w\nbackend:\n  direct:\n    workspace_root: /srv/ws\n    oz_path: /bin/oz\n    setup_command: s\n    teardown_command: t\n',
    );
    expect(asBackend(config, 'direct').direct).toEqual({ workspaceRoot: '/srv/ws', targetDir: '', ozPath: '/bin/oz', setupCommand: 's', teardownCommand: 't' });
  });

  it('lets --oz-path override the file oz_path', () => {
    const config = resolve({ ozPath: '/opt/oz' }, 'worker_id: w\nbackend:\n  direct:\n    oz_path: /bin/oz\n');
    expect(asBackend(config, 'direct').direct.ozPath).toBe('/opt/oz');
  });
});

describe('API key', () => {
  const files: Record<string, string> = {
    '/flag.key': 'flag-file-key\n',
    '/env.key': 'env-file-key\r\n',
    '/config.key': 'config-file-key',
    '/empty.key': '\n',
  };
  const read: ReadSecretFile = (path) => {
    const contents = files[path];
    if (contents === undefined) throw Object.assign(new Error('nope'), { code: path === '/locked.key' ? 'EACCES' : 'ENOENT' });
    return contents;
  };
  const key = (flags: WorkerFlags, hostEnv: HostEnv, file?: FileConfig) => resolveApiKey(flags, file, hostEnv, read);

  it.each<[string, WorkerFlags, HostEnv, FileConfig | undefined, string]>([
    ['--api-key', { apiKey: 'flag-key' }, {}, undefined, 'flag-key'],
    ['--api-key over WARP_API_KEY', { apiKey: 'flag-key' }, { WARP_API_KEY: 'env-key' }, undefined, 'flag-key'],
    ['WARP_API_KEY', {}, { WARP_API_KEY: 'env-key' }, undefined, 'env-key'],
    ['WARP_API_KEY over key files', { apiKeyFile: '/flag.key' }, { WARP_API_KEY: 'env-key' }, undefined, 'env-key'],
    ['--api-key-file, trailing newline trimmed', { apiKeyFile: '/flag.key' }, {}, undefined, 'flag-file-key'],
    ['--api-key-file over WARP_API_KEY_FILE', { apiKeyFile: '/flag.key' }, { WARP_API_KEY_FILE: '/env.key' }, undefined, 'flag-file-key'],
    ['WARP_API_KEY_FILE, CRLF trimmed', {}, { WARP_API_KEY_FILE: '/env.key' }, { api_key_file: '/config.key' }, 'env-file-key'],
    ['api_key_file from the config file', {}, {}, { api_key_file: '/config.key' }, 'config-file-key'],
    ['an empty WARP_API_KEY falls through to a key file', {}, { WARP_API_KEY: '' }, { api_key_file: '/config.key' }, 'config-file-key'],
  ])('comes from %s', (_name, flags, hostEnv, file, expected) => {
    expect(key(flags, hostEnv, file)).toBe(expected);
  });

  it.each<[string, WorkerFlags, HostEnv, FileConfig | undefined, string]>([
    ['nothing set', {}, {}, undefined, 'missing API key: pass --api-key or set WARP_API_KEY'],
    ['an empty WARP_API_KEY', {}, { WARP_API_KEY: '' }, undefined, 'missing API key: pass --api-key or set WARP_API_KEY'],
    ['an empty --api-key', { apiKey: '' }, {}, undefined, 'missing API key: pass --api-key or set WARP_API_KEY'],
    ['a missing key file', { apiKeyFile: '/nowhere.key' }, {}, undefined, 'could not read the API key file /nowhere.key (from --api-key-file): no such file'],
    [
      'an unreadable key file',
      {},
      { WARP_API_KEY_FILE: '/locked.key' },
      undefined,
      'could not read the API key file /locked.key (from WARP_API_KEY_FILE): permission denied',
    ],
    ['an empty key file', {}, {}, { api_key_file: '/empty.key' }, 'the API key file /empty.key (from api_key_file in the config file) is empty'],
  ])('is refused with %s', (_name, flags, hostEnv, file, message) => {
    expect(configErrorMessage(() => key(flags, hostEnv, file))).toContain(message);
  });

  it('is checked by resolveWorkerConfig through the injected reader', () => {
    expect(resolve({ workerId: 'w', apiKeyFile: '/flag.key' }, undefined, {}, read).apiKey).toBe('flag-file-key');
    expect(configErrorMessage(() => resolve({ workerId: 'w' }, undefined, {}))).toMatch(/^missing API key/);
  });
});

describe('worker id', () => {
  it.each(['w', 'Warp-1', 'WARP', 'my-warp', 'wa', '123'])('accepts %j', (workerId) => {
    expect(resolve({ workerId }).workerId).toBe(workerId);
  });

  it.each(['warp', 'warp-1', 'warpy'])("refuses the reserved %j with Go's message", (workerId) => {
    expect(configErrorMessage(() => resolve({ workerId }))).toBe("invalid worker-id: values starting with 'warp' are reserved and cannot be used");
    expect(configErrorMessage(() => resolve({}, { worker_id: workerId }))).toContain('reserved');
  });

  it('is required', () => {
    expect(configErrorMessage(() => resolve({}))).toBe('worker-id is required (via --worker-id flag or config file)');
    expect(configErrorMessage(() => resolve({ workerId: '' }, { worker_id: '' }))).toBe('worker-id is required (via --worker-id flag or config file)');
  });
});

describe('max concurrent tasks', () => {
  it.each([
    ['0', 0],
    ['1', 1],
    ['12', 12],
  ])('accepts %j', (text, value) => {
    expect(resolve({ workerId: 'w', maxConcurrentTasks: text }).maxConcurrentTasks).toBe(value);
  });

  it.each([
    ['-1', 0, ['--max-concurrent-tasks -1 means unlimited, as 0 does; write 0']],
    ['+3', 3, []],
  ])('accepts %j as the Go worker does (%d)', (text, value, warnings) => {
    const config = resolve({ workerId: 'w', maxConcurrentTasks: text });
    expect(config.maxConcurrentTasks).toBe(value);
    expect(config.startupWarnings ?? []).toEqual(warnings);
  });

  it('reads a negative max_concurrent_tasks in the file as unlimited, with a warning', () => {
    const config = resolve({ workerId: 'w' }, { max_concurrent_tasks: -5 });
    expect(config.maxConcurrentTasks).toBe(0);
    expect(config.startupWarnings).toEqual(['max_concurrent_tasks -5 means unlimited, as 0 does; write 0']);
  });

  it.each(['two', '1.5', '', ' 3', '1e3', '99999999999999999999'])('refuses %j', (text) => {
    expect(configErrorMessage(() => resolve({ workerId: 'w', maxConcurrentTasks: text }))).toBe(
      `invalid --max-concurrent-tasks ${JSON.stringify(text)}: use a whole number of tasks, or 0 for unlimited`,
    );
  });
});

describe('backend selection', () => {
  it.each([
    ['no flag and no block: docker, label empty', {}, undefined, 'docker', ''],
    ['--backend docker', { backend: 'docker' }, undefined, 'docker', 'docker'],
    ['a docker block', {}, 'backend:\n  docker:\n', 'docker', 'docker'],
    ['an empty direct block', {}, 'backend:\n  direct:\n', 'direct', 'direct'],
    ['a kubernetes block', {}, 'backend:\n  kubernetes: {}\n', 'kubernetes', 'kubernetes'],
    ['--backend matching the block', { backend: 'direct' }, 'backend:\n  direct:\n', 'direct', 'direct'],
    ['an empty --backend', { backend: '' }, 'backend:\n  direct:\n', 'direct', 'direct'],
  ])('%s', (_name, flags: WorkerFlags, text, backend, label) => {
    const config = resolve({ workerId: 'w', ...flags }, text === undefined ? undefined : `worker_id: w\n${text}`);
    expect(config.backend).toBe(backend);
    expect(config.backendLabel).toBe(label);
  });

  it('refuses a --backend that contradicts the file block, naming both', () => {
    expect(configErrorMessage(() => resolve({ workerId: 'w', backend: 'docker' }, 'backend:\n  kubernetes:\n    namespace: x\n'))).toBe(
      '--backend docker contradicts the backend.kubernetes block in the config file (drop --backend to use kubernetes, or replace the block with backend.docker)',
    );
  });

  it('refuses an unknown --backend', () => {
    expect(configErrorMessage(() => resolve({ workerId: 'w', backend: 'podman' }))).toBe(
      'invalid --backend "podman": use one of docker, direct, kubernetes, command',
    );
  });

  it('refuses two blocks in a hand-built FileConfig', () => {
    expect(configErrorMessage(() => resolve({ workerId: 'w' }, { backend: { docker: {}, direct: {} } }))).toContain('at most one backend may be configured');
  });
});

describe('task environment', () => {
  const hostEnv: HostEnv = { WARP_API_KEY: 'k', FROM_HOST: 'host', SHARED: 'host-shared' };

  it.each(['docker', 'direct', 'command'])('is the %s block environment overlaid by -e', (backend) => {
    const extra = backend === 'command' ? '    dispatch_command: /bin/dispatch\n' : '';
    const text = [
      'worker_id: w',
      'backend:',
      `  ${backend}:`,
      `${extra}    environment:`,
      '      - name: FILE_ONLY',
      '        value: file',
      '      - name: FROM_HOST',
      '      - name: UNSET_ON_HOST',
      '      - name: EMPTY',
      '        value: ""',
      '      - name: OVERRIDDEN',
      '        value: file',
      '',
    ].join('\n');
    const config = resolve({ env: ['OVERRIDDEN=flag', 'SHARED', 'LIST=a,b=c'] }, text, hostEnv);
    expect(config.operatorEnv).toEqual({
      FILE_ONLY: 'file',
      FROM_HOST: 'host',
      UNSET_ON_HOST: '',
      EMPTY: '',
      OVERRIDDEN: 'flag',
      SHARED: 'host-shared',
      LIST: 'a,b=c',
    });
  });

  it('is only the -e flags for kubernetes', () => {
    const config = resolve({ env: ['A=1', 'FROM_HOST'] }, 'worker_id: w\nbackend:\n  kubernetes:\n    namespace: n\n', hostEnv);
    expect(config.operatorEnv).toEqual({ A: '1', FROM_HOST: 'host' });
  });

  it('uses the block environment when --backend names the same backend', () => {
    const file: FileConfig = { worker_id: 'w', backend: { direct: { environment: [{ name: 'A', value: 'x' }] } } };
    expect(resolve({ backend: 'direct', env: ['B=2'] }, file, hostEnv).operatorEnv).toEqual({ A: 'x', B: '2' });
  });

  it('refuses a bad -e entry', () => {
    expect(configErrorMessage(() => resolve({ workerId: 'w', env: ['=x'] }))).toMatch(/^invalid --env flag: missing key in "=x"/);
  });

  it('refuses a bad -v entry', () => {
    expect(configErrorMessage(() => resolve({ workerId: 'w', volumes: ['/only'] }))).toMatch(/^invalid --volumes flag: "\/only" must look like/);
  });
});

describe('command backend', () => {
  it.each([
    [undefined, 60_000],
    ['90s', 90_000],
    ['0s', 60_000],
    ['-5s', 60_000],
    ['1.5m', 90_000],
  ])('dispatch_timeout %j gives %d ms', (timeout, ms) => {
    const text = `worker_id: w\nbackend:\n  command:\n    dispatch_command: /bin/d\n    cancel_command: /bin/c\n${timeout ? `    dispatch_timeout: ${timeout}\n` : ''}`;
    expect(asBackend(resolve({}, text), 'command').command).toEqual({ dispatchCommand: '/bin/d', cancelCommand: '/bin/c', dispatchTimeoutMs: ms });
  });

  it('needs a dispatch command', () => {
    expect(configErrorMessage(() => resolve({ workerId: 'w', backend: 'command' }))).toBe(
      'the command backend requires a dispatch command: set backend.command.dispatch_command in the config file (it gets the task as JSON on stdin)',
    );
  });

  it('is absent for other backends', () => {
    expect(resolve({ workerId: 'w', backend: 'direct' })).not.toHaveProperty('command');
  });
});

describe('kubernetes backend', () => {
  it('copies every key in camelCase', () => {
    const text = [
      'worker_id: w',
      'backend:',
      '  kubernetes:',
      '    namespace: agents',
      '    kubeconfig: /kube',
      '    default_image: img:1',
      '    image_pull_policy: Never',
      '    use_image_volumes: true',
      '    preflight_image: busybox:1',
      '    sidecar_image: side:1',
      '    coding_cli_sidecars: { claude: c:1 }',
      '    setup_command: s',
      '    teardown_command: t',
      '    extra_labels: { a: b }',
      '    extra_annotations: { c: d }',
      '    active_deadline_seconds: 1800',
      '    ttl_seconds_after_finished: 60',
      '    workspace_size_limit: 10Gi',
      '    unschedulable_timeout: 2m',
      '    volume_mount_timeout: 90s',
      '    preflight_timeout: 5m',
      '    image_pull_timeout: 3m',
      '    pod_template: { serviceAccountName: sa }',
      '    preflight_resources: { limits: { cpu: 100m } }',
      '',
    ].join('\n');
    expect(asBackend(resolve({}, text), 'kubernetes').kubernetes).toEqual({
      namespace: 'agents',
      kubeconfig: '/kube',
      defaultImage: 'img:1',
      imagePullPolicy: 'Never',
      useImageVolumes: true,
      preflightImage: 'busybox:1',
      sidecarImage: 'side:1',
      codingCliSidecars: { claude: 'c:1' },
      setupCommand: 's',
      teardownCommand: 't',
      extraLabels: { a: 'b' },
      extraAnnotations: { c: 'd' },
      activeDeadlineSeconds: 1800,
      ttlSecondsAfterFinished: 60,
      workspaceSizeLimit: '10Gi',
      unschedulableTimeoutMs: 120_000,
      volumeMountTimeoutMs: 90_000,
      preflightTimeoutMs: 300_000,
      imagePullTimeoutMs: 180_000,
      podTemplate: { serviceAccountName: 'sa' },
      preflightResources: { limits: { cpu: '100m' } },
    });
  });

  it.each([
    // The Go worker's later default (30 s up to 3382ab6).
    [undefined, 600_000],
    ['45s', 45_000],
    ['0s', 0],
    ['0', 0],
    ['-1m', 0],
  ])('unschedulable_timeout %j gives %d ms (0 disables)', (timeout, ms) => {
    const text = `worker_id: w\nbackend:\n  kubernetes:\n${timeout ? `    unschedulable_timeout: ${timeout}\n` : '    namespace: n\n'}`;
    expect(asBackend(resolve({}, text), 'kubernetes').kubernetes.unschedulableTimeoutMs).toBe(ms);
  });

  it('uses defaults for --backend kubernetes without a block', () => {
    expect(asBackend(resolve({ workerId: 'w', backend: 'kubernetes' }), 'kubernetes').kubernetes).toEqual({
      namespace: 'default',
      imagePullPolicy: 'IfNotPresent',
      useImageVolumes: false,
      preflightImage: 'busybox:1.36',
      setupCommand: '',
      teardownCommand: '',
      extraLabels: {},
      extraAnnotations: {},
      activeDeadlineSeconds: 8 * 60 * 60,
      ttlSecondsAfterFinished: 24 * 60 * 60,
      unschedulableTimeoutMs: 600_000,
      volumeMountTimeoutMs: 120_000,
      preflightTimeoutMs: 120_000,
      imagePullTimeoutMs: 60_000,
      preflightResources: { requests: { cpu: '10m', memory: '16Mi' }, limits: { cpu: '100m', memory: '64Mi' } },
    });
  });

  it.each([
    ['0 means no deadline', 'active_deadline_seconds: 0', { activeDeadlineSeconds: undefined }],
    ['a deadline', 'active_deadline_seconds: 60', { activeDeadlineSeconds: 60 }],
    ['a TTL', 'ttl_seconds_after_finished: 30', { ttlSecondsAfterFinished: 30 }],
    ['no TTL without cleanup', 'ttl_seconds_after_finished: 30\ncleanup: false', { ttlSecondsAfterFinished: undefined }],
  ])('%s', (_name, lines, expected) => {
    const [key, top = ''] = lines.split('\n');
    const config = asBackend(resolve({}, `worker_id: w\n${top}\nbackend:\n  kubernetes:\n    ${key}\n`), 'kubernetes');
    expect(config.kubernetes).toMatchObject(expected);
  });

  it.each([
    ['0s', 0],
    ['-1s', 0],
    ['90s', 90_000],
  ])('preflight_timeout %s gives %d ms (0 skips the preflight)', (timeout, ms) => {
    expect(
      asBackend(resolve({}, `worker_id: w\nbackend:\n  kubernetes:\n    preflight_timeout: ${timeout}\n`), 'kubernetes').kubernetes.preflightTimeoutMs,
    ).toBe(ms);
  });

  it.each([
    ['0s', 0],
    ['-5s', 0],
    ['2m', 120_000],
  ])('image_pull_timeout %s gives %d ms (0 fails at the first pull error)', (timeout, ms) => {
    expect(
      asBackend(resolve({}, `worker_id: w\nbackend:\n  kubernetes:\n    image_pull_timeout: ${timeout}\n`), 'kubernetes').kubernetes.imagePullTimeoutMs,
    ).toBe(ms);
  });
});

describe('device scope', () => {
  it.each<[string, WorkerFlags, FileConfig | undefined, WorkerConfig['device']]>([
    ['no device settings: fleet worker', {}, undefined, undefined],
    ['the file block', {}, { device: { owner_user_id: 42, team_ids: [7, 9] } }, { ownerUserId: 42, teamIds: [7, 9] }],
    ['only an owner', {}, { device: { owner_user_id: 42 } }, { ownerUserId: 42, teamIds: [] }],
    ['only teams', {}, { device: { team_ids: [7] } }, { ownerUserId: undefined, teamIds: [7] }],
    ['the flags', { deviceOwnerUserId: '42', deviceTeamId: ['7', '9', '7'] }, undefined, { ownerUserId: 42, teamIds: [7, 9] }],
    [
      'flags over the file',
      { deviceOwnerUserId: '43', deviceTeamId: ['8'] },
      { device: { owner_user_id: 42, team_ids: [7] } },
      { ownerUserId: 43, teamIds: [8] },
    ],
    ['an owner flag keeping the file teams', { deviceOwnerUserId: '43' }, { device: { owner_user_id: 42, team_ids: [7] } }, { ownerUserId: 43, teamIds: [7] }],
  ])('%s', (_name, flags, file, device) => {
    expect(resolve({ workerId: 'w', ...flags }, file).device).toEqual(device);
  });

  it.each<[string, FileConfig | string]>([
    ['an empty device block', 'worker_id: w\ndevice:\n'],
    ['a device block with an empty team list', { worker_id: 'w', device: { team_ids: [] } }],
  ])('refuses an empty scope: %s', (_name, file) => {
    expect(configErrorMessage(() => resolve({}, file))).toMatch(/^device mode needs a scope: set device.owner_user_id \(or --device-owner-user-id\)/);
  });

  it.each<[WorkerFlags, string]>([
    [{ deviceOwnerUserId: 'me' }, 'invalid --device-owner-user-id "me": use the numeric Warp user id'],
    [{ deviceOwnerUserId: '0' }, 'invalid --device-owner-user-id "0": use the numeric Warp user id'],
    [{ deviceTeamId: ['7', 'x'] }, 'invalid --device-team-id "x": use the numeric Warp team id'],
  ])('refuses a bad id flag %j', (flags, message) => {
    expect(configErrorMessage(() => resolve({ workerId: 'w', ...flags }))).toBe(message);
  });
});

describe('other checks', () => {
  it.each<[WorkerFlags, string]>([
    [{ logLevel: 'trace' }, 'invalid --log-level "trace": use one of debug, info, warn, error'],
    [{ webSocketUrl: 'http://127.0.0.1/ws' }, 'invalid --web-socket-url "http://127.0.0.1/ws": use a ws:// or wss:// URL'],
    [{ webSocketUrl: 'not a url' }, 'invalid --web-socket-url "not a url": use a ws:// or wss:// URL'],
    [{ serverRootUrl: 'ftp://x' }, 'invalid --server-root-url "ftp://x": use a http:// or https:// URL'],
    [{ shutdownGracePeriod: '25' }, 'invalid --shutdown-grace-period "25": time: missing unit in duration "25"'],
    [{ shutdownGracePeriod: '-1s' }, 'invalid --shutdown-grace-period "-1s": must not be negative'],
  ])('refuses %j', (flags, message) => {
    expect(configErrorMessage(() => resolve({ workerId: 'w', ...flags }))).toContain(message);
  });

  it('gives ConfigErrors exit code 2', () => {
    let error: unknown;
    try {
      resolve({});
    } catch (caught) {
      error = caught;
    }
    expect((error as ConfigError).exitCode).toBe(2);
  });
});

describe('API key file permissions', () => {
  it.each([
    [0o600, undefined],
    [0o400, undefined],
    [0o640, 'the API key file /k is accessible to other users (mode 640); restrict it: chmod 600 /k'],
    [0o604, 'the API key file /k is accessible to other users (mode 604); restrict it: chmod 600 /k'],
    [0o100644, 'the API key file /k is accessible to other users (mode 644); restrict it: chmod 600 /k'],
  ])('mode %o → %s', (mode, expected) => expect(keyFilePermissionWarning('/k', mode)).toBe(expected));

  it('knows when the key comes from a file', () => {
    expect(apiKeyFileSource({ apiKeyFile: '/a' }, undefined, {})).toBe('/a');
    expect(apiKeyFileSource({ apiKeyFile: '/a', apiKey: 'k' }, undefined, {})).toBeUndefined();
    expect(apiKeyFileSource({}, undefined, { WARP_API_KEY: 'k', WARP_API_KEY_FILE: '/b' })).toBeUndefined();
    expect(apiKeyFileSource({}, undefined, { WARP_API_KEY_FILE: '/b' })).toBe('/b');
  });
});
