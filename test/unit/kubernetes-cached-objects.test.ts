// The watch caches keep a projection of each Job and Pod: the backend must
// reach the same verdicts on it as on the object the API server sent.
import type { CoreV1Event, V1ContainerStatus, V1Job, V1JobCondition, V1Pod, V1PodCondition } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { cachedJob, cachedPod } from '../../src/backends/kubernetes/cached-objects.js';
import { jobState, podFailure, podNeedsEvents, type PodCheckOptions } from '../../src/backends/kubernetes/classify.js';
import { LABEL_EXECUTION_HASH } from '../../src/backends/kubernetes/names.js';
import { kubeletContainerStatus } from '../support/kubernetes.js';

const NOW = Date.parse('2026-11-22T12:00:00Z');
const STARTED = new Date(NOW - 5_000);

const managedFields = [
  {
    manager: 'kube-controller-manager',
    operation: 'Update',
    apiVersion: 'v1',
    time: STARTED,
    fieldsType: 'FieldsV1',
    fieldsV1: { 'f:metadata': { 'f:labels': {} } },
  },
  {
    manager: 'kubelet',
    operation: 'Update',
    apiVersion: 'v1',
    time: STARTED,
    fieldsType: 'FieldsV1',
    subresource: 'status',
    fieldsV1: { 'f:status': { 'f:conditions': {} } },
  },
];

const labels = {
  'oz-worker-id': 'worker-1',
  'oz-worker-hash': '0123456789abcdef',
  'oz-task-id': 'task-1',
  'oz-task-hash': 'fedcba9876543210',
  'oz-execution-id': 'exec-1',
  [LABEL_EXECUTION_HASH]: 'aaaabbbbccccdddd',
  'job-name': 'oz-task-task-1-exec-exec-1',
  'controller-uid': '6f1c0c8e-4a57-4d36-9d43-2b0a3f3d5b11',
  'batch.kubernetes.io/job-name': 'oz-task-task-1-exec-exec-1',
};

const container = (name: string, extra: Record<string, unknown> = {}) => ({
  name,
  image: 'ghcr.io/example/agent:1.2.3',
  command: ['/bin/sh', '-c'],
  args: ['set -e; run the agent'],
  env: [
    { name: 'OZ_RUN_ID', value: 'task-1' },
    { name: 'SECRET', valueFrom: { secretKeyRef: { name: 's', key: 'k' } } },
  ],
  resources: { requests: { cpu: '500m', memory: '1Gi' }, limits: { memory: '4Gi' } },
  volumeMounts: [{ name: 'workspace', mountPath: '/workspace' }],
  terminationMessagePath: '/dev/termination-log',
  terminationMessagePolicy: 'File',
  imagePullPolicy: 'IfNotPresent',
  securityContext: { runAsNonRoot: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } },
  ...extra,
});

/** A container status as kubelet writes it: with image ids, container id, started, lastState. */
const status = (name: string, state: NonNullable<V1ContainerStatus['state']>, extra: Partial<V1ContainerStatus> = {}): V1ContainerStatus =>
  kubeletContainerStatus('ghcr.io/example/agent:1.2.3', name, state, extra);

const condition = (type: string, value: string, reason?: string, message?: string): V1PodCondition => ({
  type,
  status: value,
  lastTransitionTime: STARTED,
  ...(reason ? { reason } : {}),
  ...(message ? { message } : {}),
});

interface PodShape {
  phase?: string;
  reason?: string;
  message?: string;
  nodeName?: string;
  conditions?: V1PodCondition[];
  init?: V1ContainerStatus[];
  containers?: V1ContainerStatus[];
  sidecar?: boolean;
  createdSecondsAgo?: number;
}

/** A task Pod in the shape the API server returns it. */
function fullPod(shape: PodShape): V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: 'oz-task-task-1-exec-exec-1-x7k2p',
      generateName: 'oz-task-task-1-exec-exec-1-',
      namespace: 'agents',
      uid: '0b9c6d54-0f43-4ad4-9d7e-6a0d2f1c9e21',
      resourceVersion: '48213',
      creationTimestamp: new Date(NOW - (shape.createdSecondsAgo ?? 5) * 1000),
      labels,
      annotations: { 'oz-worker.dev/task-id': 'task-1', 'oz-worker.dev/execution-id': 'exec-1' },
      ownerReferences: [{ apiVersion: 'batch/v1', kind: 'Job', name: 'oz-task-task-1-exec-exec-1', uid: 'u-job', controller: true, blockOwnerDeletion: true }],
      finalizers: ['batch.kubernetes.io/job-tracking'],
      managedFields,
    },
    spec: {
      restartPolicy: 'Never',
      ...(shape.nodeName ? { nodeName: shape.nodeName } : {}),
      initContainers: [container('setup'), ...(shape.sidecar ? [container('db', { restartPolicy: 'Always', image: 'postgres:16' })] : [])],
      containers: [container('task')],
      volumes: [{ name: 'workspace', emptyDir: { sizeLimit: '10Gi' } }],
      serviceAccountName: 'default',
      dnsPolicy: 'ClusterFirst',
      schedulerName: 'default-scheduler',
      tolerations: [{ key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 }],
      securityContext: { fsGroup: 1000 },
    },
    status: {
      ...(shape.phase ? { phase: shape.phase } : {}),
      ...(shape.reason ? { reason: shape.reason } : {}),
      ...(shape.message ? { message: shape.message } : {}),
      hostIP: '10.0.0.4',
      podIP: '10.244.0.17',
      podIPs: [{ ip: '10.244.0.17' }],
      qosClass: 'Burstable',
      startTime: STARTED,
      ...(shape.conditions ? { conditions: shape.conditions } : {}),
      ...(shape.init ? { initContainerStatuses: shape.init } : {}),
      ...(shape.containers ? { containerStatuses: shape.containers } : {}),
    },
  };
}

