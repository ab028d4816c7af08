// A config file or command line written for today's Go worker is never
// refused: every key of the Go worker at 3382ab6 and of its later versions
// loads and resolves; the keys oz-worker deliberately ignores are accepted
// with one warning each; a key nobody knows is still an error.
import { describe, expect, it } from 'vitest';
import { buildTaskParams } from '../../src/agent/task-params.js';
import { IGNORED_GO_KEYS, KNOWN_KEYS, type FileConfig } from '../../src/config/file-schema.js';
import { parseConfigText } from '../../src/config/load-file.js';
import { resolveWorkerConfig, type HostEnv, type WorkerFlags } from '../../src/config/resolve.js';
import type { WorkerConfig } from '../../src/config/worker-config.js';
import { TaskAssignmentSchema } from '../../src/protocol/messages.js';
import type { BackendName } from '../../src/task/contract.js';
import { asBackend, configErrorMessage } from '../support/test-config.js';

const HOST: HostEnv = { WARP_API_KEY: 'env-key' };
const noSecrets = (): string => {
  throw new Error('no secret files here');
};
const yaml = (...lines: string[]): string => `${lines.join('\n')}\n`;
const parse = (text: string): FileConfig => parseConfigText(text, '/etc/oz/go.yaml');

function resolve(text: string | undefined, flags: WorkerFlags = {}, hostEnv: HostEnv = HOST): WorkerConfig {
  return resolveWorkerConfig({ cleanup: true, logLevel: 'info', ...flags }, text === undefined ? undefined : parse(text), hostEnv, noSecrets);
}

/** The Go worker's top-level keys (3382ab6 and later), with its debug_log_capture block. */
const GO_TOP_LEVEL = (oneShot: boolean) => [
  'worker_id: go-worker',
  'cleanup: true',
  // One-shot mode runs one task; any other limit would be accepted, with a warning.
  `max_concurrent_tasks: ${oneShot ? 1 : 3}`,
  'idle_on_complete: 10m',
  `one_shot: ${oneShot}`,
  'collect_task_logs: false',
  'debug_log_capture:',
  '  directory: /var/tmp/oz-debug',
  '  max_total_bytes: 1073741824',
  '  max_execution_bytes: 67108864',
  '  max_concurrent_uploads: 2',
];

/** One file per backend block (the Go worker allows one), each with every key Go knows there. */
const GO_FILES: [BackendName, string][] = [
  [
    'direct',
    yaml(
      ...GO_TOP_LEVEL(true),
      'backend:',
      '  direct:',
      '    workspace_root: /var/lib/oz/workspaces',
      '    target_dir: ""',
      '    oz_path: /usr/local/bin/oz',
      '    setup_command: ./setup.sh',
      '    teardown_command: ./teardown.sh',
      '    environment:',
      '      - name: FOO',
      '        value: bar',
      '      - name: FROM_HOST',
    ),
  ],
  [
    'docker',
    yaml(
      ...GO_TOP_LEVEL(false),
      'backend:',
      '  docker:',
      '    volumes: ["/data:/data:ro"]',
      '    environment: [{ name: FOO, value: bar }]',
      '    image_pull_policy: IfNotPresent',
      '    sidecar_image: mirror.internal/warp-agent:latest',
    ),
  ],
  [
    'kubernetes',
    yaml(
      ...GO_TOP_LEVEL(false),
      'backend:',
      '  kubernetes:',
      '    namespace: agents',
      '    kubeconfig: /etc/kube/config',
      '    default_image: registry/dev:latest',
      '    image_pull_policy: Always',
      '    use_image_volumes: false',
      '    preflight_image: busybox:1.36',
      '    sidecar_image: mirror/warp-agent:latest',
      '    coding_cli_sidecars: { claude: registry/my-claude:v1 }',
      '    setup_command: echo setup',
      '    teardown_command: echo teardown',
      '    extra_labels: { team: platform }',
      '    extra_annotations: { owner: oz }',
      '    active_deadline_seconds: 1800',
      '    ttl_seconds_after_finished: 86400',
      '    workspace_size_limit: 10Gi',
      '    unschedulable_timeout: 10m',
      '    volume_mount_timeout: 90s',
      '    pod_template: { serviceAccountName: agent }',
      '    preflight_resources: { requests: { cpu: 10m } }',
    ),
  ],
  [
    'command',
    yaml(
      ...GO_TOP_LEVEL(false),
      'backend:',
      '  command:',
      '    dispatch_command: python3 /opt/oz/dispatch.py',
      '    cancel_command: python3 /opt/oz/cancel.py',
      '    dispatch_timeout: 45s',
      '    environment: [{ name: OZ_DISPATCH_AUTH_HEADER }]',
    ),
  ],
];

