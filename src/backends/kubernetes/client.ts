// The few Kubernetes calls the backend makes, behind an interface the project
// owns. The implementation is @kubernetes/client-node: it reads kubeconfig
// files (exec plugins, tokens, client certificates), in-cluster credentials
// with token rotation, and runs list+watch informers.
import { errorMessage } from '../../errors/error-message.js';
import * as k8s from '@kubernetes/client-node';
import { getProxyForUrl } from 'proxy-from-env';
import { existsSync } from 'node:fs';
import { Writable } from 'node:stream';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { cachedJob, cachedPod } from './cached-objects.js';
import { SharedAgents } from './connection-reuse.js';
import { RequestLimit, type RequestPriority } from './request-limit.js';

export class KubeApiError extends Error {
  constructor(
    message: string,
    readonly status: number | undefined,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/**
 * A running list+watch of one resource kind (shared by all of this worker's
 * tasks). Its objects are trimmed to what the backend reads (cached-objects.ts).
 */
export interface ResourceWatch<T> {
  on(event: 'add' | 'update' | 'delete', callback: (object: T) => void): void;
  on(event: 'error', callback: (error: unknown) => void): void;
  on(event: 'connect', callback: () => void): void;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface AccessCheck {
  verb: string;
  group: string;
  resource: string;
  subresource?: string;
}

export interface KubeClient {
  readonly namespace: string;
  /** Where the client points, for messages. */
  readonly server: string;
  version(): Promise<string>;
  createJob(job: k8s.V1Job): Promise<k8s.V1Job>;
  /** Undefined when the Job does not exist. */
  getJob(name: string): Promise<k8s.V1Job | undefined>;
  /** False when the Job was already gone. */
  deleteJob(name: string, propagation: 'Foreground' | 'Background'): Promise<boolean>;
  annotateJob(name: string, annotations: Record<string, string>): Promise<void>;
  /**
   * A JSON merge patch (RFC 7386) of the Job, sent as given; `metadata.resourceVersion`
   * and `metadata.uid` in it are preconditions (409 Conflict when stale). Undefined
   * when the Job does not exist.
   */
  mergePatchJob(name: string, patch: object): Promise<k8s.V1Job | undefined>;
  listJobs(labelSelector: string): Promise<k8s.V1Job[]>;
  listPods(labelSelector: string): Promise<k8s.V1Pod[]>;
  podLog(pod: string, container: string, tailLines: number): Promise<string>;
  /**
   * Follows a container's log from its first line, handing over each chunk,
   * until the container's log ends or `signal` fires; rejects when the stream
   * cannot be opened.
   */
  followPodLog(pod: string, container: string, onData: (chunk: Buffer) => void, signal: AbortSignal): Promise<void>;
  listEvents(fieldSelector: string): Promise<k8s.CoreV1Event[]>;
  canI(check: AccessCheck): Promise<{ allowed: boolean; reason?: string }>;
  watchJobs(labelSelector: string): ResourceWatch<k8s.V1Job>;
  watchPods(labelSelector: string): ResourceWatch<k8s.V1Pod>;
  /** Closes the connections API calls keep open (the backend is shutting down). */
  close(): void;
}

/** The status code of a failed API call, when it has one. */
export function statusOf(error: unknown): number | undefined {
  if (error instanceof KubeApiError) return error.status;
  const code = (error as { code?: unknown; statusCode?: unknown })?.code ?? (error as { statusCode?: unknown })?.statusCode;
  return typeof code === 'number' ? code : undefined;
}

/** The API server's own message for a failed call (its Status body), else the error text. */
export function apiErrorText(error: unknown): string {
  const body = (error as { body?: unknown })?.body;
  if (typeof body === 'string') {
    try {
      const parsed = JSON.parse(body) as { message?: string };
      if (parsed.message) return parsed.message;
    } catch {
      // not a Status object
    }
    if (body.trim() !== '') return body.trim();
  } else if (body && typeof body === 'object' && typeof (body as { message?: unknown }).message === 'string') {
    return (body as { message: string }).message;
  }
  const status = statusOf(error);
  const text = errorMessage(error).split('\n')[0]!;
  return status !== undefined && !text.includes(String(status)) ? `HTTP ${status}: ${text}` : text;
}

/** Attempts of one call when the API server asks the client to come back later (429), as client-go makes. */
const THROTTLE_ATTEMPTS = 10;
const THROTTLE_MAX_DELAY_MS = 10_000;

/** How long the API server asked to wait (Retry-After, seconds), else a jittered exponential delay. */
export function throttleDelayMs(error: unknown, attempt: number, random: () => number = Math.random): number {
  const header = (error as { headers?: Record<string, string> })?.headers?.['retry-after'];
  const seconds = header === undefined ? Number.NaN : Number(header);
  const base = Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : 250 * 2 ** attempt;
  return Math.min(THROTTLE_MAX_DELAY_MS, base) * (0.8 + 0.4 * random());
}

/** API calls (not watches) one client has in flight at most; enough to keep an API server busy. */
export const MAX_CONCURRENT_REQUESTS = 32;

/**
 * One API call, when `limit` has room; a 429 (priority and fairness, or
 * max-inflight, says "too many requests") is retried after the delay the server
 * names, up to 10 attempts, not holding a slot meanwhile — a burst of tasks
 * must not fail because the API server paced it.
 */
async function limitedCall<T>(limit: RequestLimit, what: string, run: () => Promise<T>, priority: RequestPriority): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await limit.run(run, priority);
    } catch (error) {
      if (statusOf(error) === 429 && attempt + 1 < THROTTLE_ATTEMPTS) {
        await new Promise((resolve) => setTimeout(resolve, throttleDelayMs(error, attempt)));
        continue;
      }
      throw new KubeApiError(`${what}: ${apiErrorText(error)}`, statusOf(error), { cause: error });
    }
  }
}

