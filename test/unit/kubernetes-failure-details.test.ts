// `task_failed.failure_details.kubernetes`: one row per failure class the
// backend classifies, from objects as the API server sends them, through the
// watch cache's projection, to the wire shape; then the Go worker's own cases
// (current state over lastState, signal normalisation, the privacy projection,
// the size limit, an event list that failed) and the bounds.
import type { CoreV1Event, V1ContainerStatus, V1Job, V1Pod, V1PodCondition } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { cachedJob, cachedPod } from '../../src/backends/kubernetes/cached-objects.js';
import { jobState, podFailure } from '../../src/backends/kubernetes/classify.js';
import {
  kubernetesFailureDetails,
  MAX_CONDITIONS,
  MAX_EVENTS,
  MAX_REASON_BYTES,
  observedUids,
  type FailureObservation,
} from '../../src/backends/kubernetes/failure-details.js';
import { FailureDetailsSchema, MAX_FAILURE_DETAILS_BYTES } from '../../src/protocol/messages.js';
import { kubeletContainerStatus } from '../support/kubernetes.js';

const NOW = new Date('2026-11-22T12:00:00Z');
const at = (secondsAgo: number): Date => new Date(NOW.getTime() - secondsAgo * 1000);
const iso = (secondsAgo: number): string => at(secondsAgo).toISOString();

/** A container status as kubelet writes it (image, image id, container id, lastState). */
const status = (name: string, state: NonNullable<V1ContainerStatus['state']>, extra: Partial<V1ContainerStatus> = {}): V1ContainerStatus =>
  kubeletContainerStatus('registry.example/agents/task:1.2.3', name, state, extra);

const condition = (type: string, value: string, reason?: string, secondsAgo = 5, message?: string): V1PodCondition => ({
  type,
  status: value,
  lastTransitionTime: at(secondsAgo),
  ...(reason ? { reason } : {}),
  ...(message ? { message } : {}),
});

function pod(
  podStatus: NonNullable<V1Pod['status']>,
  extra: { initContainers?: { name: string; restartPolicy?: string }[]; deletionSecondsAgo?: number } = {},
): V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: 'oz-task-t1-exec-e1-x7k2p',
      namespace: 'customer-namespace',
      uid: 'pod-uid',
      resourceVersion: '4711',
      creationTimestamp: at(60),
      labels: { 'job-name': 'oz-task-t1-exec-e1', 'oz-execution-hash': 'aaaabbbbccccdddd' },
      ...(extra.deletionSecondsAgo !== undefined ? { deletionTimestamp: at(extra.deletionSecondsAgo) } : {}),
    },
    spec: {
      nodeName: 'customer-node-7',
      containers: [{ name: 'task', image: 'registry.example/agents/task:1.2.3' }],
      ...(extra.initContainers ? { initContainers: extra.initContainers.map((c) => ({ image: 'registry.example/x:1', ...c })) } : {}),
    },
    status: { hostIP: '10.0.0.7', podIP: '10.1.2.3', ...podStatus },
  };
}

function job(conditions: { type: string; reason: string; message?: string; secondsAgo?: number }[]): V1Job {
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name: 'oz-task-t1-exec-e1', namespace: 'customer-namespace', uid: 'job-uid', resourceVersion: '4712', labels: {} },
    status: {
      conditions: conditions.map((c) => ({
        type: c.type,
        status: 'True',
        reason: c.reason,
        message: c.message ?? `sensitive ${c.type} message`,
        lastTransitionTime: at(c.secondsAgo ?? 1),
        lastProbeTime: at(c.secondsAgo ?? 1),
      })),
    },
  };
}