const DEBUG_LOG_CAPTURE_WARNING =
  "config file key debug_log_capture is ignored: oz-worker does not implement it (it configures the Go worker's debug log archives for the server's debug_archive_logs_requested frames, which oz-worker does not implement); remove it to silence this warning";

describe("a config file with every Go worker key (3382ab6's and the later ones)", () => {
  it.each(GO_FILES)('loads and resolves for the %s backend, with exactly one warning: the ignored debug_log_capture', (backend, text) => {
    const config = resolve(text);
    expect(config.backend).toBe(backend);
    expect(config.startupWarnings).toEqual([DEBUG_LOG_CAPTURE_WARNING]);
    expect(config.collectTaskLogs).toBe(false);
    expect(config.oneShot).toBe(backend === 'direct');
    expect(config.maxConcurrentTasks).toBe(backend === 'direct' ? 1 : 3);
  });

  it('resolves the later keys to their settings', () => {
    const docker = asBackend(resolve(GO_FILES[1]![1]), 'docker').docker;
    expect(docker).toEqual({ volumes: ['/data:/data:ro'], pullPolicy: 'IfNotPresent', sidecarImage: 'mirror.internal/warp-agent:latest' });
    expect(asBackend(resolve(GO_FILES[2]![1]), 'kubernetes').kubernetes).toMatchObject({ unschedulableTimeoutMs: 600_000, volumeMountTimeoutMs: 90_000 });
  });

  it('warns about an ignored key even when its block is empty, and not at all without it', () => {
    expect(resolve(yaml('worker_id: w', 'debug_log_capture:')).startupWarnings).toEqual([DEBUG_LOG_CAPTURE_WARNING]);
    expect(resolve(yaml('worker_id: w')).startupWarnings).toBeUndefined();
  });

  it.each([
    ['the Kubernetes image_pull_policy', yaml('backend:', '  kubernetes:', '    image_pull_policy: ""'), { imagePullPolicy: 'IfNotPresent' }],
    ['workspace_size_limit', yaml('backend:', '  kubernetes:', '    workspace_size_limit: ""'), { namespace: 'default' }],
    ['volume_mount_timeout', yaml('backend:', '  kubernetes:', '    volume_mount_timeout: ""'), { volumeMountTimeoutMs: 120_000 }],
    ['the Docker image_pull_policy', yaml('backend:', '  docker:', '    image_pull_policy: ""'), { pullPolicy: 'Always' }],
    ['dispatch_timeout', yaml('backend:', '  command:', '    dispatch_command: d', '    dispatch_timeout: ""'), { dispatchTimeoutMs: 60_000 }],
  ])('reads an empty %s as not set, as the Go worker does', (_name, text, expected) => {
    const config = resolve(`worker_id: w\n${text}`) as unknown as Record<string, Record<string, unknown>>;
    const section = config[config.backend as unknown as string];
    expect(section).toMatchObject(expected);
    // No size limit on the workspace volume.
    expect(section?.workspaceSizeLimit).toBeUndefined();
  });

  it('knows every ignored key and its fields, so a misspelling near one is still named', () => {
    for (const ignored of IGNORED_GO_KEYS) {
      expect(KNOWN_KEYS[ignored.block]).toContain(ignored.key);
      expect(KNOWN_KEYS[ignored.block === '' ? ignored.key : `${ignored.block}.${ignored.key}`]).toEqual(ignored.fields);
    }
  });
});