export interface ClientOptions {
  namespace: string;
  /** Explicit kubeconfig path; else in-cluster; else the default loading rules. */
  kubeconfig?: string | undefined;
  env?: NodeJS.ProcessEnv;
}

/** Where the default loading looks for a kubeconfig: every $KUBECONFIG entry, else ~/.kube/config. */
export function kubeconfigCandidates(env: NodeJS.ProcessEnv, home: string): string[] {
  const listed = (env.KUBECONFIG ?? '').split(delimiter).filter(Boolean);
  return listed.length > 0 ? listed : [join(env.HOME || home, '.kube', 'config')];
}

/** Loads credentials as the Go worker does: explicit file, else in-cluster, else ~/.kube/config / $KUBECONFIG. */
export function loadKubeConfig(options: ClientOptions): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  const env = options.env ?? process.env;
  if (options.kubeconfig) {
    kc.loadFromFile(options.kubeconfig);
  } else if (env.KUBERNETES_SERVICE_HOST && env.KUBERNETES_SERVICE_PORT) {
    kc.loadFromCluster();
  } else {
    // With no file at all the client would invent a cluster at localhost:8080.
    const candidates = kubeconfigCandidates(env, homedir());
    if (!candidates.some((path) => existsSync(path))) {
      throw new Error(
        `no kubeconfig found (looked at ${candidates.join(', ')}); set backend.kubernetes.kubeconfig, run inside a cluster, or create ~/.kube/config (or point $KUBECONFIG at one)`,
      );
    }
    kc.loadFromDefault();
  }
  const cluster = kc.getCurrentCluster();
  if (!cluster) {
    throw new Error(
      'no Kubernetes cluster configured: set backend.kubernetes.kubeconfig, run inside a cluster, or provide ~/.kube/config (or $KUBECONFIG) with a current context',
    );
  }
  // client-go reaches the API server through HTTPS_PROXY / HTTP_PROXY unless
  // NO_PROXY excludes it; the Node client only honours a kubeconfig proxy-url.
  if (!cluster.proxyUrl) {
    const proxyUrl = getProxyForUrl(cluster.server);
    if (proxyUrl) kc.clusters = kc.clusters.map((c) => (c === cluster ? { ...c, proxyUrl } : c));
  }
  return kc;
}