function event(
  reason: string,
  type: 'Warning' | 'Normal',
  about: 'pod-uid' | 'job-uid',
  times: { count?: number; firstSecondsAgo?: number; lastSecondsAgo?: number } = {},
): CoreV1Event {
  return {
    metadata: { name: `${about}.${reason}`, namespace: 'customer-namespace', creationTimestamp: at(times.firstSecondsAgo ?? 3) },
    involvedObject: { kind: about === 'pod-uid' ? 'Pod' : 'Job', name: 'x', namespace: 'customer-namespace', uid: about },
    reason,
    type,
    message: `sensitive ${reason} message on customer-node-7`,
    source: { component: 'kubelet', host: 'customer-node-7' },
    reportingComponent: 'kubelet',
    reportingInstance: 'customer-node-7',
    ...(times.count !== undefined ? { count: times.count } : {}),
    ...(times.firstSecondsAgo !== undefined ? { firstTimestamp: at(times.firstSecondsAgo) } : {}),
    ...(times.lastSecondsAgo !== undefined ? { lastTimestamp: at(times.lastSecondsAgo) } : {}),
  };
}

const podOptions = { namespace: 'customer-namespace', now: NOW.getTime(), unschedulableTimeoutMs: 30_000, imagePullTimeoutMs: 0 } as const;
const failedPodConditions = [
  condition('PodReadyToStartContainers', 'False'),
  condition('Initialized', 'True', undefined, 50),
  condition('Ready', 'False', 'PodFailed'),
  condition('ContainersReady', 'False', 'PodFailed'),
  condition('PodScheduled', 'True', undefined, 58),
];
const failedPodDetails = [
  { type: 'PodReadyToStartContainers', status: 'False', last_transition_time: iso(5) },
  { type: 'Initialized', status: 'True', last_transition_time: iso(50) },
  { type: 'Ready', status: 'False', reason: 'PodFailed', last_transition_time: iso(5) },
  { type: 'ContainersReady', status: 'False', reason: 'PodFailed', last_transition_time: iso(5) },
  { type: 'PodScheduled', status: 'True', last_transition_time: iso(58) },
];
const podIdentity = { name: 'oz-task-t1-exec-e1-x7k2p', uid: 'pod-uid' };

interface Row {
  name: string;
  /** What the task fails as (podFailure, or jobState when no pod explains it). */
  reason: string;
  source: FailureObservation['source'];
  job?: V1Job;
  pod?: V1Pod;
  events: CoreV1Event[];
  /** The details, minus schema_version, observed_at and observation_source. */
  expected: Record<string, unknown>;
}

