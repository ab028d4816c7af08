// Job names, labels and manifests of the Kubernetes backend: the Go worker's
// table cases, plus schema validation of every manifest built here.
import { Job } from 'kubernetes-models/batch/v1/Job';
import { describe, expect, it } from 'vitest';
import type { TaskParams } from '../../src/task/contract.js';
import {
  buildPreflightJob,
  buildTaskJob,
  buildTaskPodSpec,
  mergeEnv,
  mergeResources,
  shapeResources,
  validateSidecars,
} from '../../src/backends/kubernetes/job-builder.js';
import { executionIdOf, idHash, sanitizeLabelValue, taskJobName, taskLabels } from '../../src/backends/kubernetes/names.js';
import { readPodTemplate } from '../../src/backends/kubernetes/pod-template.js';
import { SIDECAR_COPY_SCRIPT, TASK_WRAPPER_SCRIPT } from '../../src/backends/kubernetes/scripts.js';
import { jobSettings } from '../support/kubernetes.js';
import { DEFAULT_PREFLIGHT_RESOURCES } from '../../src/config/resolve.js';

const UUID_RUN = '019f5de4-bfd1-762e-92ed-199c971abcba';
const UUID_EXEC = '019f5df0-aaaa-bbbb-cccc-abcdef012345';

const settings = jobSettings;

function params(overrides: Partial<TaskParams> = {}): TaskParams {
  return {
    taskId: 'task-1',
    executionId: 'execution-1',
    task: {},
    args: ['agent', 'run', '--task-id', 'task-1'],
    mcpServers: undefined,
    env: ['TASK_ID=task-1', 'GIT_TERMINAL_PROMPT=0', 'GH_PROMPT_DISABLED=1', 'WARP_SERVER_ROOT_URL=https://app.warp.dev'],
    image: 'ubuntu:22.04',
    sidecars: [],
    instanceShape: undefined,
    ...overrides,
  };
}

/** Every manifest must pass the Kubernetes schema and name only fields Kubernetes knows. */
function expectValidJob(job: object): void {
  expect(() => new Job(job as never).validate()).not.toThrow();
  const spec = (job as { spec: { template: { spec: unknown } } }).spec.template.spec;
  expect(() => readPodTemplate(spec, 'spec.template.spec')).not.toThrow();
}

describe('job names', () => {
  it.each([
    [UUID_RUN, UUID_EXEC, `oz-task-${UUID_RUN}-exec-ef012345`],
    ['', '', 'oz-task-run-exec-exec'],
    ['RUN_1', 'exec.2', 'oz-task-run-1-exec-exec-2'],
    ['task-1', 'task-1', 'oz-task-task-1-exec-task-1'],
    ['task-1', 'execution-1', 'oz-task-task-1-exec-cution-1'],
    ['a'.repeat(100), UUID_EXEC, `oz-task-${'a'.repeat(41)}-exec-ef012345`],
  ])('(%s, %s) → %s', (run, exec, expected) => {
    const name = taskJobName(run, exec);
    expect(name).toBe(expected);
    expect(name.length).toBeLessThanOrEqual(63);
    expect(name).not.toMatch(/[_.]/);
  });

  it('falls back to the task id when there is no execution id', () => {
    expect(executionIdOf('task-1', ' execution-1 ')).toBe('execution-1');
    expect(executionIdOf('task-1', '')).toBe('task-1');
  });
});

describe('labels', () => {
  it('sanitises ids and hashes the raw values', () => {
    expect(taskLabels('Worker A', 'Task A', 'Execution A')).toEqual({
      'oz-worker-id': 'worker-a',
      'oz-worker-hash': idHash('Worker A'),
      'oz-task-id': 'task-a',
      'oz-task-hash': idHash('Task A'),
      'oz-execution-id': 'execution-a',
      'oz-execution-hash': idHash('Execution A'),
    });
  });
  it.each([
    ['task-1', '7afaa346b4bf92bf'],
    ['execution-1', '63093cff69b83efb'],
    ['worker-123', '18093e768f0e7bed'],
    ['my-worker', '71f145479816ff1c'],
  ])('hash(%s) = %s', (value, hash) => expect(idHash(value)).toBe(hash));
  it.each([
    ['', 'unknown'],
    ['__', 'unknown'],
    ['A'.repeat(70), 'a'.repeat(63)],
    [`${'a'.repeat(62)}-b`, 'a'.repeat(62)],
  ])('label value %j → %s', (value, expected) => expect(sanitizeLabelValue(value)).toBe(expected));
});

