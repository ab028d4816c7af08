// Agent argv: every case of the Go worker's AugmentArgsForTask table (3382ab6),
// its later computer-use-model and repository-head-override tables, the
// TaskParams cases, the ownership rule and the byte-exact --mcp token.
import { describe, expect, it } from 'vitest';
import { buildAgentArgs } from '../../src/agent/args.js';
import { goTrim } from '../../src/agent/go-trim.js';
import { dedupeEnv } from '../../src/agent/task-env.js';
import { buildSidecars, buildTaskParams, mcpServersJson, resolveImage } from '../../src/agent/task-params.js';
import type { KubernetesBackendConfig } from '../../src/config/worker-config.js';
import { testConfig } from '../support/test-config.js';
import { decodeFrame } from '../../src/protocol/decode.js';
import type { TaskAssignment } from '../../src/protocol/messages.js';

function decode(data: Record<string, unknown>) {
  const frame = decodeFrame(JSON.stringify({ type: 'task_assignment', data }));
  if (frame.kind !== 'assignment') throw new Error(`not an assignment: ${JSON.stringify(frame)}`);
  return frame;
}

/** Only the snapshot-derived tail, as the Go test calls it: input args `agent run`. */
function augment(snapshot: unknown, other: { idle?: string; extra?: string[]; conversation?: string } = {}): string {
  const { assignment, mcpArgument } = decode({
    task_id: 't',
    task: { id: 't', agent_config_snapshot: snapshot, agent_conversation_id: other.conversation },
    additional_oz_args: other.extra,
  });
  const args = buildAgentArgs({
    task: assignment.task,
    taskObjectId: 't',
    additionalOzArgs: assignment.additional_oz_args,
    mcpServers: mcpServersJson(assignment, mcpArgument),
    serverRootUrl: 'https://app.warp.dev',
    idleOnComplete: other.idle ?? '',
    sessionSharingServerUrl: '',
  });
  // Drop the base part (--task-id t --sandboxed --server-root-url URL) to compare with the Go table.
  return ['agent', 'run', ...args.slice(7)].join(' ');
}

const ARN = 'arn:aws:iam::123456789012:role/BedrockInference';

