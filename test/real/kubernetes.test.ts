// The real worker (bin/oz-worker.js) on the Kubernetes backend against a real
// cluster: kube-apiserver, etcd, controller-manager (Job, garbage collector,
// TTL controllers), scheduler and a kubelet running the stand-in agent image
// in containerd (test/infra/kube/up.sh). Each test has its own namespace and
// worker id. Skips, saying why, when no cluster is up.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTaskJob } from '../../src/backends/kubernetes/job-builder.js';
import { taskJobName } from '../../src/backends/kubernetes/names.js';
import { API_KEY } from '../support/direct-worker.js';
import { assignment, FakeDispatchServer } from '../support/fake-dispatch-server.js';
import { FakeRegistry } from '../support/fake-registry.js';
import { runCli } from '../support/cli.js';
import { jobSettings } from '../support/kubernetes.js';
import { startLocalServer } from '../support/local-server.js';
import { clusterFor, Kube, kubeWorkerConfigFile, oneTestAtATimeOnTheCluster, unique, until, type RealCluster } from '../support/real-kube.js';
import { startWorker, type WorkerProcess } from '../support/worker-process.js';

const cluster = await clusterFor('real Kubernetes suite');

const TASK_TIMEOUT = 120_000;
const jobName = (id: string): string => taskJobName(id, `exec-${id}`);

interface WorkerHarness {
  namespace: string;
  workerId: string;
  configPath: string;
  worker: WorkerProcess;
  /** Starts another worker process with the same config (a restart). */
  restart(): WorkerProcess;
}

