// A task pod's setup phases from its own timestamps: the Go worker's
// kubernetes_setup_events_test cases, the edges of each rule, and the same
// answers from the watch cache's projection (and from a watch event's string
// timestamps) as from the object the API server sent.
import type { V1ContainerStatus, V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { cachedPod } from '../../src/backends/kubernetes/cached-objects.js';
import { podSetupPhases, PodSetupTracker, type PodPhase } from '../../src/backends/kubernetes/setup-phases.js';

const BASE = Date.parse('2026-08-12T15:35:00Z');
const at = (seconds: number) => new Date(BASE + seconds * 1000);

const terminated = (name: string, from: number, to: number, exitCode = 0): V1ContainerStatus => ({
  name,
  image: 'x',
  imageID: '',
  ready: false,
  restartCount: 0,
  state: { terminated: { exitCode, reason: exitCode === 0 ? 'Completed' : 'Error', startedAt: at(from), finishedAt: at(to) } },
});
const running = (name: string, from: number): V1ContainerStatus => ({
  name,
  image: 'x',
  imageID: '',
  ready: true,
  restartCount: 0,
  state: { running: { startedAt: at(from) } },
});
const waiting = (name: string): V1ContainerStatus => ({
  name,
  image: 'x',
  imageID: '',
  ready: false,
  restartCount: 0,
  state: { waiting: { reason: 'PodInitializing' } },
});

function pod(options: { inits?: string[]; scheduledAt?: number; initStatuses?: V1ContainerStatus[]; statuses?: V1ContainerStatus[] }): V1Pod {
  return {
    metadata: { name: 'oz-task-t-1-abcde', namespace: 'agents', uid: 'u-1', creationTimestamp: at(0) },
    spec: {
      ...(options.inits ? { initContainers: options.inits.map((name) => ({ name, image: 'x' })) } : {}),
      containers: [{ name: 'task', image: 'x' }],
      nodeName: 'node-1',
    },
    status: {
      phase: 'Pending',
      conditions: [
        { type: 'Initialized', status: 'True', lastTransitionTime: at(1) },
        ...(options.scheduledAt !== undefined ? [{ type: 'PodScheduled', status: 'True', lastTransitionTime: at(options.scheduledAt) }] : []),
      ],
      ...(options.initStatuses ? { initContainerStatuses: options.initStatuses } : {}),
      ...(options.statuses ? { containerStatuses: options.statuses } : {}),
    },
  };
}

const summary = (phases: PodPhase[]) => phases.map((p) => [p.name, p.finish.getTime() - p.start.getTime(), p.isError]);

function track(): { tracker: PodSetupTracker; seen: PodPhase[] } {
  const seen: PodPhase[] = [];
  return { tracker: new PodSetupTracker((phase) => seen.push(phase)), seen };
}

const fullPod = pod({
  inits: ['copy-sidecar-0', 'setup'],
  scheduledAt: 5,
  initStatuses: [terminated('copy-sidecar-0', 6, 18), terminated('setup', 18, 25)],
  statuses: [running('task', 30)],
});

describe('pod setup phases (Go: kubernetes_setup_events_test)', () => {
  it('reports scheduling, sidecar preparation, the setup command and the container start once each, however often the pod is seen', () => {
    const { tracker, seen } = track();
    tracker.observe(fullPod);
    tracker.observe(fullPod);
    expect(summary(seen)).toEqual([
      ['setup_worker_pod_schedule', 5_000, false],
      ['setup_worker_sidecar_prep', 12_000, false],
      ['setup_worker_setup_command', 7_000, false],
      // Anchored at the last init container's end (25 s).
      ['setup_worker_container_start', 5_000, false],
    ]);
    expect(seen.map((p) => [p.start.toISOString(), p.finish.toISOString()])[3]).toEqual(['2026-08-12T15:35:25.000Z', '2026-08-12T15:35:30.000Z']);
    tracker.observe(fullPod);
    expect(seen).toHaveLength(4);
  });

  it('without init containers: scheduling, and the container start anchored at scheduling; no sidecar preparation', () => {
    const { tracker, seen } = track();
    tracker.observe(pod({ scheduledAt: 2, statuses: [running('task', 20)] }));
    expect(summary(seen)).toEqual([
      ['setup_worker_pod_schedule', 2_000, false],
      ['setup_worker_container_start', 18_000, false],
    ]);
  });

  it('a failed sidecar copy reports sidecar preparation at once, as an error', () => {
    const { tracker, seen } = track();
    tracker.observe(pod({ inits: ['copy-sidecar-0', 'copy-sidecar-1'], initStatuses: [terminated('copy-sidecar-0', 1, 4, 1), waiting('copy-sidecar-1')] }));
    expect(summary(seen)).toEqual([['setup_worker_sidecar_prep', 3_000, true]]);
  });

  it('waits for every sidecar copy to end before reporting its preparation', () => {
    const { tracker, seen } = track();
    tracker.observe(pod({ inits: ['copy-sidecar-0', 'copy-sidecar-1'], initStatuses: [terminated('copy-sidecar-0', 1, 4), waiting('copy-sidecar-1')] }));
    expect(seen).toEqual([]);
    tracker.observe(
      pod({ inits: ['copy-sidecar-0', 'copy-sidecar-1'], initStatuses: [terminated('copy-sidecar-0', 1, 4), terminated('copy-sidecar-1', 4, 9)] }),
    );
    expect(summary(seen)).toEqual([['setup_worker_sidecar_prep', 8_000, false]]);
  });
});

describe('pod setup phases, each rule', () => {
  it.each([
    ['nothing before the pod is scheduled', pod({}), []],
    ['a pod scheduled in the second it was created (0 ms)', pod({ scheduledAt: 0 }), [['setup_worker_pod_schedule', 0, false]]],
    [
      'no sidecar preparation in image-volumes mode (no copy containers)',
      pod({ scheduledAt: 1, inits: ['setup'] }),
      [['setup_worker_pod_schedule', 1_000, false]],
    ],
    [
      'a failed setup command',
      pod({ scheduledAt: 1, inits: ['setup'], initStatuses: [terminated('setup', 2, 9, 2)] }),
      [
        ['setup_worker_pod_schedule', 1_000, false],
        ['setup_worker_setup_command', 7_000, true],
      ],
    ],
    [
      'a task container that already ended (its start is read from the terminated state)',
      pod({ scheduledAt: 1, statuses: [terminated('task', 3, 4)] }),
      [
        ['setup_worker_pod_schedule', 1_000, false],
        ['setup_worker_container_start', 2_000, false],
      ],
    ],
    [
      'a native sidecar, running, does not move the anchor; a pod-template init that ended does',
      pod({
        scheduledAt: 1,
        inits: ['db', 'warm-cache'],
        initStatuses: [running('db', 2), terminated('warm-cache', 2, 6)],
        statuses: [running('task', 8)],
      }),
      [
        ['setup_worker_pod_schedule', 1_000, false],
        ['setup_worker_container_start', 2_000, false],
      ],
    ],
    [
      'a container start with no scheduling time is anchored at creation',
      pod({ statuses: [running('task', 7)] }),
      [['setup_worker_container_start', 7_000, false]],
    ],
    [
      'a finish before its start is skipped',
      pod({ scheduledAt: 1, inits: ['setup'], initStatuses: [terminated('setup', 9, 2)] }),
      [['setup_worker_pod_schedule', 1_000, false]],
    ],
    ['a waiting task container has not started', pod({ scheduledAt: 1, statuses: [waiting('task')] }), [['setup_worker_pod_schedule', 1_000, false]]],
  ])('%s', (_, snapshot, expected) => {
    expect(summary(podSetupPhases(snapshot))).toEqual(expected);
  });

  it('reads the API server strings a watch event carries as the Dates a list decodes', () => {
    const fromWatch = JSON.parse(JSON.stringify(fullPod)) as V1Pod;
    expect(typeof fromWatch.metadata!.creationTimestamp).toBe('string');
    expect(podSetupPhases(fromWatch)).toEqual(podSetupPhases(fullPod));
  });

  it('skips a phase whose time is missing or unusable, and reports it once a later snapshot has it', () => {
    const { tracker, seen } = track();
    const noTime = pod({ scheduledAt: 3 });
    noTime.status!.conditions![1]!.lastTransitionTime = 'not a time' as unknown as Date;
    tracker.observe(noTime);
    expect(seen).toEqual([]);
    tracker.observe(pod({ scheduledAt: 3 }));
    expect(summary(seen)).toEqual([['setup_worker_pod_schedule', 3_000, false]]);
  });

  it('gives the same phases from the watch cache projection as from the full pod', () => {
    for (const snapshot of [
      fullPod,
      pod({ scheduledAt: 2, statuses: [terminated('task', 3, 4)] }),
      pod({ inits: ['copy-sidecar-0', 'copy-sidecar-1'], initStatuses: [terminated('copy-sidecar-0', 1, 4, 1), waiting('copy-sidecar-1')] }),
    ]) {
      expect(podSetupPhases(cachedPod(snapshot))).toEqual(podSetupPhases(snapshot));
      expect(podSetupPhases(cachedPod(JSON.parse(JSON.stringify(snapshot)) as V1Pod))).toEqual(podSetupPhases(snapshot));
    }
    expect(podSetupPhases(cachedPod(fullPod))).toHaveLength(4);
  });
});
