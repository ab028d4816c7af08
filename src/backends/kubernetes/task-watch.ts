// One watch per resource kind for all of this worker's Jobs and Pods (selected
// by the worker-hash label), fanned out to the tasks by execution hash. The
// informer resumes from the last resourceVersion and relists after 410 Gone;
// when it fails it is restarted with jittered backoff. A task subscribing
// late first sees what the cache already holds.
import type { V1Job, V1Pod } from '@kubernetes/client-node';
import { backoffDelay, type BackoffPolicy } from '../../connection/backoff.js';
import type { Logger } from '../../log/logger.js';
import type { KubeClient, ResourceWatch } from './client.js';
import { apiErrorText } from './client.js';
import { LABEL_EXECUTION_HASH } from './names.js';

export interface TaskEvents {
  job(job: V1Job, deleted: boolean): void;
  pod(pod: V1Pod, deleted: boolean): void;
}

const DEFAULT_RESTART_BACKOFF: BackoffPolicy = { initialMs: 500, maxMs: 30_000 };

const hashOf = (object: { metadata?: { labels?: Record<string, string> } }): string | undefined => object.metadata?.labels?.[LABEL_EXECUTION_HASH];

/**
 * One kind's informer, and its objects by execution hash: a task subscribing
 * or collecting logs looks up its own few instead of copying the whole cache.
 */
class KindWatch<T extends { metadata?: { name?: string; labels?: Record<string, string> } }> {
  private failures = 0;
  private restartTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly byExecution = new Map<string, Map<string, T>>();

  constructor(
    private readonly kind: string,
    private readonly watch: ResourceWatch<T>,
    private readonly deliver: (object: T, deleted: boolean) => void,
    private readonly log: Logger,
    private readonly backoff: BackoffPolicy,
  ) {
    watch.on('add', (object) => this.seen(object, false));
    watch.on('update', (object) => this.seen(object, false));
    watch.on('delete', (object) => this.seen(object, true));
    watch.on('connect', () => {
      // A (re)connect that got this far listed or resumed successfully.
      if (this.failures > 0) log.info({ kind }, `Kubernetes ${kind} watch resumed`);
      this.failures = 0;
    });
    watch.on('error', (error) => this.restartLater(error));
  }

  private seen(object: T, deleted: boolean): void {
    const hash = hashOf(object);
    if (hash !== undefined) {
      const name = object.metadata?.name ?? '';
      let objects = this.byExecution.get(hash);
      if (deleted) {
        objects?.delete(name);
        if (objects?.size === 0) this.byExecution.delete(hash);
      } else {
        if (!objects) this.byExecution.set(hash, (objects = new Map()));
        objects.set(name, object);
      }
    }
    this.deliver(object, deleted);
  }

  async start(): Promise<void> {
    await this.watch.start();
  }

  private restartLater(error: unknown): void {
    if (this.stopped) return;
    const delay = backoffDelay(this.failures++, this.backoff);
    this.log.warn({ kind: this.kind, retryInMs: delay, err: apiErrorText(error) }, `Kubernetes ${this.kind} watch failed; restarting it`);
    clearTimeout(this.restartTimer);
    this.restartTimer = setTimeout(() => {
      if (!this.stopped) void this.watch.start();
    }, delay);
  }

  /** The cached objects of one execution. */
  of(executionHash: string): T[] {
    const objects = this.byExecution.get(executionHash);
    return objects ? [...objects.values()] : [];
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.restartTimer);
    await this.watch.stop();
  }
}

export class SharedTaskWatch {
  private readonly subscribers = new Map<string, Set<TaskEvents>>();
  private readonly jobs: KindWatch<V1Job>;
  private readonly pods: KindWatch<V1Pod>;

  constructor(client: KubeClient, selector: string, log: Logger, backoff: BackoffPolicy = DEFAULT_RESTART_BACKOFF) {
    this.jobs = new KindWatch('Job', client.watchJobs(selector), (job, deleted) => this.fanOut(job, (s) => s.job(job, deleted)), log, backoff);
    this.pods = new KindWatch('Pod', client.watchPods(selector), (pod, deleted) => this.fanOut(pod, (s) => s.pod(pod, deleted)), log, backoff);
  }

  async start(): Promise<void> {
    await Promise.all([this.jobs.start(), this.pods.start()]);
  }

  async stop(): Promise<void> {
    this.subscribers.clear();
    await Promise.all([this.jobs.stop(), this.pods.stop()]);
  }

  /** Routes one execution's Job and Pod events to `events`, starting with what is already known. */
  subscribe(executionHash: string, events: TaskEvents): () => void {
    let set = this.subscribers.get(executionHash);
    if (!set) {
      set = new Set();
      this.subscribers.set(executionHash, set);
    }
    set.add(events);
    for (const job of this.jobs.of(executionHash)) events.job(job, false);
    for (const pod of this.pods.of(executionHash)) events.pod(pod, false);
    return () => {
      set.delete(events);
      if (set.size === 0) this.subscribers.delete(executionHash);
    };
  }

  /** Pods of one execution the cache holds now. */
  podsOf(executionHash: string): V1Pod[] {
    return this.pods.of(executionHash);
  }

  private fanOut(object: { metadata?: { labels?: Record<string, string> } }, send: (subscriber: TaskEvents) => void): void {
    const hash = hashOf(object);
    if (hash === undefined) return;
    for (const subscriber of this.subscribers.get(hash) ?? []) send(subscriber);
  }
}
