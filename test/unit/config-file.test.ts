// The YAML config file: the Go worker's keys and value rules, strictness, and
// errors that name the key as written, its line, and the fix.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/errors.js';
import type { FileConfig } from '../../src/config/file-schema.js';
import { loadConfigFile, parseConfigText } from '../../src/config/load-file.js';

const SOURCE = '/etc/oz/config.yaml';

const parse = (text: string): FileConfig => parseConfigText(text, SOURCE);

/** The ConfigError message `text` produces (fails the test when it parses). */
function problem(text: string): string {
  try {
    parse(text);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    const configError = error as ConfigError;
    expect(configError.exitCode).toBe(2);
    expect(configError.message).not.toContain('\n');
    return configError.message;
  }
  throw new Error(`expected a config error for:\n${text}`);
}

const yaml = (...lines: string[]): string => `${lines.join('\n')}\n`;

describe('valid config files', () => {
  it('reads every top-level key, a direct block and environment entries', () => {
    const config = parse(
      yaml(
        'worker_id: "my-worker"',
        'cleanup: false',
        'max_concurrent_tasks: 5',
        'idle_on_complete: "10m"',
        'api_key_file: /run/secrets/warp',
        'shutdown_grace_period: 40s',
        'device:',
        '  owner_user_id: 42',
        '  team_ids: [7, 9]',
        'backend:',
        '  direct:',
        '    workspace_root: /srv/ws',
        '    target_dir: /home/user/repo',
        '    oz_path: /usr/local/bin/oz',
        '    setup_command: /opt/setup.sh',
        '    teardown_command: /opt/teardown.sh',
        '    environment:',
        '      - name: FOO',
        '        value: bar',
        '      - name: INHERITED',
        '      - name: NULL_VALUE',
        '        value:',
        '      - name: EXPLICIT_EMPTY',
        '        value: ""',
        '      - name: NUMBER',
        '        value: 1.10',
      ),
    );
    expect(config).toEqual({
      worker_id: 'my-worker',
      cleanup: false,
      max_concurrent_tasks: 5,
      idle_on_complete: '10m',
      api_key_file: '/run/secrets/warp',
      shutdown_grace_period: '40s',
      device: { owner_user_id: 42, team_ids: [7, 9] },
      backend: {
        direct: {
          workspace_root: '/srv/ws',
          target_dir: '/home/user/repo',
          oz_path: '/usr/local/bin/oz',
          setup_command: '/opt/setup.sh',
          teardown_command: '/opt/teardown.sh',
          environment: [
            { name: 'FOO', value: 'bar' },
            { name: 'INHERITED' },
            { name: 'NULL_VALUE', value: undefined },
            { name: 'EXPLICIT_EMPTY', value: '' },
            { name: 'NUMBER', value: '1.10' },
          ],
        },
      },
    });
  });

  it('reads every docker key', () => {
    const config = parse(
      yaml('backend:', '  docker:', '    volumes: ["/data:/data:ro", "/cache:/cache"]', '    environment:', '      - name: A', '        value: b'),
    );
    expect(config.backend?.docker).toEqual({ volumes: ['/data:/data:ro', '/cache:/cache'], environment: [{ name: 'A', value: 'b' }] });
  });

  it('reads every command key', () => {
    const config = parse(
      yaml(
        'backend:',
        '  command:',
        '    dispatch_command: /opt/oz/dispatch.sh',
        '    cancel_command: /opt/oz/cancel.sh',
        '    dispatch_timeout: 90s',
        '    environment: [{name: A, value: b}]',
      ),
    );
    expect(config.backend?.command).toEqual({
      dispatch_command: '/opt/oz/dispatch.sh',
      cancel_command: '/opt/oz/cancel.sh',
      dispatch_timeout: '90s',
      environment: [{ name: 'A', value: 'b' }],
    });
  });

  it('reads every kubernetes key, keeping pod_template and preflight_resources as written', () => {
    const config = parse(
      yaml(
        'backend:',
        '  kubernetes:',
        '    namespace: agents',
        '    kubeconfig: /home/me/.kube/config',
        '    default_image: registry/dev:latest',
        '    image_pull_policy: Always',
        '    use_image_volumes: yes',
        '    preflight_image: busybox:1.36',
        '    sidecar_image: mirror/warp-agent:latest',
        '    coding_cli_sidecars: { claude: "registry/my-claude:v1" }',
        '    setup_command: echo setup',
        '    teardown_command: echo teardown',
        '    extra_labels: { team: platform, version: 1.10 }',
        '    extra_annotations: { owner: oz }',
        '    active_deadline_seconds: 1800',
        '    ttl_seconds_after_finished: 86400',
        '    workspace_size_limit: 10Gi',
        '    unschedulable_timeout: 2m',
        '    pod_template:',
        '      serviceAccountName: agent',
        '      someFutureField: { nested: [1, true, null] }',
        '      containers:',
        '        - name: task',
        '          resources: { limits: { cpu: "2" } }',
        '    preflight_resources:',
        '      requests: { cpu: 10m, memory: 16Mi }',
      ),
    );
    expect(config.backend?.kubernetes).toEqual({
      namespace: 'agents',
      kubeconfig: '/home/me/.kube/config',
      default_image: 'registry/dev:latest',
      image_pull_policy: 'Always',
      use_image_volumes: true,
      preflight_image: 'busybox:1.36',
      sidecar_image: 'mirror/warp-agent:latest',
      coding_cli_sidecars: { claude: 'registry/my-claude:v1' },
      setup_command: 'echo setup',
      teardown_command: 'echo teardown',
      extra_labels: { team: 'platform', version: '1.10' },
      extra_annotations: { owner: 'oz' },
      active_deadline_seconds: 1800,
      ttl_seconds_after_finished: 86400,
      workspace_size_limit: '10Gi',
      unschedulable_timeout: '2m',
      pod_template: {
        serviceAccountName: 'agent',
        someFutureField: { nested: [1, true, null] },
        containers: [{ name: 'task', resources: { limits: { cpu: '2' } } }],
      },
      preflight_resources: { requests: { cpu: '10m', memory: '16Mi' } },
    });
  });

  it('treats an empty block as selecting that backend (Go fell back to docker)', () => {
    expect(parse(yaml('worker_id: w', 'backend:', '  direct:')).backend).toEqual({ direct: {} });
    expect(parse(yaml('backend:', '  kubernetes: {}')).backend).toEqual({ kubernetes: {} });
  });

  it('treats an empty backend: key as no backend', () => {
    expect(parse(yaml('worker_id: w', 'backend:')).backend).toBeUndefined();
  });

  it.each([
    ['yes', true],
    ['Yes', true],
    ['YES', true],
    ['y', true],
    ['Y', true],
    ['on', true],
    ['On', true],
    ['ON', true],
    ['true', true],
    ['True', true],
    ['no', false],
    ['No', false],
    ['n', false],
    ['off', false],
    ['OFF', false],
    ['false', false],
    ['FALSE', false],
  ])('accepts the YAML bool %s as %s', (word, value) => {
    expect(parse(yaml(`cleanup: ${word}`)).cleanup).toBe(value);
  });

  it.each([
    ['123', '123'],
    ['1.10', '1.10'],
    ['0x1F', '0x1F'],
    ['true', 'true'],
    ['yes', 'yes'],
    ['"quoted"', 'quoted'],
  ])('reads worker_id: %s as the text %j', (value, text) => {
    expect(parse(yaml(`worker_id: ${value}`)).worker_id).toBe(text);
  });

  it('treats null scalars as unset', () => {
    expect(parse(yaml('worker_id:', 'cleanup: ~', 'max_concurrent_tasks: null', 'idle_on_complete: ""'))).toEqual({
      worker_id: undefined,
      cleanup: undefined,
      max_concurrent_tasks: undefined,
      idle_on_complete: '',
    });
  });

  it('reads only the first YAML document', () => {
    expect(parse(yaml('worker_id: first', '---', 'worker_id: second', 'not_a_key: 1', '---', '[broken'))).toEqual({ worker_id: 'first' });
  });

  it('resolves anchors, aliases and << merges', () => {
    const config = parse(
      yaml(
        'worker_id: w',
        'backend:',
        '  kubernetes:',
        '    extra_labels: &labels { team: platform }',
        '    extra_annotations:',
        '      <<: *labels',
        '      owner: oz',
      ),
    );
    expect(config.backend?.kubernetes?.extra_annotations).toEqual({ team: 'platform', owner: 'oz' });
  });
});

