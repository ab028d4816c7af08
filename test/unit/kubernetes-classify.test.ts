// Failure classification over Job and Pod status: fixtures in the shapes the
// API server returns, and the sentences operators read.
import type { V1Job, V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { jobState, podFailure, podNeedsEvents, signalName, type PodCheckOptions } from '../../src/backends/kubernetes/classify.js';

const NOW = Date.parse('2026-11-22T12:00:00Z');
const options = (overrides: Partial<PodCheckOptions> = {}): PodCheckOptions => ({
  namespace: 'agents',
  now: NOW,
  unschedulableTimeoutMs: 30_000,
  imagePullTimeoutMs: 60_000,
  mountFailures: { timeoutMs: 120_000 },
  ...overrides,
});

function pod(status: V1Pod['status'], extra: { initContainers?: { name: string; restartPolicy?: string }[]; createdSecondsAgo?: number } = {}): V1Pod {
  return {
    metadata: {
      name: 'task-pod',
      namespace: 'agents',
      labels: { 'job-name': 'task-job' },
      uid: 'u1',
      creationTimestamp: new Date(NOW - (extra.createdSecondsAgo ?? 0) * 1000),
    },
    spec: { containers: [{ name: 'task' }], ...(extra.initContainers ? { initContainers: extra.initContainers as never } : {}) },
    ...(status ? { status } : {}),
  };
}

const terminated = (name: string, exitCode: number, reason = 'Error', signal?: number) => ({
  name,
  ready: false,
  restartCount: 0,
  image: 'x',
  imageID: '',
  state: { terminated: { exitCode, reason, ...(signal ? { signal } : {}) } },
});
const waiting = (name: string, reason: string, message = '') => ({
  name,
  ready: false,
  restartCount: 0,
  image: 'x',
  imageID: '',
  state: { waiting: { reason, message } },
});
const unschedulable = { type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: 'no nodes available' };
const scheduled = { type: 'PodScheduled', status: 'True' };

describe('podFailure', () => {
  it('explains a SIGTERM exit of the task container', () => {
    const failure = podFailure(pod({ phase: 'Failed', containerStatuses: [terminated('task', 143)] }), options());
    expect(failure?.reason).toBe('container_exit');
    expect(failure?.exitCode).toBe(143);
    for (const part of [
      'container task',
      'pod task-pod',
      'namespace agents',
      'job task-job',
      'exited with code 143',
      'SIGTERM',
      'Pod phase: Failed',
      'check pod events and node activity',
      'eviction, preemption, node drain, activeDeadlineSeconds, or manual deletion',
    ]) {
      expect(failure?.message).toContain(part);
    }
  });

  it.each([
    ['fails after the unschedulable timeout', 31, 30_000, 'unschedulable'],
    ['waits before the timeout', 10, 30_000, undefined],
    ['never fails when the check is disabled', 300, 0, undefined],
  ])('unschedulable: %s', (_name, age, timeout, expected) => {
    const failure = podFailure(
      pod({ phase: 'Pending', conditions: [unschedulable] }, { createdSecondsAgo: age }),
      options({ unschedulableTimeoutMs: timeout }),
    );
    expect(failure?.reason).toBe(expected);
  });

  const sidecars = [{ name: 'copy-sidecar-0' }, { name: 'zookeeper', restartPolicy: 'Always' }];
  it.each([
    [
      'a native sidecar ending with SIGTERM does not fail the task',
      pod({ phase: 'Running', initContainerStatuses: [terminated('zookeeper', 143)] }, { initContainers: sidecars }),
      undefined,
      undefined,
    ],
    [
      'a plain init container exit does',
      pod({ phase: 'Failed', initContainerStatuses: [terminated('copy-sidecar-0', 1)] }, { initContainers: sidecars }),
      'init_container',
      /init container copy-sidecar-0/,
    ],
    [
      'a sidecar exit does not mask the task container',
      pod({ phase: 'Failed', initContainerStatuses: [terminated('zookeeper', 143)], containerStatuses: [terminated('task', 2)] }, { initContainers: sidecars }),
      'container_exit',
      /container task .*exited with code 2/,
    ],
    [
      'a sidecar image pull failure still fails the task',
      pod({ phase: 'Pending', initContainerStatuses: [waiting('zookeeper', 'ImagePullBackOff', 'pull failed')] }, { initContainers: sidecars }),
      'image_pull',
      /ImagePullBackOff/,
    ],
  ])('%s', (_name, subject, reason, message) => {
    const failure = podFailure(subject, options());
    expect(failure?.reason).toBe(reason);
    if (message) expect(failure?.message).toMatch(message);
  });

  it.each([
    ['evicted', { phase: 'Failed', reason: 'Evicted', message: 'The node was low on resource: memory.' }, 'evicted', 0],
    ['OOM', { phase: 'Failed', containerStatuses: [terminated('task', 137, 'OOMKilled')] }, 'container_oom', 137],
    ['signal field wins for the exit code', { phase: 'Failed', containerStatuses: [terminated('task', 1, 'Error', 9)] }, 'container_exit', 137],
    ['invalid image', { phase: 'Pending', containerStatuses: [waiting('task', 'InvalidImageName')] }, 'invalid_image', 0],
    ['config error', { phase: 'Pending', containerStatuses: [waiting('task', 'CreateContainerConfigError', 'secret "x" not found')] }, 'container_create', 0],
    ['init config error', { phase: 'Pending', initContainerStatuses: [waiting('setup', 'CreateContainerConfigError')] }, 'init_container', 0],
    [
      'deadline',
      { phase: 'Failed', reason: 'DeadlineExceeded', message: 'Pod was active on the node longer than the specified deadline' },
      'active_deadline',
      0,
    ],
    ['plain failure', { phase: 'Failed' }, 'job_failed', 0],
    [
      'running',
      { phase: 'Running', containerStatuses: [{ name: 'task', ready: true, restartCount: 0, image: 'x', imageID: '', state: { running: {} } }] },
      undefined,
      undefined,
    ],
    ['pending while pulling', { phase: 'Pending', containerStatuses: [waiting('task', 'ContainerCreating')] }, undefined, undefined],
  ])('%s', (_name, status, reason, exitCode) => {
    const failure = podFailure(pod(status as V1Pod['status']), options());
    expect(failure?.reason).toBe(reason);
    expect(failure?.exitCode).toBe(exitCode);
  });

  // Messages as kubelet 1.34 with containerd reports them.
  it.each([
    [
      'a missing tag',
      'ErrImagePull',
      'rpc error: code = NotFound desc = failed to pull and unpack image "127.0.0.1:5000/oz/missing:1": failed to resolve reference "127.0.0.1:5000/oz/missing:1": 127.0.0.1:5000/oz/missing:1: not found',
      undefined,
    ],
    [
      'refused credentials',
      'ErrImagePull',
      'failed to resolve reference "r.example/x:1": pulling from host r.example failed with status code [manifests 1]: 401 Unauthorized',
      undefined,
    ],
    [
      'access denied',
      'ImagePullBackOff',
      'Back-off pulling image "r.example/x:1": ErrImagePull: failed to authorize: failed to fetch anonymous token: unexpected status: 403 Forbidden',
      undefined,
    ],
    ['a manifest the registry does not know', 'ErrImagePull', 'manifest unknown: manifest unknown', undefined],
    ['an invalid reference', 'ErrImagePull', 'failed to pull and unpack image "x": invalid reference format', undefined],
    [
      'a refused connection (transient)',
      'ErrImagePull',
      'failed to do request: Head "http://127.0.0.1:5000/v2/oz/x/manifests/1": dial tcp 127.0.0.1:5000: connect: connection refused',
      60_000,
    ],
    ['a registry error (transient)', 'ImagePullBackOff', 'Back-off pulling image "x": unexpected status from HEAD request: 503 Service Unavailable', 60_000],
    ['no message at all (transient)', 'ErrImagePull', '', 60_000],
  ])('image pull: %s', (_name, reason, message, graceMs) => {
    const failure = podFailure(pod({ phase: 'Pending', containerStatuses: [waiting('task', reason, message)] }), options());
    expect(failure?.reason).toBe('image_pull');
    expect(failure?.graceMs).toBe(graceMs);
    if (message) expect(failure?.message).toContain(message);
  });

  it('fails at once on an image that is absent under pull policy Never', () => {
    const failure = podFailure(
      pod({
        phase: 'Pending',
        containerStatuses: [waiting('task', 'ErrImageNeverPull', 'Container image "oz/absent:1" is not present with pull policy of Never')],
      }),
      options(),
    );
    expect(failure?.reason).toBe('image_pull');
    expect(failure?.graceMs).toBeUndefined();
    expect(failure?.message).toMatch(/oz\/absent:1.*image_pull_policy is Never/);
  });

  it.each([['failed to sync configmap cache: timed out waiting for the condition'], ['object "agents"/"kube-root-ca.crt" not registered']])(
    "ignores kubelet's transient mount retry: %s",
    (text) => {
      const event = {
        reason: 'FailedMount',
        message: `MountVolume.SetUp failed for volume "kube-api-access-q28m2" : ${text}`,
        involvedObject: {},
        metadata: {},
      };
      expect(podFailure(pod({ phase: 'Pending', conditions: [scheduled] }), options({ events: [event] }))).toBeUndefined();
    },
  );

  it('reports a mount failure from the pod events', () => {
    const event = { reason: 'FailedMount', message: 'MountVolume.SetUp failed for volume "x"', involvedObject: {}, metadata: {} };
    const failure = podFailure(pod({ phase: 'Pending', conditions: [scheduled] }), options({ events: [event] }));
    expect(failure?.reason).toBe('volume_mount');
    expect(failure?.message).toContain('Kubernetes event reason: FailedMount');
    // Not before the pod is bound to a node: nothing is mounted while it waits for the scheduler.
    expect(podFailure(pod({ phase: 'Pending' }), options({ events: [event] }))).toBeUndefined();
  });

  // Status as the scheduler (1.34) and kubelet leave it on a preempted pod; a preemption says more than the exit it causes.
  const running = { name: 'task', ready: true, restartCount: 0, image: 'x', imageID: '', state: { running: {} } };
  const byScheduler = {
    type: 'DisruptionTarget',
    status: 'True',
    reason: 'PreemptionByScheduler',
    message: 'default-scheduler: preempting to accommodate a higher priority pod',
  };
  const byKubelet = {
    type: 'DisruptionTarget',
    status: 'True',
    reason: 'TerminationByKubelet',
    message: 'Pod was preempted by Kubelet to accommodate a critical pod.',
  };
  it.each([
    [
      'the scheduler, while the task still runs',
      { phase: 'Running', conditions: [byScheduler], containerStatuses: [running] },
      /preempted by the scheduler: default-scheduler: preempting to accommodate a higher priority pod/,
    ],
    [
      'the scheduler, after the SIGTERM exit',
      { phase: 'Failed', conditions: [byScheduler], containerStatuses: [terminated('task', 143)] },
      /preempted by the scheduler/,
    ],
    [
      'kubelet admitting a critical pod',
      {
        phase: 'Failed',
        reason: 'Preempting',
        message: 'Preempted in order to admit critical pod',
        conditions: [byKubelet],
        containerStatuses: [terminated('task', 137)],
      },
      /preempted by kubelet.*Pod reason: Preempting.*Pod message: Preempted in order to admit critical pod/,
    ],
    [
      'kubelet, said by the condition alone',
      { phase: 'Running', conditions: [byKubelet], containerStatuses: [running] },
      /preempted by kubelet: Pod was preempted by Kubelet/,
    ],
    [
      'an eviction that names preemption',
      { phase: 'Failed', reason: 'Evicted', message: 'Pod was preempted to free resources' },
      /preempted by Kubernetes.*Pod reason: Evicted/,
    ],
  ])('pod_preempted when preempted by %s', (_name, status, message) => {
    const failure = podFailure(pod(status as V1Pod['status']), options());
    expect(failure?.reason).toBe('pod_preempted');
    expect(failure?.message).toMatch(message);
    expect(failure?.message).toContain('priorityClassName');
  });

  it("pod_preempted from kubelet's Preempting event", () => {
    const event = { reason: 'Preempting', message: 'Preempted in order to admit critical pod', type: 'Warning', involvedObject: {}, metadata: {} };
    const failure = podFailure(pod({ phase: 'Pending', conditions: [scheduled] }), options({ events: [event] }));
    expect(failure?.reason).toBe('pod_preempted');
    expect(failure?.message).toContain('preempted by kubelet: Preempted in order to admit critical pod');
  });

  it.each([
    [
      'node pressure eviction',
      {
        phase: 'Failed',
        reason: 'Evicted',
        message: 'The node was low on resource: memory.',
        conditions: [{ ...byKubelet, message: 'The node was low on resource: memory.' }],
      },
      'evicted',
    ],
    [
      'a drain (Eviction API)',
      {
        phase: 'Running',
        conditions: [{ type: 'DisruptionTarget', status: 'True', reason: 'EvictionByEvictionAPI', message: 'Eviction API: evicting' }],
        containerStatuses: [running],
      },
      undefined,
    ],
    [
      'node shutdown',
      {
        phase: 'Failed',
        reason: 'Terminated',
        message: 'Pod was terminated in response to imminent node shutdown.',
        conditions: [{ ...byKubelet, message: 'Pod was terminated in response to imminent node shutdown.' }],
        containerStatuses: [terminated('task', 143)],
      },
      'container_exit',
    ],
    ['a condition no longer true', { phase: 'Running', conditions: [{ ...byScheduler, status: 'False' }], containerStatuses: [running] }, undefined],
  ])('not pod_preempted: %s', (_name, status, reason) => {
    expect(podFailure(pod(status as V1Pod['status']), options())?.reason).toBe(reason);
  });

  describe('volume_mount_timeout', () => {
    const ago = (seconds: number): Date => new Date(NOW - seconds * 1000);
    const mount = (
      first: number | undefined,
      last: number | undefined,
      message = 'MountVolume.SetUp failed for volume "settings" : configmap "x" not found',
    ) => ({
      reason: 'FailedMount',
      message,
      involvedObject: {},
      metadata: {},
      ...(first === undefined ? {} : { firstTimestamp: ago(first) }),
      ...(last === undefined ? {} : { lastTimestamp: ago(last) }),
    });
    const bound = pod({ phase: 'Pending', conditions: [scheduled] });
    const reason = (events: object[], mountFailures: PodCheckOptions['mountFailures']) =>
      podFailure(bound, options({ events: events as PodCheckOptions['events'], mountFailures }))?.reason;

    it.each([
      ['failing for 3 minutes, last report 5 s ago', [mount(180, 5)], 120_000, 'volume_mount'],
      ['failing for exactly the timeout', [mount(120, 1)], 120_000, 'volume_mount'],
      ['failing for 1 minute: kubelet may still mount it', [mount(60, 5)], 120_000, undefined],
      ['failing long ago, silent for 2 minutes: recovered', [mount(600, 120)], 120_000, undefined],
      ['two reports: the oldest start and the newest report count', [mount(30, 20), mount(200, 150)], 120_000, 'volume_mount'],
      ['0s: a mount failure never fails the task', [mount(3600, 1)], 0, undefined],
      ['negative: never, as 0', [mount(3600, 1)], -1, undefined],
      ['no time on the event: cannot be aged, fails as before', [mount(undefined, undefined)], 120_000, 'volume_mount'],
      ['only a last report, old enough', [mount(undefined, 30)], 20_000, 'volume_mount'],
    ])('%s', (_name, events, timeoutMs, expected) => {
      expect(reason(events, { timeoutMs })).toBe(expected);
    });

    it('fails at once where nothing is left to wait for (the Job failed, the preflight), even with 0s', () => {
      expect(reason([mount(1, 1)], 'at-once')).toBe('volume_mount');
      expect(reason([mount(1, 1)], { timeoutMs: 0 })).toBeUndefined();
    });

    it('quotes the newest report and says how long it kept failing', () => {
      const failure = podFailure(
        bound,
        options({
          events: [mount(300, 200, 'MountVolume.SetUp failed: old'), mount(100, 2, 'MountVolume.SetUp failed: new')] as never,
          mountFailures: { timeoutMs: 120_000 },
        }),
      );
      expect(failure?.message).toContain('Kubernetes event message: MountVolume.SetUp failed: new');
      expect(failure?.message).toContain('The mount kept failing for volume_mount_timeout (120 s)');
    });

    it("reads the series' last observation and eventTime when the old timestamps are missing", () => {
      const series = { ...mount(undefined, undefined), eventTime: ago(300), series: { count: 9, lastObservedTime: ago(3) } };
      expect(reason([series], { timeoutMs: 120_000 })).toBe('volume_mount');
      const stale = { ...mount(undefined, undefined), eventTime: ago(300), series: { count: 9, lastObservedTime: ago(90) } };
      expect(reason([stale], { timeoutMs: 120_000 })).toBeUndefined();
    });
  });

  it.each([
    ['waiting for the scheduler', { phase: 'Pending' }, false],
    ['bound, being set up', { phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'True' }] }, true],
    [
      'bound, sandbox ready (pulling its image)',
      {
        phase: 'Pending',
        conditions: [
          { type: 'PodScheduled', status: 'True' },
          { type: 'PodReadyToStartContainers', status: 'True' },
        ],
      },
      false,
    ],
    ['running', { phase: 'Running', conditions: [{ type: 'PodScheduled', status: 'True' }] }, false],
  ])('lists events of a pod %s: %s', (_name, status, expected) => {
    expect(podNeedsEvents(pod(status as V1Pod['status']))).toBe(expected);
  });

  it.each([
    [143, undefined, 'SIGTERM'],
    [137, undefined, 'SIGKILL'],
    [130, undefined, 'SIGINT'],
    [1, undefined, undefined],
    [0, 15, 'SIGTERM'],
    [200, undefined, 'signal 72'],
  ])('signal name of exit %i / signal %s', (code, signal, expected) => expect(signalName(code, signal)).toBe(expected));
});

describe('jobState', () => {
  const job = (conditions: NonNullable<V1Job['status']>['conditions']): V1Job => ({ metadata: { name: 'task-job' }, status: conditions ? { conditions } : {} });
  it('is running without conditions', () => expect(jobState(job([]), 'agents')).toEqual({ kind: 'running' }));
  it('is complete on Complete=True', () => expect(jobState(job([{ type: 'Complete', status: 'True' }]), 'agents').kind).toBe('complete'));
  it('fails on Failed=True with the reason', () => {
    const state = jobState(
      job([{ type: 'Failed', status: 'True', reason: 'BackoffLimitExceeded', message: 'Job has reached the specified backoff limit' }]),
      'agents',
    );
    expect(state).toMatchObject({ kind: 'failed', reason: 'job_failed' });
    if (state.kind === 'failed')
      expect(state.message).toBe(
        'kubernetes Job task-job in namespace agents failed. Job reason: BackoffLimitExceeded. Job message: Job has reached the specified backoff limit',
      );
  });
  it('calls a deadline a deadline', () => {
    expect(jobState(job([{ type: 'Failed', status: 'True', reason: 'DeadlineExceeded', message: 'x' }]), 'agents')).toMatchObject({
      reason: 'active_deadline',
    });
  });
});