describe('keys nobody knows stay errors', () => {
  it.each([
    [yaml('worker_id: w', 'one_shots: true'), 'line 2: unknown key "one_shots" (did you mean "one_shot"?)'],
    [yaml('worker_id: w', 'collect_task_log: true'), 'line 2: unknown key "collect_task_log" (did you mean "collect_task_logs"?)'],
    [yaml('debug_log_captures: {}'), 'line 1: unknown key "debug_log_captures" (did you mean "debug_log_capture"?)'],
    [
      yaml('debug_log_capture:', '  max_bytes: 5'),
      'line 2: unknown key "debug_log_capture.max_bytes" (remove it or fix its spelling; the keys allowed here are directory',
    ],
    [yaml('backend:', '  docker:', '    image_pull_polcy: Never'), 'line 3: unknown key "backend.docker.image_pull_polcy" (did you mean "image_pull_policy"?)'],
    [
      yaml('backend:', '  kubernetes:', '    volume_mount_timout: 1m'),
      'line 3: unknown key "backend.kubernetes.volume_mount_timout" (did you mean "volume_mount_timeout"?)',
    ],
    [yaml('worker_id: w', 'frobnicate: 1'), 'line 2: unknown key "frobnicate" (remove it or fix its spelling'],
  ])('%j', (text, message) => {
    expect(configErrorMessage(() => parse(text))).toContain(message);
  });

  it.each([
    [yaml('debug_log_capture: yes'), 'line 1: debug_log_capture must be a mapping of keys'],
    [yaml('one_shot: maybe'), 'line 1: one_shot must be true or false (got "maybe")'],
    [yaml('collect_task_logs: "false"'), 'line 1: collect_task_logs must be true or false without quotes'],
    [yaml('backend:', '  docker:', '    image_pull_policy: ifnotpresent'), 'write IfNotPresent, the value is case-sensitive'],
    [yaml('backend:', '  docker:', '    sidecar_image: "a b"'), 'line 3: backend.docker.sidecar_image must not contain whitespace'],
    [yaml('backend:', '  kubernetes:', '    volume_mount_timeout: nope'), 'line 3: backend.kubernetes.volume_mount_timeout is not a valid duration'],
  ])('a value the Go worker refuses too: %j', (text, message) => {
    expect(configErrorMessage(() => parse(text))).toContain(message);
  });
});

describe('backend.docker.image_pull_policy and its older name pull_policy: one setting', () => {
  const docker = (...lines: string[]) => asBackend(resolve(yaml('worker_id: w', 'backend:', '  docker:', ...lines.map((line) => `    ${line}`))), 'docker');

  it.each([
    [[], 'Always'],
    [['image_pull_policy: Always'], 'Always'],
    [['image_pull_policy: IfNotPresent'], 'IfNotPresent'],
    [['image_pull_policy: Never'], 'Never'],
    [['pull_policy: always'], 'Always'],
    [['pull_policy: if_not_present'], 'IfNotPresent'],
    [['pull_policy: never'], 'Never'],
    [['pull_policy: never', 'image_pull_policy: Never'], 'Never'],
    [['pull_policy: if_not_present', 'image_pull_policy: IfNotPresent'], 'IfNotPresent'],
    [['pull_policy: always', 'image_pull_policy: ""'], 'Always'],
  ])('%j gives %s', (lines, policy) => {
    expect(docker(...lines).docker.pullPolicy).toBe(policy);
  });

  it('refuses the two names set to different policies, naming both', () => {
    expect(configErrorMessage(() => docker('pull_policy: never', 'image_pull_policy: Always'))).toBe(
      'config file /etc/oz/go.yaml, line 4: backend.docker.pull_policy (never) and backend.docker.image_pull_policy (Always) are one setting and disagree (keep image_pull_policy: Always, IfNotPresent or Never, and remove pull_policy)',
    );
  });
});

describe('one_shot / --one-shot', () => {
  it.each([
    ['the file', yaml('worker_id: w', 'one_shot: true', 'backend:', '  direct:'), {}],
    ['the flag', yaml('worker_id: w', 'backend:', '  direct:'), { oneShot: true }],
  ])('from %s: one task at a time on the direct backend', (_name, text, flags) => {
    const config = resolve(text, flags);
    expect(config).toMatchObject({ oneShot: true, maxConcurrentTasks: 1 });
    expect(config.startupWarnings).toBeUndefined();
  });

  it("takes the Go worker's config pairing one_shot with Docker settings", () => {
    const config = resolve(
      yaml('worker_id: w', 'one_shot: true', 'backend:', '  docker:', '    image_pull_policy: IfNotPresent', '    sidecar_image: example.com/agent:1'),
    );
    expect(config).toMatchObject({ backend: 'docker', oneShot: true, maxConcurrentTasks: 1 });
  });

  it('warns that a concurrency limit other than 1 is ignored', () => {
    expect(resolve(yaml('worker_id: w', 'max_concurrent_tasks: 4', 'one_shot: true', 'backend:', '  direct:')).startupWarnings).toEqual([
      'max_concurrent_tasks 4 is ignored: one-shot mode runs exactly one task',
    ]);
  });

  it.each([
    ['kubernetes', yaml('worker_id: w', 'backend:', '  kubernetes: {}'), { oneShot: true }, '--one-shot is not supported by the kubernetes backend'],
    [
      'command',
      yaml('worker_id: w', 'one_shot: true', 'backend:', '  command:', '    dispatch_command: d'),
      {},
      'one_shot in the config file is not supported by the command backend',
    ],
  ])('is a start-up config error on the %s backend, naming the key and the backend', (_backend, text, flags, message) => {
    expect(configErrorMessage(() => resolve(text, flags))).toBe(
      `${message}: one-shot mode (one task, then exit) works only with the docker or direct backend (remove ${message.startsWith('--') ? 'the flag' : 'the key'}, or run the docker or direct backend)`,
    );
  });

  it('is off by default, and one_shot: false on another backend is fine', () => {
    expect(resolve(yaml('worker_id: w', 'one_shot: false')).oneShot).toBe(false);
    expect(resolve(yaml('worker_id: w')).oneShot).toBe(false);
  });
});

