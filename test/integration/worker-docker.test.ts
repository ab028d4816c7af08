// The real worker (through its bin) on the Docker backend, against the fake
// dispatch server and the in-repo fake Engine API on a unix socket.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { absentServerRoot, ClientEventsStub, type StubMode } from '../support/client-events-stub.js';
import { assignment, FakeDispatchServer } from '../support/fake-dispatch-server.js';
import { FakeDockerEngine } from '../support/fake-docker-engine.js';
import { startWorker, tempDir, type WorkerProcess } from '../support/worker-process.js';

const API_KEY = 'wk_docker_it_secret_0123';
const L = (name: string) => `dev.warp.oz-worker.${name}`;

interface Harness {
  server: FakeDispatchServer;
  engine: FakeDockerEngine;
  worker: WorkerProcess;
  dir: { path: string; cleanup: () => void };
  close(): Promise<void>;
}

async function start(options: { engine?: FakeDockerEngine; args?: string[]; yaml?: string } = {}): Promise<Harness> {
  const server = await FakeDispatchServer.start({ apiKey: API_KEY });
  const engine = options.engine ?? (await FakeDockerEngine.start());
  const dir = tempDir('docker-it');
  const config = join(dir.path, 'config.yaml');
  writeFileSync(config, ['worker_id: docker-it', 'backend:', '  docker:', ...(options.yaml ?? '').split('\n').map((l) => `    ${l}`)].join('\n'));
  const worker = startWorker({
    args: ['--config-file', config, '--web-socket-url', server.url, ...(options.args ?? [])],
    env: { WARP_API_KEY: API_KEY, DOCKER_HOST: engine.dockerHost, HOME: dir.path },
  });
  return {
    server,
    engine,
    worker,
    dir,
    async close() {
      await worker.stop();
      await server.close();
      await engine.close();
      dir.cleanup();
    },
  };
}