describe('scripts', () => {
  it('materialises a sidecar by copying its image root into /target', () => {
    expect(SIDECAR_COPY_SCRIPT).toBe(
      'tar \\\n  --exclude=./target \\\n  --exclude=./proc \\\n  --exclude=./sys \\\n  --exclude=./dev \\\n  --exclude=./.dockerenv \\\n  --exclude=./var/run/secrets \\\n  --exclude=./run/secrets \\\n  -C / -cf - . | tar --no-same-owner --no-same-permissions -C /target -xf -',
    );
  });
  it('sources the env file and hands over to the agent entrypoint, without reporting shutdown itself', () => {
    expect(TASK_WRAPPER_SCRIPT).toContain('. "$OZ_ENVIRONMENT_FILE"');
    expect(TASK_WRAPPER_SCRIPT).toContain('exec /agent/entrypoint.sh "$@"');
    expect(TASK_WRAPPER_SCRIPT).not.toContain('report-shutdown');
  });
});

describe('environment and resources', () => {
  it.each([
    [
      ['FOO=base-foo', 'BAR=base-bar'],
      ['FOO=override-foo', 'BAZ=override-baz'],
      [
        ['FOO', 'override-foo'],
        ['BAR', 'base-bar'],
        ['BAZ', 'override-baz'],
      ],
    ],
    [[], [], []],
    [['A=1'], [], [['A', '1']]],
    [[], ['B=2'], [['B', '2']]],
    [['=x', 'NOEQ', 'C=a=b'], [], [['C', 'a=b']]],
  ])('merges %j with %j', (base, override, expected) => {
    expect(mergeEnv(base, override).map((e) => [e.name, e.value])).toEqual(expected);
  });

  it('sizes from the instance shape per positive axis', () => {
    expect(shapeResources(undefined)).toBeUndefined();
    expect(shapeResources({ vcpus: 2, memory_gb: 8 })).toEqual({ requests: { cpu: '2', memory: '8Gi' }, limits: { cpu: '2', memory: '8Gi' } });
    expect(shapeResources({ vcpus: 1 })).toEqual({ requests: { cpu: '1' }, limits: { cpu: '1' } });
    expect(shapeResources({ vcpus: 0, memory_gb: -1 })).toBeUndefined();
  });

  it('lets the shape override template resources by name and keeps the rest', () => {
    expect(mergeResources({ requests: { cpu: '500m', memory: '1Gi' }, limits: { cpu: '500m' } }, { requests: { cpu: '4' }, limits: { cpu: '4' } })).toEqual({
      requests: { cpu: '4', memory: '1Gi' },
      limits: { cpu: '4' },
    });
  });

  it('orders the task env: common, then -e (sorted), then the four OZ_* values each with its WARP_* alias; never OZ_EXECUTION_ID', () => {
    const job = buildTaskJob(params({ env: ['TASK_ID=task-1', 'OVERRIDE=server'] }), settings({ operatorEnv: { OVERRIDE: 'cli', CLI_ONLY: '1' } }));
    const env = job.spec!.template.spec!.containers[0]!.env!.map((e) => `${e.name}=${e.value}`);
    expect(env).toEqual([
      'TASK_ID=task-1',
      'OVERRIDE=cli',
      'CLI_ONLY=1',
      'OZ_ENVIRONMENT_FILE=/workspace/.oz-env',
      'WARP_ENVIRONMENT_FILE=/workspace/.oz-env',
      'OZ_WORKSPACE_ROOT=/workspace',
      'WARP_WORKSPACE_ROOT=/workspace',
      'OZ_WORKER_BACKEND=kubernetes',
      'WARP_WORKER_BACKEND=kubernetes',
      'OZ_RUN_ID=task-1',
      'WARP_RUN_ID=task-1',
    ]);
  });
});

describe('sidecar validation', () => {
  const agent = { image: 'registry/agent:1', mount_path: '/agent', read_write: true };
  it.each([
    [[agent], false, undefined],
    [[agent], true, /read-write mount: kubernetes image volumes are read-only/],
    [[{ ...agent, image: '' }], false, /empty image/],
    [[{ ...agent, mount_path: '' }], false, /has empty mount path/],
    [[{ ...agent, mount_path: '/workspace' }], false, /reserved path \/workspace/],
    [[agent, { ...agent, image: 'other' }], false, /duplicate mount path \/agent for additional sidecar other/],
  ])('%j (image volumes %s)', (sidecars, imageVolumes, error) => {
    if (error) expect(() => validateSidecars(sidecars, imageVolumes)).toThrow(error);
    else expect(() => validateSidecars(sidecars, imageVolumes)).not.toThrow();
  });
});