describe('AugmentArgsForTask cases (Go table)', () => {
  it.each<[number, unknown, { idle?: string; extra?: string[]; conversation?: string }, string]>([
    [1, { idle_timeout_minutes: 15 }, { idle: '30m' }, 'agent run --computer-use --idle-on-complete 15m'],
    [2, {}, { idle: '30m' }, 'agent run --computer-use --idle-on-complete 30m'],
    [3, {}, {}, 'agent run --computer-use --idle-on-complete'],
    [4, { idle_timeout_minutes: 0 }, { idle: '20m' }, 'agent run --computer-use --idle-on-complete 20m'],
    [5, { harness: { type: 'claude' } }, {}, 'agent run --no-computer-use --harness claude --idle-on-complete'],
    [6, { harness: {} }, {}, 'agent run --computer-use --idle-on-complete'],
    [7, { model_id: 'claude-sonnet-4', idle_timeout_minutes: 12 }, {}, 'agent run --model claude-sonnet-4 --computer-use --idle-on-complete 12m'],
    [
      8,
      { model_id: 'claude-sonnet-4', inference_providers: { aws: { role_arn: ARN } } },
      {},
      `agent run --model claude-sonnet-4 --computer-use --bedrock-inference-role ${ARN} --idle-on-complete`,
    ],
    [
      9,
      { inference_providers: { aws: { role_arn: ARN, region: '  us-east-1  ' } } },
      {},
      `agent run --computer-use --bedrock-inference-role ${ARN} --bedrock-role-region us-east-1 --idle-on-complete`,
    ],
    [10, { inference_providers: { aws: { role_arn: ARN, region: '   ' } } }, {}, `agent run --computer-use --bedrock-inference-role ${ARN} --idle-on-complete`],
    [11, { inference_providers: { aws: { role_arn: '   ' } } }, {}, 'agent run --computer-use --idle-on-complete'],
    [12, { inference_providers: { aws: { disabled: true, role_arn: ARN } } }, {}, 'agent run --computer-use --idle-on-complete'],
    [13, { session_sharing: { public_access: 'VIEWER' } }, {}, 'agent run --computer-use --share public:view --idle-on-complete'],
    [14, { session_sharing: { public_access: 'EDITOR' } }, {}, 'agent run --computer-use --share public:edit --idle-on-complete'],
    [15, {}, {}, 'agent run --computer-use --idle-on-complete'],
    [16, {}, { conversation: 'abc-123' }, 'agent run --computer-use --idle-on-complete'],
    [17, { session_sharing: {} }, {}, 'agent run --computer-use --idle-on-complete'],
    [18, { session_sharing: { public_access: 'FULL' } }, {}, 'agent run --computer-use --idle-on-complete'],
    [
      19,
      { snapshot_disabled: true, snapshot_upload_timeout_secs: 90, snapshot_script_timeout_secs: 45 },
      {},
      'agent run --computer-use --no-snapshot --snapshot-upload-timeout 90s --snapshot-script-timeout 45s --idle-on-complete',
    ],
    [20, {}, { extra: ['--skip-initial-turn'] }, 'agent run --computer-use --skip-initial-turn --idle-on-complete'],
    [21, {}, {}, 'agent run --computer-use --idle-on-complete'],
    [22, {}, {}, 'agent run --computer-use --idle-on-complete'],
    [23, { computer_use_enabled: true }, {}, 'agent run --computer-use --idle-on-complete'],
    [24, { computer_use_enabled: false }, {}, 'agent run --no-computer-use --idle-on-complete'],
    [25, { harness: { type: 'codex' } }, {}, 'agent run --no-computer-use --harness codex --idle-on-complete'],
    [26, { computer_use_enabled: true, harness: { type: 'codex' } }, {}, 'agent run --computer-use --harness codex --idle-on-complete'],
    [27, { model_id: 'claude-4-8-opus-high', harness: { type: 'claude' } }, {}, 'agent run --no-computer-use --harness claude --idle-on-complete'],
  ])('case %i', (_n, snapshot, other, expected) => {
    expect(augment(snapshot, other)).toBe(expected);
  });

  it.each<[string, unknown, { idle?: string; extra?: string[] }, string]>([
    ['no snapshot', undefined, {}, 'agent run --idle-on-complete'],
    ['explicit oz harness', { harness: { type: 'oz' }, model_id: 'm' }, {}, 'agent run --model m --computer-use --harness oz --idle-on-complete'],
    ['padded oz is not oz', { harness: { type: ' oz ' }, model_id: 'm' }, {}, 'agent run --no-computer-use --harness oz --idle-on-complete'],
    ['blank harness', { harness: { type: '  ' }, model_id: 'm' }, {}, 'agent run --no-computer-use --idle-on-complete'],
    ['empty mcp', { mcp_servers: {} }, {}, 'agent run --computer-use --idle-on-complete'],
    ['blank environment', { environment_id: '  ' }, {}, 'agent run --computer-use --idle-on-complete'],
    ['negative upload timeout', { snapshot_upload_timeout_secs: -5 }, {}, 'agent run --computer-use --idle-on-complete'],
    ['empty extra arg kept', {}, { extra: ['', '--x'] }, 'agent run --computer-use  --x --idle-on-complete'],
    ['worker idle 0s', {}, { idle: '0s' }, 'agent run --computer-use --idle-on-complete 0s'],
  ])('extra case: %s', (_name, snapshot, other, expected) => {
    expect(augment(snapshot, other)).toBe(expected);
  });
});

const HAIKU = 'claude-4-5-haiku';

