// A scripted node for the real control plane: registers a Node that is Ready,
// renews its Lease as a kubelet does, and drives the status of the pods the
// scheduler binds to it (Running, then Succeeded or Failed when told) through
// the pods/status subresource. For scale runs a real kubelet cannot hold on
// two cores; everything else (API server, etcd, scheduler, Job controller,
// garbage collector) is real.
//
// Plain TypeScript (no parameter properties) so the benchmark can load it with
// Node's type stripping.
import * as k8s from '@kubernetes/client-node';

export const SCRIPTED_NODE_LABEL = 'oz-worker.dev/scripted-node';

export interface ScriptedNodeOptions {
  kubeconfig: string;
  name: string;
  /** Pods the node admits. */
  capacityPods: number;
  /** Delay between a pod being bound and reported Running. */
  startDelayMs?: number;
}

interface PodRef {
  namespace: string;
  name: string;
  containers: { name: string; image: string }[];
  startedAt: Date;
}

export class ScriptedNode {
  private readonly core: k8s.CoreV1Api;
  private readonly coordination: k8s.CoordinationV1Api;
  private readonly config: k8s.KubeConfig;
  private readonly options: ScriptedNodeOptions;
  private informer: k8s.Informer<k8s.V1Pod> | undefined;
  private leaseTimer: NodeJS.Timeout | undefined;
  private readonly running = new Map<string, PodRef>();
  private readonly started = new Set<string>();
  private queue: Promise<void> = Promise.resolve();
  private inFlight = 0;
  private readonly pending: (() => Promise<void>)[] = [];
  /** Status writes made (each a PATCH of pods/status). */
  statusWrites = 0;

  constructor(options: ScriptedNodeOptions) {
    this.options = options;
    this.config = new k8s.KubeConfig();
    this.config.loadFromFile(options.kubeconfig);
    this.core = this.config.makeApiClient(k8s.CoreV1Api);
    this.coordination = this.config.makeApiClient(k8s.CoordinationV1Api);
  }

  async start(): Promise<void> {
    const { name, capacityPods } = this.options;
    await this.core.deleteNode({ name }).catch(() => undefined);
    const capacity = { cpu: '1000', memory: '4000Gi', pods: String(capacityPods), 'ephemeral-storage': '10000Gi' };
    await this.core.createNode({
      // Tainted: only pods that tolerate it (the benchmark's) land here, never another test's.
      body: {
        metadata: { name, labels: { [SCRIPTED_NODE_LABEL]: 'true', 'kubernetes.io/hostname': name } },
        spec: { taints: [{ key: SCRIPTED_NODE_LABEL, value: 'true', effect: 'NoSchedule' }] },
        status: { capacity, allocatable: capacity },
      },
    });
    await this.heartbeat();
    this.leaseTimer = setInterval(() => void this.heartbeat().catch(() => undefined), 10_000);
    const path = '/api/v1/pods';
    const fieldSelector = `spec.nodeName=${name}`;
    this.informer = new k8s.ListWatch(
      path,
      new k8s.Watch(this.config),
      () => this.core.listPodForAllNamespaces({ fieldSelector }),
      false,
      undefined,
      fieldSelector,
    );
    this.informer.on('add', (pod) => this.admit(pod));
    this.informer.on('update', (pod) => this.admit(pod));
    this.informer.on('delete', (pod) => {
      const key = `${pod.metadata?.namespace}/${pod.metadata?.name}`;
      this.running.delete(key);
      this.started.delete(key);
    });
    this.informer.on('error', () => setTimeout(() => void this.informer?.start(), 500));
    await this.informer.start();
  }

  /** Pods this node reports Running. */
  get runningCount(): number {
    return this.running.size;
  }

  /** Ends every running pod whose name passes `filter`: exit 0 → Succeeded, else Failed. */
  finish(exitCode: number, filter: (pod: { namespace: string; name: string }) => boolean = () => true): number {
    let count = 0;
    for (const [key, ref] of this.running) {
      if (!filter(ref)) continue;
      this.running.delete(key);
      count++;
      this.enqueue(() => this.terminate(ref, exitCode));
    }
    return count;
  }

  async stop(): Promise<void> {
    clearInterval(this.leaseTimer);
    await this.informer?.stop();
    await this.queue;
    await this.core.deleteNode({ name: this.options.name }).catch(() => undefined);
  }