describe('worker on the Docker backend', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await start({ args: ['-e', 'FROM_FLAG=yes'], yaml: 'volumes:\n  - "/data:/data:ro"' });
    await h.server.waitForConnection();
  });
  afterAll(() => h.close());

  it('runs a task in a labelled container, streams its output to the log and removes it', async () => {
    h.server.assign(
      assignment('ok-1', {
        task: { owner: { Type: 'TEAM', Id: 42 } },
        sidecar_image: 'docker.io/warpdotdev/warp-agent:latest',
        env_vars: { GITHUB_ACCESS_TOKEN: 'ghp_docker_task_secret' },
        instance_shape: { vcpus: 2, memory_gb: 4 },
      }),
    );
    const done = await h.server.waitForMessage('task_completed', 'ok-1');
    expect(done.data).toEqual({ task_id: 'ok-1', execution_id: 'exec-ok-1', message: 'Task completed successfully' });
    const container = h.engine.containerFor('ok-1')!;
    expect(container.Labels).toMatchObject({ [L('worker-id')]: 'docker-it', [L('run-id')]: 'ok-1', [L('execution-id')]: 'exec-ok-1' });
    expect(container.body).toMatchObject({
      Image: 'ubuntu:22.04',
      Cmd: [
        '/agent/entrypoint.sh',
        'agent',
        'run',
        '--share',
        'team:edit',
        '--task-id',
        'ok-1',
        '--sandboxed',
        '--server-root-url',
        'https://app.warp.dev',
        '--idle-on-complete',
      ],
      WorkingDir: '/workspace',
      HostConfig: { NanoCpus: 2e9, Memory: 4 * 2 ** 30 },
    });
    const binds = (container.body.HostConfig as { Binds: string[] }).Binds;
    expect(binds[0]).toMatch(/^oz-sidecar-warpdotdev-warp-agent-[0-9a-f]{12}-[0-9a-f]{8}:\/agent:ro$/);
    expect(binds[1]).toBe('/data:/data:ro');
    expect(container.Env).toEqual(expect.arrayContaining(['TASK_ID=ok-1', 'GITHUB_ACCESS_TOKEN=ghp_docker_task_secret', 'FROM_FLAG=yes', 'OZ_RUN_ID=ok-1']));
    const line = await h.worker.waitForLog((l) => l.msg === 'hello from the agent');
    expect(line).toMatchObject({ taskId: 'ok-1', stream: 'stdout' });
    await h.engine.until(() => h.engine.removed.has(container.Id), 5_000, 'the container to be removed');
    // The task's secret never reaches the worker's log.
    expect(h.worker.output).not.toContain('ghp_docker_task_secret');
  });

  it('reports a non-zero exit as task_failed with its exit code', async () => {
    h.server.assign(assignment('exit-1', { env_vars: { FAKE_EXIT: '3' } }));
    const failed = await h.server.waitForMessage('task_failed', 'exit-1');
    expect(failed.data).toEqual({
      task_id: 'exit-1',
      execution_id: 'exec-exit-1',
      message: 'Failed to execute task: container exited with non-zero status: 3',
      failure_reason: 'container_exit',
      exit_code: 3,
    });
  });

  it('reports an OOM kill as container_oom', async () => {
    h.server.assign(assignment('oom-1', { env_vars: { FAKE_OOM: '1' }, instance_shape: { memory_gb: 1 } }));
    const failed = await h.server.waitForMessage('task_failed', 'oom-1');
    expect(failed.data).toMatchObject({ failure_reason: 'container_oom', exit_code: 137 });
    expect(failed.data.message).toMatch(/^Failed to execute task: container exited with non-zero status: 137 \(out of memory/);
  });

  it('fails clearly when the registry reports an error inside the pull stream', async () => {
    h.engine.pullErrors.set('registry.internal/team/missing:1', 'manifest for registry.internal/team/missing:1 not found: manifest unknown');
    h.server.assign(assignment('pull-1', { docker_image: 'registry.internal/team/missing:1' }));
    const failed = await h.server.waitForMessage('task_failed', 'pull-1');
    expect(failed.data).toEqual({
      task_id: 'pull-1',
      execution_id: 'exec-pull-1',
      message:
        'Failed to execute task: failed to pull image registry.internal/team/missing:1: manifest for registry.internal/team/missing:1 not found: manifest unknown; check that the image name and tag exist in the registry',
      failure_reason: 'image_pull',
    });
    expect(h.engine.containerFor('pull-1')).toBeUndefined();
  });

  it('cancels: stops the container with a grace period, reports CANCELLED, removes it', async () => {
    h.server.assign(assignment('cancel-1', { env_vars: { FAKE_RUN: 'forever' } }));
    const container = await h.engine.until(
      () => h.engine.containerFor('cancel-1')?.started && h.engine.containerFor('cancel-1'),
      10_000,
      'the container to start',
    );
    h.server.cancel('cancel-1');
    const done = await h.server.waitForMessage('task_completed', 'cancel-1');
    expect(done.data).toEqual({ task_id: 'cancel-1', execution_id: 'exec-cancel-1', message: 'Task cancelled by user request.', task_state: 'CANCELLED' });
    expect(container.stops).toEqual([10]);
    expect(container.ExitCode).toBe(143);
    await h.engine.until(() => h.engine.removed.has(container.Id), 5_000, 'the container to be removed');
  });

  it('gives each task its own read-write sidecar volume and removes it with the task', async () => {
    const rw = [{ image: 'registry.internal/tools:1', mount_path: '/mnt/tools', read_write: true }];
    h.server.assign(assignment('rw-1', { additional_sidecars: rw }));
    h.server.assign(assignment('rw-2', { additional_sidecars: rw }));
    await h.server.waitForMessage('task_completed', 'rw-1');
    await h.server.waitForMessage('task_completed', 'rw-2');
    const volumeOf = (id: string) => (h.engine.containerFor(id)!.body.HostConfig as { Binds: string[] }).Binds[0]!.split(':')[0]!;
    expect(volumeOf('rw-1')).not.toBe(volumeOf('rw-2'));
    expect(
      h.engine
        .calls('POST', /^\/volumes\/create$/)
        .map((r) => JSON.parse(r.body) as { Name: string; Labels: Record<string, string> })
        .find((v) => v.Name === volumeOf('rw-1'))?.Labels,
    ).toMatchObject({
      [L('run-id')]: 'rw-1',
      [L('role')]: 'task-sidecar',
    });
    await h.engine.until(() => !h.engine.volumes.has(volumeOf('rw-1')) && !h.engine.volumes.has(volumeOf('rw-2')), 5_000, 'the per-task volumes to be removed');
  });
});