// Go's TestAugmentArgsForTask_ComputerUseModel, rows in its order. Row 11 is read under
// 3382ab6's rule (a third-party harness defaults to --no-computer-use); the later
// table, written before that rule, expects --computer-use there. Either way no model.
describe('computer-use model (later Go table)', () => {
  it.each<[number, unknown, string]>([
    [1, { computer_use_model_id: HAIKU }, `agent run --computer-use --computer-use-model ${HAIKU} --idle-on-complete`],
    [2, { computer_use_enabled: true, computer_use_model_id: HAIKU }, `agent run --computer-use --computer-use-model ${HAIKU} --idle-on-complete`],
    [3, { computer_use_model_id: HAIKU, harness: { type: 'oz' } }, `agent run --computer-use --computer-use-model ${HAIKU} --harness oz --idle-on-complete`],
    [4, { computer_use_model_id: HAIKU, harness: {} }, `agent run --computer-use --computer-use-model ${HAIKU} --idle-on-complete`],
    [5, { computer_use_model_id: HAIKU, harness: { type: '' } }, `agent run --computer-use --computer-use-model ${HAIKU} --idle-on-complete`],
    [6, { model_id: 'auto', computer_use_model_id: HAIKU }, `agent run --model auto --computer-use --computer-use-model ${HAIKU} --idle-on-complete`],
    [7, { computer_use_model_id: `  ${HAIKU}  ` }, `agent run --computer-use --computer-use-model ${HAIKU} --idle-on-complete`],
    [8, {}, 'agent run --computer-use --idle-on-complete'],
    [9, { computer_use_model_id: '   ' }, 'agent run --computer-use --idle-on-complete'],
    [10, { computer_use_enabled: false, computer_use_model_id: HAIKU }, 'agent run --no-computer-use --idle-on-complete'],
    [11, { computer_use_model_id: HAIKU, harness: { type: 'codex' } }, 'agent run --no-computer-use --harness codex --idle-on-complete'],
  ])('row %i', (_n, snapshot, expected) => {
    expect(augment(snapshot)).toBe(expected);
  });

  it.each<[string, unknown, string]>([
    [
      'third-party harness with computer use on',
      { computer_use_enabled: true, computer_use_model_id: HAIKU, harness: { type: 'codex' } },
      'agent run --computer-use --harness codex --idle-on-complete',
    ],
    [
      'third-party harness explicitly off',
      { computer_use_enabled: false, harness: { type: 'codex' } },
      'agent run --no-computer-use --harness codex --idle-on-complete',
    ],
    [
      'padded oz is not oz',
      { computer_use_enabled: true, computer_use_model_id: HAIKU, harness: { type: ' oz ' } },
      'agent run --computer-use --harness oz --idle-on-complete',
    ],
    ['null model', { computer_use_model_id: null }, 'agent run --computer-use --idle-on-complete'],
  ])('%s', (_name, snapshot, expected) => {
    expect(augment(snapshot)).toBe(expected);
  });
});

const WARP_SERVER = { code_forge: 'GITHUB', repo_owner: 'warpdotdev', repo_name: 'warp-server', head: { type: 'BRANCH', value: 'develop' } };
const WARP_SERVER_JSON = '{"code_forge":"GITHUB","repo_owner":"warpdotdev","repo_name":"warp-server","head":{"type":"BRANCH","value":"develop"}}';
const WARP_CLONE = {
  code_forge: 'GITHUB',
  repo_owner: 'warpdotdev',
  repo_name: 'warp',
  head: { type: 'COMMIT_SHA', value: '0123456789abcdef0123456789abcdef01234567' },
  clone_from: { code_forge: 'GITHUB', owner: 'warpdotdev', repo: 'warp-for-benchmarks' },
  preserve_origin: true,
};
const WARP_CLONE_JSON =
  '{"code_forge":"GITHUB","repo_owner":"warpdotdev","repo_name":"warp","head":{"type":"COMMIT_SHA","value":"0123456789abcdef0123456789abcdef01234567"},' +
  '"clone_from":{"code_forge":"GITHUB","owner":"warpdotdev","repo":"warp-for-benchmarks"},"preserve_origin":true}';
const WARP_DEVELOP_JSON = '{"code_forge":"GITHUB","repo_owner":"warpdotdev","repo_name":"warp","head":{"type":"BRANCH","value":"develop"}}';