export function createKubeClient(options: ClientOptions): KubeClient {
  const kc = loadKubeConfig(options);
  const { namespace } = options;
  // API calls share keep-alive connections (connection-reuse.ts); watches keep their own.
  const agents = new SharedAgents();
  const authenticate = kc.applySecurityAuthentication.bind(kc);
  kc.applySecurityAuthentication = async (context) => {
    await authenticate(context);
    const made = context.getAgent();
    if (made) context.setAgent(agents.for(made));
  };
  const batch = kc.makeApiClient(k8s.BatchV1Api);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const authz = kc.makeApiClient(k8s.AuthorizationV1Api);
  const versionApi = kc.makeApiClient(k8s.VersionApi);
  const logs = new k8s.Log(kc);
  const mergePatch = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);
  const limit = new RequestLimit(MAX_CONCURRENT_REQUESTS);
  const call = <T>(what: string, run: () => Promise<T>, priority: RequestPriority = 'task'): Promise<T> => limitedCall(limit, what, run, priority);

  /** A list+watch whose cache holds `keep(object)` instead of the object as the API server sent it. */
  const informer = <T extends k8s.KubernetesObject>(
    path: string,
    list: () => Promise<k8s.KubernetesListObject<T>>,
    labelSelector: string,
    keep: (object: T) => T,
  ): ResourceWatch<T> => {
    const raw = new k8s.Watch(kc);
    const keeping = {
      watch: (...[watchPath, query, callback, done]: Parameters<k8s.Watch['watch']>) =>
        // ERROR carries a Status (410 Gone is read from it), BOOKMARK only a resourceVersion.
        raw.watch(
          watchPath,
          query,
          (phase, object, event) => callback(phase, phase === 'ERROR' || phase === 'BOOKMARK' ? object : keep(object as T), event),
          done,
        ),
    } as k8s.Watch;
    const keptList = async (): Promise<k8s.KubernetesListObject<T>> => {
      const result = await list();
      return { ...result, items: result.items.map(keep) };
    };
    const watch = new k8s.ListWatch<T>(path, keeping, keptList, false, labelSelector);
    return {
      on: (event: string, callback: (value: never) => void) => watch.on(event as never, callback as never),
      start: () => watch.start(),
      stop: () => watch.stop(),
    } as ResourceWatch<T>;
  };

  return {
    namespace,
    server: kc.getCurrentCluster()?.server ?? '(unknown)',
    version: () => call('failed to reach Kubernetes API server', async () => (await versionApi.getCode()).gitVersion),
    createJob: (job) => call('failed to create Kubernetes Job', () => batch.createNamespacedJob({ namespace, body: job })),
    getJob: async (name) => {
      try {
        return await call(`failed to get Job ${name}`, () => batch.readNamespacedJob({ name, namespace }));
      } catch (error) {
        if (statusOf(error) === 404) return undefined;
        throw error;
      }
    },
    deleteJob: async (name, propagationPolicy) => {
      try {
        await call(`failed to delete Job ${name}`, () => batch.deleteNamespacedJob({ name, namespace, propagationPolicy }));
        return true;
      } catch (error) {
        if (statusOf(error) === 404) return false;
        throw error;
      }
    },
    annotateJob: async (name, annotations) => {
      await call(`failed to annotate Job ${name}`, () => batch.patchNamespacedJob({ name, namespace, body: { metadata: { annotations } } }, mergePatch));
    },
    mergePatchJob: async (name, patch) => {
      try {
        return await call(`failed to patch Job ${name}`, () => batch.patchNamespacedJob({ name, namespace, body: patch }, mergePatch));
      } catch (error) {
        if (statusOf(error) === 404) return undefined;
        throw error;
      }
    },
    listJobs: async (labelSelector) => (await call('failed to list Jobs', () => batch.listNamespacedJob({ namespace, labelSelector }))).items,
    listPods: async (labelSelector) => (await call('failed to list Pods', () => core.listNamespacedPod({ namespace, labelSelector }))).items,
    podLog: (pod, container, tailLines) =>
      call(`failed to read logs of ${pod}/${container}`, () => core.readNamespacedPodLog({ name: pod, namespace, container, tailLines }), 'diagnostics'),
    followPodLog: async (pod, container, onData, signal) => {
      if (signal.aborted) return;
      const sink = new Writable({
        write(chunk: Buffer, _encoding, callback) {
          onData(chunk);
          callback();
        },
      });
      const ended = new Promise<void>((resolve) => {
        sink.once('finish', resolve);
        sink.once('close', resolve);
        signal.addEventListener('abort', () => resolve(), { once: true });
      });
      const controller = await logs.log(namespace, pod, container, sink, { follow: true });
      if (signal.aborted) controller.abort();
      else signal.addEventListener('abort', () => controller.abort(), { once: true });
      await ended;
    },
    listEvents: async (fieldSelector) =>
      (await call('failed to list events', () => core.listNamespacedEvent({ namespace, fieldSelector }), 'diagnostics')).items,
    canI: async ({ verb, group, resource, subresource }) => {
      const review = await call('failed to check permissions (SelfSubjectAccessReview)', () =>
        authz.createSelfSubjectAccessReview({
          body: {
            apiVersion: 'authorization.k8s.io/v1',
            kind: 'SelfSubjectAccessReview',
            spec: { resourceAttributes: { namespace, verb, group, resource, ...(subresource ? { subresource } : {}) } },
          },
        }),
      );
      return { allowed: review.status?.allowed ?? false, ...(review.status?.reason ? { reason: review.status.reason } : {}) };
    },
    watchJobs: (labelSelector) =>
      informer(`/apis/batch/v1/namespaces/${namespace}/jobs`, () => batch.listNamespacedJob({ namespace, labelSelector }), labelSelector, cachedJob),
    watchPods: (labelSelector) =>
      informer(`/api/v1/namespaces/${namespace}/pods`, () => core.listNamespacedPod({ namespace, labelSelector }), labelSelector, cachedPod),
    close: () => agents.destroy(),
  };
}