const running = { running: { startedAt: STARTED } };
const exited = (exitCode: number, reason: string, signal?: number) => ({
  terminated: { exitCode, reason, startedAt: STARTED, finishedAt: new Date(NOW), containerID: 'containerd://x', ...(signal ? { signal } : {}) },
});
const waitingFor = (reason: string, message?: string) => ({ waiting: { reason, ...(message ? { message } : {}) } });
const setupDone = [status('setup', exited(0, 'Completed'))];
const ready = [condition('PodReadyToStartContainers', 'True'), condition('Initialized', 'True'), condition('PodScheduled', 'True')];
const bound = [condition('PodScheduled', 'True'), condition('PodReadyToStartContainers', 'False')];

const pods: [string, PodShape][] = [
  [
    'running',
    { phase: 'Running', nodeName: 'node-1', conditions: ready, init: setupDone, containers: [status('task', running, { ready: true, started: true })] },
  ],
  ['succeeded', { phase: 'Succeeded', nodeName: 'node-1', conditions: ready, init: setupDone, containers: [status('task', exited(0, 'Completed'))] }],
  [
    'exit 3, phase still Running',
    { phase: 'Running', nodeName: 'node-1', conditions: ready, init: setupDone, containers: [status('task', exited(3, 'Error'))] },
  ],
  ['OOM killed', { phase: 'Failed', nodeName: 'node-1', init: setupDone, containers: [status('task', exited(137, 'OOMKilled'))] }],
  ['SIGTERM', { phase: 'Failed', nodeName: 'node-1', init: setupDone, containers: [status('task', exited(143, 'Error'))] }],
  ['killed by a signal', { phase: 'Failed', nodeName: 'node-1', init: setupDone, containers: [status('task', exited(1, 'Error', 15))] }],
  ['setup failed', { phase: 'Failed', nodeName: 'node-1', init: [status('setup', exited(1, 'Error'))] }],
  [
    'setup cannot be created',
    { phase: 'Pending', nodeName: 'node-1', init: [status('setup', waitingFor('CreateContainerConfigError', 'secret "s" not found'))] },
  ],
  [
    'sidecar ended with SIGTERM',
    {
      phase: 'Succeeded',
      nodeName: 'node-1',
      sidecar: true,
      init: [...setupDone, status('db', exited(143, 'Error'))],
      containers: [status('task', exited(0, 'Completed'))],
    },
  ],
  [
    'sidecar image missing',
    { phase: 'Pending', nodeName: 'node-1', sidecar: true, init: [...setupDone, status('db', waitingFor('ErrImagePull', 'manifest unknown'))] },
  ],
  [
    'image pull backing off (transient)',
    {
      phase: 'Pending',
      nodeName: 'node-1',
      conditions: ready,
      init: setupDone,
      containers: [status('task', waitingFor('ImagePullBackOff', 'Back-off pulling image: connection refused'))],
    },
  ],
  [
    'image not found',
    {
      phase: 'Pending',
      nodeName: 'node-1',
      conditions: ready,
      init: setupDone,
      containers: [status('task', waitingFor('ErrImagePull', 'rpc error: not found'))],
    },
  ],
  ['image never pulled', { phase: 'Pending', nodeName: 'node-1', init: setupDone, containers: [status('task', waitingFor('ErrImageNeverPull'))] }],
  [
    'invalid image name',
    { phase: 'Pending', nodeName: 'node-1', init: setupDone, containers: [status('task', waitingFor('InvalidImageName', 'invalid reference format'))] },
  ],
  [
    'container cannot be created',
    { phase: 'Pending', nodeName: 'node-1', init: setupDone, containers: [status('task', waitingFor('CreateContainerError', 'no command'))] },
  ],
  [
    'unschedulable, recent',
    { phase: 'Pending', conditions: [condition('PodScheduled', 'False', 'Unschedulable', '0/3 nodes are available')], createdSecondsAgo: 5 },
  ],
  [
    'unschedulable, long',
    { phase: 'Pending', conditions: [condition('PodScheduled', 'False', 'Unschedulable', '0/3 nodes are available')], createdSecondsAgo: 120 },
  ],
  ['bound, mounting', { phase: 'Pending', nodeName: 'node-1', conditions: bound }],
  ['bound by condition only', { phase: 'Pending', conditions: [condition('PodScheduled', 'True')] }],
  ['evicted', { phase: 'Failed', reason: 'Evicted', message: 'The node was low on resource: memory.', nodeName: 'node-1' }],
  [
    'past its deadline',
    { phase: 'Failed', reason: 'DeadlineExceeded', message: 'Pod was active on the node longer than the specified deadline', nodeName: 'node-1' },
  ],
  ['pending, no status yet', {}],
];