// Go's TestRepositoryHeadOverrideArgsForTask, then inputs whose bytes were checked against Go's json.Marshal.
describe('repository head overrides (later Go table)', () => {
  const tail = (overrides: unknown) =>
    augment({ repository_head_overrides: overrides })
      .replace(/^agent run --computer-use ?/, '')
      .replace(/ ?--idle-on-complete$/, '');
  it.each<[string, unknown, string]>([
    ['no overrides adds nothing', undefined, ''],
    ['an empty list adds nothing', [], ''],
    ['null adds nothing', null, ''],
    ['single override without clone_from', [WARP_SERVER], `--repository-head-override-json ${WARP_SERVER_JSON} --remove-repository-origins`],
    [
      'override with clone_from marshals the substitution fields',
      [WARP_CLONE],
      `--repository-head-override-json ${WARP_CLONE_JSON} --remove-repository-origins`,
    ],
    [
      'multiple overrides emit one flag each and a single trailing remove-origins flag',
      [{ ...WARP_SERVER, repo_name: 'warp' }, WARP_SERVER],
      `--repository-head-override-json ${WARP_DEVELOP_JSON} --repository-head-override-json ${WARP_SERVER_JSON} --remove-repository-origins`,
    ],
    [
      'unknown fields dropped, keys matched case-insensitively, false preserve_origin and null clone_from left out, HTML escaped',
      [{ CODE_FORGE: 'GITHUB', repo_owner: 'a<b>&c', Repo_Name: 'r', head: null, extra: 1, clone_from: null, preserve_origin: false }],
      '--repository-head-override-json {"code_forge":"GITHUB","repo_owner":"a\\u003cb\\u003e\\u0026c","repo_name":"r","head":{"type":"","value":""}} --remove-repository-origins',
    ],
    [
      'a null element is an empty override; an empty clone_from is kept',
      [null, { head: { type: 'BRANCH', value: 'x\u2028y', extra: 2 }, clone_from: {}, preserve_origin: true }],
      '--repository-head-override-json {"code_forge":"","repo_owner":"","repo_name":"","head":{"type":"","value":""}} ' +
        '--repository-head-override-json {"code_forge":"","repo_owner":"","repo_name":"","head":{"type":"BRANCH","value":"x\\u2028y"},"clone_from":{"code_forge":"","owner":"","repo":""},"preserve_origin":true} ' +
        '--remove-repository-origins',
    ],
    [
      'the last of duplicate keys wins',
      [{ repo_name: 'a', REPO_NAME: 'b' }],
      '--repository-head-override-json {"code_forge":"","repo_owner":"","repo_name":"b","head":{"type":"","value":""}} --remove-repository-origins',
    ],
  ])('%s', (_name, overrides, expected) => {
    expect(tail(overrides)).toBe(expected);
  });

  it('puts the overrides after the snapshot flags, before the server supplemental args', () => {
    const args = augment(
      { environment_id: 'env-1', computer_use_model_id: HAIKU, repository_head_overrides: [WARP_SERVER], idle_timeout_minutes: 5 },
      { extra: ['--skip-initial-turn'] },
    );
    expect(args).toBe(
      `agent run --computer-use --computer-use-model ${HAIKU} --environment env-1 --repository-head-override-json ${WARP_SERVER_JSON} --remove-repository-origins --skip-initial-turn --idle-on-complete 5m`,
    );
  });

  it.each<[string, unknown, RegExp]>([
    ['head not an object', [{ head: 'main' }], /repository_head_overrides\.0\.head: expected object, received string/],
    ['the list not a list', {}, /repository_head_overrides: expected array, received object/],
    ['preserve_origin not a boolean', [{ preserve_origin: 'yes' }], /repository_head_overrides\.0\.preserve_origin: expected boolean, received string/],
    ['head.type not a string', [{ head: { type: 5 } }], /repository_head_overrides\.0\.head\.type: expected string, received number/],
  ])('refuses an assignment whose override is malformed (%s), as Go fails to decode it', (_name, overrides, problem) => {
    const frame = decodeFrame(
      JSON.stringify({ type: 'task_assignment', data: { task_id: 't', task: { id: 't', agent_config_snapshot: { repository_head_overrides: overrides } } } }),
    );
    expect(frame.kind).toBe('invalid');
    expect(frame.kind === 'invalid' && frame.taskId).toBe('t');
    expect(frame.kind === 'invalid' && frame.problem).toMatch(problem);
  });

  it('refuses a computer_use_model_id that is not a string', () => {
    const frame = decodeFrame(
      JSON.stringify({ type: 'task_assignment', data: { task_id: 't', task: { id: 't', agent_config_snapshot: { computer_use_model_id: 5 } } } }),
    );
    expect(frame.kind === 'invalid' && frame.problem).toMatch(/computer_use_model_id: expected string, received number/);
  });
});