const ROWS: Row[] = [
  {
    name: 'OOM kill of the task container',
    reason: 'container_oom',
    source: 'pod_watch',
    pod: pod({
      phase: 'Failed',
      conditions: failedPodConditions,
      containerStatuses: [status('task', { terminated: { exitCode: 137, reason: 'OOMKilled', startedAt: at(40), finishedAt: at(5) } })],
    }),
    events: [],
    expected: {
      pod: { ...podIdentity, phase: 'Failed', conditions: failedPodDetails },
      container: {
        kind: 'regular',
        name: 'task',
        state: 'terminated',
        termination_reason: 'OOMKilled',
        raw_exit_code: 137,
        normalized_exit_code: 137,
        started_at: iso(40),
        finished_at: iso(5),
      },
    },
  },
  {
    name: 'image pull back-off',
    reason: 'image_pull',
    source: 'safety_poll',
    pod: pod({
      phase: 'Pending',
      containerStatuses: [status('task', { waiting: { reason: 'ImagePullBackOff', message: 'Back-off pulling image "registry.example/agents/task:1.2.3"' } })],
    }),
    events: [event('Failed', 'Warning', 'pod-uid', { count: 4, firstSecondsAgo: 50, lastSecondsAgo: 10 }), event('BackOff', 'Normal', 'pod-uid', { count: 6 })],
    expected: {
      pod: { ...podIdentity, phase: 'Pending' },
      container: { kind: 'regular', name: 'task', state: 'waiting', waiting_reason: 'ImagePullBackOff' },
      events: [{ type: 'Warning', reason: 'Failed', count: 4, first_observed_at: iso(50), last_observed_at: iso(10) }],
    },
  },
  {
    name: 'unschedulable pod',
    reason: 'unschedulable',
    source: 'safety_poll',
    pod: pod({ phase: 'Pending', conditions: [condition('PodScheduled', 'False', 'Unschedulable', 59, '0/3 nodes are available: 3 Insufficient cpu.')] }),
    events: [event('FailedScheduling', 'Warning', 'pod-uid', { count: 3, firstSecondsAgo: 59, lastSecondsAgo: 2 })],
    expected: {
      pod: {
        ...podIdentity,
        phase: 'Pending',
        conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', last_transition_time: iso(59) }],
      },
      events: [{ type: 'Warning', reason: 'FailedScheduling', count: 3, first_observed_at: iso(59), last_observed_at: iso(2) }],
    },
  },
  {
    name: 'Job deadline (no pod failure explains it)',
    reason: 'active_deadline',
    source: 'job_watch',
    job: job([
      { type: 'FailureTarget', reason: 'DeadlineExceeded', secondsAgo: 2 },
      { type: 'Failed', reason: 'DeadlineExceeded', secondsAgo: 1 },
      // Not about how the Job ended: left out.
      { type: 'Suspended', reason: 'JobResumed', secondsAgo: 30 },
    ]),
    events: [event('DeadlineExceeded', 'Warning', 'job-uid', { count: 1, firstSecondsAgo: 2, lastSecondsAgo: 2 })],
    expected: {
      job: {
        name: 'oz-task-t1-exec-e1',
        uid: 'job-uid',
        conditions: [
          { type: 'FailureTarget', status: 'True', reason: 'DeadlineExceeded', last_transition_time: iso(2) },
          { type: 'Failed', status: 'True', reason: 'DeadlineExceeded', last_transition_time: iso(1) },
        ],
      },
      events: [{ type: 'Warning', reason: 'DeadlineExceeded', count: 1, first_observed_at: iso(2), last_observed_at: iso(2) }],
    },
  },
  {
    name: 'eviction (no container is to blame)',
    reason: 'evicted',
    source: 'pod_watch',
    pod: pod({
      phase: 'Failed',
      reason: 'Evicted',
      message: 'The node was low on resource: memory.',
      conditions: [condition('DisruptionTarget', 'True', 'TerminationByKubelet', 6, 'sensitive condition message')],
      containerStatuses: [status('task', { terminated: { exitCode: 137, reason: 'Error' } })],
    }),
    events: [event('Evicted', 'Warning', 'pod-uid', { count: 1, firstSecondsAgo: 6, lastSecondsAgo: 6 })],
    expected: {
      pod: {
        ...podIdentity,
        phase: 'Failed',
        reason: 'Evicted',
        conditions: [{ type: 'DisruptionTarget', status: 'True', reason: 'TerminationByKubelet', last_transition_time: iso(6) }],
      },
      events: [{ type: 'Warning', reason: 'Evicted', count: 1, first_observed_at: iso(6), last_observed_at: iso(6) }],
    },
  },
  {
    name: 'preemption by the scheduler (pod being deleted, its container still running)',
    reason: 'pod_preempted',
    source: 'pod_watch',
    pod: pod(
      {
        phase: 'Running',
        conditions: [condition('DisruptionTarget', 'True', 'PreemptionByScheduler', 2, 'sensitive preemption message')],
        containerStatuses: [status('task', { running: { startedAt: at(30) } })],
      },
      { deletionSecondsAgo: 1 },
    ),
    events: [event('Killing', 'Normal', 'pod-uid', { count: 1, firstSecondsAgo: 1, lastSecondsAgo: 1 }), event('Preempted', 'Normal', 'pod-uid')],
    expected: {
      pod: {
        ...podIdentity,
        phase: 'Running',
        deletion_timestamp: iso(1),
        conditions: [{ type: 'DisruptionTarget', status: 'True', reason: 'PreemptionByScheduler', last_transition_time: iso(2) }],
      },
      events: [{ type: 'Normal', reason: 'Killing', count: 1, first_observed_at: iso(1), last_observed_at: iso(1) }],
    },
  },
  {
    name: 'signal exit reported with a signal (raw 0, normalised 143)',
    reason: 'container_exit',
    source: 'pod_watch',
    pod: pod({ phase: 'Failed', containerStatuses: [status('task', { terminated: { exitCode: 0, signal: 15, reason: 'Error' } })] }),
    events: [],
    expected: {
      pod: { ...podIdentity, phase: 'Failed' },
      container: { kind: 'regular', name: 'task', state: 'terminated', termination_reason: 'Error', raw_exit_code: 0, normalized_exit_code: 143, signal: 15 },
    },
  },
  {
    name: 'signal exit by exit code (SIGKILL: 137, no signal reported)',
    reason: 'container_exit',
    source: 'pod_watch',
    pod: pod({ phase: 'Failed', containerStatuses: [status('task', { terminated: { exitCode: 137, reason: 'Error' } })] }),
    events: [],
    expected: {
      pod: { ...podIdentity, phase: 'Failed' },
      container: { kind: 'regular', name: 'task', state: 'terminated', termination_reason: 'Error', raw_exit_code: 137, normalized_exit_code: 137 },
    },
  },
  {
    name: 'setup command failed (a native sidecar ending with SIGTERM is not to blame)',
    reason: 'init_container',
    source: 'pod_watch',
    pod: pod(
      {
        phase: 'Failed',
        initContainerStatuses: [
          status('db', { terminated: { exitCode: 143, reason: 'Error' } }),
          status('copy-sidecar-0', { terminated: { exitCode: 0, reason: 'Completed' } }),
          status('setup', { terminated: { exitCode: 1, reason: 'Error', startedAt: at(20), finishedAt: at(18) } }),
        ],
        containerStatuses: [status('task', { waiting: { reason: 'PodInitializing' } })],
      },
      { initContainers: [{ name: 'db', restartPolicy: 'Always' }, { name: 'copy-sidecar-0' }, { name: 'setup' }] },
    ),
    events: [],
    expected: {
      pod: { ...podIdentity, phase: 'Failed' },
      container: {
        kind: 'init',
        name: 'setup',
        state: 'terminated',
        termination_reason: 'Error',
        raw_exit_code: 1,
        normalized_exit_code: 1,
        started_at: iso(20),
        finished_at: iso(18),
      },
    },
  },
  {
    name: 'native sidecar cannot pull its image',
    reason: 'image_pull',
    source: 'safety_poll',
    pod: pod(
      { phase: 'Pending', initContainerStatuses: [status('db', { waiting: { reason: 'ErrImagePull', message: 'manifest unknown' } })] },
      { initContainers: [{ name: 'db', restartPolicy: 'Always' }] },
    ),
    events: [],
    expected: {
      pod: { ...podIdentity, phase: 'Pending' },
      container: { kind: 'sidecar', name: 'db', state: 'waiting', waiting_reason: 'ErrImagePull' },
    },
  },
  {
    name: 'volume mount failure',
    reason: 'volume_mount',
    source: 'safety_poll',
    pod: pod({ phase: 'Pending', conditions: [condition('PodScheduled', 'True', undefined, 58)] }),
    events: [
      event('FailedMount', 'Warning', 'pod-uid', { count: 5, firstSecondsAgo: 50, lastSecondsAgo: 4 }),
      event('Scheduled', 'Normal', 'pod-uid', { count: 1, firstSecondsAgo: 58, lastSecondsAgo: 58 }),
    ],
    expected: {
      pod: { ...podIdentity, phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'True', last_transition_time: iso(58) }] },
      events: [{ type: 'Warning', reason: 'FailedMount', count: 5, first_observed_at: iso(50), last_observed_at: iso(4) }],
    },
  },
];