describe.skipIf(!cluster)('kubernetes backend on a real cluster', () => {
  const c = cluster as RealCluster;
  let kube: Kube;
  let server: FakeDispatchServer;
  const cleanups: (() => Promise<unknown> | unknown)[] = [];

  beforeAll(async () => {
    kube = new Kube(c);
    server = await FakeDispatchServer.start({ apiKey: API_KEY });
  });
  afterAll(async () => {
    await server?.close();
  });
  // Some tests kill the API server: one test at a time on the cluster, across files.
  oneTestAtATimeOnTheCluster(cleanups);

  /** A namespace and a worker in it; `yaml` lines go under backend.kubernetes. */
  async function startKubeWorker(
    options: { yaml?: string[]; podTemplate?: string[]; waitForConnection?: boolean; namespace?: string } = {},
  ): Promise<WorkerHarness> {
    const namespace = options.namespace ?? (await kube.testNamespace('oz-real', cleanups));
    const workerId = unique('real-worker');
    const configPath = kubeWorkerConfigFile(
      c,
      {
        workerId,
        namespace,
        kubernetes: [`preflight_image: ${c.agentImage}`, 'unschedulable_timeout: 4s', 'image_pull_timeout: 6s', ...(options.yaml ?? [])],
        ...(options.podTemplate ? { podTemplate: options.podTemplate } : {}),
      },
      cleanups,
    );
    const launch = (): WorkerProcess => {
      const worker = startWorker({ args: ['--config-file', configPath, '--web-socket-url', server.url], env: { WARP_API_KEY: API_KEY } });
      cleanups.push(() => worker.stop());
      return worker;
    };
    const before = server.connectionCount;
    const harness: WorkerHarness = { namespace, workerId, configPath, worker: launch(), restart: () => (harness.worker = launch()) };
    if (options.waitForConnection !== false)
      await harness.worker.withOutput(until(() => server.connectionCount > before, 60_000, `worker ${workerId} to connect`));
    return harness;
  }

  const task = (id: string, env: Record<string, string>, extra: Record<string, unknown> = {}) =>
    assignment(id, { execution_id: `exec-${id}`, env_vars: env, ...extra });

  async function runningPod(namespace: string, id: string) {
    return until(
      async () => (await kube.podsOfJob(namespace, jobName(id))).find((p) => p.status?.phase === 'Running'),
      TASK_TIMEOUT,
      `the pod of ${id} to run`,
    );
  }

  async function gone(namespace: string, id: string, timeoutMs = 60_000): Promise<void> {
    await until(
      async () => (await kube.job(namespace, jobName(id))) === undefined && (await kube.podsOfJob(namespace, jobName(id))).length === 0,
      timeoutMs,
      `Job ${jobName(id)} and its pods to be gone`,
    );
  }

  /** The failed task's Job is kept, marked reported, expired (Failed, DeadlineExceeded), and none of its pods runs. */
  async function keptAndExpired(h: WorkerHarness, id: string, timeoutMs = 90_000): Promise<void> {
    const job = await until(
      async () => {
        const current = await kube.job(h.namespace, jobName(id));
        return current?.status?.conditions?.some((cond) => cond.type === 'Failed' && cond.status === 'True' && cond.reason === 'DeadlineExceeded')
          ? current
          : undefined;
      },
      timeoutMs,
      `Job ${jobName(id)} to be kept and expired (Failed, DeadlineExceeded)`,
    ).catch(async (error: Error) => {
      throw new Error(`${error.message}\n${JSON.stringify((await kube.job(h.namespace, jobName(id)))?.status)}\n${h.worker.output.slice(-4000)}`);
    });
    expect(job.spec).toMatchObject({ activeDeadlineSeconds: 1, parallelism: 0, suspend: false });
    expect(job.metadata?.annotations?.['oz-worker.dev/reported']).toBe('true');
    await until(
      async () => (await kube.podsOfJob(h.namespace, jobName(id))).every((pod) => pod.status?.phase === 'Failed' || pod.status?.phase === 'Succeeded'),
      60_000,
      `no pod of ${jobName(id)} to be left running`,
    );
    await h.worker.waitForLog((line) => /^Requested expiration of abandoned Kubernetes Job /.test(line.msg), 10_000);
  }

  it('runs team and user tasks as Jobs with the Go worker argv; completed Jobs and their pods are removed', { timeout: 240_000 }, async () => {
    const h = await startKubeWorker();
    server.assign(task('team-1', { FAKE_OZ_SLEEP_MS: '3000' }, { task: { owner: { Type: 'TEAM', Id: 42 } } }));
    server.assign(task('user-1', { FAKE_OZ_SLEEP_MS: '3000' }, { task: { owner: { Type: 'USER', Id: 7 } } }));
    for (const [id, team] of [
      ['team-1', true],
      ['user-1', false],
    ] as const) {
      const pod = await runningPod(h.namespace, id);
      const log = await until(async () => (await kube.podLog(h.namespace, pod.metadata!.name!)) || undefined, 30_000, `the log of ${id}`);
      expect(log).toContain(team ? `fake-oz: started with agent run --share team:edit --task-id ${id}` : `fake-oz: started with agent run --task-id ${id}`);
      if (!team) expect(log).not.toContain('team:edit');
      expect(pod.metadata?.labels).toMatchObject({ 'oz-task-id': id, 'oz-execution-id': `exec-${id}` });
    }
    for (const id of ['team-1', 'user-1']) {
      const done = await server.waitForMessage('task_completed', id, TASK_TIMEOUT);
      expect(done.data.task_state).not.toBe('CANCELLED');
      await gone(h.namespace, id);
    }
  });

  it('reports an agent exit code as task_failed and keeps the failed Job until the TTL controller removes it', { timeout: 240_000 }, async () => {
    const h = await startKubeWorker({ yaml: ['ttl_seconds_after_finished: 8'] });
    server.assign(task('exit-3', { FAKE_OZ_EXIT: '3' }));
    const failed = await server.waitForMessage('task_failed', 'exit-3', TASK_TIMEOUT);
    expect(failed.data).toMatchObject({ failure_reason: 'container_exit', exit_code: 3 });
    expect(failed.data.message).toMatch(/container task in pod .* exited with code 3/);
    // The worker reports from the failed pod; the Job controller marks the Job Failed moments later.
    const kept = await h.worker.withOutput(
      until(
        async () => {
          const job = await kube.job(h.namespace, jobName('exit-3'));
          return job?.status?.conditions?.some((cond) => cond.type === 'Failed' && cond.status === 'True') ? job : undefined;
        },
        60_000,
        'the kept Job to be marked Failed',
      ),
    );
    expect(kept?.metadata?.annotations?.['oz-worker.dev/reported']).toBe('true');
    expect(kept?.spec?.ttlSecondsAfterFinished).toBe(8);
    await gone(h.namespace, 'exit-3', 90_000);
  });

  it('keeps the Job of a task that exited while another container of its pod still runs, and expires it: Failed (DeadlineExceeded), no pod left running', {
    timeout: 240_000,
  }, async () => {
    const h = await startKubeWorker({
      podTemplate: [
        // A second container that outlives the task: the pod stays Running, so the Job would never end by itself.
        '  - name: helper',
        `    image: ${c.agentImage}`,
        '    imagePullPolicy: IfNotPresent',
        "    command: [node, -e, 'setInterval(() => {}, 60000)']",
        '    resources: {limits: {memory: 64Mi}}',
      ],
    });
    server.assign(task('beside-helper', { FAKE_OZ_EXIT: '3' }));
    const failed = await server.waitForMessage('task_failed', 'beside-helper', TASK_TIMEOUT);
    expect(failed.data).toMatchObject({ failure_reason: 'container_exit', exit_code: 3 });
    expect(failed.data.message).toMatch(/container task in pod .* exited with code 3.*Pod phase: Running/);
    await keptAndExpired(h, 'beside-helper');
  });

  it('reports a task killed by its memory limit as container_oom with exit code 137', { timeout: 240_000 }, async () => {
    await startKubeWorker();
    server.assign(task('oom-1', { FAKE_OZ_ALLOC_MB: '600', FAKE_OZ_SLEEP_MS: '30000' }));
    const failed = await server.waitForMessage('task_failed', 'oom-1', TASK_TIMEOUT);
    expect(failed.data).toMatchObject({ failure_reason: 'container_oom', exit_code: 137 });
    expect(failed.data.message).toMatch(/exited with code 137 \(SIGKILL\).*OOMKilled.*ran out of memory/);
  });

  it('fails an unschedulable task after unschedulable_timeout with the scheduler message, and keeps its Job, expired', { timeout: 240_000 }, async () => {
    const h = await startKubeWorker();
    const started = Date.now();
    server.assign(task('unsched-1', {}, { instance_shape: { vcpus: 64 } }));
    const failed = await server.waitForMessage('task_failed', 'unsched-1', TASK_TIMEOUT);
    // Measured from the pod's creationTimestamp, which has whole seconds: up to 1 s earlier than `started`.
    expect(Date.now() - started).toBeGreaterThanOrEqual(3_000);
    expect(failed.data.failure_reason).toBe('unschedulable');
    expect(failed.data.message).toMatch(/is unschedulable.*Insufficient cpu/);
    await keptAndExpired(h, 'unsched-1');
  });

  it("fails a task whose volume cannot be mounted with kubelet's FailedMount event, and keeps its Job, expired", { timeout: 240_000 }, async () => {
    // A ConfigMap that does not exist: kubelet keeps the pod in ContainerCreating and says why only in events.
    const h = await startKubeWorker({
      // Kubelet keeps retrying; the task fails once the failures have lasted this long (default 2m).
      yaml: ['volume_mount_timeout: 5s'],
      // The first line continues the task container above it; kubelet sets up only volumes a container mounts.
      podTemplate: [
        '    volumeMounts: [{name: settings, mountPath: /settings}]',
        'volumes:',
        '  - name: settings',
        '    configMap: {name: oz-real-missing-settings}',
      ],
    });
    server.assign(task('mount-1', {}));
    const failed = await server.waitForMessage('task_failed', 'mount-1', TASK_TIMEOUT);
    expect(failed.data.failure_reason).toBe('volume_mount');
    expect(failed.data.message).toMatch(
      /failed to mount a volume.*FailedMount.*configmap "oz-real-missing-settings" not found.*kept failing for volume_mount_timeout \(5 s\)/,
    );
    await keptAndExpired(h, 'mount-1');
  });

  describe('image pulls from a registry that refuses them', () => {
    let registry: FakeRegistry;
    beforeAll(async () => {
      registry = await FakeRegistry.start(c.registryPort);
    });
    afterAll(async () => {
      await registry?.close();
    });

    it.each([
      ['a missing image', 'missing/agent:1', /not found/],
      ['refused credentials', 'private/agent:1', /401 Unauthorized|unauthorized/i],
      ['access denied', 'denied/agent:1', /403 Forbidden|denied/i],
    ])('%s fails the task at once, naming the image and quoting the registry', { timeout: 180_000 }, async (_what, ref, registrySays) => {
      const h = await startKubeWorker();
      const id = unique('pull');
      const image = `${registry.host}/${ref}`;
      const started = Date.now();
      server.assign(task(id, {}, { docker_image: image }));
      const failed = await server.waitForMessage('task_failed', id, TASK_TIMEOUT);
      const tookMs = Date.now() - started;
      expect(failed.data.failure_reason).toBe('image_pull');
      expect(failed.data.message).toContain(image);
      expect(failed.data.message).toMatch(registrySays);
      expect(failed.data.message).not.toMatch(/image_pull_timeout/);
      // Before the first ErrImagePull the pod has to be scheduled and its sandbox made; no timeout waited.
      expect(tookMs).toBeLessThan(30_000);
      expect(registry.manifestRequests.some((r) => image.endsWith(r.ref))).toBe(true);
      await keptAndExpired(h, id);
    });

    it('an invalid image reference fails the task at once', { timeout: 180_000 }, async () => {
      await startKubeWorker();
      server.assign(task('bad-ref', {}, { docker_image: 'oz/Not_A:Valid:Reference' }));
      const failed = await server.waitForMessage('task_failed', 'bad-ref', TASK_TIMEOUT);
      expect(failed.data.failure_reason).toBe('invalid_image');
      expect(failed.data.message).toContain('InvalidImageName');
    });

    it('a registry that keeps failing (503) fails the task only after image_pull_timeout', { timeout: 180_000 }, async () => {
      await startKubeWorker();
      const image = `${registry.host}/flaky/agent:1`;
      server.assign(task('flaky-1', {}, { docker_image: image }));
      const failed = await server.waitForMessage('task_failed', 'flaky-1', TASK_TIMEOUT);
      const firstPull = registry.manifestRequests.find((r) => r.ref.startsWith('flaky/'));
      expect(firstPull).toBeDefined();
      // kubelet's first ErrImagePull comes with the first refused request; the task waited out the timeout after it.
      expect(Date.now() - firstPull!.at).toBeGreaterThanOrEqual(6_000);
      expect(failed.data.failure_reason).toBe('image_pull');
      expect(failed.data.message).toContain(image);
      expect(failed.data.message).toMatch(/503 Service Unavailable/);
      expect(failed.data.message).toMatch(/kept failing for image_pull_timeout \(6 s\)/);
    });
  });

  it('on cancel deletes the Job and the garbage collector removes its pod', { timeout: 240_000 }, async () => {
    const h = await startKubeWorker();
    server.assign(task('cancel-1', { FAKE_OZ_SLEEP_MS: '600000' }));
    await runningPod(h.namespace, 'cancel-1');
    server.cancel('cancel-1');
    const done = await server.waitForMessage('task_completed', 'cancel-1', TASK_TIMEOUT);
    expect(done.data.task_state).toBe('CANCELLED');
    await gone(h.namespace, 'cancel-1');
  });

  it('leaves Jobs running on SIGTERM; the restarted worker reports the one that finished meanwhile and follows the other', { timeout: 300_000 }, async () => {
    const h = await startKubeWorker();
    server.assign(task('while-down', { FAKE_OZ_SLEEP_MS: '3000' }));
    server.assign(task('still-running', { FAKE_OZ_SLEEP_MS: '25000' }));
    await runningPod(h.namespace, 'while-down');
    await runningPod(h.namespace, 'still-running');
    h.worker.signal('SIGTERM');
    expect((await h.worker.exited).code).toBe(0);
    expect(server.messagesFor('while-down').map((m) => m.type)).toEqual(['task_claimed']);
    // The first Job completes while no worker runs.
    await until(
      async () => (await kube.job(h.namespace, jobName('while-down')))?.status?.conditions?.some((cond) => cond.type === 'Complete' && cond.status === 'True'),
      TASK_TIMEOUT,
      'the Job to complete while the worker is down',
    );
    expect(await kube.job(h.namespace, jobName('still-running'))).toBeDefined();
    const restarted = h.restart();
    await server.waitForMessage('task_completed', 'while-down', TASK_TIMEOUT);
    await restarted.waitForLog((line) => line.msg === 'Reattached to a task started before the restart' && line.taskId === 'still-running', 60_000);
    await server.waitForMessage('task_completed', 'still-running', TASK_TIMEOUT);
    await gone(h.namespace, 'while-down');
    await gone(h.namespace, 'still-running');
  });

  it('adopts the existing Job of a re-sent assignment (AlreadyExists from the real API server)', { timeout: 240_000 }, async () => {
    const h = await startKubeWorker();
    const job = buildTaskJob(
      {
        taskId: 'adopt-1',
        executionId: 'exec-adopt-1',
        task: {},
        args: ['agent', 'run', '--task-id', 'adopt-1'],
        env: ['FAKE_OZ_SLEEP_MS=4000'],
        image: c.agentImage,
        sidecars: [],
        instanceShape: undefined,
        mcpServers: undefined,
      },
      jobSettings({ workerId: h.workerId, namespace: h.namespace, podTemplate: { terminationGracePeriodSeconds: 1, containers: [] } }),
    );
    await kube.batch.createNamespacedJob({ namespace: h.namespace, body: job });
    server.assign(task('adopt-1', { FAKE_OZ_SLEEP_MS: '4000' }));
    await h.worker.waitForLog((line) => /Adopting the existing Kubernetes Job/.test(line.msg), 60_000);
    await server.waitForMessage('task_completed', 'adopt-1', TASK_TIMEOUT);
    await gone(h.namespace, 'adopt-1');
    const jobs = await kube.jobs(h.namespace);
    expect(jobs).toEqual([]);
  });

  it('runs the start-up preflight Job to completion and removes it', { timeout: 240_000 }, async () => {
    const h = await startKubeWorker({ yaml: ['preflight_timeout: 120s'] });
    await h.worker.waitForLog((line) => line.msg === 'Running the start-up preflight Job');
    await until(
      async () => !(await kube.jobs(h.namespace)).some((j) => j.metadata?.name?.startsWith('oz-preflight-')),
      60_000,
      'the preflight Job to be removed',
    );
    server.assign(task('after-preflight', {}));
    await server.waitForMessage('task_completed', 'after-preflight', TASK_TIMEOUT);
  });

  it('keeps following a task while kube-apiserver is killed and restarted', { timeout: 300_000 }, async () => {
    const h = await startKubeWorker();
    server.assign(task('apiserver-down', { FAKE_OZ_SLEEP_MS: '20000' }));
    await runningPod(h.namespace, 'apiserver-down');
    await kube.ctl('kill', 'kube-apiserver');
    await h.worker.waitForLog((line) => /watch failed; restarting it/.test(line.msg), 60_000);
    // The outage lasts a while (the scenario, not a wait for anything).
    await new Promise((r) => setTimeout(r, 3_000));
    await kube.ctl('start', 'kube-apiserver');
    await kube.ctl('wait-apiserver');
    await h.worker.waitForLog((line) => /watch resumed/.test(line.msg), 90_000);
    await server.waitForMessage('task_completed', 'apiserver-down', TASK_TIMEOUT);
    await gone(h.namespace, 'apiserver-down');
  });

  it('relists after etcd was compacted past its resourceVersion (410 Gone) and still reports the task', { timeout: 300_000 }, async () => {
    const h = await startKubeWorker();
    server.assign(task('compacted', { FAKE_OZ_SLEEP_MS: '25000' }));
    const pod = await runningPod(h.namespace, 'compacted');
    const seen = pod.metadata!.resourceVersion!;
    // Move etcd's revision well past what the worker has seen, then compact it away.
    for (let i = 0; i < 30; i++)
      await kube.core.createNamespacedConfigMap({ namespace: h.namespace, body: { metadata: { name: `churn-${i}` }, data: { i: String(i) } } });
    await kube.ctl('compact-etcd');
    // A restarted API server's watch cache starts after the compaction: resuming from `seen` is refused.
    await kube.ctl('restart', 'kube-apiserver');
    await kube.ctl('wait-apiserver');
    const gone410 = await watchOnce(kube, `/api/v1/namespaces/${h.namespace}/pods`, seen);
    expect(gone410).toMatchObject({ type: 'ERROR', code: 410 });
    await server.waitForMessage('task_completed', 'compacted', TASK_TIMEOUT);
    await gone(h.namespace, 'compacted');
  });
});

