import { describe, expect, it } from 'vitest';
import type { TaskParams } from '../../src/task/contract.js';
import {
  containerEnv,
  fitShapeToHost,
  resourcesForShape,
  taskContainerBody,
  taskContainerName,
  validateSidecars,
} from '../../src/backends/docker/container-spec.js';
import { TaskFailure } from '../../src/task/failure.js';

const GiB = 2 ** 30;

describe('resources for an instance shape (Go TestDockerResourcesForShape)', () => {
  it.each([
    ['nil shape', undefined, {}],
    ['zero axes', {}, {}],
    ['negative axes', { vcpus: -1, memory_gb: -2 }, {}],
    ['full shape', { vcpus: 4, memory_gb: 16 }, { NanoCpus: 4_000_000_000, Memory: 16 * GiB, MemorySwap: 16 * GiB }],
    ['cpu only', { vcpus: 2 }, { NanoCpus: 2_000_000_000 }],
    ['memory only', { memory_gb: 8 }, { Memory: 8 * GiB, MemorySwap: 8 * GiB }],
  ])('%s', (_name, shape, expected) => {
    expect(resourcesForShape(shape)).toEqual(expected);
  });
});

describe('sidecar validation', () => {
  const sidecar = (image: string, mount_path: string) => ({ image, mount_path, read_write: false });
  it.each([
    ['an empty image', [sidecar('', '/agent')], 'additional sidecar has empty image'],
    ['an empty mount path', [sidecar('img', '')], 'additional sidecar img has empty mount path'],
    ['a duplicate mount path', [sidecar('a', '/agent'), sidecar('b', '/agent')], 'duplicate mount path /agent for additional sidecar b'],
  ])('refuses %s (sidecar_prep)', (_name, list, message) => {
    let error: unknown;
    try {
      validateSidecars(list);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(TaskFailure);
    expect(error).toMatchObject({ reason: 'sidecar_prep', message });
  });

  it('accepts distinct mounts', () => {
    expect(() => validateSidecars([sidecar('a', '/agent'), sidecar('b', '/mnt/b')])).not.toThrow();
  });
});

function params(overrides: Partial<TaskParams> = {}): TaskParams {
  return {
    taskId: 'task-1',
    executionId: 'exec-1',
    task: { id: 'task-1' },
    args: ['agent', 'run', '--task-id', 'task-1', '--sandboxed'],
    mcpServers: undefined,
    env: ['TASK_ID=task-1', 'GIT_TERMINAL_PROMPT=0', 'GH_PROMPT_DISABLED=1', 'WARP_SERVER_ROOT_URL=https://app.warp.dev', 'GITHUB_ACCESS_TOKEN=tok'],
    image: 'ubuntu:22.04',
    sidecars: [],
    instanceShape: undefined,
    ...overrides,
  };
}

describe('task container', () => {
  it('builds the create body: entrypoint + argv, env, working dir, labels, binds, limits', () => {
    const body = taskContainerBody({
      params: params({ instanceShape: { vcpus: 4, memory_gb: 16 } }),
      workerId: 'w-1',
      operatorEnv: { FOO: 'bar' },
      sidecarBinds: ['oz-sidecar-warp-agent-abc:/agent:ro', 'oz-task-task-1-x-sidecar-1:/mnt/rw'],
      volumes: ['/data:/data:ro', '/cache:/cache'],
    });
    expect(body).toEqual({
      Image: 'ubuntu:22.04',
      Cmd: ['/agent/entrypoint.sh', 'agent', 'run', '--task-id', 'task-1', '--sandboxed'],
      Env: [
        'TASK_ID=task-1',
        'GIT_TERMINAL_PROMPT=0',
        'GH_PROMPT_DISABLED=1',
        'WARP_SERVER_ROOT_URL=https://app.warp.dev',
        'GITHUB_ACCESS_TOKEN=tok',
        'FOO=bar',
        'OZ_RUN_ID=task-1',
        'WARP_RUN_ID=task-1',
        'OZ_WORKER_BACKEND=docker',
        'WARP_WORKER_BACKEND=docker',
      ],
      WorkingDir: '/workspace',
      Labels: {
        'dev.warp.oz-worker.managed': 'true',
        'dev.warp.oz-worker.worker-id': 'w-1',
        'dev.warp.oz-worker.role': 'task',
        'dev.warp.oz-worker.run-id': 'task-1',
        'dev.warp.oz-worker.execution-id': 'exec-1',
      },
      HostConfig: {
        Binds: ['oz-sidecar-warp-agent-abc:/agent:ro', 'oz-task-task-1-x-sidecar-1:/mnt/rw', '/data:/data:ro', '/cache:/cache'],
        NanoCpus: 4_000_000_000,
        Memory: 16 * GiB,
        MemorySwap: 16 * GiB,
      },
    });
    // The image's ENTRYPOINT is kept, as in the Go worker.
    expect(body).not.toHaveProperty('Entrypoint');
  });

  it('lets the operator env override server env, but not OZ_RUN_ID; later duplicates win in place', () => {
    const env = containerEnv(params({ env: ['TASK_ID=task-1', 'A=server', 'A=server2'] }), { A: 'worker', OZ_RUN_ID: 'spoofed' });
    expect(env).toEqual(['TASK_ID=task-1', 'A=worker', 'OZ_RUN_ID=task-1', 'WARP_RUN_ID=task-1', 'OZ_WORKER_BACKEND=docker', 'WARP_WORKER_BACKEND=docker']);
  });

  it('names containers readably and uniquely', () => {
    expect(taskContainerName('task-1', 'abcd')).toBe('oz-task-task-1-abcd');
    expect(taskContainerName('../weird id/', 'abcd')).toBe('oz-task-weird-id--abcd');
    expect(taskContainerName('', 'abcd')).toBe('oz-task-run-abcd');
    expect(taskContainerName('t')).not.toBe(taskContainerName('t'));
  });
});

describe('fitShapeToHost', () => {
  it.each([
    [
      { vcpus: 8, memory_gb: 4 },
      2,
      { vcpus: 2, memory_gb: 4 },
      'instance_shape.vcpus 8 is more than the 2 CPUs of the Docker host; limiting the container to 2 CPUs',
    ],
    [{ vcpus: 2, memory_gb: 4 }, 2, { vcpus: 2, memory_gb: 4 }, undefined],
    [{ vcpus: 1 }, 4, { vcpus: 1 }, undefined],
    [{ memory_gb: 4 }, 1, { memory_gb: 4 }, undefined],
    [{ vcpus: 16 }, undefined, { vcpus: 16 }, undefined],
    [undefined, 2, undefined, undefined],
  ])('%j on %s host CPUs', (shape, hostCpus, expected, warning) => {
    expect(fitShapeToHost(shape, hostCpus)).toEqual(warning ? { shape: expected, warning } : { shape: expected });
  });
});