const mountEvents: CoreV1Event[] = [
  { metadata: {}, involvedObject: {}, reason: 'FailedMount', message: 'MountVolume.SetUp failed for volume "workspace": quota exceeded' },
];

const checks: [string, Partial<PodCheckOptions>][] = [
  ['defaults', {}],
  ['no grace, no timeout', { unschedulableTimeoutMs: 0, imagePullTimeoutMs: 0 }],
  ['with mount events', { events: mountEvents }],
];

describe('cachedPod', () => {
  const options = (overrides: Partial<PodCheckOptions>): PodCheckOptions => ({
    namespace: 'agents',
    now: NOW,
    unschedulableTimeoutMs: 30_000,
    imagePullTimeoutMs: 60_000,
    mountFailures: { timeoutMs: 120_000 },
    ...overrides,
  });

  it.each(pods)('classifies a %s pod as the full object does', (_, shape) => {
    const full = fullPod(shape);
    const kept = cachedPod(full);
    for (const [, overrides] of checks) expect(podFailure(kept, options(overrides))).toEqual(podFailure(full, options(overrides)));
    expect(podNeedsEvents(kept)).toBe(podNeedsEvents(full));
  });

  it('keeps what the watch and the log collection use, and drops the rest', () => {
    const full = fullPod(pods[0]![1]);
    const kept = cachedPod(full);
    expect(kept.metadata).toEqual({
      name: full.metadata!.name,
      namespace: 'agents',
      uid: full.metadata!.uid,
      resourceVersion: '48213',
      creationTimestamp: full.metadata!.creationTimestamp,
      labels: { [LABEL_EXECUTION_HASH]: 'aaaabbbbccccdddd', 'job-name': 'oz-task-task-1-exec-exec-1' },
    });
    expect([...(kept.spec!.initContainers ?? []), ...kept.spec!.containers].map((c) => c.name)).toEqual(['setup', 'task']);
    expect(JSON.stringify(kept).length).toBeLessThan(JSON.stringify(full).length / 4);
  });

  it('leaves the object it was given alone', () => {
    const full = fullPod(pods[0]![1]);
    const before = structuredClone(full);
    cachedPod(full);
    expect(full).toEqual(before);
  });
});

describe('cachedJob', () => {
  const fullJob = (conditions: V1JobCondition[] | undefined): V1Job => ({
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: {
      name: 'oz-task-task-1-exec-exec-1',
      namespace: 'agents',
      uid: 'u-job',
      resourceVersion: '48214',
      creationTimestamp: STARTED,
      labels,
      annotations: { 'oz-worker.dev/task-id': 'task-1' },
      managedFields,
    },
    spec: {
      backoffLimit: 0,
      ttlSecondsAfterFinished: 86_400,
      activeDeadlineSeconds: 28_800,
      template: { metadata: { labels }, spec: { restartPolicy: 'Never', containers: [container('task')] } },
    },
    status: { active: conditions ? 0 : 1, startTime: STARTED, ...(conditions ? { conditions } : {}) },
  });
  const jobCondition = (type: string, reason = '', message = ''): V1JobCondition => ({
    type,
    status: 'True',
    reason,
    message,
    lastProbeTime: STARTED,
    lastTransitionTime: STARTED,
  });

  it.each<[string, V1JobCondition[] | undefined]>([
    ['running', undefined],
    ['complete', [jobCondition('SuccessCriteriaMet'), jobCondition('Complete')]],
    [
      'failed',
      [jobCondition('FailureTarget', 'BackoffLimitExceeded'), jobCondition('Failed', 'BackoffLimitExceeded', 'Job has reached the specified backoff limit')],
    ],
    ['past its deadline', [jobCondition('Failed', 'DeadlineExceeded', 'Job was active longer than specified deadline')]],
    ['suspended', [{ type: 'Suspended', status: 'True', reason: 'JobSuspended' }]],
  ])('reads a %s Job as the full object does', (_, conditions) => {
    const full = fullJob(conditions);
    expect(jobState(cachedJob(full), 'agents')).toEqual(jobState(full, 'agents'));
  });

  it('keeps its identity and execution label, not its spec', () => {
    const kept = cachedJob(fullJob(undefined));
    expect(kept).toEqual({
      metadata: {
        name: 'oz-task-task-1-exec-exec-1',
        namespace: 'agents',
        uid: 'u-job',
        resourceVersion: '48214',
        labels: { [LABEL_EXECUTION_HASH]: 'aaaabbbbccccdddd', 'job-name': 'oz-task-task-1-exec-exec-1' },
      },
      status: {},
    });
  });
});