describe('full argument vector', () => {
  it('matches the spec example', () => {
    const { assignment, mcpArgument } = decode({
      task_id: 'T',
      task: {
        id: 'T',
        owner: { Type: 'TEAM', Id: 1 },
        agent_config_snapshot: {
          model_id: ' gpt-x ',
          profile_id: 'p1',
          mcp_servers: { gh: { url: 'x' } },
          inference_providers: { aws: { role_arn: 'arn:r', region: 'us-east-1' } },
          session_sharing: { public_access: 'VIEWER' },
          snapshot_upload_timeout_secs: 90,
          environment_id: 'env-1',
          idle_timeout_minutes: 12,
        },
      },
      additional_oz_args: ['--skip-initial-turn'],
    });
    const args = buildAgentArgs({
      task: assignment.task,
      taskObjectId: 'T',
      additionalOzArgs: assignment.additional_oz_args,
      mcpServers: mcpServersJson(assignment, mcpArgument),
      serverRootUrl: 'https://app.warp.dev',
      idleOnComplete: '',
      sessionSharingServerUrl: 'ws://127.0.0.1:8081',
    });
    expect(args).toEqual([
      'agent',
      'run',
      '--share',
      'team:edit',
      '--task-id',
      'T',
      '--sandboxed',
      '--server-root-url',
      'https://app.warp.dev',
      '--model',
      'gpt-x',
      '--profile',
      'p1',
      '--mcp',
      '{"gh":{"url":"x"}}',
      '--computer-use',
      '--bedrock-inference-role',
      'arn:r',
      '--bedrock-role-region',
      'us-east-1',
      '--share',
      'public:view',
      '--snapshot-upload-timeout',
      '90s',
      '--environment',
      'env-1',
      '--skip-initial-turn',
      '--idle-on-complete',
      '12m',
      '--session-sharing-server-url',
      'ws://127.0.0.1:8081',
    ]);
  });

  it('keeps each MCP server value byte for byte, sorted by name, HTML-escaped', () => {
    const text =
      '{"type":"task_assignment","data":{"task_id":"t","task":{"id":"t","agent_config_snapshot":{"mcp_servers":' +
      '{"zeta": {"b" : 1, "a":"<x&y>"}, "Alpha": [1, 2], "beta": null, "num": 1.0e3}}}}}';
    const frame = decodeFrame(text);
    if (frame.kind !== 'assignment') throw new Error('expected assignment');
    expect(frame.mcpArgument).toBe('{"Alpha":[1,2],"beta":null,"num":1.0e3,"zeta":{"b":1,"a":"\\u003cx\\u0026y\\u003e"}}');
  });
});

describe('team sharing follows ownership', () => {
  const config = testConfig({ serverRootUrl: 'https://app.warp.dev', idleOnComplete: '', sessionSharingServerUrl: '', backend: 'direct' });
  it.each<[string, unknown, boolean]>([
    ['TEAM owner', { Type: 'TEAM', Id: 42 }, true],
    ['lower-case keys', { type: 'TEAM', id: 42 }, true],
    ['USER owner', { Type: 'USER', Id: 99 }, false],
    ['no owner', undefined, false],
    ['null owner', null, false],
    ['lower-case value', { Type: 'team', Id: 42 }, false],
    ['unknown type', { Type: 'ORG', Id: 42 }, false],
  ])('%s → team share %s', (_name, owner, shared) => {
    const { assignment, mcpArgument } = decode({
      task_id: 'x',
      task: { id: 'x', owner, agent_config_snapshot: { session_sharing: { public_access: 'EDITOR' } } },
    });
    const { args } = buildTaskParams(assignment, mcpArgument, config);
    expect(args.slice(2, 4)).toEqual(shared ? ['--share', 'team:edit'] : ['--task-id', 'x']);
    expect(args.filter((a) => a === 'team:edit')).toHaveLength(shared ? 1 : 0);
    // public sharing is independent and additive
    expect(args).toContain('public:edit');
  });
});