/** The first event of a watch from `resourceVersion` (an ERROR event carries the Status code). */
async function watchOnce(kube: Kube, path: string, resourceVersion: string): Promise<{ type: string; code?: number }> {
  const { Watch } = await import('@kubernetes/client-node');
  const watch = new Watch(kube.config);
  let settled = false;
  let request: { abort(): void } | undefined;
  const first = await new Promise<{ type: string; code?: number }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no watch event within 20 s')), 20_000);
    const settle = (value: { type: string; code?: number } | Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (value instanceof Error) reject(value);
      else resolve(value);
    };
    watch
      .watch(
        path,
        { resourceVersion },
        (type, object: { code?: number }) => settle({ type, ...(type === 'ERROR' ? { code: object.code } : {}) }),
        (error) => {
          if (error) settle(error as Error);
        },
      )
      .then(
        (r) => (request = r),
        (error: Error) => settle(error),
      );
  });
  // Aborting ends the stream with an AbortError through the done callback, which is ignored now.
  setImmediate(() => {
    try {
      request?.abort();
    } catch {
      // already closed
    }
  });
  return first;
}

describe.skipIf(!cluster)('setup phases from a real pod, through the local dispatch server', () => {
  const c = cluster as RealCluster;
  const cleanups: (() => Promise<unknown> | unknown)[] = [];
  oneTestAtATimeOnTheCluster(cleanups);

  it("posts Job create, scheduling, the setup command and the container start with the pod's own times; task watch shows them", {
    timeout: 240_000,
  }, async () => {
    const kube = new Kube(c);
    const namespace = await kube.testNamespace('oz-real-setup', cleanups);
    const local = await startLocalServer();
    cleanups.push(() => local.close());
    const user = await local.createUser('kate');
    const configPath = kubeWorkerConfigFile(
      c,
      // The Job and its pod stay, so the test can read the pod's own times.
      { workerId: unique('real-setup-worker'), namespace, top: ['cleanup: false'], kubernetes: ['setup_command: sleep 1'] },
      cleanups,
    );
    const worker = startWorker({
      args: ['--config-file', configPath, '--web-socket-url', local.server.webSocketUrl, '--server-root-url', local.server.httpUrl],
      env: { WARP_API_KEY: user.key },
    });
    cleanups.push(() => worker.stop());
    const client = local.as(user.key);
    const submitted = await client.submitTask({ prompt: 'time my setup' });
    const done = await local.waitForTask(client, submitted.id, ['completed', 'failed'], TASK_TIMEOUT);
    expect(done.state, worker.output.slice(-3000)).toBe('completed');

    type Posted = { event_name: string; payload: { start_ts: string; finish_ts: string; latency_ms: number; is_error: boolean } };
    const setup = await until(
      async () => {
        const found = (await client.events(submitted.id, 0, 0)).events.filter((e) => e.kind === 'setup').map((e) => e.data as Posted);
        return found.length >= 4 && found;
      },
      30_000,
      'four setup events',
    );
    const phases = Object.fromEntries(setup.map((e) => [e.event_name, e.payload]));
    expect(Object.keys(phases).sort()).toEqual([
      'setup_worker_container_start',
      'setup_worker_job_create',
      'setup_worker_pod_schedule',
      'setup_worker_setup_command',
    ]);
    for (const payload of Object.values(phases)) expect(payload.is_error).toBe(false);

    // The pod's own times, as the scheduler and kubelet wrote them.
    const [pod] = await kube.core
      .listNamespacedPod({ namespace, labelSelector: `oz-execution-id=${done.execution_id}` })
      .then((list) => list.items.filter((p) => p.status?.phase === 'Succeeded'));
    expect(pod).toBeDefined();
    const time = (value: Date | string | undefined) => new Date(value!).getTime();
    const scheduled = pod!.status!.conditions!.find((cond) => cond.type === 'PodScheduled' && cond.status === 'True')!;
    const setupStatus = pod!.status!.initContainerStatuses!.find((s) => s.name === 'setup')!.state!.terminated!;
    const taskStatus = pod!.status!.containerStatuses!.find((s) => s.name === 'task')!.state!.terminated!;
    const span = (name: string) => [Date.parse(phases[name]!.start_ts), Date.parse(phases[name]!.finish_ts)];
    expect(span('setup_worker_pod_schedule')).toEqual([time(pod!.metadata!.creationTimestamp), time(scheduled.lastTransitionTime)]);
    expect(span('setup_worker_setup_command')).toEqual([time(setupStatus.startedAt), time(setupStatus.finishedAt)]);
    expect(span('setup_worker_container_start')).toEqual([time(setupStatus.finishedAt), time(taskStatus.startedAt)]);
    // `sleep 1` in a real container: at least a second, in whole seconds as the API gives them.
    expect(phases.setup_worker_setup_command!.latency_ms).toBeGreaterThanOrEqual(1000);
    for (const name of ['setup_worker_pod_schedule', 'setup_worker_setup_command', 'setup_worker_container_start'])
      expect(phases[name]!.latency_ms % 1000).toBe(0);
    // Job create is timed by the worker around its API call, before the pod exists.
    expect(Date.parse(phases.setup_worker_job_create!.finish_ts)).toBeLessThanOrEqual(time(pod!.metadata!.creationTimestamp) + 1000);

    const watched = await runCli(['task', 'watch', submitted.id, '--server', local.server.httpUrl, '--api-key', user.key]);
    expect(watched.code, watched.stderr).toBe(0);
    const lines = watched.stdout.split('\n').filter((line) => / setup +/.test(line));
    expect(lines.map((line) => line.replace(/^\d\d:\d\d:\d\d +setup +/, '').replace(/ +[\d.]+ (ms|s)$/, ''))).toEqual(
      expect.arrayContaining(['Job create', 'pod scheduling', 'setup command', 'container start']),
    );
    expect(worker.logs.filter((l) => /setup event/i.test(String(l.msg)))).toEqual([]);
  });
});
