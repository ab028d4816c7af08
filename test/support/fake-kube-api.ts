// A fake Kubernetes API server: real HTTP on 127.0.0.1:0 speaking the JSON the
// client library expects, with list + NDJSON watch streams and resourceVersions,
// a tiny Job controller driven by scenarios, and faults on demand (status codes,
// dropped watches, 410 Gone). Every request is recorded for counting.
import { randomBytes, randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

type Obj = { apiVersion?: string; kind?: string; metadata: Record<string, any>; spec?: any; status?: any; [key: string]: any };
type Kind = 'jobs' | 'pods' | 'events';

export interface RecordedRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  watch: boolean;
  /** Which TCP connection carried it (numbered in the order they were opened). */
  connection: number;
}

/** What the fake controller does with a new task Job (chosen by the task's FAKE_K8S_SCENARIO env). */
export type Scenario =
  | 'succeed'
  | 'hang'
  | 'exit:3'
  | 'oom'
  | 'image-pull'
  | 'unschedulable'
  | 'mount'
  | 'mount-for-90s'
  | 'deadline'
  | 'init-fail'
  | 'sidecar-sigterm'
  | 'exit-beside-helper'
  | 'timed';

/** A PATCH the API accepted or refused, as sent. */
export interface RecordedPatch {
  name: string;
  contentType: string;
  /** The body's text, byte for byte. */
  body: string;
  status: number;
}

/** RFC 7386 JSON merge patch: objects merge key by key, null removes, anything else replaces. */
export function applyMergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return structuredClone(patch);
  const out: Record<string, unknown> = target !== null && typeof target === 'object' && !Array.isArray(target) ? { ...(target as object) } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete out[key];
    else out[key] = applyMergePatch(out[key], value);
  }
  return out;
}

interface Fault {
  method: string;
  path: RegExp;
  status: number;
  times: number;
  message: string;
}

interface WatchStream {
  kind: Kind;
  namespace: string;
  selector: Map<string, string>;
  response: ServerResponse;
}

function parseSelector(text: string | null): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of (text ?? '').split(',').filter(Boolean)) {
    const [key, value] = part.split('=');
    out.set(key!.trim(), (value ?? '').trim());
  }
  return out;
}

function matchesLabels(obj: Obj, selector: Map<string, string>): boolean {
  const labels = obj.metadata.labels ?? {};
  for (const [key, value] of selector) if (labels[key] !== value) return false;
  return true;
}

function matchesFields(obj: Obj, selector: Map<string, string>): boolean {
  for (const [key, value] of selector) {
    const actual = key.split('.').reduce<any>((at, part) => at?.[part], obj);
    if (actual !== value) return false;
  }
  return true;
}

/** What the API server defaults in a Job's spec. */
function withJobDefaults(spec: any): any {
  return { backoffLimit: 6, completions: 1, parallelism: 1, suspend: false, ...spec };
}

export class FakeKubeApi {
  readonly requests: RecordedRequest[] = [];
  /** Every Job created through the API, as sent. */
  readonly created: Obj[] = [];
  /** Every PATCH of a Job, in order. */
  readonly patches: RecordedPatch[] = [];
  /**
   * Runs once, just before the next Job PATCH is applied (what another writer
   * did meanwhile: a status update, a delete and re-create, the Job finishing).
   */
  beforeNextPatch: ((name: string) => void) | undefined;
  private readonly objects: Record<Kind, Map<string, Obj>> = { jobs: new Map(), pods: new Map(), events: new Map() };
  private readonly watches = new Set<WatchStream>();
  private readonly history: { rv: number; kind: Kind; type: string; object: Obj }[] = [];
  private rv = 100;
  private faults: Fault[] = [];
  /** Watches asking to resume from before this resourceVersion get 410 Gone. */
  expiredBefore = 0;
  /** Access reviews answered "no" for these `verb resource[/sub]` strings. */
  readonly denied = new Set<string>();
  /** Scenario for Jobs whose task env names none. */
  defaultScenario: Scenario = 'succeed';
  /** Preflight Jobs: complete (default) or refused by admission. */
  preflight: 'complete' | 'forbidden' = 'complete';
  /** Milliseconds between the steps of a scenario. */
  stepMs = 30;
  /** Pod watch events are sent this much later (in order): the Jobs' watch then runs ahead, as a busy API server's may. */
  podWatchDelayMs = 0;
  private timers = new Set<NodeJS.Timeout>();
  private readonly connectionIds = new WeakMap<object, number>();
  private connectionsOpened = 0;

