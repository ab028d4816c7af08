// The worker's own variables in the environments it owns carry both names,
// OZ_<X> and WARP_<X>, with the same value, in the Go worker's order; the
// worker writes them last, so the operator's `environment` / -e cannot
// replace them.
import { describe, expect, it } from 'vitest';
import { cancelVariables, commandEnv, dispatchVariables } from '../../src/backends/command/command-backend.js';
import { setupEnv, teardownEnv } from '../../src/backends/direct/workspace.js';
import { containerEnv } from '../../src/backends/docker/container-spec.js';
import { taskEnvList } from '../../src/backends/kubernetes/job-builder.js';
import { wellKnownEnv } from '../../src/backends/shared/well-known-env.js';

const SPOOFED = Object.fromEntries(
  ['RUN_ID', 'EXECUTION_ID', 'WORKER_BACKEND', 'WORKSPACE_ROOT', 'ENVIRONMENT_FILE', 'SERVER_ROOT_URL', 'DOCKER_IMAGE'].flatMap((name) => [
    [`OZ_${name}`, 'operator'],
    [`WARP_${name}`, 'operator'],
  ]),
);
const ids = { taskId: 'task-1', executionId: 'exec-1' };
type Entries = Array<[string, string]>;

/**
 * The environments the worker owns, built with the given host and operator
 * environments (the operator's goes where each backend puts it: the dispatch
 * overlay, setup's task env, the Kubernetes -e values, the Docker operator env).
 */
const ENVIRONMENTS: [string, (host: Record<string, string>, operator: Record<string, string>) => Entries][] = [
  [
    'command dispatch',
    (host, operator) => [...commandEnv(host, 'k', operator, dispatchVariables({ ...ids, image: 'ubuntu:22.04' }, 'https://app.warp.dev/?a=b'))],
  ],
  ['command cancel', (host, operator) => [...commandEnv(host, 'k', operator, cancelVariables(ids))]],
  [
    'direct setup',
    (host, operator) => [
      ...setupEnv({
        hostEnv: host,
        apiKey: 'k',
        taskEnv: new Map(Object.entries(operator)),
        workspaceDir: '/workspace',
        taskId: 'task-1',
        envFilePath: '/tmp/oz-env',
      }),
    ],
  ],
  [
    'direct teardown',
    (host) => [...teardownEnv({ hostEnv: host, apiKey: 'k', workspaceDir: '/workspace', gitConfigPath: '/workspace/.gitconfig', taskId: 'task-1' })],
  ],
  ['kubernetes task', (_host, operator) => taskEnvList({ taskId: 'task-1', env: [] }, operator).map((e) => [e.name, e.value ?? ''])],
  [
    'docker task',
    (_host, operator) => containerEnv({ taskId: 'task-1', env: [] }, operator).map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]),
  ],
];

/** Only what the worker writes itself (the Go worker's "worker-owned slice"). */
const workerOwned = (name: string): Entries => ENVIRONMENTS.find(([candidate]) => candidate === name)![1]({}, {});

