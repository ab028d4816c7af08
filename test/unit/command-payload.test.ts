import { describe, expect, it } from 'vitest';
import { buildTaskParams } from '../../src/agent/task-params.js';
import type { TaskParams } from '../../src/task/contract.js';
import { dispatchPayload, goTime, taskJson } from '../../src/backends/command/payload.js';
import { testConfig } from '../support/test-config.js';
import { decodeFrame } from '../../src/protocol/decode.js';

/** A dispatch payload as the Go worker writes it (fields: docs/backends.md, "What the dispatch command gets"), as one compact line. */
const SPEC_EXAMPLE = JSON.stringify({
  version: 1,
  run_id: 'task-1',
  execution_id: 'exec-1',
  server_root_url: 'https://app.warp.dev',
  worker_id: 'it-worker',
  docker_image: 'ubuntu:22.04',
  base_args: ['agent', 'run', '--share', 'team:edit', '--task-id', 'task-1', '--sandboxed', '--server-root-url', 'https://app.warp.dev', '--idle-on-complete'],
  env: {
    GH_PROMPT_DISABLED: '1',
    GITHUB_ACCESS_TOKEN: 'secret-token',
    GIT_TERMINAL_PROMPT: '0',
    TASK_ID: 'task-1',
    WARP_SERVER_ROOT_URL: 'https://app.warp.dev',
  },
  sidecars: null,
  task: {
    id: 'task-1',
    title: 'integration task',
    task_definition: { prompt: '' },
    created_at: '0001-01-01T00:00:00Z',
    updated_at: '0001-01-01T00:00:00Z',
    owner: { Type: 'TEAM', Id: 1 },
  },
});

const CONFIG = testConfig({ serverRootUrl: 'https://app.warp.dev', idleOnComplete: '', sessionSharingServerUrl: '', backend: 'command' });

/** Task params as the worker builds them from a raw frame. */
function paramsFromFrame(data: Record<string, unknown>): TaskParams {
  const frame = decodeFrame(JSON.stringify({ type: 'task_assignment', data }));
  if (frame.kind !== 'assignment') throw new Error(`not an assignment: ${JSON.stringify(frame)}`);
  return buildTaskParams(frame.assignment, frame.mcpArgument, CONFIG);
}

