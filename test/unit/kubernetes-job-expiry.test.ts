// What is done with a failed task's Job: the disposition of the failure, whether
// the Job's execution has stopped, the expiry patch and its retry rules. The
// rows follow the Go worker's tables (kubernetes_disposition_test.go and the
// retention table of kubernetes_expiration_integration_test.go at 1b2e5622);
// rows marked "ours" are where oz-worker reads a pod more closely.
import type { V1ContainerStatus, V1Job, V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { KubeApiError } from '../../src/backends/kubernetes/client.js';
import {
  EXPIRY_BACKOFF,
  executionStopped,
  expiryDelayMs,
  expiryPatch,
  failureDisposition,
  jobFinished,
  retriableError,
} from '../../src/backends/kubernetes/job-expiry.js';

const JOB_UID = 'job-uid-1';

const running = (name: string): V1ContainerStatus => ({ name, ready: true, restartCount: 0, image: 'x', imageID: '', state: { running: {} } });
const exited = (name: string, exitCode: number): V1ContainerStatus => ({
  name,
  ready: false,
  restartCount: 0,
  image: 'x',
  imageID: '',
  state: { terminated: { exitCode, reason: exitCode === 0 ? 'Completed' : 'Error' } },
});
const waiting = (name: string, reason: string): V1ContainerStatus => ({
  name,
  ready: false,
  restartCount: 0,
  image: 'x',
  imageID: '',
  state: { waiting: { reason } },
});

function pod(phase: string, statuses: V1ContainerStatus[], options: { name?: string; owner?: string; containers?: string[] } = {}): V1Pod {
  return {
    metadata: {
      name: options.name ?? 'task-pod',
      uid: `${options.name ?? 'task-pod'}-uid`,
      ownerReferences: [{ apiVersion: 'batch/v1', kind: 'Job', name: 'task-job', uid: options.owner ?? JOB_UID, controller: true }],
    },
    spec: { containers: (options.containers ?? ['task']).map((name) => ({ name })) },
    status: { phase, containerStatuses: statuses },
  };
}

function job(
  spec: { [K in keyof NonNullable<V1Job['spec']>]?: NonNullable<V1Job['spec']>[K] | undefined } = {},
  conditions: { type: string; status: string }[] = [],
): V1Job {
  return {
    metadata: { name: 'task-job', uid: JOB_UID, resourceVersion: '42' },
    spec: { backoffLimit: 0, template: {}, ...spec } as NonNullable<V1Job['spec']>,
    status: { conditions: conditions as never },
  };
}

describe('failureDisposition', () => {
  it.each<[string, V1Pod | undefined, ReturnType<typeof failureDisposition>]>([
    ['image pull abandoned: Pending, task waiting ImagePullBackOff', pod('Pending', [waiting('task', 'ImagePullBackOff')]), 'termination-required'],
    ['task exited 1 and the pod is Failed (the Job status may lag)', pod('Failed', [exited('task', 1)]), 'execution-stopped'],
    [
      'task exited 1 while another container still runs',
      pod('Running', [exited('task', 1), running('helper')], { containers: ['task', 'helper'] }),
      'termination-required',
    ],
    ['no pod observed (the Job could not be watched)', undefined, 'termination-required'],
    ['unschedulable: Pending with no container status', pod('Pending', []), 'termination-required'],
    ['ours: the only container exited 1 and the phase still says Running', pod('Running', [exited('task', 1)]), 'execution-stopped'],
    ['ours: a container of the spec has no status yet', pod('Running', [exited('task', 1)], { containers: ['task', 'helper'] }), 'termination-required'],
  ])('%s → %s', (_case, observed, expected) => {
    expect(failureDisposition(observed)).toBe(expected);
  });
});

describe('executionStopped (a failed pod, before the Job status catches up)', () => {
  const failed = pod('Failed', [exited('task', 1)]);
  it.each<[string, V1Job, V1Pod[], boolean]>([
    ['the failed pod is the only pod', job(), [failed], true],
    ['another pod of this Job is Running', job(), [failed, pod('Running', [running('task')], { name: 'second' })], false],
    ['another pod of this Job is Pending', job(), [failed, pod('Pending', [], { name: 'second' })], false],
    ['an unrelated Running pod (another owner uid)', job(), [failed, pod('Running', [running('task')], { name: 'other', owner: 'someone-else' })], true],
    ['the failed pod is missing: no evidence the work stopped', job(), [], false],
    ['backoffLimit 1: a retry could start the work again', job({ backoffLimit: 1 }), [failed], false],
    ['a pod failure policy may restart it', job({ podFailurePolicy: { rules: [] } }), [failed], false],
    ['no backoffLimit given', job({ backoffLimit: undefined }), [failed], false],
    ['only a succeeded pod: nothing failed', job(), [pod('Succeeded', [exited('task', 0)])], false],
    ['ours: the pod exited 1 and its phase still says Running', job(), [pod('Running', [exited('task', 1)])], true],
  ])('%s → %s', (_case, theJob, pods, expected) => {
    expect(executionStopped(theJob, pods)).toBe(expected);
  });
});

describe('jobFinished', () => {
  it.each([
    [[{ type: 'Complete', status: 'True' }], true],
    [[{ type: 'Failed', status: 'True' }], true],
    [[{ type: 'Failed', status: 'False' }], false],
    [[{ type: 'Suspended', status: 'True' }], false],
    [[], false],
  ])('%j → %s', (conditions, expected) => {
    expect(jobFinished(job({}, conditions))).toBe(expected);
  });
});

describe('expiryPatch', () => {
  it('is the merge patch the Go worker sends, byte for byte, with the preconditions first', () => {
    expect(JSON.stringify(expiryPatch({ resourceVersion: '12345', uid: 'c0ffee-uid' }))).toBe(
      '{"metadata":{"resourceVersion":"12345","uid":"c0ffee-uid"},"spec":{"activeDeadlineSeconds":1,"parallelism":0,"suspend":false}}',
    );
  });

  it('carries annotations in the same write when given', () => {
    expect(JSON.stringify(expiryPatch({ resourceVersion: '7', uid: 'u' }, { 'oz-worker.dev/reported': 'true' }))).toBe(
      '{"metadata":{"annotations":{"oz-worker.dev/reported":"true"},"resourceVersion":"7","uid":"u"},"spec":{"activeDeadlineSeconds":1,"parallelism":0,"suspend":false}}',
    );
  });
});

describe('retries', () => {
  const network = (code: string): Error => new KubeApiError(`failed to get Job x: ${code}`, undefined, { cause: Object.assign(new Error(code), { code }) });
  it.each<[string, unknown, boolean]>([
    ['409 Conflict (the Job changed meanwhile)', new KubeApiError('conflict', 409), true],
    ['429 Too Many Requests', new KubeApiError('slow down', 429), true],
    ['500 Internal Server Error', new KubeApiError('oops', 500), true],
    ['503 Service Unavailable', new KubeApiError('unavailable', 503), true],
    ['504 Gateway Timeout', new KubeApiError('timeout', 504), true],
    ['403 Forbidden', new KubeApiError('forbidden', 403), false],
    ['422 Invalid', new KubeApiError('invalid', 422), false],
    ['connection reset', network('ECONNRESET'), true],
    ['connection refused', network('ECONNREFUSED'), true],
    ['timed out', network('ETIMEDOUT'), true],
    ['anything else', new Error('boom'), false],
  ])('%s → retried: %s', (_case, error, expected) => {
    expect(retriableError(error)).toBe(expected);
  });

  it('waits 1, 2, 4, 8 and 10 s between six attempts, each up to 10% longer', () => {
    expect(EXPIRY_BACKOFF.attempts).toBe(6);
    expect([0, 1, 2, 3, 4].map((attempt) => expiryDelayMs(attempt, EXPIRY_BACKOFF, () => 0))).toEqual([1_000, 2_000, 4_000, 8_000, 10_000]);
    expect([0, 1, 2, 3, 4].map((attempt) => Math.round(expiryDelayMs(attempt, EXPIRY_BACKOFF, () => 1)))).toEqual([1_100, 2_200, 4_400, 8_800, 11_000]);
  });
});