/** The path the backend takes: the watch keeps projections; the details are built from them. */
function detailsOf(row: Pick<Row, 'source' | 'job' | 'pod' | 'events'>) {
  const observed: FailureObservation = {
    source: row.source,
    ...(row.job ? { job: cachedJob(row.job) } : {}),
    ...(row.pod ? { pod: cachedPod(row.pod) } : {}),
  };
  return kubernetesFailureDetails(observed, row.events, NOW);
}

const encoded = (value: unknown): string => JSON.stringify({ kubernetes: value });

describe('kubernetes failure details, per failure class', () => {
  it.each(ROWS)('$name', (row) => {
    const reason = row.pod
      ? podFailure(cachedPod(row.pod), { ...podOptions, mountFailures: 'at-once', events: row.events })?.reason
      : (jobState(cachedJob(row.job!), 'customer-namespace') as { reason?: string }).reason;
    expect(reason).toBe(row.reason);
    const details = detailsOf(row);
    expect(details).toEqual({ schema_version: 1, observation_source: row.source, observed_at: NOW.toISOString(), ...row.expected });
    // What goes on the wire is what the schema describes.
    expect(FailureDetailsSchema.parse({ kubernetes: details })).toEqual({ kubernetes: details });
  });

  it('reads the same from the watch cache as from the object the API server sent', () => {
    for (const row of ROWS) {
      const full = kubernetesFailureDetails({ source: row.source, job: row.job, pod: row.pod }, row.events, NOW);
      expect(detailsOf(row), row.name).toEqual(full);
    }
  });

  it('writes the fields in the Go worker order, absent ones left out', () => {
    const details = kubernetesFailureDetails(
      {
        source: 'job_watch',
        job: job([{ type: 'Failed', reason: 'BackoffLimitExceeded' }]),
        pod: pod({
          phase: 'Failed',
          containerStatuses: [status('task', { terminated: { exitCode: 0, signal: 9, reason: 'Error', startedAt: at(9), finishedAt: at(1) } })],
        }),
      },
      [event('BackOff', 'Warning', 'pod-uid', { count: 2, firstSecondsAgo: 3, lastSecondsAgo: 1 })],
      NOW,
    );
    expect(Object.keys(details)).toEqual(['schema_version', 'observation_source', 'observed_at', 'job', 'pod', 'container', 'events']);
    expect(Object.keys(details.container!)).toEqual([
      'kind',
      'name',
      'state',
      'termination_reason',
      'raw_exit_code',
      'normalized_exit_code',
      'signal',
      'started_at',
      'finished_at',
    ]);
    expect(Object.keys(details.job!.conditions![0]!)).toEqual(['type', 'status', 'reason', 'last_transition_time']);
    expect(Object.keys(details.events![0]!)).toEqual(['type', 'reason', 'count', 'first_observed_at', 'last_observed_at']);
  });

  it('names the Job alone when it could not be created (nothing observed, no events)', () => {
    const details = kubernetesFailureDetails({ job: { metadata: { name: 'oz-task-t1-exec-e1', namespace: 'customer-namespace' } } }, undefined, NOW);
    expect(details).toEqual({ schema_version: 1, observed_at: NOW.toISOString(), job: { name: 'oz-task-t1-exec-e1' } });
  });

  it('asks for the events of the pod and its Job, once each', () => {
    expect(observedUids({ pod: pod({}), job: job([]) })).toEqual(['pod-uid', 'job-uid']);
    expect(observedUids({ job: job([]) })).toEqual(['job-uid']);
    expect(observedUids({ job: { metadata: { name: 'never-created' } } })).toEqual([]);
  });
});