describe('dispatch payload', () => {
  it("is byte for byte the spec's example for the Go integration test's assignment", () => {
    const params = paramsFromFrame({
      task_id: 'task-1',
      execution_id: 'exec-1',
      task: { id: 'task-1', title: 'integration task', task_definition: { prompt: '' }, owner: { Type: 'TEAM', Id: 1 } },
      docker_image: 'ubuntu:22.04',
      env_vars: { GITHUB_ACCESS_TOKEN: 'secret-token' },
    });
    expect(dispatchPayload(params, { serverRootUrl: 'https://app.warp.dev', workerId: 'it-worker' })).toBe(SPEC_EXAMPLE);
  });

  it('turns the env list into a sorted map where the last duplicate wins and values keep "=" (Go NewDispatchPayload)', () => {
    const params = paramsFromFrame({ task_id: 'task-1', execution_id: 'exec-1', task: { id: 'task-1' } });
    params.env = ['A=1', 'B=2', 'A=3', 'URL=a=b'];
    const payload = JSON.parse(dispatchPayload(params, { serverRootUrl: 'https://app.warp.dev', workerId: 'my-worker' })) as Record<string, unknown>;
    expect(Object.keys(payload)).toEqual([
      'version',
      'run_id',
      'execution_id',
      'server_root_url',
      'worker_id',
      'docker_image',
      'base_args',
      'env',
      'sidecars',
      'task',
    ]);
    expect(payload).toMatchObject({ version: 1, run_id: 'task-1', execution_id: 'exec-1', worker_id: 'my-worker', env: { A: '3', B: '2', URL: 'a=b' } });
  });

  it('lists sidecars with all three keys and an empty execution id as ""', () => {
    const params = paramsFromFrame({
      task_id: 't',
      task: { id: 't' },
      sidecar_image: 'docker.io/warpdotdev/warp-agent:latest',
      additional_sidecars: [{ image: 'x/y:1', mount_path: '/mnt/y', read_write: true }],
    });
    const text = dispatchPayload(params, { serverRootUrl: 'https://app.warp.dev', workerId: 'w' });
    expect(text).toContain('"execution_id":""');
    expect(text).toContain(
      '"sidecars":[{"image":"docker.io/warpdotdev/warp-agent:latest","mount_path":"/agent","read_write":false},{"image":"x/y:1","mount_path":"/mnt/y","read_write":true}]',
    );
  });

  it('re-serialises the task like Go: known snapshot keys in struct order, raw MCP JSON, HTML-safe escapes', () => {
    const frame = `{"type":"task_assignment","data":{"task_id":"t","task":{"title":"a<b> & c","id":"t","created_at":"2026-01-02T03:04:05.120000+00:00","updated_at":"2026-01-02T03:04:05+02:00","agent_conversation_id":"conv","owner":{"Type":"USER"},"agent_config_snapshot":{"unknown_key":1,"snapshot_disabled":false,"mcp_servers":{"zeta":{"b" : 1.0, "a":"<x>"},"alpha":[1,  2]},"model_id":"m","inference_providers":{"aws":{"disabled":false,"role_arn":"","region":"us"}},"harness":{},"base_prompt":null}}}}`;
    const decoded = decodeFrame(frame);
    if (decoded.kind !== 'assignment') throw new Error('not an assignment');
    const params = buildTaskParams(decoded.assignment, decoded.mcpArgument, CONFIG);
    expect(taskJson(params.task, params.mcpServers)).toBe(
      '{"id":"t","title":"a\\u003cb\\u003e \\u0026 c","task_definition":{"prompt":""},"created_at":"2026-01-02T03:04:05.12Z","updated_at":"2026-01-02T03:04:05+02:00",' +
        '"owner":{"Type":"USER","Id":0},"agent_config_snapshot":{"model_id":"m","mcp_servers":{"alpha":[1,2],"zeta":{"b":1.0,"a":"\\u003cx\\u003e"}},"harness":{},' +
        '"inference_providers":{"aws":{"region":"us"}},"snapshot_disabled":false},"agent_conversation_id":"conv"}',
    );
  });

  it('carries computer_use_model_id and repository_head_overrides in the struct order of the later Go snapshot', () => {
    const snapshot = (extra: Record<string, unknown>) =>
      taskJson(
        paramsFromFrame({
          task_id: 't',
          task: { id: 't', agent_config_snapshot: { snapshot_script_timeout_secs: 5, ...extra, computer_use_enabled: true, idle_timeout_minutes: 3 } },
        }).task,
        undefined,
      );
    expect(
      snapshot({ repository_head_overrides: [{ repo_name: 'r', head: { type: 'BRANCH', value: 'main' }, extra: 1 }], computer_use_model_id: ' m ' }),
    ).toContain(
      '"agent_config_snapshot":{"computer_use_enabled":true,"computer_use_model_id":" m ","idle_timeout_minutes":3,"snapshot_script_timeout_secs":5,' +
        '"repository_head_overrides":[{"code_forge":"","repo_owner":"","repo_name":"r","head":{"type":"BRANCH","value":"main"}}]}',
    );
    // omitempty: an empty list goes; a present empty string (a pointer in Go) stays.
    expect(snapshot({ repository_head_overrides: [], computer_use_model_id: '' })).toContain(
      '"agent_config_snapshot":{"computer_use_enabled":true,"computer_use_model_id":"","idle_timeout_minutes":3,"snapshot_script_timeout_secs":5}',
    );
  });

  it('omits an empty mcp_servers map, as omitempty does', () => {
    expect(taskJson({ id: 't', agent_config_snapshot: { mcp_servers: {} } }, undefined)).toContain('"agent_config_snapshot":{}');
  });

  it.each([
    [undefined, '0001-01-01T00:00:00Z'],
    ['2026-01-02T03:04:05Z', '2026-01-02T03:04:05Z'],
    ['2026-01-02t03:04:05z', '2026-01-02T03:04:05Z'],
    ['2026-01-02T03:04:05.000Z', '2026-01-02T03:04:05Z'],
    ['2026-01-02T03:04:05.1234567891Z', '2026-01-02T03:04:05.123456789Z'],
    ['2026-01-02T03:04:05.5-00:00', '2026-01-02T03:04:05.5Z'],
    ['2026-01-02T03:04:05-07:30', '2026-01-02T03:04:05-07:30'],
  ])('formats time %s as Go does: %s', (input, output) => {
    expect(goTime(input)).toBe(output);
  });

  it('carries the mcp_servers bytes the frame had, whatever the argv holds', () => {
    // Spacing, number spelling, escapes and key order inside each value are the server's; names are sorted.
    const frame = `{"type":"task_assignment","data":{"task_id":"t","task":{"id":"t","agent_config_snapshot":{"mcp_servers":{"zz":{"n":1.50, "u":"\\u00e9"},"aa":{"args":["--x"]}},"model_id":"m","skill_spec":"s"}},"additional_oz_args":["--mcp","{}"]}}`;
    const decoded = decodeFrame(frame);
    if (decoded.kind !== 'assignment') throw new Error('not an assignment');
    const params = buildTaskParams(decoded.assignment, decoded.mcpArgument, CONFIG);
    const expected = '{"aa":{"args":["--x"]},"zz":{"n":1.50,"u":"\\u00e9"}}';
    expect(params.mcpServers).toBe(expected);
    // The agent gets the same token; an extra --mcp among the server's args does not confuse the payload.
    expect(params.args[params.args.indexOf('--mcp') + 1]).toBe(expected);
    const payload = dispatchPayload({ ...params, args: [...params.args].reverse() }, { serverRootUrl: 'https://app.warp.dev', workerId: 'w' });
    expect(payload).toContain(`"mcp_servers":${expected}`);
  });

  it('rebuilds mcp_servers from the parsed values when no raw token was cut', () => {
    const params = buildTaskParams({ task_id: 't', task: { id: 't', agent_config_snapshot: { mcp_servers: { b: { x: 1 }, a: 'y' } } } }, undefined, CONFIG);
    expect(params.mcpServers).toBe('{"a":"y","b":{"x":1}}');
    expect(dispatchPayload(params, { serverRootUrl: 'u', workerId: 'w' })).toContain('"mcp_servers":{"a":"y","b":{"x":1}}');
  });

  it('leaves mcp_servers out for an absent or empty map', () => {
    for (const snapshot of [{}, { mcp_servers: {} }]) {
      const params = buildTaskParams({ task_id: 't', task: { id: 't', agent_config_snapshot: snapshot } }, undefined, CONFIG);
      expect(params.mcpServers).toBeUndefined();
      expect(params.args).not.toContain('--mcp');
      expect(dispatchPayload(params, { serverRootUrl: 'u', workerId: 'w' })).toContain('"agent_config_snapshot":{}');
    }
  });
});