describe('task params', () => {
  const base = { serverRootUrl: 'https://staging.example.com', idleOnComplete: '', sessionSharingServerUrl: '' };
  const k8s = (kubernetes: Partial<KubernetesBackendConfig>) => testConfig({ ...base, backend: 'kubernetes', kubernetes });
  const parse = (data: Record<string, unknown>): TaskAssignment => decode({ task_id: 'task-1', task: { id: 'task-1' }, ...data }).assignment;

  it('builds the common env in order', () => {
    const params = buildTaskParams(parse({ env_vars: { B: '2', A: '1' } }), undefined, testConfig({ ...base, backend: 'direct' }));
    expect(params.env).toEqual([
      'TASK_ID=task-1',
      'GIT_TERMINAL_PROMPT=0',
      'GH_PROMPT_DISABLED=1',
      'WARP_SERVER_ROOT_URL=https://staging.example.com',
      'B=2',
      'A=1',
    ]);
  });

  it.each<[string, Record<string, unknown>, string | undefined, string]>([
    ['server image wins', { docker_image: 'server-image:latest' }, 'my-registry.io/default:v1', 'server-image:latest'],
    ['default_image when server sends none', { docker_image: '' }, 'my-registry.io/default:v1', 'my-registry.io/default:v1'],
    ['fallback', {}, undefined, 'ubuntu:22.04'],
  ])('image: %s', (_name, data, defaultImage, image) => {
    expect(resolveImage(parse(data), defaultImage).image).toBe(image);
  });

  it('warns when an environment has no image', () => {
    expect(resolveImage(parse({ task: { id: 'task-1', agent_config_snapshot: { environment_id: 'env-123' } } })).fallbackWarning).toMatch(/env-123/);
  });

  it('overrides the /agent sidecar image from config, keeps read_write of a coding-CLI override', () => {
    const assignment = parse({
      sidecar_image: 'docker.io/warpdotdev/warp-agent:latest',
      additional_sidecars: [{ image: 'docker.io/warpdotdev/claude-cli:latest', mount_path: '/mnt/claude-cli-sidecar', read_write: true }],
      task: { id: 'task-1', agent_config_snapshot: { harness: { type: '  claude  ' } } },
    });
    const params = buildTaskParams(assignment, undefined, k8s({ codingCliSidecars: { claude: 'registry.internal/my-claude:v1' } }));
    expect(params.sidecars).toEqual([
      { image: 'docker.io/warpdotdev/warp-agent:latest', mount_path: '/agent', read_write: false },
      { image: 'registry.internal/my-claude:v1', mount_path: '/mnt/claude-cli-sidecar', read_write: true },
    ]);
    expect(params.args).toContain('--harness');
    expect(buildSidecars(assignment, { agentSidecarImage: 'mirror/agent:1' })[0]?.image).toBe('mirror/agent:1');
  });

  it('injects a coding-CLI sidecar only for a configured harness', () => {
    const claude = parse({ task: { id: 'task-1', agent_config_snapshot: { harness: { type: 'claude' } } } });
    const codex = parse({ task: { id: 'task-1', agent_config_snapshot: { harness: { type: 'codex' } } } });
    const overrides = { codingCliSidecars: { claude: 'registry.internal/my-claude:v1' } };
    expect(buildSidecars(claude, overrides)).toEqual([{ image: 'registry.internal/my-claude:v1', mount_path: '/mnt/claude-cli-sidecar', read_write: false }]);
    expect(buildSidecars(codex, overrides)).toEqual([]);
    expect(buildSidecars(claude, { codingCliSidecars: { claude: '' } })).toEqual([]);
    expect(buildSidecars(parse({}), overrides)).toEqual([]);
  });

  it('threads the instance shape', () => {
    expect(buildTaskParams(parse({ instance_shape: { vcpus: 4, memory_gb: 16 } }), undefined, k8s({})).instanceShape).toEqual({ vcpus: 4, memory_gb: 16 });
    expect(buildTaskParams(parse({}), undefined, k8s({})).instanceShape).toBeUndefined();
  });
});

describe('helpers', () => {
  it.each([
    ['  a  ', 'a'],
    ['\u0085a\u00a0', 'a'],
    ['\u3000a\u2028', 'a'],
    ['\ufeffa', '\ufeffa'],
    ['\t\n\v\f\r a', 'a'],
  ])('goTrim(%j) = %j', (input, output) => {
    expect(goTrim(input)).toBe(output);
  });

  it('dedupes env with last-wins and first-appearance order', () => {
    expect(dedupeEnv(['A=1', 'B=2', 'A=3', 'URL=a=b', 'bad', '=x'])).toEqual(['A=3', 'B=2', 'URL=a=b']);
  });
});