describe('task Job', () => {
  it('uses image volumes for sidecars when asked', () => {
    const job = buildTaskJob(
      params({ sidecars: [{ image: 'registry.internal/agent:1.0', mount_path: '/agent', read_write: false }] }),
      settings({ imagePullPolicy: 'Always', setupCommand: 'true', useImageVolumes: true }),
    );
    expectValidJob(job);
    expect(job.metadata!.name).toBe(taskJobName('task-1', 'execution-1'));
    expect(job.metadata!.labels).toMatchObject({
      'oz-task-id': 'task-1',
      'oz-task-hash': idHash('task-1'),
      'oz-execution-id': 'execution-1',
      'oz-execution-hash': idHash('execution-1'),
    });
    const spec = job.spec!.template.spec!;
    expect(spec.initContainers!.map((c) => c.name)).toEqual(['setup']);
    expect(spec.volumes).toEqual([
      { name: 'workspace', emptyDir: {} },
      { name: 'sidecar-0-image', image: { reference: 'registry.internal/agent:1.0', pullPolicy: 'Always' } },
    ]);
    const task = spec.containers[0]!;
    expect(task.env).toContainEqual({ name: 'OZ_RUN_ID', value: 'task-1' });
    expect(task.env!.some((e) => e.name === 'OZ_EXECUTION_ID')).toBe(false);
    expect(task.volumeMounts).toContainEqual({ name: 'sidecar-0-image', mountPath: '/agent', readOnly: true });
    expect(spec.initContainers![0]!.volumeMounts).toContainEqual({ name: 'sidecar-0-image', mountPath: '/agent', readOnly: true });
  });

  it('copies sidecars with root init containers by default', () => {
    const job = buildTaskJob(
      params({ executionId: '', sidecars: [{ image: 'registry.internal/agent:1.0', mount_path: '/agent', read_write: true }] }),
      settings({ imagePullPolicy: 'Always', setupCommand: 'true' }),
    );
    expectValidJob(job);
    expect(job.metadata!.name).toBe(taskJobName('task-1', 'task-1'));
    expect(job.metadata!.labels!['oz-execution-id']).toBe('task-1');
    expect(job.spec!.ttlSecondsAfterFinished).toBe(86400);
    const spec = job.spec!.template.spec!;
    expect(spec.initContainers!.map((c) => c.name)).toEqual(['copy-sidecar-0', 'setup']);
    const copy = spec.initContainers![0]!;
    expect(copy).toMatchObject({
      image: 'registry.internal/agent:1.0',
      securityContext: { runAsUser: 0, runAsGroup: 0 },
      volumeMounts: [{ name: 'sidecar-0-data', mountPath: '/target' }],
    });
    expect(spec.volumes![1]).toEqual({ name: 'sidecar-0-data', emptyDir: {} });
    expect(spec.containers[0]!.volumeMounts).toContainEqual({ name: 'sidecar-0-data', mountPath: '/agent', readOnly: false });
  });

  it('sizes the task container from the instance shape', () => {
    const job = buildTaskJob(params({ instanceShape: { vcpus: 4, memory_gb: 16 } }), settings());
    expectValidJob(job);
    expect(job.spec!.template.spec!.containers[0]!.resources).toEqual({ requests: { cpu: '4', memory: '16Gi' }, limits: { cpu: '4', memory: '16Gi' } });
  });

  it('merges pod_template: its settings stay, the task container is overlaid, its pull policy wins', () => {
    const podTemplate = readPodTemplate({
      serviceAccountName: 'task-runner',
      imagePullSecrets: [{ name: 'registry-creds' }],
      nodeSelector: { pool: 'agents' },
      initContainers: [{ name: 'db', image: 'postgres:16', restartPolicy: 'Always' }],
      volumes: [{ name: 'cache', emptyDir: {} }],
      containers: [
        {
          name: 'task',
          imagePullPolicy: 'Always',
          resources: { requests: { cpu: '500m', memory: '1Gi' }, limits: { cpu: '500m' } },
          env: [
            { name: 'FROM_TEMPLATE', value: '1' },
            { name: 'TASK_ID', valueFrom: { secretKeyRef: { name: 's', key: 'k' } } },
          ],
        },
      ],
    });
    const template = structuredClone(podTemplate);
    const spec = buildTaskPodSpec(
      params({ instanceShape: { vcpus: 4, memory_gb: 16 } }),
      settings({ podTemplate, operatorEnv: { FROM_CLI: '1' }, setupCommand: 'true', teardownCommand: 'cleanup' }),
    );
    expect(podTemplate).toEqual(template); // the template itself is never changed
    expect(spec).toMatchObject({
      restartPolicy: 'Never',
      serviceAccountName: 'task-runner',
      imagePullSecrets: [{ name: 'registry-creds' }],
      nodeSelector: { pool: 'agents' },
    });
    expect(spec.initContainers!.map((c) => c.name)).toEqual(['setup', 'db']);
    expect(spec.volumes!.map((v) => v.name)).toEqual(['cache', 'workspace']);
    const task = spec.containers[0]!;
    expect(task.image).toBe('ubuntu:22.04');
    expect(task.imagePullPolicy).toBe('Always');
    expect(task.resources).toEqual({ requests: { cpu: '4', memory: '16Gi' }, limits: { cpu: '4', memory: '16Gi' } });
    expect(task.env![0]).toEqual({ name: 'FROM_TEMPLATE', value: '1' });
    expect(task.env![1]).toEqual({ name: 'TASK_ID', value: 'task-1' }); // replaced in place
    expect(task.env).toContainEqual({ name: 'FROM_CLI', value: '1' });
    expect(task.lifecycle).toEqual({ preStop: { exec: { command: ['/bin/sh', '-c', 'cleanup'] } } });
    expectValidJob(buildTaskJob(params(), settings({ podTemplate })));
  });

  it('has no TTL when cleanup is off, and carries extra labels and annotations (ours win)', () => {
    const job = buildTaskJob(
      params(),
      settings({ ttlSecondsAfterFinished: undefined, extraLabels: { team: 'platform', 'oz-task-id': 'spoofed' }, extraAnnotations: { owner: 'oz' } }),
    );
    expectValidJob(job);
    expect(job.spec!.ttlSecondsAfterFinished).toBeUndefined();
    expect(job.metadata!.labels).toMatchObject({ team: 'platform', 'oz-task-id': 'task-1' });
    expect(job.metadata!.annotations).toEqual({ owner: 'oz' });
    expect(job.spec!.template.metadata!.annotations).toEqual({ owner: 'oz' });
  });
});