// The Go worker's tests (kubernetes_failure_details_test.go), on this builder.
describe('kubernetes failure details, as the Go worker tests them', () => {
  it.each([
    { current: { exitCode: 143, reason: 'Error' }, last: { exitCode: 137, reason: 'OOMKilled' }, raw: 143, normalized: 143, signal: undefined },
    { current: { exitCode: 0, signal: 15, reason: 'Error' }, last: undefined, raw: 0, normalized: 143, signal: 15 },
  ])('uses the current termination state, not lastState (exit $current.exitCode, signal $current.signal)', ({ current, last, raw, normalized, signal }) => {
    const failed = pod({
      phase: 'Failed',
      containerStatuses: [status('task', { terminated: current }, last ? { lastState: { terminated: last } } : {})],
    });
    const container = detailsOf({ source: 'pod_watch', pod: failed, events: [] }).container!;
    expect(container).toMatchObject({ raw_exit_code: raw, normalized_exit_code: normalized, termination_reason: current.reason });
    expect(container.signal).toBe(signal);
  });

  it('stays within what the server stores in the worst case of the count and length caps', () => {
    const long = 'r'.repeat(MAX_REASON_BYTES);
    const worst = kubernetesFailureDetails(
      {
        source: 'safety_poll',
        job: {
          metadata: { name: 'j'.repeat(253), uid: 'job-uid' },
          status: { conditions: Array.from({ length: MAX_CONDITIONS }, () => ({ type: 'Failed', status: 'True', reason: long, lastTransitionTime: NOW })) },
        },
        pod: {
          metadata: { name: 'p'.repeat(253), uid: 'pod-uid' },
          spec: { containers: [{ name: 'c'.repeat(63) }] },
          status: {
            phase: 'Failed',
            reason: long,
            conditions: Array.from({ length: MAX_CONDITIONS }, () => condition('Ready', 'False', long)),
            containerStatuses: [status('c'.repeat(63), { terminated: { exitCode: 143, reason: long, startedAt: NOW, finishedAt: NOW } })],
          },
        },
      },
      Array.from({ length: MAX_EVENTS }, (_, i) => ({
        ...event(long, 'Warning', 'pod-uid', { count: 1, firstSecondsAgo: i, lastSecondsAgo: i }),
        type: 'Warning',
      })),
      NOW,
    );
    expect(Buffer.byteLength(encoded(worst))).toBeLessThanOrEqual(MAX_FAILURE_DETAILS_BYTES);
    expect(worst.events).toHaveLength(MAX_EVENTS);
    expect(worst.truncated).toBeUndefined();
  });

  it('keeps the privacy projection: no namespace, node, message, runtime id, image or event source', () => {
    const evicted = pod({
      phase: 'Failed',
      reason: 'Evicted',
      message: 'sensitive pod message',
      conditions: [condition('DisruptionTarget', 'True', 'TerminationByKubelet', 1, 'sensitive condition message')],
    });
    const details = kubernetesFailureDetails(
      {
        source: 'job_watch',
        job: job([{ type: 'Failed', reason: 'BackoffLimitExceeded', message: 'sensitive job message' }]),
        pod: {
          ...evicted,
          status: {
            ...evicted.status,
            // Not the failing container (an evicted pod names none), so also a regular one's exit:
            containerStatuses: [status('task', { terminated: { exitCode: 143, reason: 'Error', message: 'sensitive termination message' } })],
          },
        },
      },
      [
        {
          ...event('FailedMount', 'Warning', 'pod-uid', { count: 2, firstSecondsAgo: 60, lastSecondsAgo: 0 }),
          reportingComponent: 'sensitive.controller',
          reportingInstance: 'sensitive-instance',
          source: { component: 'sensitive-component', host: 'sensitive-host' },
        },
        { ...event('Scheduled', 'Normal', 'pod-uid'), message: 'routine event' },
        { ...event('Killing', 'Normal', 'pod-uid'), message: 'sensitive killing message' },
      ],
      NOW,
    );
    const text = encoded(details);
    for (const expected of [
      '"name":"oz-task-t1-exec-e1"',
      '"uid":"job-uid"',
      `"name":"${podIdentity.name}"`,
      '"uid":"pod-uid"',
      '"reason":"FailedMount"',
      '"reason":"Killing"',
    ])
      expect(text).toContain(expected);
    for (const forbidden of [
      'customer-namespace',
      'customer-node',
      'sensitive',
      'routine event',
      'Scheduled',
      '10.0.0.7',
      '10.1.2.3',
      'containerd://',
      'registry.example',
      'sha256',
      'kubelet',
      'instance',
    ])
      expect(text).not.toContain(forbidden);

    // A terminated container that is to blame shows its exit, never its message or runtime id.
    const exited = kubernetesFailureDetails(
      {
        source: 'pod_watch',
        pod: pod({ phase: 'Failed', containerStatuses: [status('task', { terminated: { exitCode: 143, reason: 'Error', message: 'sensitive' } })] }),
      },
      undefined,
      NOW,
    );
    expect(exited.container?.name).toBe('task');
    expect(encoded(exited)).not.toMatch(/sensitive|containerd|registry\.example|customer/);
  });

  it.each([
    {
      case: 'waiting init container (safety poll)',
      observed: {
        source: 'safety_poll' as const,
        pod: pod({ initContainerStatuses: [status('setup', { waiting: { reason: 'ImagePullBackOff' } })] }, { initContainers: [{ name: 'setup' }] }),
      },
      expected: { container: { kind: 'init', name: 'setup', state: 'waiting', waiting_reason: 'ImagePullBackOff' } },
    },
    {
      case: 'Job deadline (job watch)',
      observed: { source: 'job_watch' as const, job: job([{ type: 'Failed', reason: 'DeadlineExceeded' }]) },
      expected: { job: { conditions: [{ type: 'Failed', status: 'True', reason: 'DeadlineExceeded', last_transition_time: iso(1) }] } },
    },
    {
      case: 'pod eviction condition (pod watch)',
      observed: {
        source: 'pod_watch' as const,
        pod: pod({ phase: 'Failed', reason: 'Evicted', conditions: [condition('DisruptionTarget', 'True', 'TerminationByKubelet')] }),
      },
      expected: { pod: { reason: 'Evicted', conditions: [{ reason: 'TerminationByKubelet' }] } },
    },
  ])('captures the failure state: $case', ({ observed, expected }) => {
    expect(kubernetesFailureDetails(observed, [], NOW)).toMatchObject({ observation_source: observed.source, ...expected });
  });

  it('keeps the pod details when the events could not be listed', () => {
    const details = kubernetesFailureDetails({ source: 'safety_poll', pod: pod({ phase: 'Failed', reason: 'Error' }) }, undefined, NOW);
    expect(details.pod).toMatchObject({ uid: 'pod-uid', phase: 'Failed', reason: 'Error' });
    expect(details).not.toHaveProperty('events');
  });
});