describe('config file errors', () => {
  it('names an unknown key as written, with its line and a fix', () => {
    expect(problem(yaml('worker_id: w', 'backend:', '  kubernetes:', '    namespace: x', '    image_pull_secret: s'))).toBe(
      `config file ${SOURCE}, line 5: unknown key "backend.kubernetes.image_pull_secret" (remove it; declarative pod settings go in backend.kubernetes.pod_template, as imagePullSecrets)`,
    );
  });

  it.each(['image_pull_secret', 'service_account', 'node_selector', 'tolerations', 'resources', 'termination_grace_period_seconds', 'environment'])(
    'rejects the removed kubernetes key %s and points to pod_template',
    (key) => {
      const message = problem(yaml('backend:', '  kubernetes:', `    ${key}: x`));
      expect(message).toContain(`line 3: unknown key "backend.kubernetes.${key}"`);
      expect(message).toContain('backend.kubernetes.pod_template');
    },
  );

  it.each([
    [yaml('worker-id: w'), 1, 'unknown key "worker-id" (did you mean "worker_id"?)'],
    [
      yaml('backend:', '  kubernetes:', '    ttl_seconds_after_finish: 5'),
      3,
      'unknown key "backend.kubernetes.ttl_seconds_after_finish" (did you mean "ttl_seconds_after_finished"?)',
    ],
    [yaml('backend:', '  podman: {}'), 2, 'unknown key "backend.podman" (remove it; the backend blocks are docker, direct, command, kubernetes)'],
    [
      yaml('backend:', '  direct:', '    environment:', '      - name: A', '        valeu: b'),
      5,
      'unknown key "backend.direct.environment[0].valeu" (did you mean "value"?)',
    ],
    [yaml('device:', '  owner: 1'), 2, 'unknown key "device.owner"'],
    [yaml('worker_id: w', 'logging: debug'), 2, 'unknown key "logging" (remove it or fix its spelling; the keys allowed here are worker_id, cleanup'],
  ])('reports unknown keys anywhere: %j', (text, line, message) => {
    expect(problem(text)).toContain(`line ${line}: ${message}`);
  });

  it.each([
    // The Go worker's validation rules, with YAML key paths instead of Go struct names.
    ['two backend blocks', yaml('backend:', '  docker:', '  direct: {}'), 3, 'at most one backend may be configured, found backend.docker and backend.direct'],
    ['a command block without dispatch_command', yaml('backend:', '  command:', '    cancel_command: x'), 2, 'backend.command.dispatch_command is required'],
    ['an empty command block', yaml('backend:', '  command:'), 2, 'backend.command.dispatch_command is required'],
    [
      'a docker env entry without a name',
      yaml('backend:', '  docker:', '    environment:', '      - value: x'),
      4,
      'backend.docker.environment[0].name is required',
    ],
    [
      'a direct env entry with an empty name',
      yaml('backend:', '  direct:', '    environment:', '      - name: A', '      - name: ""'),
      5,
      'backend.direct.environment[1].name is required',
    ],
    [
      'a null command env entry',
      yaml('backend:', '  command:', '    dispatch_command: d', '    environment:', '      -'),
      5,
      'backend.command.environment[0].name is required',
    ],
    [
      'an env name with a space',
      yaml('backend:', '  direct:', '    environment:', '      - name: MY VAR'),
      4,
      'backend.direct.environment[0].name must not contain whitespace (got "MY VAR"',
    ],
    [
      'an env name with a tab',
      yaml('backend:', '  docker:', '    environment:', '      - name: "MY\\tVAR"'),
      4,
      'backend.docker.environment[0].name must not contain whitespace',
    ],
    [
      'a default_image with a space',
      yaml('backend:', '  kubernetes:', '    default_image: "ubuntu 22.04"'),
      3,
      'backend.kubernetes.default_image must not contain whitespace',
    ],
    [
      'a preflight_image with a tab',
      yaml('backend:', '  kubernetes:', '    preflight_image: "busybox\\t1"'),
      3,
      'backend.kubernetes.preflight_image must not contain whitespace',
    ],
    [
      'a sidecar_image with a space',
      yaml('backend:', '  kubernetes:', '    sidecar_image: "a b"'),
      3,
      'backend.kubernetes.sidecar_image must not contain whitespace',
    ],
    [
      'an unknown image_pull_policy',
      yaml('backend:', '  kubernetes:', '    image_pull_policy: Sometimes'),
      3,
      'backend.kubernetes.image_pull_policy must be one of Always, Never, IfNotPresent (got "Sometimes")',
    ],
    [
      'a lower-case image_pull_policy',
      yaml('backend:', '  kubernetes:', '    image_pull_policy: always'),
      3,
      'backend.kubernetes.image_pull_policy must be one of Always, Never, IfNotPresent (got "always"; write Always, the value is case-sensitive)',
    ],
  ])('rejects %s', (_name, text, line, message) => {
    expect(problem(text)).toContain(`line ${line}: ${message}`);
  });

  it.each([
    ['max_concurrent_tasks: "5"', 'max_concurrent_tasks must be a number, not the quoted text "5" (remove the quotes)'],
    ['max_concurrent_tasks: five', 'max_concurrent_tasks must be a whole number (got "five"'],
    ['max_concurrent_tasks: 1.5', 'max_concurrent_tasks must be a whole number (got 1.5'],
    ['cleanup: maybe', 'cleanup must be true or false (got "maybe")'],
    ['cleanup: "false"', 'cleanup must be true or false without quotes'],
    ['worker_id: [a, b]', 'worker_id must be text, not a list'],
    ['worker_id: { a: b }', 'worker_id must be text, not a mapping'],
    ['backend: docker', 'backend must be a mapping of keys'],
    ['device: { team_ids: 5 }', 'device.team_ids must be a list'],
    ['device: { team_ids: [1, "2"] }', 'device.team_ids[1] must be a number, not the quoted text "2"'],
    ['device: { owner_user_id: 0 }', 'device.owner_user_id must be at least 1'],
    ['shutdown_grace_period: 30', 'shutdown_grace_period is not a valid duration: time: missing unit in duration "30" (write a number with a unit'],
    ['shutdown_grace_period: -5s', 'shutdown_grace_period must not be negative'],
  ])('rejects %s', (line, message) => {
    expect(problem(yaml(line)).startsWith(`config file ${SOURCE}, line 1: ${message}`)).toBe(true);
  });

  it.each([
    [
      yaml('backend:', '  command:', '    dispatch_command: d', '    dispatch_timeout: 60'),
      4,
      'backend.command.dispatch_timeout is not a valid duration: time: missing unit in duration "60"',
    ],
    [yaml('backend:', '  kubernetes:', '    unschedulable_timeout: 2 minutes'), 3, 'backend.kubernetes.unschedulable_timeout is not a valid duration'],
    [
      yaml('backend:', '  kubernetes:', '    workspace_size_limit: ten gigs'),
      3,
      'backend.kubernetes.workspace_size_limit is not a Kubernetes quantity (got "ten gigs"',
    ],
    [yaml('backend:', '  kubernetes:', '    active_deadline_seconds: -1'), 3, 'backend.kubernetes.active_deadline_seconds must be at least 0'],
    [
      yaml('backend:', '  kubernetes:', '    ttl_seconds_after_finished: 3000000000'),
      3,
      'backend.kubernetes.ttl_seconds_after_finished must be between 0 and 2147483647',
    ],
    [
      yaml('backend:', '  kubernetes:', '    ttl_seconds_after_finished: "10"'),
      3,
      'backend.kubernetes.ttl_seconds_after_finished must be a number, not the quoted text "10"',
    ],
    [yaml('backend:', '  kubernetes:', '    use_image_volumes: sure'), 3, 'backend.kubernetes.use_image_volumes must be true or false'],
    [yaml('backend:', '  kubernetes:', '    pod_template: [a]'), 3, 'backend.kubernetes.pod_template must be a mapping'],
    [
      yaml('backend:', '  kubernetes:', '    coding_cli_sidecars: { claude: "a b" }'),
      3,
      'backend.kubernetes.coding_cli_sidecars.claude must not contain whitespace',
    ],
    [
      yaml('backend:', '  docker:', '    volumes:', '      - /data'),
      4,
      'backend.docker.volumes[0] must look like HOST_PATH:CONTAINER_PATH or HOST_PATH:CONTAINER_PATH:MODE',
    ],
    [
      yaml('backend:', '  docker:', '    pull_policy: sometimes'),
      3,
      'backend.docker.pull_policy must be one of always, if_not_present, never (got "sometimes"; or use image_pull_policy with Always, IfNotPresent or Never)',
    ],
    [
      yaml('backend:', '  docker:', '    pull_policy: IfNotPresent'),
      3,
      'backend.docker.pull_policy must be one of always, if_not_present, never (got "IfNotPresent"; write if_not_present; or use image_pull_policy with Always, IfNotPresent or Never)',
    ],
  ])('checks backend values: %j', (text, line, message) => {
    expect(problem(text)).toContain(`line ${line}: ${message}`);
  });

  it('reports every problem, in line order, on one line', () => {
    expect(problem(yaml('max_concurrent_tasks: "5"', 'backend:', '  kubernetes:', '    bogus: 1', '    image_pull_policy: x'))).toMatch(
      new RegExp(
        `^config file ${SOURCE} has 3 problems: line 1: max_concurrent_tasks .*; line 4: unknown key "backend.kubernetes.bogus".*; line 5: backend.kubernetes.image_pull_policy must be`,
      ),
    );
  });

  it.each([
    ['an empty file', ''],
    ['only comments', '# nothing here\n'],
    ['an empty document', '---\n'],
    ['a null document', '~\n'],
  ])('says the file is empty for %s', (_name, text) => {
    expect(problem(text)).toBe(`config file ${SOURCE} is empty (write at least "worker_id: <name>", or leave out --config-file)`);
  });

  it('rejects a file that is not a mapping', () => {
    expect(problem(yaml('- worker_id: w'))).toBe(`config file ${SOURCE}, line 1: the config file must be a mapping of keys such as "worker_id: my-worker"`);
  });

  it('reports YAML syntax errors with their line', () => {
    expect(problem(yaml('worker_id: w', 'backend:', '  direct:', '   oz_path: [unclosed'))).toMatch(
      new RegExp(`^config file ${SOURCE}, line \\d+: invalid YAML: .*\\(fix the syntax`),
    );
    expect(problem(yaml('worker_id: w', 'worker_id: v'))).toMatch(/line 2: invalid YAML: Map keys must be unique/);
  });
});