describe('worker on the Docker backend, starting and stopping', () => {
  it('on SIGTERM stops the running container, reports graceful_shutdown and removes it', async () => {
    const h = await start();
    try {
      await h.server.waitForConnection();
      h.server.assign(assignment('shut-1', { env_vars: { FAKE_RUN: 'forever' } }));
      const container = await h.engine.until(
        () => h.engine.containerFor('shut-1')?.started && h.engine.containerFor('shut-1'),
        10_000,
        'the container to start',
      );
      h.worker.signal('SIGTERM');
      const failed = await h.server.waitForMessage('task_failed', 'shut-1');
      expect(failed.data.failure_reason).toBe('graceful_shutdown');
      expect((await h.worker.exited).code).toBe(0);
      expect(container.stops).toEqual([10]);
      expect(h.engine.removed.has(container.Id)).toBe(true);
    } finally {
      await h.close();
    }
  });

  it('removes leftovers of its earlier run and keeps other workers’ containers', async () => {
    const engine = await FakeDockerEngine.start();
    const old = engine.addContainer({
      name: 'oz-task-old',
      labels: { [L('worker-id')]: 'docker-it', [L('role')]: 'task', [L('run-id')]: 'old' },
      running: true,
    });
    const other = engine.addContainer({ name: 'oz-task-other', labels: { [L('worker-id')]: 'another-worker', [L('role')]: 'task' }, running: true });
    engine.addVolume('half-filled', { [L('worker-id')]: 'docker-it', [L('role')]: 'sidecar-data' });
    const h = await start({ engine });
    try {
      await h.server.waitForConnection();
      expect(h.engine.containers.has(old.Id)).toBe(false);
      expect(h.engine.containers.has(other.Id)).toBe(true);
      expect(h.engine.volumes.has('half-filled')).toBe(false);
      await h.worker.waitForLog((l) => l.msg === 'Removed leftover container oz-task-old (run old) from an earlier run of this worker');
    } finally {
      await h.close();
    }
  });

  it('exits with a clear message when Docker is not running', async () => {
    const dir = tempDir('docker-missing');
    try {
      const worker = startWorker({
        args: ['--worker-id', 'w', '--backend', 'docker', '--web-socket-url', 'ws://127.0.0.1:9/'],
        env: { WARP_API_KEY: API_KEY, DOCKER_HOST: `unix://${dir.path}/docker.sock` },
      });
      const { code } = await worker.exited;
      expect(code).toBe(1);
      expect(worker.output).toMatch(
        /failed to reach Docker daemon: Docker socket .*docker\.sock does not exist: Docker isn't running here, or it listens elsewhere; start Docker, or set DOCKER_HOST/,
      );
    } finally {
      dir.cleanup();
    }
  });
});

