// The task pod's container logs, followed into the task's log export (the Go
// worker's kubernetes_logs.go): one follow stream per container once it runs or
// has ended, from its first line; at most 64 per task; a stream that fails or
// breaks is not opened again. When the task ends, its pods are listed once more
// for containers not seen yet, and the streams get 2 s to finish.
import type { V1Job, V1Pod } from '@kubernetes/client-node';
import type { Logger } from '../../log/logger.js';
import type { TaskLogs } from '../../task/contract.js';
import { errorMessage } from '../../errors/error-message.js';
import type { KubeClient } from './client.js';

export const MAX_LOG_STREAMS_PER_TASK = 64;
export const FINAL_LOG_CATCH_UP_MS = 2_000;
const STOP_SETTLE_MS = 100;

/** Every literal `env[].value` (not `valueFrom`) of the Job's init and regular containers: redacted from the task's logs. Pure. */
export function literalEnvValues(job: V1Job): string[] {
  const spec = job.spec?.template?.spec;
  return [...(spec?.initContainers ?? []), ...(spec?.containers ?? [])].flatMap((container) =>
    (container.env ?? []).flatMap((variable) => (variable.valueFrom === undefined && variable.value ? [variable.value] : [])),
  );
}

/** Containers of a pod whose logs can be read now (running or terminated), init containers first. Pure. */
export function readableContainers(pod: V1Pod): string[] {
  const statuses = [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])];
  return statuses.filter((status) => status.state?.running !== undefined || status.state?.terminated !== undefined).map((status) => status.name);
}

export class PodLogStreams {
  /** `pod uid/container` of every stream opened (kept after it ends: no reconnect). */
  private readonly opened = new Set<string>();
  private readonly running = new Set<Promise<void>>();
  private readonly stop = new AbortController();

  constructor(
    private readonly client: Pick<KubeClient, 'followPodLog'>,
    private readonly logs: TaskLogs,
    private readonly log: Logger,
  ) {
    if (logs.closed.aborted) this.stop.abort();
    else logs.closed.addEventListener('abort', () => this.stop.abort(), { once: true });
  }

  /** A pod of the task as the watch (or a list) saw it: streams for its containers that can be read and have none yet. */
  observe(pod: V1Pod): void {
    const uid = pod.metadata?.uid;
    const name = pod.metadata?.name;
    if (this.stop.signal.aborted || !uid || !name) return;
    for (const container of readableContainers(pod)) {
      const key = `${uid}/${container}`;
      if (this.opened.has(key) || this.opened.size >= MAX_LOG_STREAMS_PER_TASK) continue;
      this.opened.add(key);
      this.follow(name, container);
    }
  }

  private follow(pod: string, container: string): void {
    const writer = this.logs.writer(`pod.${container}`, { 'k8s.container.name': container, 'k8s.pod.name': pod });
    const stream = this.client
      .followPodLog(pod, container, (chunk) => writer.write(chunk), this.stop.signal)
      .catch((error: unknown) => {
        if (!this.stop.signal.aborted) this.log.debug(`Could not follow the logs of ${pod}/${container} for the task's log export: ${errorMessage(error)}`);
      })
      .finally(() => {
        writer.end();
        this.running.delete(stream);
      });
    this.running.add(stream);
  }

  /**
   * The task is over: its pods (`list`) are looked at once more, then the
   * streams get what is left of `boundMs` to end, and are stopped.
   */
  async finish(list: () => Promise<V1Pod[]>, boundMs = FINAL_LOG_CATCH_UP_MS): Promise<void> {
    const deadline = Date.now() + boundMs;
    const pods = await within(list(), boundMs).catch(() => undefined);
    for (const pod of pods ?? []) this.observe(pod);
    await within(Promise.allSettled([...this.running]), Math.max(0, deadline - Date.now())).catch(() => undefined);
    this.stop.abort();
    // Stopped streams end at once; their writers give their last partial line before the task's final flush.
    await within(Promise.allSettled([...this.running]), STOP_SETTLE_MS);
  }
}

/** `work`'s value if it settles within `ms`; else undefined (it goes on regardless). */
async function within<T>(work: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)));
  try {
    return await Promise.race([work, expired]);
  } finally {
    clearTimeout(timer);
  }
}