describe('loadConfigFile', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'oz-config-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads a file from disk', async () => {
    const path = join(dir, 'ok.yaml');
    await writeFile(path, yaml('worker_id: disk', 'backend:', '  direct:'));
    expect(await loadConfigFile(path)).toEqual({ worker_id: 'disk', backend: { direct: {} } });
  });

  it('names the file and the reason when it cannot be read', async () => {
    const missing = join(dir, 'missing.yaml');
    await expect(loadConfigFile(missing)).rejects.toThrow(
      new ConfigError(`could not read config file ${missing}: no such file (check the --config-file path)`),
    );
    const directory = join(dir, 'a-directory');
    await mkdir(directory);
    await expect(loadConfigFile(directory)).rejects.toThrow(`could not read config file ${directory}: it is a directory, not a file`);
  });

  it('names the file in validation errors', async () => {
    const path = join(dir, 'bad.yaml');
    await writeFile(path, yaml('worker_id: w', 'bogus: 1'));
    await expect(loadConfigFile(path)).rejects.toThrow(`config file ${path}, line 2: unknown key "bogus"`);
  });

  it('resolves a relative api_key_file against the config file directory', async () => {
    const path = join(dir, 'key.yaml');
    await writeFile(path, yaml('api_key_file: secrets/key'));
    expect((await loadConfigFile(path)).api_key_file).toBe(join(dir, 'secrets/key'));
  });
});