describe('pod_template reading', () => {
  it.each([
    [{ nodeSelecter: { a: 'b' } }, /unknown field backend\.kubernetes\.pod_template\.nodeSelecter \(did you mean nodeSelector\?\)/],
    [
      { containers: [{ name: 'task', resoures: {} }] },
      /unknown field backend\.kubernetes\.pod_template\.containers\[0\]\.resoures \(did you mean resources\?\)/,
    ],
    [{ containers: { name: 'task' } }, /pod_template\.containers must be a list/],
    [{ tolerations: [{ key: 'a', tolerationSeconds: 'soon' }] }, /tolerationSeconds must be a number/],
    [{ nodeSelector: { a: { b: 1 } } }, /nodeSelector\.a must be a string/],
  ])('refuses %j', (template, error) => expect(() => readPodTemplate(template)).toThrow(error));

  it('accepts real PodSpec fields', () => {
    expect(
      readPodTemplate({
        serviceAccountName: 'x',
        securityContext: { runAsNonRoot: true },
        containers: [{ name: 'task', env: [{ name: 'A', valueFrom: { secretKeyRef: { name: 's', key: 'k' } } }] }],
      }),
    ).toBeDefined();
  });
});

describe('preflight Job', () => {
  const base = {
    workerId: 'my-worker',
    namespace: 'agents',
    image: 'registry.internal/platform/preflight:1.0',
    imagePullPolicy: 'IfNotPresent' as const,
    resources: DEFAULT_PREFLIGHT_RESOURCES,
    podTemplate: readPodTemplate({ serviceAccountName: 'oz-agent-worker', imagePullSecrets: [{ name: 'registry-creds' }] }),
    labels: { 'oz-preflight': 'true' },
    ttlSecondsAfterFinished: 600,
  };
  it('copy mode: one root init container, no volumes', () => {
    const job = buildPreflightJob({ ...base, useImageVolumes: false }, 1767225600123456789n);
    expectValidJob(job);
    expect(job.metadata!.name).toBe('oz-preflight-71f145479816ff1c-1767225600123456789');
    const spec = job.spec!.template.spec!;
    expect(spec.initContainers).toEqual([
      expect.objectContaining({ name: 'root-init-preflight', image: base.image, securityContext: { runAsUser: 0, runAsGroup: 0 } }),
    ]);
    expect(spec.volumes).toBeUndefined();
  });
  it('image-volume mode: one image volume mounted read-only, template identity kept', () => {
    const job = buildPreflightJob({ ...base, useImageVolumes: true }, 1n);
    expectValidJob(job);
    const spec = job.spec!.template.spec!;
    expect(spec.initContainers).toBeUndefined();
    expect(spec.volumes).toEqual([{ name: 'preflight-image', image: { reference: base.image, pullPolicy: 'IfNotPresent' } }]);
    expect(spec.containers).toEqual([
      expect.objectContaining({ image: base.image, volumeMounts: [{ name: 'preflight-image', mountPath: '/preflight-image', readOnly: true }] }),
    ]);
    expect(spec).toMatchObject({ serviceAccountName: 'oz-agent-worker', imagePullSecrets: [{ name: 'registry-creds' }] });
  });
});
