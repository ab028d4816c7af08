// Agent argv: every case of the Go worker's AugmentArgsForTask table, the
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