describe('collect_task_logs / --collect-task-logs / OZ_COLLECT_TASK_LOGS', () => {
  it.each([
    ['nothing set: on', undefined, {}, {}, true],
    ['the file turns it off', 'collect_task_logs: false', {}, {}, false],
    ['the variable over the file', 'collect_task_logs: false', {}, { OZ_COLLECT_TASK_LOGS: 'true' }, true],
    ['the variable as 0', undefined, {}, { OZ_COLLECT_TASK_LOGS: '0' }, false],
    ['the variable as 1', 'collect_task_logs: no', {}, { OZ_COLLECT_TASK_LOGS: '1' }, true],
    ['an empty variable counts as unset', 'collect_task_logs: false', {}, { OZ_COLLECT_TASK_LOGS: '' }, false],
    ['the flag over the variable', undefined, { collectTaskLogs: true }, { OZ_COLLECT_TASK_LOGS: 'false' }, true],
    ['--no-collect-task-logs over the file', 'collect_task_logs: true', { collectTaskLogs: false }, {}, false],
  ])('%s', (_name, line, flags, env, expected) => {
    expect(resolve(yaml('worker_id: w', line ?? ''), flags, { ...HOST, ...env }).collectTaskLogs).toBe(expected);
  });

  it('refuses a variable that is not a boolean, naming it', () => {
    expect(configErrorMessage(() => resolve(yaml('worker_id: w'), {}, { ...HOST, OZ_COLLECT_TASK_LOGS: 'sometimes' }))).toBe(
      'invalid OZ_COLLECT_TASK_LOGS "sometimes": use 1 or true to turn it on, 0 or false to turn it off',
    );
  });
});

describe('backend.docker.sidecar_image', () => {
  const assignment = (sidecar: string | undefined) =>
    TaskAssignmentSchema.parse({
      task_id: 't1',
      task: { id: 't1' },
      ...(sidecar ? { sidecar_image: sidecar } : {}),
      additional_sidecars: [{ image: 'tools/x:1', mount_path: '/opt/x' }],
    });
  const docker = resolve(yaml('worker_id: w', 'backend:', '  docker:', '    sidecar_image: mirror.internal/agent:2'));

  it("replaces the assignment's /agent sidecar image, and no other", () => {
    expect(buildTaskParams(assignment('docker.io/warpdotdev/warp-agent:latest'), undefined, docker).sidecars).toEqual([
      { image: 'mirror.internal/agent:2', mount_path: '/agent', read_write: false },
      { image: 'tools/x:1', mount_path: '/opt/x', read_write: false },
    ]);
  });

  it('adds no /agent sidecar when the assignment has none', () => {
    expect(buildTaskParams(assignment(undefined), undefined, docker).sidecars).toEqual([{ image: 'tools/x:1', mount_path: '/opt/x', read_write: false }]);
  });

  it("leaves the Kubernetes backend to its own sidecar_image, and other backends to the assignment's", () => {
    const kubernetes = resolve(yaml('worker_id: w', 'backend:', '  kubernetes:', '    sidecar_image: k8s.internal/agent:3'));
    expect(buildTaskParams(assignment('warp/agent:1'), undefined, kubernetes).sidecars[0]?.image).toBe('k8s.internal/agent:3');
    const direct = resolve(yaml('worker_id: w', 'backend:', '  direct:'));
    expect(buildTaskParams(assignment('warp/agent:1'), undefined, direct).sidecars[0]?.image).toBe('warp/agent:1');
  });
});