describe('worker on the Docker backend: setup phases reported to the server', () => {
  const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
  const stubs: ClientEventsStub[] = [];
  const harnesses: Harness[] = [];
  afterEach(async () => {
    for (const harness of harnesses.splice(0)) await harness.close();
    for (const stub of stubs.splice(0)) await stub.close();
  });

  async function withEndpoint(serverRoot: string): Promise<Harness> {
    const harness = await start({ args: ['--server-root-url', serverRoot] });
    harnesses.push(harness);
    await harness.server.waitForConnection();
    return harness;
  }
  async function stub(mode: StubMode): Promise<ClientEventsStub> {
    const created = await ClientEventsStub.start(mode);
    stubs.push(created);
    return created;
  }
  const keyed = (id: string, extra: Record<string, unknown> = {}) =>
    assignment(id, { env_vars: { WARP_API_KEY: `task-key-${id}`, WARP_WORKLOAD_TOKEN: `wl-${id}` }, ...extra });

  it("posts image pull, sidecar preparation and container start with the task's key and Go's headers and body", async () => {
    const events = await stub('ok');
    const h = await withEndpoint(events.url);
    h.server.assign(keyed('ph-1', { sidecar_image: 'docker.io/warpdotdev/warp-agent:latest' }));
    await h.server.waitForMessage('task_completed', 'ph-1');
    const posted = await events.waitFor('ph-1', 3);
    expect(posted.map((r) => r.body.event_name).sort()).toEqual(['setup_worker_container_start', 'setup_worker_image_pull', 'setup_worker_sidecar_prep']);
    for (const request of posted) {
      expect(request.method).toBe('POST');
      expect(request.headers).toMatchObject({
        'content-type': 'application/json',
        authorization: 'Bearer task-key-ph-1',
        'x-warp-cloud-agent-id': 'ph-1',
        'x-warp-ambient-workload-token': 'wl-ph-1',
      });
      const { body } = request;
      expect(Object.keys(body)).toEqual(['event_uuid', 'event_name', 'timestamp', 'payload']);
      expect(body.event_uuid).toMatch(UUID);
      expect(body.timestamp).toBe(body.payload.finish_ts);
      expect(body.payload.is_error).toBe(false);
      expect(body.payload.latency_ms).toBe(Date.parse(body.payload.finish_ts) - Date.parse(body.payload.start_ts));
    }
    // One phase after the other: each ends before the next starts.
    const byName = Object.fromEntries(posted.map((r) => [r.body.event_name, r.body.payload]));
    expect(Date.parse(byName.setup_worker_image_pull!.finish_ts)).toBeLessThanOrEqual(Date.parse(byName.setup_worker_sidecar_prep!.start_ts));
    expect(Date.parse(byName.setup_worker_sidecar_prep!.finish_ts)).toBeLessThanOrEqual(Date.parse(byName.setup_worker_container_start!.start_ts));
    expect(h.worker.output).not.toContain('task-key-ph-1');

    // Without a workload token, no such header; without sidecars, no sidecar phase.
    h.server.assign(assignment('ph-2', { env_vars: { WARP_API_KEY: 'task-key-ph-2' } }));
    await h.server.waitForMessage('task_completed', 'ph-2');
    const second = await events.waitFor('ph-2', 2);
    expect(second.map((r) => r.body.event_name).sort()).toEqual(['setup_worker_container_start', 'setup_worker_image_pull']);
    for (const request of second) expect(request.headers).not.toHaveProperty('x-warp-ambient-workload-token');
  });

  it('without the task key, reports nothing and says so once per task', async () => {
    const events = await stub('ok');
    const h = await withEndpoint(events.url);
    h.server.assign(assignment('nokey-1', { sidecar_image: 'docker.io/warpdotdev/warp-agent:latest' }));
    await h.server.waitForMessage('task_completed', 'nokey-1');
    const disabled = h.worker.logs.filter((l) => String(l.msg).startsWith('Setup event reporting is disabled'));
    expect(disabled.map((l) => [l.msg, l.level])).toEqual([
      ['Setup event reporting is disabled for task nokey-1: WARP_API_KEY is not present in the task assignment env vars', 40],
    ]);
    expect(events.requests).toEqual([]);
  });

  it('a hanging endpoint: the task completes while every report still waits for its answer, which is given up after 5 s', async () => {
    const events = await stub('hang');
    const h = await withEndpoint(events.url);
    h.server.assign(keyed('hang-1'));
    await h.server.waitForMessage('task_completed', 'hang-1');
    const posted = await events.waitFor('hang-1', 2);
    expect(posted.every((r) => !r.answered)).toBe(true);
    // Another task runs meanwhile, just as well.
    h.server.assign(keyed('hang-2'));
    await h.server.waitForMessage('task_completed', 'hang-2');
    const gaveUp = await h.worker.waitForLog((l) => /^Failed to report setup event setup_worker_image_pull for task hang-1: /.test(String(l.msg)), 15_000);
    expect(gaveUp.msg).toBe('Failed to report setup event setup_worker_image_pull for task hang-1: no answer within 5 s');
  });

  it.each([
    ['failing (500)', 'fail', 'client event request returned status 500: internal error: the events store is down'],
    ['absent (connection refused)', 'absent', 'connect ECONNREFUSED'],
  ] as const)('an endpoint %s: the task completes and each failed report is one warning without the key', async (_, mode, reason) => {
    const root = mode === 'absent' ? await absentServerRoot() : (await stub('fail')).url;
    const h = await withEndpoint(root);
    h.server.assign(keyed('bad-1'));
    const done = await h.server.waitForMessage('task_completed', 'bad-1');
    expect(done.data).toEqual({ task_id: 'bad-1', execution_id: 'exec-bad-1', message: 'Task completed successfully' });
    for (const name of ['setup_worker_image_pull', 'setup_worker_container_start']) {
      const line = await h.worker.waitForLog((l) => String(l.msg).startsWith(`Failed to report setup event ${name} for task bad-1: `));
      expect(line.msg).toContain(reason);
      expect(line.level).toBe(40);
    }
    expect(h.worker.logs.filter((l) => String(l.msg).startsWith('Failed to report setup event'))).toHaveLength(2);
    expect(h.worker.output).not.toContain('task-key-bad-1');
  });

  it('does not post the phase a cancel interrupted', async () => {
    const events = await stub('ok');
    const h = await withEndpoint(events.url);
    h.engine.holdPulls = true;
    h.server.assign(keyed('cut-1'));
    await h.engine.until(() => h.engine.calls('POST', /^\/images\/create$/).length > 0, 10_000, 'the pull to start');
    h.server.cancel('cut-1');
    const done = await h.server.waitForMessage('task_completed', 'cut-1');
    expect(done.data).toMatchObject({ task_state: 'CANCELLED' });
    h.engine.releasePulls();
    // A task after it reports through the same path; the cancelled one never did.
    h.server.assign(keyed('after-1'));
    await h.server.waitForMessage('task_completed', 'after-1');
    await events.waitFor('after-1', 2);
    expect(events.of('cut-1')).toEqual([]);
  });
});