describe("the worker's own variables carry their WARP_ alias", () => {
  it.each(ENVIRONMENTS.map(([name]) => name))('%s: every OZ_ name has a WARP_ name with the same value, as many of each', (name) => {
    const env = new Map(workerOwned(name));
    const ozNames = [...env.keys()].filter((key) => key.startsWith('OZ_'));
    const warpNames = [...env.keys()].filter((key) => key.startsWith('WARP_'));
    expect(ozNames.length).toBeGreaterThan(0);
    expect(warpNames).toHaveLength(ozNames.length);
    for (const key of ozNames) expect(env.get(`WARP_${key.slice(3)}`), key).toBe(env.get(key));
  });

  it.each(ENVIRONMENTS)('%s: the worker writes its names last, so neither the host nor the operator replaces them', (name, build) => {
    const owned = workerOwned(name);
    const env = new Map(build({ PATH: '/bin', OZ_RUN_ID: 'host', WARP_RUN_ID: 'host' }, SPOOFED));
    for (const [key, value] of owned) expect(env.get(key), key).toBe(value);
  });

  it.each([
    [
      'command dispatch',
      [
        'OZ_RUN_ID=task-1',
        'WARP_RUN_ID=task-1',
        'OZ_EXECUTION_ID=exec-1',
        'WARP_EXECUTION_ID=exec-1',
        'OZ_WORKER_BACKEND=command',
        'WARP_WORKER_BACKEND=command',
        'OZ_SERVER_ROOT_URL=https://app.warp.dev/?a=b',
        'WARP_SERVER_ROOT_URL=https://app.warp.dev/?a=b',
        'OZ_DOCKER_IMAGE=ubuntu:22.04',
        'WARP_DOCKER_IMAGE=ubuntu:22.04',
      ],
    ],
    [
      'command cancel',
      [
        'OZ_RUN_ID=task-1',
        'WARP_RUN_ID=task-1',
        'OZ_EXECUTION_ID=exec-1',
        'WARP_EXECUTION_ID=exec-1',
        'OZ_WORKER_BACKEND=command',
        'WARP_WORKER_BACKEND=command',
      ],
    ],
    [
      'direct setup',
      [
        'OZ_WORKSPACE_ROOT=/workspace',
        'WARP_WORKSPACE_ROOT=/workspace',
        'OZ_WORKER_BACKEND=direct',
        'WARP_WORKER_BACKEND=direct',
        'OZ_RUN_ID=task-1',
        'WARP_RUN_ID=task-1',
        'OZ_ENVIRONMENT_FILE=/tmp/oz-env',
        'WARP_ENVIRONMENT_FILE=/tmp/oz-env',
      ],
    ],
    [
      'direct teardown',
      [
        'OZ_WORKSPACE_ROOT=/workspace',
        'WARP_WORKSPACE_ROOT=/workspace',
        'OZ_WORKER_BACKEND=direct',
        'WARP_WORKER_BACKEND=direct',
        'OZ_RUN_ID=task-1',
        'WARP_RUN_ID=task-1',
      ],
    ],
    [
      'kubernetes task',
      [
        'OZ_ENVIRONMENT_FILE=/workspace/.oz-env',
        'WARP_ENVIRONMENT_FILE=/workspace/.oz-env',
        'OZ_WORKSPACE_ROOT=/workspace',
        'WARP_WORKSPACE_ROOT=/workspace',
        'OZ_WORKER_BACKEND=kubernetes',
        'WARP_WORKER_BACKEND=kubernetes',
        'OZ_RUN_ID=task-1',
        'WARP_RUN_ID=task-1',
      ],
    ],
    ['docker task', ['OZ_RUN_ID=task-1', 'WARP_RUN_ID=task-1', 'OZ_WORKER_BACKEND=docker', 'WARP_WORKER_BACKEND=docker']],
  ])('%s: in the order the worker writes them', (name, expected) => {
    const names = workerOwned(name)
      .filter(([key]) => /^(OZ|WARP)_/.test(key))
      .map(([key, value]) => `${key}=${value}`);
    expect(names).toEqual(expected);
  });

  it('writes GIT_CONFIG_GLOBAL between the workspace root and the backend in teardown, as the Go worker does', () => {
    const env = teardownEnv({ hostEnv: {}, apiKey: 'k', workspaceDir: '/workspace', gitConfigPath: '/workspace/.gitconfig', taskId: 'task-1' });
    expect([...env.keys()]).toEqual([
      'OZ_WORKSPACE_ROOT',
      'WARP_WORKSPACE_ROOT',
      'GIT_CONFIG_GLOBAL',
      'OZ_WORKER_BACKEND',
      'WARP_WORKER_BACKEND',
      'OZ_RUN_ID',
      'WARP_RUN_ID',
    ]);
  });

  it('pairs each name OZ_ first, keeping values with = intact', () => {
    expect(wellKnownEnv([['RUN_ID', 'a=b=c']])).toEqual([
      ['OZ_RUN_ID', 'a=b=c'],
      ['WARP_RUN_ID', 'a=b=c'],
    ]);
  });
});