describe('kubernetes failure details, event times as the client gives them', () => {
  it('orders events whose MicroTime fields arrived as text (eventTime, series.lastObservedTime) with those that have Dates', () => {
    // @kubernetes/client-node types these as Dates but leaves MicroTime values as the API's strings.
    const asText = {
      type: 'Warning',
      reason: 'FailedScheduling',
      eventTime: iso(30) as unknown as Date,
      series: { count: 4, lastObservedTime: iso(2) as unknown as Date },
      involvedObject: {},
      metadata: {},
    } as CoreV1Event;
    const dated = { type: 'Warning', reason: 'BackOff', lastTimestamp: at(10), firstTimestamp: at(60), involvedObject: {}, metadata: {} } as CoreV1Event;
    const details = kubernetesFailureDetails({ source: 'pod_watch', pod: pod({ phase: 'Pending' }) }, [dated, asText], NOW);
    expect(details.events).toEqual([
      { type: 'Warning', reason: 'FailedScheduling', count: 4, first_observed_at: iso(30), last_observed_at: iso(2) },
      { type: 'Warning', reason: 'BackOff', first_observed_at: iso(60), last_observed_at: iso(10) },
    ]);
  });
});

describe('kubernetes failure details, bounds', () => {
  it('cuts a reason to 256 bytes on a character boundary, and says it was cut', () => {
    const reason = `ab${'€'.repeat(100)}`; // 2 + 300 bytes; 254 is the last boundary within 256
    const details = kubernetesFailureDetails({ source: 'pod_watch', pod: pod({ phase: 'Failed', reason }) }, undefined, NOW);
    expect(Buffer.byteLength(details.pod!.reason!)).toBe(254);
    expect(details.pod!.reason).toBe(`ab${'€'.repeat(84)}`);
    expect(details.truncated).toBe(true);
    const exact = kubernetesFailureDetails({ source: 'pod_watch', pod: pod({ phase: 'Failed', reason: 'é'.repeat(128) }) }, undefined, NOW);
    expect(exact.pod!.reason).toBe('é'.repeat(128));
    expect(exact.truncated).toBeUndefined();
  });

  it('keeps 16 conditions of each and only the Job conditions that say how it ended', () => {
    const many = Array.from({ length: 20 }, (_, i) => condition(`Custom${i}`, 'True', 'Why'));
    const details = kubernetesFailureDetails(
      {
        source: 'pod_watch',
        pod: pod({ phase: 'Failed', conditions: many }),
        job: job([
          { type: 'Complete', reason: 'x' },
          { type: 'SuccessCriteriaMet', reason: 'y' },
          ...Array.from({ length: 17 }, () => ({ type: 'Failed', reason: 'z' })),
        ]),
      },
      undefined,
      NOW,
    );
    expect(details.pod!.conditions).toHaveLength(MAX_CONDITIONS);
    expect(details.pod!.conditions![15]!.type).toBe('Custom15');
    expect(details.job!.conditions).toHaveLength(MAX_CONDITIONS);
    expect(details.job!.conditions!.map((c) => c.type)).not.toContain('SuccessCriteriaMet');
    expect(details.truncated).toBe(true);
  });

  it('keeps the 10 newest Warning and Killing events, newest first, by the best time each has', () => {
    const events: CoreV1Event[] = [
      ...Array.from({ length: 11 }, (_, i) => event(`Old${i}`, 'Warning', 'pod-uid', { lastSecondsAgo: 100 + i })),
      // A series' last observation, an event time, and a creation time alone each date an event.
      { ...event('Series', 'Warning', 'pod-uid'), series: { count: 9, lastObservedTime: at(1) }, count: 1 },
      { ...event('EventTime', 'Warning', 'pod-uid'), eventTime: at(2) },
      { ...event('Created', 'Warning', 'pod-uid', { firstSecondsAgo: 3 }) },
      event('Killing', 'Normal', 'pod-uid', { lastSecondsAgo: 4 }),
      event('Pulled', 'Normal', 'pod-uid', { lastSecondsAgo: 0 }),
    ];
    const details = kubernetesFailureDetails({ source: 'pod_watch', pod: pod({ phase: 'Failed' }) }, events, NOW);
    expect(details.events!.map((e) => e.reason)).toEqual(['Series', 'EventTime', 'Created', 'Killing', 'Old0', 'Old1', 'Old2', 'Old3', 'Old4', 'Old5']);
    expect(details.events![0]).toMatchObject({ count: 9, last_observed_at: iso(1) });
    expect(details.events![1]).toMatchObject({ first_observed_at: iso(2), last_observed_at: iso(2) });
    expect(details.truncated).toBe(true);
  });

  it('drops events, then conditions, to stay within 32 KiB however the text escapes', () => {
    // Control characters take 6 bytes each in JSON: 256 of them make a 1.5 KiB reason.
    const escaping = '\u0001'.repeat(MAX_REASON_BYTES);
    const conditions = Array.from({ length: MAX_CONDITIONS }, () => condition('Ready', 'False', escaping));
    const details = kubernetesFailureDetails(
      {
        source: 'pod_watch',
        job: { metadata: { name: 'j', uid: 'job-uid' }, status: { conditions: conditions.map((c) => ({ ...c, type: 'Failed' })) } },
        pod: pod({ phase: 'Failed', reason: escaping, conditions }),
      },
      Array.from({ length: MAX_EVENTS }, (_, i) => event(escaping, 'Warning', 'pod-uid', { lastSecondsAgo: i })),
      NOW,
    );
    const bytes = Buffer.byteLength(encoded(details));
    expect(bytes).toBeLessThanOrEqual(MAX_FAILURE_DETAILS_BYTES);
    expect(details.truncated).toBe(true);
    expect(details).not.toHaveProperty('events');
    // Events went first, then pod conditions from the last: the Job's conditions and some of the pod's stay.
    expect(details.job!.conditions).toHaveLength(MAX_CONDITIONS);
    expect(details.pod!.conditions!.length).toBeGreaterThan(0);
    expect(details.pod!.conditions!.length).toBeLessThan(MAX_CONDITIONS);
    // Dropping one more condition would have fit too: no more was dropped than needed.
    expect(bytes).toBeGreaterThan(MAX_FAILURE_DETAILS_BYTES - 2_000);
  });

  it('keeps only when and how it was observed when even that is not enough', () => {
    const details = kubernetesFailureDetails({ source: 'pod_watch', pod: { metadata: { name: 'n'.repeat(40_000), uid: 'u' } } }, undefined, NOW);
    expect(details).toEqual({ schema_version: 1, observation_source: 'pod_watch', observed_at: NOW.toISOString(), truncated: true });
  });
});
