// The real worker (through its bin) on the Kubernetes backend, against the fake
// dispatch server and a fake Kubernetes API server on loopback.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { taskJobName } from '../../src/backends/kubernetes/names.js';
import { ClientEventsStub } from '../support/client-events-stub.js';
import { startConnectProxy } from '../support/connect-proxy.js';
import { API_KEY } from '../support/direct-worker.js';
import { assignment, FakeDispatchServer } from '../support/fake-dispatch-server.js';
import { FakeKubeApi } from '../support/fake-kube-api.js';
import { jobSettings } from '../support/kubernetes.js';
import { until } from '../support/local-server.js';
import { startWorker, tempDir, type WorkerProcess } from '../support/worker-process.js';

interface Harness {
  api: FakeKubeApi;
  server: FakeDispatchServer;
  worker: WorkerProcess;
  configPath: string;
  restart(): WorkerProcess;
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function start(
  options: { yaml?: string; args?: string[]; api?: FakeKubeApi; waitForConnection?: boolean; env?: Record<string, string>; dispatchHost?: string } = {},
): Promise<Harness> {
  const dir = tempDir('k8s');
  cleanups.push(dir.cleanup);
  const api = options.api ?? (await FakeKubeApi.start());
  if (!options.api) cleanups.push(() => api.close());
  const server = await FakeDispatchServer.start({ apiKey: API_KEY });
  cleanups.push(() => server.close());
  const configPath = join(dir.path, 'config.yaml');
  writeFileSync(
    configPath,
    [
      'worker_id: k8s-worker',
      'backend:',
      '  kubernetes:',
      '    namespace: agents',
      `    kubeconfig: ${api.writeKubeconfig(dir.path)}`,
      ...(options.yaml?.includes('preflight_timeout') ? [] : ['    preflight_timeout: 0s']),
      '    unschedulable_timeout: 200ms',
      '    image_pull_timeout: 300ms',
      ...(options.yaml ? options.yaml.split('\n').map((line) => `    ${line}`) : []),
    ].join('\n'),
  );
  const launch = (): WorkerProcess => {
    const worker = startWorker({
      args: ['--config-file', configPath, '--web-socket-url', server.url.replace('127.0.0.1', options.dispatchHost ?? '127.0.0.1'), ...(options.args ?? [])],
      env: { WARP_API_KEY: API_KEY, ...options.env },
    });
    cleanups.push(() => worker.stop());
    return worker;
  };
  const harness: Harness = { api, server, worker: launch(), configPath, restart: () => (harness.worker = launch()) };
  if (options.waitForConnection !== false) await server.waitForConnection();
  return harness;
}

const jobName = (id: string): string => taskJobName(id, `exec-${id}`);

const kubernetesDetails = (failed: { data: { failure_details?: unknown } }): Record<string, unknown> =>
  (failed.data.failure_details as { kubernetes: Record<string, unknown> }).kubernetes;

const withScenario = (id: string, scenario: string, extra: Record<string, unknown> = {}) =>
  assignment(id, { execution_id: `exec-${id}`, env_vars: { FAKE_K8S_SCENARIO: scenario }, ...extra });

describe('kubernetes backend', () => {
  it('runs a team task as a Job with team sharing, labels and a workspace, and deletes it after success', async () => {
    const h = await start();
    h.server.assign(withScenario('team-1', 'succeed', { task: { owner: { Type: 'TEAM', Id: 42 } } }));
    await h.server.waitForMessage('task_completed', 'team-1');
    expect(h.api.created).toHaveLength(1);
    const job = h.api.created[0]!;
    expect(job.metadata.name).toBe(jobName('team-1'));
    const spec = job.spec.template.spec;
    const task = spec.containers.find((c: { name: string }) => c.name === 'task');
    expect(task.args.slice(0, 6)).toEqual(['agent', 'run', '--share', 'team:edit', '--task-id', 'team-1']);
    expect(task.volumeMounts).toEqual([{ name: 'workspace', mountPath: '/workspace' }]);
    expect(spec.restartPolicy).toBe('Never');
    expect(h.api.lastDelete.get(jobName('team-1'))).toBe('Background');
    expect(h.api.jobs()).toHaveLength(0);
  });

  it('passes the argv, env and labels the Go worker would (user task: no team sharing)', async () => {
    const h = await start();
    h.server.assign(withScenario('user-1', 'hang', { task: { owner: { Type: 'USER', Id: 7 } } }));
    const job = await until(() => h.api.job(jobName('user-1')), 10_000, 'the Job');
    const task = job.spec.template.spec.containers.find((c: { name: string }) => c.name === 'task');
    expect(task.args.slice(0, 3)).toEqual(['agent', 'run', '--task-id']);
    expect(task.args).not.toContain('team:edit');
    expect(task.env).toEqual(
      expect.arrayContaining([
        { name: 'OZ_RUN_ID', value: 'user-1' },
        { name: 'OZ_WORKER_BACKEND', value: 'kubernetes' },
      ]),
    );
    expect(job.metadata.labels).toMatchObject({ 'oz-worker-id': 'k8s-worker', 'oz-task-id': 'user-1', 'oz-execution-id': 'exec-user-1' });
    expect(job.spec).toMatchObject({ backoffLimit: 0, activeDeadlineSeconds: 28800, ttlSecondsAfterFinished: 86400 });
    h.api.setJobCondition(job.metadata.name, 'Complete');
    await h.server.waitForMessage('task_completed', 'user-1');
  });

  it.each([
    ['exit:3', 'container_exit', 3, /container task in pod .* exited with code 3/],
    ['oom', 'container_oom', 137, /exited with code 137 \(SIGKILL\).*ran out of memory/],
    ['image-pull', 'image_pull', undefined, /is waiting: ImagePullBackOff.*Check the image name/],
    ['unschedulable', 'unschedulable', undefined, /is unschedulable.*Insufficient cpu/],
    ['mount', 'volume_mount', undefined, /failed to mount a volume.*image volumes are not supported/],
    ['deadline', 'active_deadline', undefined, /Job reason: DeadlineExceeded/],
    ['init-fail', 'init_container', 1, /init container setup in pod .* exited with code 1/],
  ])('reports %s as %s with a message that says why', async (scenario, reason, exitCode, message) => {
    const h = await start();
    h.server.assign(withScenario('f1', scenario));
    const failed = await h.server.waitForMessage('task_failed', 'f1');
    expect(failed.data.failure_reason).toBe(reason);
    expect(failed.data.exit_code).toBe(exitCode);
    expect(failed.data.message).toMatch(message);
  });

  it.each([
    ['60s', 'volume_mount', /failed to mount a volume.*The mount kept failing for volume_mount_timeout \(60 s\)/],
    // The default, 2m: 90 s of failures is not enough; the task is failed by the Job instead (here: its deadline), explained by the mount.
    [undefined, 'volume_mount', /failed to mount a volume.*image volumes are not supported/],
  ])(
    'fails a task on mount failures once they have lasted volume_mount_timeout %s',
    async (timeout, reason, message) => {
      const h = await start(timeout ? { yaml: `volume_mount_timeout: ${timeout}` } : {});
      h.server.assign(withScenario('m1', 'mount-for-90s'));
      if (!timeout) {
        // The pod's events are read 10 s into the mount, then 10 s later: once the second read was asked for,
        // the first one's answer has been weighed, and the task still runs under the 2m default.
        const job = await until(() => h.api.job(jobName('m1')), 10_000, 'the Job');
        const eventLists = () => h.api.requests.filter((r) => r.method === 'GET' && r.path.endsWith('/events') && !r.watch).length;
        await until(() => eventLists() >= 2, 40_000, 'two reads of the pod events');
        expect(h.server.messagesFor('m1').map((m) => m.type)).toEqual(['task_claimed']);
        h.api.setJobCondition(job.metadata.name, 'Failed', 'DeadlineExceeded', 'Job was active longer than specified deadline');
      }
      const failed = await h.server.waitForMessage('task_failed', 'm1', 30_000);
      expect(failed.data.failure_reason).toBe(reason);
      expect(failed.data.message).toMatch(message);
    },
    60_000,
  );

  it('ignores a native sidecar ending with SIGTERM when the task succeeded', async () => {
    const h = await start();
    h.server.assign(withScenario('sc1', 'sidecar-sigterm'));
    await h.server.waitForMessage('task_completed', 'sc1');
  });

  it('sends failure details: the Job, the pod, its failing container and the recent events of both, no messages or namespace', async () => {
    const h = await start();
    h.server.assign(withScenario('oom-1', 'hang'));
    const pod = await until(() => h.api.podOf(jobName('oom-1')), 10_000, 'the pod');
    const job = h.api.job(jobName('oom-1'))!;
    h.api.addEvent(pod, 'BackOff', 'Warning', { count: 2, firstTimestamp: '2026-11-22T11:59:00Z', lastTimestamp: '2026-11-22T11:59:30Z' });
    h.api.addEvent(pod, 'Pulled', 'Normal');
    h.api.addEvent(job, 'SuccessfulCreate', 'Normal');
    h.api.setPodStatus(pod.metadata.name, {
      phase: 'Failed',
      conditions: [{ type: 'Ready', status: 'False', reason: 'PodFailed', lastTransitionTime: '2026-11-22T12:00:00Z' }],
      containerStatuses: [
        {
          name: 'task',
          ready: false,
          restartCount: 0,
          image: 'ubuntu:22.04',
          imageID: 'docker.io/library/ubuntu@sha256:abc',
          containerID: 'containerd://runtime-id',
          state: {
            terminated: { exitCode: 137, reason: 'OOMKilled', message: 'killed', startedAt: '2026-11-22T11:59:50Z', finishedAt: '2026-11-22T12:00:00Z' },
          },
        },
      ],
    });
    const failed = await h.server.waitForMessage('task_failed', 'oom-1');
    expect(failed.data).toMatchObject({ failure_reason: 'container_oom', exit_code: 137 });
    const details = kubernetesDetails(failed);
    expect(details).toEqual({
      schema_version: 1,
      observation_source: 'pod_watch',
      observed_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      job: { name: jobName('oom-1'), uid: job.metadata.uid },
      pod: {
        name: pod.metadata.name,
        uid: pod.metadata.uid,
        phase: 'Failed',
        conditions: [{ type: 'Ready', status: 'False', reason: 'PodFailed', last_transition_time: '2026-11-22T12:00:00.000Z' }],
      },
      container: {
        kind: 'regular',
        name: 'task',
        state: 'terminated',
        termination_reason: 'OOMKilled',
        raw_exit_code: 137,
        normalized_exit_code: 137,
        started_at: '2026-11-22T11:59:50.000Z',
        finished_at: '2026-11-22T12:00:00.000Z',
      },
      events: [{ type: 'Warning', reason: 'BackOff', count: 2, first_observed_at: '2026-11-22T11:59:00.000Z', last_observed_at: '2026-11-22T11:59:30.000Z' }],
    });
    // Field order as the Go worker writes it.
    expect(Object.keys(failed.data)).toEqual(['task_id', 'execution_id', 'message', 'failure_reason', 'exit_code', 'failure_details']);
    expect(JSON.stringify(failed.data.failure_details)).not.toMatch(/agents|node-1|runtime-id|ubuntu|message|killed/);
  });

  it.each([
    ['deadline', 'job_watch', { job: { conditions: [{ type: 'Failed', status: 'True', reason: 'DeadlineExceeded' }] } }],
    ['init-fail', 'pod_watch', { container: { kind: 'init', name: 'setup', state: 'terminated', raw_exit_code: 1, normalized_exit_code: 1 } }],
    ['image-pull', 'safety_poll', { container: { kind: 'regular', name: 'task', state: 'waiting', waiting_reason: 'ImagePullBackOff' } }],
    ['unschedulable', 'safety_poll', { pod: { phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable' }] } }],
    ['mount', 'safety_poll', { events: [{ type: 'Warning', reason: 'FailedMount' }] }],
  ])('sends the failure details of %s, observed by the %s', async (scenario, source, expected) => {
    const h = await start();
    h.server.assign(withScenario('d1', scenario));
    const failed = await h.server.waitForMessage('task_failed', 'd1');
    expect(kubernetesDetails(failed)).toMatchObject({ schema_version: 1, observation_source: source, ...expected });
  });

  it('names the Job it could not create in the failure details', async () => {
    const h = await start();
    h.api.fail('POST', /\/jobs$/, 403, 1, 'jobs.batch is forbidden: User cannot create resource');
    h.server.assign(withScenario('nocreate', 'succeed'));
    const failed = await h.server.waitForMessage('task_failed', 'nocreate');
    expect(failed.data.failure_reason).toBe('job_create');
    expect(failed.data.failure_details).toEqual({
      kubernetes: { schema_version: 1, observed_at: expect.any(String), job: { name: jobName('nocreate') } },
    });
  });

  it('reports a failure without its events when they cannot be listed, saying so once per list', async () => {
    const h = await start();
    h.api.fail('GET', /\/events$/, 500, 100, 'etcdserver: request timed out');
    h.server.assign(withScenario('noevents', 'exit:3'));
    const failed = await h.server.waitForMessage('task_failed', 'noevents');
    expect(kubernetesDetails(failed)).toMatchObject({ pod: { phase: expect.any(String) }, container: { name: 'task', raw_exit_code: 3 } });
    expect(kubernetesDetails(failed)).not.toHaveProperty('events');
    const warning = (l: { msg: string }) => /Could not list the namespace's events; failed tasks are reported without/.test(l.msg);
    for (const selector of ['type=Warning', 'reason=Killing']) await h.worker.waitForLog((l) => warning(l) && l.selector === selector);
    expect(h.worker.logs.filter(warning)).toHaveLength(2);
  });

  it('lists no events for tasks that succeed', async () => {
    const h = await start();
    for (const id of ['ok1', 'ok2']) {
      h.server.assign(withScenario(id, 'succeed'));
      await h.server.waitForMessage('task_completed', id);
    }
    expect(h.api.requests.filter((r) => r.path.endsWith('/events'))).toEqual([]);
  });

  it.each([
    ['unschedulable', 'its pod never ran'],
    ['image-pull', 'its pod waits for an image'],
    ['exit-beside-helper', 'the task exited while another container runs'],
  ])('keeps the Job of a failed task (%s: %s) and expires it, so no pod is left running', async (scenario) => {
    const h = await start();
    const id = `keep-${scenario}`;
    h.server.assign(withScenario(id, scenario));
    await h.server.waitForMessage('task_failed', id);
    const name = jobName(id);
    const expired = await until(
      () => h.api.job(name)?.status?.conditions?.find((c: { reason?: string }) => c.reason === 'DeadlineExceeded') && h.api.job(name),
      5_000,
      'the Job to be expired',
    );
    expect(expired.metadata.annotations?.['oz-worker.dev/reported']).toBe('true');
    expect(expired.spec).toMatchObject({ activeDeadlineSeconds: 1, parallelism: 0, suspend: false, ttlSecondsAfterFinished: 86400 });
    expect(h.api.pods().filter((p) => p.metadata.labels['job-name'] === name)).toEqual([]);
    const expiry = h.api.patches.find((p) => p.name === name && p.body.includes('activeDeadlineSeconds'));
    expect(expiry?.contentType).toBe('application/merge-patch+json');
    // One write: the expiry, with the reported mark (a second write would race the Job controller).
    expect(expiry?.body).toMatch(
      /^\{"metadata":\{"annotations":\{"oz-worker.dev\/reported":"true"\},"resourceVersion":"\d+","uid":"[0-9a-f-]{36}"\},"spec":\{"activeDeadlineSeconds":1,"parallelism":0,"suspend":false\}\}$/,
    );
    expect(h.api.patches.filter((p) => p.name === name)).toHaveLength(1);
    expect(h.api.lastDelete.has(name)).toBe(false);
    // (The log scrubs the scenario name, an assignment env value, out of the Job name.)
    await h.worker.waitForLog((l) => /^Requested expiration of abandoned Kubernetes Job oz-task-.*; retaining it according to its TTL$/.test(l.msg));
  });

  it('keeps the Job of a task whose pod has stopped as it is: no expiry, the failed pod stays for its logs', async () => {
    const h = await start();
    h.server.assign(withScenario('late', 'exit:3'));
    await h.server.waitForMessage('task_failed', 'late');
    const kept = await until(
      () => h.api.job(jobName('late'))?.metadata.annotations?.['oz-worker.dev/reported'] === 'true' && h.api.job(jobName('late')),
      5_000,
      'the reported mark',
    );
    expect(kept.spec.activeDeadlineSeconds).toBe(28800);
    expect(h.api.patches.filter((p) => p.name === jobName('late') && p.body.includes('activeDeadlineSeconds'))).toEqual([]);
    expect(h.api.podOf(jobName('late'))).toBeDefined();
  });

  it('on cancel deletes the Job (foreground) and reports CANCELLED', async () => {
    const h = await start();
    h.server.assign(withScenario('c1', 'hang'));
    await until(() => h.api.podOf(jobName('c1')), 10_000, 'the pod');
    h.server.cancel('c1');
    const done = await h.server.waitForMessage('task_completed', 'c1');
    expect(done.data.task_state).toBe('CANCELLED');
    expect(h.api.lastDelete.get(jobName('c1'))).toBe('Foreground');
    expect(h.api.job(jobName('c1'))).toBeUndefined();
  });

  it('keeps following a task through dropped watches and 410 Gone, with one watch per kind', async () => {
    const h = await start();
    h.server.assign(withScenario('w1', 'hang'));
    await until(() => h.api.podOf(jobName('w1')), 10_000, 'the pod');
    expect(h.api.openWatches).toBe(2);
    h.api.expireHistory();
    h.api.dropWatches();
    await until(() => h.api.openWatches === 2, 10_000, 'the watches to come back');
    const relisted = h.api.requests.filter((r) => r.method === 'GET' && !r.watch && r.path.endsWith('/jobs'));
    expect(relisted.length).toBeGreaterThanOrEqual(2);
    h.api.setJobCondition(jobName('w1'), 'Complete');
    await h.server.waitForMessage('task_completed', 'w1');
  });

  it('leaves Jobs running on shutdown; a restarted worker reattaches and reports the result', async () => {
    const h = await start();
    h.server.assign(withScenario('r1', 'hang'));
    await until(() => h.api.podOf(jobName('r1')), 10_000, 'the pod');
    h.worker.signal('SIGTERM');
    expect((await h.worker.exited).code).toBe(0);
    expect(h.api.job(jobName('r1'))).toBeDefined();
    expect(h.server.messagesFor('r1').map((m) => m.type)).toEqual(['task_claimed']);
    // The Job finishes while no worker is running.
    h.api.setJobCondition(jobName('r1'), 'Complete');
    h.restart();
    const done = await h.server.waitForMessage('task_completed', 'r1');
    expect(done.data.task_id).toBe('r1');
    await until(() => h.api.job(jobName('r1')) === undefined, 5_000, 'the finished Job to be removed');
  });

  it('reattaches after being killed mid-task and reports when the Job ends', async () => {
    const h = await start();
    h.server.assign(withScenario('k1', 'hang'));
    await until(() => h.api.podOf(jobName('k1')), 10_000, 'the pod');
    h.worker.signal('SIGKILL');
    await h.worker.exited;
    h.restart();
    await h.worker.waitForLog((l) => l.msg === 'Reattached to a task started before the restart' && l.taskId === 'k1');
    h.api.setPodStatus(h.api.podOf(jobName('k1'))!.metadata.name, {
      phase: 'Failed',
      containerStatuses: [{ name: 'task', ready: false, restartCount: 0, image: 'x', imageID: '', state: { terminated: { exitCode: 2, reason: 'Error' } } }],
    });
    const failed = await h.server.waitForMessage('task_failed', 'k1');
    expect(failed.data).toMatchObject({ failure_reason: 'container_exit', exit_code: 2 });
  });

  it('adopts an existing Job of the same execution instead of failing on AlreadyExists', async () => {
    const h = await start();
    const { buildTaskJob } = await import('../../src/backends/kubernetes/job-builder.js');
    const job = buildTaskJob(
      {
        taskId: 'a1',
        executionId: 'exec-a1',
        task: {},
        args: ['agent', 'run'],
        env: [],
        image: 'ubuntu:22.04',
        sidecars: [],
        instanceShape: undefined,
        mcpServers: undefined,
      },
      jobSettings({ workerId: 'k8s-worker', activeDeadlineSeconds: undefined, ttlSecondsAfterFinished: undefined }),
    );
    h.api.insertJob(job as never);
    h.server.assign(withScenario('a1', 'hang'));
    await h.worker.waitForLog((l) => /Adopting the existing Kubernetes Job/.test(l.msg));
    h.api.setJobCondition(job.metadata!.name!, 'Complete');
    await h.server.waitForMessage('task_completed', 'a1');
  });

  it('retries a Job create the API server throttles (429 with Retry-After), as client-go does', async () => {
    const h = await start();
    h.api.fail('POST', /\/jobs$/, 429, 2);
    h.server.assign(withScenario('throttled', 'succeed'));
    await h.server.waitForMessage('task_completed', 'throttled', 20_000);
    expect(h.api.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/jobs')).length).toBe(3);
  });

  it('uses at most 3 writes per task and two watches however many tasks run', async () => {
    const h = await start();
    const ids = Array.from({ length: 20 }, (_, i) => `m${i}`);
    for (const id of ids) h.server.assign(withScenario(id, 'hang'));
    await until(() => ids.every((id) => h.api.podOf(jobName(id))), 15_000, 'all pods');
    expect(h.api.openWatches).toBe(2);
    for (const id of ids) h.api.setJobCondition(jobName(id), 'Complete');
    for (const id of ids) await h.server.waitForMessage('task_completed', id);
    expect(h.api.writes(/\/jobs/).length / ids.length).toBeLessThanOrEqual(3);
  });

  it('sends its API calls over kept-alive connections, not one connection per call', async () => {
    const h = await start();
    const ids = Array.from({ length: 8 }, (_, i) => `ka${i}`);
    const startUp = h.api.requests.length;
    for (const id of ids) {
      h.server.assign(withScenario(id, 'succeed'));
      await h.server.waitForMessage('task_completed', id);
    }
    await until(() => h.api.jobs().length === 0, 5_000, 'the Jobs to be deleted');
    // A create and a delete per task, the tasks one after another: one connection, two while a delete overlaps the next create.
    const calls = h.api.requests.slice(startUp).filter((r) => !r.watch);
    expect(calls.length).toBeGreaterThanOrEqual(2 * ids.length);
    expect(new Set(calls.map((r) => r.connection)).size).toBeLessThanOrEqual(2);
  });
});

describe('kubernetes start-up', () => {
  it('refuses an unknown pod_template field, naming it', async () => {
    const h = await start({ yaml: 'pod_template:\n  nodeSelecter: {pool: agents}', waitForConnection: false });
    const exit = await h.worker.exited;
    expect(exit.code).toBe(1);
    expect(h.worker.output).toMatch(/unknown field backend\.kubernetes\.pod_template\.nodeSelecter \(did you mean nodeSelector\?\)/);
  });

  it('names every missing permission', async () => {
    const api = await FakeKubeApi.start();
    cleanups.push(() => api.close());
    api.denied.add('watch pods');
    api.denied.add('delete jobs');
    const h = await start({ api, waitForConnection: false });
    expect((await h.worker.exited).code).toBe(1);
    expect(h.worker.output).toMatch(/lacks permissions in namespace "agents": delete batch\/jobs .*watch pods .*k8s\/role\.yaml/);
  });

  it('runs the preflight Job to completion, and fails clearly when admission refuses its pod', async () => {
    const api = await FakeKubeApi.start();
    cleanups.push(() => api.close());
    const ok = await start({ api, yaml: 'preflight_timeout: 10s' });
    expect(api.requests.some((r) => r.method === 'POST' && /oz-preflight|jobs$/.test(r.path))).toBe(true);
    await until(() => !api.jobs().some((j) => j.metadata.name.startsWith('oz-preflight-')), 5_000, 'the preflight Job to be removed');
    await ok.worker.stop();

    api.preflight = 'forbidden';
    const refused = await start({ api, yaml: 'preflight_timeout: 10s', waitForConnection: false });
    expect((await refused.worker.exited).code).toBe(1);
    expect(refused.worker.output).toMatch(/startup preflight failed .*could not create a Pod: pods .* is forbidden: violates PodSecurity/);
  });

  it('reaches the API server through HTTP_PROXY, as client-go does, and directly when NO_PROXY names it', async () => {
    const proxy = await startConnectProxy();
    cleanups.push(() => proxy.close());
    const proxyUrl = proxy.url;

    // The dispatch server is dialled as `localhost` and exempted, so only the API traffic meets the proxy.
    const proxied = await start({ env: { HTTP_PROXY: proxyUrl, HTTPS_PROXY: proxyUrl, NO_PROXY: 'localhost' }, dispatchHost: 'localhost' });
    proxied.server.assign(withScenario('via-proxy', 'succeed'));
    await proxied.server.waitForMessage('task_completed', 'via-proxy');
    const api = new URL(proxied.api.url);
    expect(proxy.tunnels.length).toBeGreaterThan(0);
    expect(new Set(proxy.tunnels)).toEqual(new Set([api.host]));

    proxy.tunnels.length = 0;
    const apiHost = api.hostname;
    const direct = await start({ env: { HTTP_PROXY: proxyUrl, HTTPS_PROXY: proxyUrl, NO_PROXY: `localhost,${apiHost}` }, dispatchHost: 'localhost' });
    direct.server.assign(withScenario('no-proxy', 'succeed'));
    await direct.server.waitForMessage('task_completed', 'no-proxy');
    expect(proxy.tunnels).toEqual([]);
  });
});

describe('kubernetes setup phases reported to the server', () => {
  const stubs: ClientEventsStub[] = [];
  afterEach(async () => {
    for (const stub of stubs.splice(0)) await stub.close();
  });
  async function stub(mode: 'ok' | 'hang'): Promise<ClientEventsStub> {
    const created = await ClientEventsStub.start(mode);
    stubs.push(created);
    return created;
  }
  const keyed = (id: string, scenario: string, extra: Record<string, unknown> = {}) =>
    assignment(id, { execution_id: `exec-${id}`, env_vars: { FAKE_K8S_SCENARIO: scenario, WARP_API_KEY: `task-key-${id}` }, ...extra });

  it("posts Job create, then scheduling, sidecar preparation, setup command and container start from the pod's own times, with no extra API request", async () => {
    const events = await stub('ok');
    const h = await start({ yaml: 'setup_command: echo ready', args: ['--server-root-url', events.url] });
    const before = h.api.requests.length;
    h.server.assign(keyed('k-1', 'timed', { sidecar_image: 'docker.io/warpdotdev/warp-agent:latest' }));
    await h.server.waitForMessage('task_completed', 'k-1');
    const posted = await events.waitFor('k-1', 5);
    const phases = Object.fromEntries(posted.map((r) => [r.body.event_name, r.body.payload]));
    expect(Object.keys(phases).sort()).toEqual([
      'setup_worker_container_start',
      'setup_worker_job_create',
      'setup_worker_pod_schedule',
      'setup_worker_setup_command',
      'setup_worker_sidecar_prep',
    ]);
    // The fake kubelet's times (its steps are 30 ms apart, so these are not when the watch saw them): scheduled 1 s after
    // creation, the copy and the setup command 1 s each, the task 2 s after the last init ended.
    expect([
      phases.setup_worker_pod_schedule!.latency_ms,
      phases.setup_worker_sidecar_prep!.latency_ms,
      phases.setup_worker_setup_command!.latency_ms,
      phases.setup_worker_container_start!.latency_ms,
    ]).toEqual([1000, 1000, 1000, 2000]);
    expect(Date.parse(phases.setup_worker_container_start!.start_ts)).toBe(Date.parse(phases.setup_worker_setup_command!.finish_ts));
    for (const request of posted) {
      expect(request.headers).toMatchObject({ authorization: 'Bearer task-key-k-1', 'x-warp-cloud-agent-id': 'k-1' });
      expect(request.body.payload.is_error).toBe(false);
    }
    // The task's API calls are its create and its delete: the phases come from the watch it already has.
    await until(() => h.api.jobs().length === 0, 5_000, 'the Job to be deleted');
    const calls = h.api.requests.slice(before).filter((r) => !r.watch);
    expect(calls.map((r) => r.method)).toEqual(['POST', 'DELETE']);
    expect(h.worker.output).not.toContain('task-key-k-1');
  });

  it("still posts the pod's phases when the Job's end arrives before the pod's last update (two watches), after the outcome", async () => {
    const events = await stub('ok');
    const h = await start({ args: ['--server-root-url', events.url] });
    h.api.podWatchDelayMs = 400;
    h.server.assign(keyed('k-late', 'timed'));
    await h.server.waitForMessage('task_completed', 'k-late');
    const posted = await events.waitFor('k-late', 3);
    expect(posted.map((r) => r.body.event_name).sort()).toEqual(['setup_worker_container_start', 'setup_worker_job_create', 'setup_worker_pod_schedule']);
  });

  it('posts a Job the API server refused as a failed Job create', async () => {
    const events = await stub('ok');
    const h = await start({ args: ['--server-root-url', events.url] });
    h.api.fail('POST', /\/jobs$/, 403, 1, 'jobs.batch is forbidden');
    h.server.assign(keyed('k-2', 'succeed'));
    const failed = await h.server.waitForMessage('task_failed', 'k-2');
    expect(failed.data.failure_reason).toBe('job_create');
    const [posted] = await events.waitFor('k-2', 1);
    expect(posted!.body).toMatchObject({ event_name: 'setup_worker_job_create', payload: { is_error: true } });
  });

  it('a hanging endpoint: the task completes while the reports still wait for their answer', async () => {
    const events = await stub('hang');
    const h = await start({ args: ['--server-root-url', events.url] });
    h.server.assign(keyed('k-3', 'timed'));
    await h.server.waitForMessage('task_completed', 'k-3');
    const posted = await events.waitFor('k-3', 3);
    expect(posted.every((r) => !r.answered)).toBe(true);
  });
});