  private admit(pod: k8s.V1Pod): void {
    const key = `${pod.metadata?.namespace}/${pod.metadata?.name}`;
    if (this.started.has(key) || pod.status?.phase !== 'Pending' || pod.metadata?.deletionTimestamp) return;
    this.started.add(key);
    const ref: PodRef = {
      namespace: pod.metadata!.namespace!,
      name: pod.metadata!.name!,
      containers: (pod.spec?.containers ?? []).map((c) => ({ name: c.name, image: c.image ?? '' })),
      startedAt: new Date(),
    };
    setTimeout(() => this.enqueue(() => this.run(ref)), this.options.startDelayMs ?? 0);
  }

  /** At most 50 status writes in flight, as a kubelet's client would pace itself. */
  private enqueue(work: () => Promise<void>): void {
    this.pending.push(work);
    this.drain();
  }

  private drain(): void {
    while (this.inFlight < 50 && this.pending.length > 0) {
      const work = this.pending.shift()!;
      this.inFlight++;
      const done = work()
        .catch(() => undefined)
        .finally(() => {
          this.inFlight--;
          this.drain();
        });
      this.queue = this.queue.then(() => done);
    }
  }

  private async patchStatus(ref: PodRef, status: k8s.V1PodStatus): Promise<void> {
    this.statusWrites++;
    await this.core.patchNamespacedPodStatus(
      { name: ref.name, namespace: ref.namespace, body: { status } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.StrategicMergePatch),
    );
  }

  private async run(ref: PodRef): Promise<void> {
    const now = new Date();
    ref.startedAt = now;
    await this.patchStatus(ref, {
      phase: 'Running',
      hostIP: '127.0.0.1',
      podIP: '127.0.0.1',
      startTime: now,
      conditions: [
        { type: 'PodScheduled', status: 'True', lastTransitionTime: now },
        { type: 'Initialized', status: 'True', lastTransitionTime: now },
        { type: 'ContainersReady', status: 'True', lastTransitionTime: now },
        { type: 'Ready', status: 'True', lastTransitionTime: now },
      ],
      containerStatuses: ref.containers.map((c) => ({
        name: c.name,
        image: c.image,
        imageID: '',
        containerID: `scripted://${ref.name}-${c.name}`,
        ready: true,
        started: true,
        restartCount: 0,
        state: { running: { startedAt: now } },
      })),
    });
    this.running.set(`${ref.namespace}/${ref.name}`, ref);
  }

  private async terminate(ref: PodRef, exitCode: number): Promise<void> {
    const now = new Date();
    await this.patchStatus(ref, {
      phase: exitCode === 0 ? 'Succeeded' : 'Failed',
      conditions: [
        { type: 'Ready', status: 'False', lastTransitionTime: now, reason: 'PodCompleted' },
        { type: 'ContainersReady', status: 'False', lastTransitionTime: now, reason: 'PodCompleted' },
      ],
      containerStatuses: ref.containers.map((c) => ({
        name: c.name,
        image: c.image,
        imageID: '',
        containerID: `scripted://${ref.name}-${c.name}`,
        ready: false,
        started: false,
        restartCount: 0,
        state: { terminated: { exitCode, reason: exitCode === 0 ? 'Completed' : 'Error', startedAt: ref.startedAt, finishedAt: now } },
      })),
    });
  }

  private async heartbeat(): Promise<void> {
    const { name } = this.options;
    const now = new Date();
    await this.core.patchNodeStatus(
      {
        name,
        body: {
          status: {
            conditions: [
              { type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'scripted node', lastHeartbeatTime: now, lastTransitionTime: now },
              { type: 'MemoryPressure', status: 'False', reason: 'KubeletHasSufficientMemory', lastHeartbeatTime: now, lastTransitionTime: now },
              { type: 'DiskPressure', status: 'False', reason: 'KubeletHasNoDiskPressure', lastHeartbeatTime: now, lastTransitionTime: now },
              { type: 'PIDPressure', status: 'False', reason: 'KubeletHasSufficientPID', lastHeartbeatTime: now, lastTransitionTime: now },
            ],
          },
        },
      },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.StrategicMergePatch),
    );
    const lease = {
      metadata: { name, namespace: 'kube-node-lease' },
      spec: { holderIdentity: name, leaseDurationSeconds: 40, renewTime: new k8s.V1MicroTime() },
    };
    try {
      await this.coordination.replaceNamespacedLease({
        name,
        namespace: 'kube-node-lease',
        body: {
          ...lease,
          metadata: {
            ...lease.metadata,
            resourceVersion: (await this.coordination.readNamespacedLease({ name, namespace: 'kube-node-lease' })).metadata?.resourceVersion ?? '',
          },
        },
      });
    } catch {
      await this.coordination.createNamespacedLease({ namespace: 'kube-node-lease', body: lease }).catch(() => undefined);
    }
  }
}