  private readonly server: Server;

  // Plain TypeScript (no parameter properties) so the benchmark can load this file with Node's type stripping.
  private constructor(server: Server) {
    this.server = server;
  }

  static async start(): Promise<FakeKubeApi> {
    const server = createServer();
    const api = new FakeKubeApi(server);
    server.on('request', (req, res) => api.handle(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return api;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** A kubeconfig pointing at this server (plain HTTP, TLS verification off, a static token). */
  writeKubeconfig(dir: string, namespace = 'agents'): string {
    const path = join(dir, 'kubeconfig');
    writeFileSync(
      path,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters:',
        '- name: fake',
        '  cluster:',
        `    server: ${this.url}`,
        '    insecure-skip-tls-verify: true',
        'users:',
        '- name: fake',
        '  user:',
        '    token: fake-token',
        'contexts:',
        '- name: fake',
        '  context:',
        '    cluster: fake',
        '    user: fake',
        `    namespace: ${namespace}`,
        'current-context: fake',
      ].join('\n'),
    );
    return path;
  }

  async close(): Promise<void> {
    for (const timer of this.timers) clearTimeout(timer);
    this.dropWatches();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  // ---- inspection ---------------------------------------------------------------

  jobs(): Obj[] {
    return [...this.objects.jobs.values()];
  }
  job(name: string): Obj | undefined {
    return this.objects.jobs.get(name);
  }
  pods(): Obj[] {
    return [...this.objects.pods.values()];
  }
  get openWatches(): number {
    return this.watches.size;
  }
  /** Requests that change state (create, delete, patch). */
  writes(filter: RegExp = /./): RecordedRequest[] {
    return this.requests.filter((r) => r.method !== 'GET' && !r.path.includes('selfsubjectaccessreviews') && filter.test(r.path));
  }

  /** Records an event about a Job or Pod, as a controller or kubelet would. */
  addEvent(about: Obj, reason: string, type: 'Warning' | 'Normal', extra: Record<string, unknown> = {}): Obj {
    const kind = about.spec?.template ? 'Job' : 'Pod';
    const event: Obj = {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name: `${about.metadata.name}.${reason}.${randomBytes(3).toString('hex')}`, namespace: about.metadata.namespace, uid: randomUUID() },
      involvedObject: { kind, name: about.metadata.name, namespace: about.metadata.namespace, uid: about.metadata.uid },
      reason,
      type,
      message: `${reason} message from the node`,
      source: { component: 'kubelet', host: 'node-1' },
      ...extra,
    };
    return this.put('events', event, 'ADDED');
  }

  // ---- faults ---------------------------------------------------------------------

  fail(method: string, path: RegExp, status: number, times = 1, message = `injected ${status}`): void {
    this.faults.push({ method, path, status, times, message });
  }

  /** Ends every watch stream (the client must resume). */
  dropWatches(): void {
    for (const watch of this.watches) watch.response.end();
    this.watches.clear();
  }

  /** Makes every resourceVersion so far too old: resuming watches get 410 and must relist. */
  expireHistory(): void {
    this.expiredBefore = this.rv + 1;
    this.history.length = 0;
  }

  // ---- controller ---------------------------------------------------------------------

  private later(ms: number, work: () => void): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      work();
    }, ms);
    this.timers.add(timer);
  }

  private nextRv(): string {
    return String(++this.rv);
  }

  private put(kind: Kind, obj: Obj, type: 'ADDED' | 'MODIFIED'): Obj {
    obj.metadata.resourceVersion = this.nextRv();
    this.objects[kind].set(obj.metadata.name, obj);
    this.emit(kind, type, obj);
    return obj;
  }

  private remove(kind: Kind, name: string): void {
    const obj = this.objects[kind].get(name);
    if (!obj) return;
    this.objects[kind].delete(name);
    obj.metadata.resourceVersion = this.nextRv();
    this.emit(kind, 'DELETED', obj);
  }

  private emit(kind: Kind, type: string, object: Obj): void {
    const rv = Number(object.metadata.resourceVersion);
    this.history.push({ rv, kind, type, object: structuredClone(object) });
    const line = `${JSON.stringify({ type, object })}\n`;
    for (const watch of this.watches) {
      if (watch.kind !== kind || !matchesLabels(object, watch.selector)) continue;
      if (kind === 'pods' && this.podWatchDelayMs > 0) setTimeout(() => watch.response.writable && watch.response.write(line), this.podWatchDelayMs);
      else watch.response.write(line);
    }
  }

  /** Updates a job's status (e.g. to complete a `hang` Job from a test). */
  setJobCondition(name: string, type: 'Complete' | 'Failed', reason = '', message = ''): void {
    const job = this.objects.jobs.get(name);
    if (!job) throw new Error(`no job ${name}`);
    job.status = { ...job.status, conditions: [{ type, status: 'True', reason, message }] };
    this.put('jobs', job, 'MODIFIED');
  }

  setPodStatus(name: string, status: any): void {
    const pod = this.objects.pods.get(name);
    if (!pod) throw new Error(`no pod ${name}`);
    pod.status = status;
    this.put('pods', pod, 'MODIFIED');
  }

  podOf(jobName: string): Obj | undefined {
    return this.pods().find((p) => p.metadata.labels?.['job-name'] === jobName);
  }

  /** Creates a Job behind the worker's back (to test adoption). */
  insertJob(job: Obj): Obj {
    job.metadata.uid = randomUUID();
    job.metadata.creationTimestamp = new Date().toISOString();
    job.spec = withJobDefaults(job.spec);
    job.status = {};
    return this.put('jobs', job, 'ADDED');
  }

  /** Adds a pod, controlled by `owner` (a Job) unless `owner` is omitted; runs no scenario. */
  insertPod(name: string, status: any, owner?: Obj, namespace = owner?.metadata.namespace ?? 'agents'): Obj {
    const labels: Record<string, string> = owner
      ? { 'job-name': owner.metadata.name, 'batch.kubernetes.io/controller-uid': owner.metadata.uid, ...(owner.spec?.template?.metadata?.labels ?? {}) }
      : {};
    return this.put(
      'pods',
      {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {
          name,
          namespace,
          uid: randomUUID(),
          creationTimestamp: new Date().toISOString(),
          labels,
          ...(owner
            ? { ownerReferences: [{ apiVersion: 'batch/v1', kind: 'Job', name: owner.metadata.name, uid: owner.metadata.uid, controller: true }] }
            : {}),
        },
        spec: { containers: [{ name: 'task', image: 'x' }] },
        status,
      },
      'ADDED',
    );
  }

  /** Deletes a Job and creates another of the same name (a new uid), as someone re-creating it would. */
  replaceJob(name: string): Obj {
    const old = this.objects.jobs.get(name);
    if (!old) throw new Error(`no job ${name}`);
    this.remove('jobs', name);
    const job = structuredClone(old);
    job.metadata.uid = randomUUID();
    job.status = {};
    return this.put('jobs', job, 'ADDED');
  }

  /** Writes the Job again unchanged but for its resourceVersion (as a status update would). */
  touchJob(name: string): void {
    const job = this.objects.jobs.get(name);
    if (!job) throw new Error(`no job ${name}`);
    this.put('jobs', job, 'MODIFIED');
  }

  /**
   * The Job controller's part of an expiry: zero parallelism stops the active
   * pods, and a deadline that has passed (counted from creation here) stops them
   * too and fails the Job with DeadlineExceeded.
   */
  private reconcileJob(name: string): void {
    const job = this.objects.jobs.get(name);
    if (!job || (job.status?.conditions ?? []).some((c: any) => (c.type === 'Complete' || c.type === 'Failed') && c.status === 'True')) return;
    if (job.spec?.suspend) return;
    const active = this.pods().filter(
      (p) => p.metadata.labels?.['batch.kubernetes.io/controller-uid'] === job.metadata.uid && !['Failed', 'Succeeded'].includes(p.status?.phase),
    );
    const deadline = job.spec?.activeDeadlineSeconds;
    const age = Date.now() - new Date(job.metadata.creationTimestamp).getTime();
    const expired = typeof deadline === 'number' && age >= deadline * 1000;
    if (job.spec?.parallelism === 0 || expired) for (const pod of active) this.remove('pods', pod.metadata.name);
    if (expired) this.setJobCondition(name, 'Failed', 'DeadlineExceeded', 'Job was active longer than specified deadline');
    else if (typeof deadline === 'number') this.later(deadline * 1000 - age, () => this.reconcileJob(name));
  }

  private scenarioOf(job: Obj): Scenario {
    const task = job.spec?.template?.spec?.containers?.find((c: any) => c.name === 'task');
    const value = task?.env?.find((e: any) => e.name === 'FAKE_K8S_SCENARIO')?.value;
    return (value as Scenario) ?? this.defaultScenario;
  }

  private startPod(job: Obj): Obj {
    const name = `${job.metadata.name}-${randomBytes(3).toString('hex').slice(0, 5)}`;
    const pod: Obj = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name,
        namespace: job.metadata.namespace,
        uid: randomUUID(),
        creationTimestamp: new Date().toISOString(),
        labels: {
          ...(job.spec?.template?.metadata?.labels ?? {}),
          'job-name': job.metadata.name,
          'controller-uid': job.metadata.uid,
          'batch.kubernetes.io/job-name': job.metadata.name,
          'batch.kubernetes.io/controller-uid': job.metadata.uid,
        },
        ownerReferences: [{ apiVersion: 'batch/v1', kind: 'Job', name: job.metadata.name, uid: job.metadata.uid, controller: true, blockOwnerDeletion: true }],
      },
      spec: structuredClone(job.spec.template.spec),
      status: { phase: 'Pending' },
    };
    return this.put('pods', pod, 'ADDED');
  }

  private runScenario(job: Obj): void {
    const jobName = job.metadata.name;
    const scenario = this.scenarioOf(job);
    const pod = this.startPod(job);
    const podName = pod.metadata.name;
    const alive = (): boolean => this.objects.jobs.has(jobName) && this.objects.pods.has(podName);
    const step = (n: number, work: () => void): void => this.later(this.stepMs * n, () => alive() && work());
    const running = { phase: 'Running', containerStatuses: [{ name: 'task', ready: true, restartCount: 0, image: 'x', imageID: '', state: { running: {} } }] };
    const terminated = (exitCode: number, reason: string, phase = 'Failed') => ({
      phase,
      containerStatuses: [{ name: 'task', ready: false, restartCount: 0, image: 'x', imageID: '', state: { terminated: { exitCode, reason } } }],
    });
    switch (scenario) {
      case 'timed': {
        // Times as the scheduler and kubelet set them: scheduled 1 s after creation, each init container run in turn (1 s each), then the task.
        const seconds = (offset: number) => new Date(Date.parse(pod.metadata.creationTimestamp) + offset * 1000).toISOString();
        const scheduled = [{ type: 'PodScheduled', status: 'True', lastTransitionTime: seconds(1) }];
        const inits = (pod.spec.initContainers ?? []).map((c: { name: string }, i: number) => ({
          name: c.name,
          ready: false,
          restartCount: 0,
          image: 'x',
          imageID: '',
          state: { terminated: { exitCode: 0, reason: 'Completed', startedAt: seconds(2 + i), finishedAt: seconds(3 + i) } },
        }));
        const taskStart = seconds(4 + inits.length);
        const task = (state: unknown) => [{ name: 'task', ready: true, restartCount: 0, image: 'x', imageID: '', state }];
        const ended = {
          phase: 'Succeeded',
          conditions: scheduled,
          initContainerStatuses: inits,
          containerStatuses: task({ terminated: { exitCode: 0, reason: 'Completed', startedAt: taskStart, finishedAt: seconds(9 + inits.length) } }),
        };
        step(1, () => this.setPodStatus(podName, { phase: 'Pending', conditions: scheduled }));
        step(2, () =>
          this.setPodStatus(podName, {
            phase: 'Running',
            conditions: scheduled,
            initContainerStatuses: inits,
            containerStatuses: task({ running: { startedAt: taskStart } }),
          }),
        );
        step(3, () => this.setPodStatus(podName, ended));
        step(4, () => this.setJobCondition(jobName, 'Complete'));
        return;
      }
      case 'succeed':
        step(1, () => this.setPodStatus(podName, running));
        step(2, () => this.setPodStatus(podName, terminated(0, 'Completed', 'Succeeded')));
        step(3, () => this.setJobCondition(jobName, 'Complete'));
        return;
      case 'hang':
        step(1, () => this.setPodStatus(podName, running));
        return;
      case 'exit:3':
        step(1, () => this.setPodStatus(podName, running));
        // As kubelet 1.34 reports it: the container's exit first, the pod's phase in a later update.
        step(2, () => this.setPodStatus(podName, terminated(3, 'Error', 'Running')));
        step(3, () => this.setPodStatus(podName, terminated(3, 'Error')));
        step(4, () => this.setJobCondition(jobName, 'Failed', 'BackoffLimitExceeded', 'Job has reached the specified backoff limit'));
        return;
      case 'oom':
        step(1, () => this.setPodStatus(podName, terminated(137, 'OOMKilled')));
        return;
      case 'exit-beside-helper':
        // The task exits while another container of the pod keeps running: the pod, and so the Job, never ends by itself.
        pod.spec.containers = [...pod.spec.containers, { name: 'helper', image: 'busybox:1.36' }];
        step(1, () =>
          this.setPodStatus(podName, {
            phase: 'Running',
            containerStatuses: [
              { name: 'task', ready: false, restartCount: 0, image: 'x', imageID: '', state: { terminated: { exitCode: 1, reason: 'Error' } } },
              { name: 'helper', ready: true, restartCount: 0, image: 'x', imageID: '', state: { running: {} } },
            ],
          }),
        );
        return;
      case 'sidecar-sigterm':
        // A native sidecar ends with SIGTERM as the pod winds down; the task itself succeeded.
        pod.spec.initContainers = [...(pod.spec.initContainers ?? []), { name: 'db', image: 'postgres:16', restartPolicy: 'Always' }];
        step(1, () =>
          this.setPodStatus(podName, {
            phase: 'Succeeded',
            initContainerStatuses: [
              { name: 'db', ready: false, restartCount: 0, image: 'x', imageID: '', state: { terminated: { exitCode: 143, reason: 'Error' } } },
            ],
            containerStatuses: [
              { name: 'task', ready: false, restartCount: 0, image: 'x', imageID: '', state: { terminated: { exitCode: 0, reason: 'Completed' } } },
            ],
          }),
        );
        step(3, () => this.setJobCondition(jobName, 'Complete'));
        return;
      case 'image-pull':
        step(1, () =>
          this.setPodStatus(podName, {
            phase: 'Pending',
            containerStatuses: [
              {
                name: 'task',
                ready: false,
                restartCount: 0,
                image: 'x',
                imageID: '',
                state: { waiting: { reason: 'ImagePullBackOff', message: 'Back-off pulling image "nope:1"' } },
              },
            ],
          }),
        );
        return;
      case 'unschedulable':
        step(1, () =>
          this.setPodStatus(podName, {
            phase: 'Pending',
            conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: '0/3 nodes are available: 3 Insufficient cpu.' }],
          }),
        );
        return;
      case 'mount':
      case 'mount-for-90s': {
        // mount-for-90s: kubelet has been reporting it for 90 s, and just did again.
        const times =
          scenario === 'mount-for-90s'
            ? { firstTimestamp: new Date(Date.now() - 90_000).toISOString(), lastTimestamp: new Date().toISOString(), count: 12 }
            : {};
        const event: Obj = {
          apiVersion: 'v1',
          kind: 'Event',
          metadata: { name: `${podName}.mount`, namespace: pod.metadata.namespace, uid: randomUUID() },
          involvedObject: { kind: 'Pod', name: podName, uid: pod.metadata.uid },
          reason: 'FailedMount',
          message: 'MountVolume.SetUp failed for volume "sidecar-0-image": image volumes are not supported on this node',
          type: 'Warning',
          ...times,
        };
        step(1, () => {
          this.put('events', event, 'ADDED');
          // Mounting happens on the node the pod is bound to.
          this.setPodStatus(podName, { phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'True' }] });
        });
        return;
      }
      case 'deadline':
        step(1, () => this.setPodStatus(podName, running));
        step(2, () => this.setJobCondition(jobName, 'Failed', 'DeadlineExceeded', 'Job was active longer than specified deadline'));
        return;
      case 'init-fail':
        step(1, () =>
          this.setPodStatus(podName, {
            phase: 'Failed',
            initContainerStatuses: [
              { name: 'setup', ready: false, restartCount: 0, image: 'x', imageID: '', state: { terminated: { exitCode: 1, reason: 'Error' } } },
            ],
          }),
        );
        return;
    }
  }

  private runPreflight(job: Obj): void {
    if (this.preflight === 'forbidden') {
      this.put(
        'events',
        {
          apiVersion: 'v1',
          kind: 'Event',
          metadata: { name: `${job.metadata.name}.create`, namespace: job.metadata.namespace, uid: randomUUID() },
          involvedObject: { kind: 'Job', name: job.metadata.name, uid: job.metadata.uid },
          reason: 'FailedCreate',
          type: 'Warning',
          message: `pods "${job.metadata.name}-x" is forbidden: violates PodSecurity "restricted:latest": runAsNonRoot != true`,
        },
        'ADDED',
      );
      return;
    }
    const pod = this.startPod(job);
    this.later(this.stepMs, () => {
      if (!this.objects.pods.has(pod.metadata.name)) return;
      this.setPodStatus(pod.metadata.name, { phase: 'Succeeded' });
      this.setJobCondition(job.metadata.name, 'Complete');
    });
  }

  // ---- HTTP -------------------------------------------------------------------------------

  private send(res: ServerResponse, status: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
  }

  private statusBody(status: number, message: string, reason: string): object {
    return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code: status };
  }

  private async body(req: IncomingMessage): Promise<any> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString();
    return text ? JSON.parse(text) : undefined;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const method = req.method ?? 'GET';
    const watch = url.searchParams.get('watch') === 'true' || url.searchParams.get('watch') === '1';
    let connection = this.connectionIds.get(req.socket);
    if (connection === undefined) this.connectionIds.set(req.socket, (connection = this.connectionsOpened++));
    this.requests.push({ method, path: url.pathname, query: url.searchParams, watch, connection });
    const fault = this.faults.find((f) => f.method === method && f.path.test(url.pathname) && f.times > 0);
    if (fault) {
      fault.times--;
      if (fault.status === 429) {
        // As priority and fairness answers: a Retry-After, and the Status reason TooManyRequests.
        const text = JSON.stringify(this.statusBody(429, 'Too many requests, please try again later.', 'TooManyRequests'));
        res.writeHead(429, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), 'Retry-After': '1' });
        res.end(text);
        return;
      }
      this.send(
        res,
        fault.status,
        this.statusBody(fault.status, fault.message, fault.status === 403 ? 'Forbidden' : fault.status === 409 ? 'AlreadyExists' : 'Invalid'),
      );
      return;
    }
    try {
      await this.route(method, url, req, res, watch);
    } catch (error) {
      this.send(res, 500, this.statusBody(500, String(error), 'InternalError'));
    }
  }

  private async route(method: string, url: URL, req: IncomingMessage, res: ServerResponse, watch: boolean): Promise<void> {
    const path = url.pathname;
    if (path === '/version') {
      this.send(res, 200, { major: '1', minor: '31', gitVersion: 'v1.31.0-fake', platform: 'linux/amd64' });
      return;
    }
    if (path === '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews' && method === 'POST') {
      const review = await this.body(req);
      const attrs = review.spec.resourceAttributes;
      const key = `${attrs.verb} ${attrs.resource}${attrs.subresource ? `/${attrs.subresource}` : ''}`;
      const allowed = !this.denied.has(key);
      this.send(res, 201, { ...review, status: { allowed, ...(allowed ? {} : { reason: 'RBAC: denied by the test' }) } });
      return;
    }
    const match = /^\/(?:apis\/batch\/v1|api\/v1)\/namespaces\/([^/]+)\/(jobs|pods|events)(?:\/([^/]+))?(?:\/(log))?$/.exec(path);
    if (!match) {
      this.send(res, 404, this.statusBody(404, `no route ${path}`, 'NotFound'));
      return;
    }
    const [, namespace, kindText, name, sub] = match;
    const kind = kindText as Kind;
    const store = this.objects[kind];

    if (!name) {
      if (method === 'GET' && watch) return this.openWatch(kind, namespace!, url, res);
      if (method === 'GET') {
        const labels = parseSelector(url.searchParams.get('labelSelector'));
        const fields = parseSelector(url.searchParams.get('fieldSelector'));
        const items = [...store.values()].filter((o) => o.metadata.namespace === namespace && matchesLabels(o, labels) && matchesFields(o, fields));
        this.send(res, 200, { apiVersion: 'v1', kind: 'List', metadata: { resourceVersion: String(this.rv) }, items });
        return;
      }
      if (method === 'POST' && kind === 'jobs') {
        const job = (await this.body(req)) as Obj;
        if (store.has(job.metadata.name)) {
          this.send(res, 409, this.statusBody(409, `jobs.batch "${job.metadata.name}" already exists`, 'AlreadyExists'));
          return;
        }
        this.created.push(structuredClone(job));
        job.metadata.namespace = namespace;
        job.metadata.uid = randomUUID();
        job.metadata.creationTimestamp = new Date().toISOString();
        job.spec = withJobDefaults(job.spec);
        job.status = {};
        this.put('jobs', job, 'ADDED');
        this.send(res, 201, job);
        if (job.metadata.name.startsWith('oz-preflight-')) this.runPreflight(job);
        else this.later(this.stepMs, () => this.objects.jobs.has(job.metadata.name) && this.runScenario(job));
        return;
      }
    } else {
      const obj = store.get(name);
      if (sub === 'log') {
        if (!obj) return this.send(res, 404, this.statusBody(404, `pods "${name}" not found`, 'NotFound'));
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        res.end(`log of ${name}/${url.searchParams.get('container')}\nline 2\n`);
        return;
      }
      if (!obj) {
        this.send(res, 404, this.statusBody(404, `${kind} "${name}" not found`, 'NotFound'));
        return;
      }
      if (method === 'GET') return this.send(res, 200, obj);
      if (method === 'DELETE' && kind === 'jobs') {
        const body = await this.body(req).catch(() => undefined);
        const propagation = url.searchParams.get('propagationPolicy') ?? body?.propagationPolicy ?? 'Background';
        obj.metadata.deletionPropagation = propagation;
        for (const pod of this.pods().filter((p) => p.metadata.labels?.['job-name'] === name)) this.remove('pods', pod.metadata.name);
        this.remove('jobs', name);
        this.send(res, 200, { kind: 'Status', apiVersion: 'v1', status: 'Success', details: { name, kind: 'jobs' } });
        this.lastDelete.set(name, propagation);
        return;
      }
      if (method === 'PATCH' && kind === 'jobs') return this.patchJob(name, req, res);
    }
    this.send(res, 405, this.statusBody(405, `${method} not supported on ${path}`, 'MethodNotAllowed'));
  }

  /**
   * A JSON merge patch, as the API server applies one: `metadata.resourceVersion`
   * and `metadata.uid` in the patch must match the stored Job (409 Conflict
   * otherwise); only merge patches are understood (415 for other types).
   */
  private async patchJob(name: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString();
    const contentType = String(req.headers['content-type'] ?? '')
      .split(';')[0]!
      .trim();
    const record: RecordedPatch = { name, contentType, body, status: 200 };
    this.patches.push(record);
    const refuse = (status: number, message: string, reason: string): void => {
      record.status = status;
      this.send(res, status, this.statusBody(status, message, reason));
    };
    if (contentType !== 'application/merge-patch+json') return refuse(415, `the content type ${contentType} is not supported here`, 'UnsupportedMediaType');
    const hook = this.beforeNextPatch;
    this.beforeNextPatch = undefined;
    hook?.(name);
    const current = this.objects.jobs.get(name);
    if (!current) return refuse(404, `jobs.batch "${name}" not found`, 'NotFound');
    const patch = JSON.parse(body) as Obj;
    const wantedUid = patch.metadata?.uid;
    if (wantedUid !== undefined && wantedUid !== current.metadata.uid)
      return refuse(409, `Precondition failed: UID in precondition: ${wantedUid}, UID in object meta: ${current.metadata.uid}`, 'Conflict');
    const wantedRv = patch.metadata?.resourceVersion;
    if (wantedRv !== undefined && wantedRv !== current.metadata.resourceVersion)
      return refuse(
        409,
        `Operation cannot be fulfilled on jobs.batch "${name}": the object has been modified; please apply your changes to the latest version and try again`,
        'Conflict',
      );
    const patched = applyMergePatch(current, patch) as Obj;
    this.put('jobs', patched, 'MODIFIED');
    this.send(res, 200, patched);
    if (patch.spec !== undefined) this.later(this.stepMs, () => this.reconcileJob(name));
  }

  /** Propagation policy of the last delete of each Job. */
  readonly lastDelete = new Map<string, string>();

  private openWatch(kind: Kind, namespace: string, url: URL, res: ServerResponse): void {
    const selector = parseSelector(url.searchParams.get('labelSelector'));
    const from = Number(url.searchParams.get('resourceVersion') || 0);
    if (from > 0 && from < this.expiredBefore) {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(
        `${JSON.stringify({ type: 'ERROR', object: { kind: 'Status', apiVersion: 'v1', status: 'Failure', message: 'too old resource version', reason: 'Expired', code: 410 } })}\n`,
      );
      return;
    }
    res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' });
    res.flushHeaders();
    const stream: WatchStream = { kind, namespace, selector, response: res };
    this.watches.add(stream);
    res.on('close', () => this.watches.delete(stream));
    if (from > 0) {
      for (const entry of this.history) {
        if (entry.rv > from && entry.kind === kind && matchesLabels(entry.object, selector))
          res.write(`${JSON.stringify({ type: entry.type, object: entry.object })}\n`);
      }
    } else {
      for (const obj of this.objects[kind].values()) if (matchesLabels(obj, selector)) res.write(`${JSON.stringify({ type: 'ADDED', object: obj })}\n`);
    }
  }
}
