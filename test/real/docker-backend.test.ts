// The real worker (bin/oz-worker.js, --backend docker) against a real Docker
// Engine: the private dockerd that test/infra/docker/up.sh starts, with images
// built locally (no registry is reachable). Skips, saying why, without it.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClientEventsStub } from '../support/client-events-stub.js';
import { assignment, FakeDispatchServer } from '../support/fake-dispatch-server.js';
import { ImageRegistry } from '../support/image-registry.js';
import { EngineProbe, findRealDocker, type RealDocker } from '../support/real-docker.js';
import { BIN, startWorker, tempDir, type LogLine, type WorkerProcess } from '../support/worker-process.js';

const API_KEY = 'wk_real_docker_secret_4711';
const L = (name: string) => `dev.warp.oz-worker.${name}`;
const found = await findRealDocker();
const docker = 'skip' in found ? undefined : found;
if ('skip' in found) console.log(`real Docker suite skipped: ${found.skip}`);

interface Harness {
  server: FakeDispatchServer;
  worker: WorkerProcess;
  workerId: string;
  close(): Promise<void>;
}

/** `pull_policy` is oz-worker's older name of the Go worker's `image_pull_policy`; both keep working. */
function writeConfig(dir: string, workerId: string, policy = 'pull_policy: if_not_present'): string {
  const path = join(dir, 'config.yaml');
  writeFileSync(
    path,
    [`worker_id: ${workerId}`, 'backend:', '  docker:', `    ${policy}`, '    environment:', '      - name: FILE_VAR', '        value: from-file'].join('\n'),
  );
  return path;
}

async function startHarness(
  d: RealDocker,
  options: { workerId?: string; server?: FakeDispatchServer; args?: string[]; policy?: string } = {},
): Promise<Harness> {
  const server = options.server ?? (await FakeDispatchServer.start({ apiKey: API_KEY }));
  const dir = tempDir('real-docker');
  const workerId = options.workerId ?? `real-docker-${randomBytes(3).toString('hex')}`;
  const worker = startWorker({
    args: ['--config-file', writeConfig(dir.path, workerId, options.policy), '--web-socket-url', server.url, ...(options.args ?? [])],
    env: { WARP_API_KEY: API_KEY, DOCKER_HOST: d.dockerHost, HOME: dir.path },
  });
  await server.waitForConnection(1, 30_000);
  return {
    server,
    worker,
    workerId,
    async close() {
      await worker.stop();
      if (!options.server) await server.close();
      dir.cleanup();
    },
  };
}

/** The JSON the stand-in agent printed after `prefix` for this task (via the worker's log). */
async function agentLine<T>(worker: WorkerProcess, taskId: string, prefix: string, timeoutMs = 60_000): Promise<T> {
  const line = await worker.waitForLog((l: LogLine) => l.taskId === taskId && typeof l.msg === 'string' && l.msg.startsWith(prefix), timeoutMs);
  return JSON.parse(line.msg.slice(prefix.length)) as T;
}

interface AgentRecord {
  argv: string[];
  cwd: string;
  env: Record<string, string>;
  pid: number;
  uid: number;
}

async function until<T>(check: () => Promise<T | undefined | false>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

describe.skipIf(!docker)('the Docker backend on a real engine', () => {
  const d = docker!;
  let h: Harness;
  let probe: EngineProbe;
  beforeAll(async () => {
    probe = new EngineProbe(d.socketPath);
    h = await startHarness(d, { args: ['-e', 'FROM_FLAG=yes'] });
  }, 60_000);
  afterAll(async () => {
    await h?.close();
    await probe?.close();
  });

  const task = (id: string, env: Record<string, string> = {}, extra: Record<string, unknown> = {}) =>
    assignment(id, { docker_image: d.agentImage, env_vars: env, ...extra });

  it('runs a team task: the agent gets the argv, the protocol and configured env, and never the worker key', async () => {
    h.server.assign(task('team-1', { FAKE_OZ_PRINT_RECORD: '1', FROM_SERVER: 'server-value' }, { task: { owner: { Type: 'TEAM', Id: 42 } } }));
    const record = await agentLine<AgentRecord>(h.worker, 'team-1', 'fake-oz-record: ', 90_000);
    expect(record.argv).toEqual([
      'agent',
      'run',
      '--share',
      'team:edit',
      '--task-id',
      'team-1',
      '--sandboxed',
      '--server-root-url',
      'https://app.warp.dev',
      ...record.argv.slice(9),
    ]);
    expect(record.cwd).toBe('/workspace');
    expect(record.pid).toBe(1);
    expect(record.env).toMatchObject({
      TASK_ID: 'team-1',
      GIT_TERMINAL_PROMPT: '0',
      GH_PROMPT_DISABLED: '1',
      WARP_SERVER_ROOT_URL: 'https://app.warp.dev',
      // The task's env_vars reach the agent; the worker scrubs their values from its own log.
      FROM_SERVER: '[redacted]',
      FROM_FLAG: 'yes',
      FILE_VAR: 'from-file',
      OZ_RUN_ID: 'team-1',
      WARP_RUN_ID: 'team-1',
      OZ_WORKER_BACKEND: 'docker',
      WARP_WORKER_BACKEND: 'docker',
    });
    expect(record.env.WARP_API_KEY).toBeUndefined();
    expect(Object.values(record.env)).not.toContain(API_KEY);
    expect(h.worker.output).not.toContain('server-value');
    const done = await h.server.waitForMessage('task_completed', 'team-1', 30_000);
    expect(done.data).toEqual({ task_id: 'team-1', execution_id: 'exec-team-1', message: 'Task completed successfully' });
  }, 120_000);

  it('runs a user task without team sharing', async () => {
    h.server.assign(task('user-1', { FAKE_OZ_PRINT_RECORD: '1' }, { task: { owner: { Type: 'USER', Uid: 'u-1' } } }));
    const record = await agentLine<AgentRecord>(h.worker, 'user-1', 'fake-oz-record: ');
    expect(record.argv.slice(0, 8)).toEqual([
      'agent',
      'run',
      '--task-id',
      'user-1',
      '--sandboxed',
      '--server-root-url',
      'https://app.warp.dev',
      record.argv[7],
    ]);
    expect(record.argv).not.toContain('--share');
    await h.server.waitForMessage('task_completed', 'user-1', 30_000);
  }, 60_000);

  it('reports a non-zero exit with its code', async () => {
    h.server.assign(task('exit-3', { FAKE_OZ_EXIT: '3' }));
    const failed = await h.server.waitForMessage('task_failed', 'exit-3', 30_000);
    expect(failed.data).toEqual({
      task_id: 'exit-3',
      execution_id: 'exec-exit-3',
      message: 'Failed to execute task: container exited with non-zero status: 3',
      failure_reason: 'container_exit',
      exit_code: 3,
    });
  }, 60_000);

  it('reports an OOM kill under the memory limit as 137 with a message about memory', async () => {
    h.server.assign(task('oom-1', { FAKE_OZ_ALLOC_MB: '3072' }, { instance_shape: { memory_gb: 1 } }));
    const failed = await h.server.waitForMessage('task_failed', 'oom-1', 60_000);
    expect(failed.data).toEqual({
      task_id: 'oom-1',
      execution_id: 'exec-oom-1',
      message:
        'Failed to execute task: container exited with non-zero status: 137 (out of memory: the kernel killed the task at its 1 GiB limit; run it on a larger instance shape)',
      failure_reason: 'container_oom',
      exit_code: 137,
    });
  }, 90_000);

  it('runs on a host with fewer CPUs than the shape asks for, limited to the host', async () => {
    h.server.assign(task('cpus-1', {}, { instance_shape: { vcpus: 64 } }));
    await h.server.waitForMessage('task_completed', 'cpus-1', 30_000);
    await h.worker.waitForLog((l) => l.taskId === 'cpus-1' && /^instance_shape\.vcpus 64 is more than the \d+ CPUs of the Docker host/.test(l.msg));
  }, 60_000);

  it('fails fast on an image the engine does not have and no registry serves, naming it', async () => {
    h.server.assign(assignment('missing-1', { docker_image: 'oz-test-no-such-image:1' }));
    const failed = await h.server.waitForMessage('task_failed', 'missing-1', 60_000);
    expect(failed.data).toMatchObject({ task_id: 'missing-1', failure_reason: 'image_pull' });
    expect(failed.data.message).toMatch(/^Failed to execute task: failed to pull image oz-test-no-such-image:1: Error response from daemon: /);
    expect(await probe.containers([`${L('run-id')}=missing-1`])).toEqual([]);
  }, 90_000);

  it('cancels: SIGTERM reaches the agent, the task is CANCELLED and the container removed', async () => {
    h.server.assign(task('cancel-1', { FAKE_OZ_SLEEP_MS: '600000' }));
    await h.worker.waitForLog((l) => l.taskId === 'cancel-1' && String(l.msg).startsWith('fake-oz: started'), 30_000);
    h.server.cancel('cancel-1');
    const done = await h.server.waitForMessage('task_completed', 'cancel-1', 30_000);
    expect(done.data).toEqual({ task_id: 'cancel-1', execution_id: 'exec-cancel-1', message: 'Task cancelled by user request.', task_state: 'CANCELLED' });
    await h.worker.waitForLog((l) => l.taskId === 'cancel-1' && l.msg === 'fake-oz: SIGTERM');
    await until(async () => (await probe.containers([`${L('run-id')}=cancel-1`])).length === 0, 15_000, 'the container to be removed');
  }, 60_000);

  it('cancels an agent that ignores SIGTERM: SIGKILL after the grace period, CANCELLED, removed', async () => {
    h.server.assign(task('cancel-2', { FAKE_OZ_SLEEP_MS: '600000', FAKE_OZ_IGNORE_TERM: '1' }));
    await h.worker.waitForLog((l) => l.taskId === 'cancel-2' && String(l.msg).startsWith('fake-oz: started'), 30_000);
    const cancelledAt = Date.now();
    h.server.cancel('cancel-2');
    await h.worker.waitForLog((l) => l.taskId === 'cancel-2' && l.msg === 'fake-oz: ignoring SIGTERM');
    const done = await h.server.waitForMessage('task_completed', 'cancel-2', 40_000);
    expect(done.data).toEqual({ task_id: 'cancel-2', execution_id: 'exec-cancel-2', message: 'Task cancelled by user request.', task_state: 'CANCELLED' });
    // The agent had its grace period (10 s) before the kill.
    expect(Date.now() - cancelledAt).toBeGreaterThanOrEqual(9_000);
    await until(async () => (await probe.containers([`${L('run-id')}=cancel-2`])).length === 0, 15_000, 'the container to be removed');
  }, 90_000);

  it('mounts sidecar files: the shared one read-only at /agent (its entrypoint runs the agent), a per-task copy read-write', async () => {
    h.server.assign(
      task(
        'sidecar-1',
        { FAKE_OZ_PROBE: '/agent,/mnt/rw' },
        {
          sidecar_image: d.sidecarImage,
          additional_sidecars: [{ image: d.sidecarImage, mount_path: '/mnt/rw', read_write: true }],
        },
      ),
    );
    type Probe = Record<string, { entries: string[] | string; write: string }>;
    const seen = await agentLine<Probe>(h.worker, 'sidecar-1', 'fake-oz-probe: ', 120_000);
    expect(seen['/agent']).toEqual({ entries: expect.arrayContaining(['entrypoint.sh', 'sidecar-marker.txt']), write: 'EROFS' });
    expect(seen['/mnt/rw']).toEqual({ entries: expect.arrayContaining(['entrypoint.sh', 'sidecar-marker.txt']), write: 'ok' });
    await h.server.waitForMessage('task_completed', 'sidecar-1', 30_000);
    // The per-task copy goes with the task; the shared read-only copy stays for the next task.
    await until(async () => (await probe.volumes([`${L('run-id')}=sidecar-1`])).length === 0, 15_000, 'the per-task volume to be removed');
    const image = await probe.call<{ Id: string }>('GET', `/images/${d.sidecarImage}/json`);
    expect(await probe.volumes([`${L('role')}=sidecar-data`, `${L('sidecar-image-id')}=${image.json.Id}`])).toHaveLength(1);
  }, 180_000);

  it("removes the container's anonymous volumes with it", async () => {
    h.server.assign(assignment('anon-1', { docker_image: d.volumeImage, env_vars: { FAKE_OZ_SLEEP_MS: '3000' } }));
    const container = await until(async () => (await probe.containers([`${L('run-id')}=anon-1`]))[0], 30_000, 'the container');
    const inspect = await probe.call<{ Mounts: Array<{ Type: string; Name?: string; Destination: string }> }>('GET', `/containers/${container.Id}/json`);
    const anonymous = inspect.json.Mounts.find((m) => m.Destination === '/scratch');
    expect(anonymous?.Type).toBe('volume');
    await h.server.waitForMessage('task_completed', 'anon-1', 30_000);
    await until(async () => (await probe.call('GET', `/volumes/${anonymous!.Name}`)).status === 404, 15_000, 'the anonymous volume to be removed');
  }, 60_000);

  it('runs 20 tasks at once', async () => {
    const ids = Array.from({ length: 20 }, (_, i) => `many-${i}`);
    for (const id of ids) h.server.assign(task(id, { FAKE_OZ_SLEEP_MS: '20000' }));
    await until(
      async () =>
        (await probe.containers([`${L('worker-id')}=${h.workerId}`])).filter((c) => c.State === 'running' && c.Labels[L('run-id')]?.startsWith('many-'))
          .length === 20,
      60_000,
      '20 containers running at once',
    );
    for (const id of ids)
      expect((await h.server.waitForMessage('task_completed', id, 60_000)).data).toEqual({
        task_id: id,
        execution_id: `exec-${id}`,
        message: 'Task completed successfully',
      });
  }, 150_000);

  it('leaves nothing behind: no containers, no per-task volumes', async () => {
    await until(async () => (await probe.containers([`${L('worker-id')}=${h.workerId}`])).length === 0, 30_000, 'no containers of this worker');
    expect(await probe.volumes([`${L('worker-id')}=${h.workerId}`, `${L('role')}=task-sidecar`])).toEqual([]);
  }, 60_000);

  it("removes a SIGKILLed worker's leftovers when it starts again", async () => {
    const workerId = `real-docker-kill-${randomBytes(3).toString('hex')}`;
    const server = await FakeDispatchServer.start({ apiKey: API_KEY });
    try {
      const first = await startHarness(d, { workerId, server });
      server.assign(
        task(
          'orphan-1',
          { FAKE_OZ_SLEEP_MS: '600000' },
          {
            additional_sidecars: [{ image: d.sidecarImage, mount_path: '/mnt/rw', read_write: true }],
          },
        ),
      );
      await first.worker.waitForLog((l) => l.taskId === 'orphan-1' && String(l.msg).startsWith('fake-oz: started'), 120_000);
      first.worker.signal('SIGKILL');
      await first.worker.exited;
      await first.close();
      const [orphan] = await probe.containers([`${L('run-id')}=orphan-1`]);
      expect(orphan?.State).toBe('running');
      expect(await probe.volumes([`${L('run-id')}=orphan-1`])).toHaveLength(1);

      const second = await startHarness(d, { workerId, server });
      try {
        await second.worker.waitForLog(
          (l) => /^Removed leftover container oz-task-orphan-1-[0-9a-f]+ \(run orphan-1\) from an earlier run of this worker$/.test(l.msg),
          30_000,
        );
        expect(await probe.containers([`${L('run-id')}=orphan-1`])).toEqual([]);
        expect(await probe.volumes([`${L('run-id')}=orphan-1`])).toEqual([]);
      } finally {
        await second.close();
      }
    } finally {
      await server.close();
    }
  }, 180_000);
});

function doctor(env: Record<string, string>, server: FakeDispatchServer): Promise<{ code: number | null; stdout: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, 'doctor', '--backend', 'docker', '--worker-id', 'doctor-real', '--web-socket-url', server.url], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', WARP_API_KEY: API_KEY, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.on('exit', (code) => resolve({ code, stdout }));
  });
}

describe.skipIf(!docker)('oz-worker doctor --backend docker on a real engine', () => {
  it('passes against the engine and fails, saying why, with a missing socket', async () => {
    const server = await FakeDispatchServer.start({ apiKey: API_KEY });
    const dir = tempDir('doctor-docker');
    try {
      const good = await doctor({ DOCKER_HOST: docker!.dockerHost }, server);
      expect(good.stdout).toMatch(
        new RegExp(`✔ Docker Engine: ${docker!.dockerHost.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} answers \\(Docker 20\\.10[^,]*, linux/amd64\\)`),
      );
      expect(good.code).toBe(0);
      const bad = await doctor({ DOCKER_HOST: `unix://${dir.path}/docker.sock` }, server);
      expect(bad.stdout).toMatch(/✘ Docker Engine: Docker socket .*docker\.sock does not exist/);
      expect(bad.code).not.toBe(0);
    } finally {
      dir.cleanup();
      await server.close();
    }
  }, 60_000);
});

describe.skipIf(!docker)('backend.docker.image_pull_policy on a real engine (no registry reachable)', () => {
  const d = docker!;
  const harnesses: Harness[] = [];
  afterAll(async () => {
    for (const harness of harnesses) await harness.close();
  });

  it('IfNotPresent runs the image the engine already has, without a pull', async () => {
    const h = await startHarness(d, { policy: 'image_pull_policy: IfNotPresent' });
    harnesses.push(h);
    h.server.assign(assignment('inp-1', { docker_image: d.agentImage }));
    await h.server.waitForMessage('task_completed', 'inp-1', 60_000);
    await h.worker.waitForLog(
      (l) => l.taskId === 'inp-1' && l.msg === `Using image ${d.agentImage} already on the Docker engine (image_pull_policy IfNotPresent)`,
    );
    expect(h.worker.logs.some((l) => l.taskId === 'inp-1' && String(l.msg).startsWith('Pulling image'))).toBe(false);
  }, 90_000);

  it('Never fails a task whose image the engine lacks, naming the policy, and never pulls', async () => {
    const h = await startHarness(d, { policy: 'image_pull_policy: Never' });
    harnesses.push(h);
    h.server.assign(assignment('never-1', { docker_image: 'oz-test-no-such-image:3' }));
    const failed = await h.server.waitForMessage('task_failed', 'never-1', 60_000);
    expect(failed.data).toMatchObject({ task_id: 'never-1', failure_reason: 'image_pull' });
    expect(failed.data.message).toMatch(/^Failed to execute task: image oz-test-no-such-image:3 is not on the Docker engine and the pull policy is Never/);
    expect(h.worker.logs.some((l) => l.taskId === 'never-1' && String(l.msg).startsWith('Pulling image'))).toBe(false);
  }, 90_000);
});

describe.skipIf(!docker)('setup phases reported from a real engine', () => {
  const d = docker!;
  const harnesses: Harness[] = [];
  let events: ClientEventsStub;
  let registry: ImageRegistry;
  let probe: EngineProbe;
  beforeAll(async () => {
    events = await ClientEventsStub.start('ok');
    probe = new EngineProbe(d.socketPath);
    // The stand-in agent image, served by a registry on loopback, so a real pull runs (Docker pulls from 127.0.0.1 over HTTP).
    const saved = await request(`http://docker/v1.41/images/${encodeURIComponent(d.agentImage)}/get`, {
      dispatcher: new Agent({ connect: { socketPath: d.socketPath } }),
    });
    registry = await ImageRegistry.serve(Buffer.from(await saved.body.arrayBuffer()), 'oz/agent-standin', `served-${randomBytes(3).toString('hex')}`);
  }, 120_000);
  afterAll(async () => {
    for (const harness of harnesses) await harness.close();
    await probe?.call('DELETE', `/images/${encodeURIComponent(registry.image)}`).catch(() => undefined);
    await probe?.close();
    await registry?.close();
    await events?.close();
  });

  it('image_pull_policy Always: the pull of a served image and the container start, timed by the worker around the real engine', async () => {
    const h = await startHarness(d, { policy: 'image_pull_policy: Always', args: ['--server-root-url', events.url] });
    harnesses.push(h);
    const before = Date.now();
    h.server.assign(assignment('real-pull-1', { docker_image: registry.image, env_vars: { WARP_API_KEY: 'task-key-real-pull-1' } }));
    await h.server.waitForMessage('task_completed', 'real-pull-1', 120_000);
    const after = Date.now();
    const posted = await events.waitFor('real-pull-1', 2, 30_000);
    const phases = Object.fromEntries(posted.map((r) => [r.body.event_name, r.body.payload]));
    expect(Object.keys(phases).sort()).toEqual(['setup_worker_container_start', 'setup_worker_image_pull']);
    expect(registry.served).toContain(`manifest:${registry.tag}`);
    for (const payload of Object.values(phases)) {
      expect(payload.is_error).toBe(false);
      expect(Date.parse(payload.start_ts)).toBeGreaterThanOrEqual(before);
      expect(Date.parse(payload.finish_ts)).toBeLessThanOrEqual(after);
      expect(payload.latency_ms).toBe(Date.parse(payload.finish_ts) - Date.parse(payload.start_ts));
      // A real engine takes its time: a registry round trip, a container create and start.
      expect(payload.latency_ms).toBeGreaterThan(0);
    }
    expect(Date.parse(phases.setup_worker_container_start!.start_ts)).toBeGreaterThanOrEqual(Date.parse(phases.setup_worker_image_pull!.finish_ts));
    for (const r of posted) expect(r.headers).toMatchObject({ authorization: 'Bearer task-key-real-pull-1', 'x-warp-cloud-agent-id': 'real-pull-1' });
  }, 180_000);

  it('image_pull_policy IfNotPresent with an image the engine lacks and no registry has: the pull ran and failed, reported as an error', async () => {
    const h = await startHarness(d, { policy: 'image_pull_policy: IfNotPresent', args: ['--server-root-url', events.url] });
    harnesses.push(h);
    h.server.assign(assignment('real-pull-2', { docker_image: 'oz-test-no-such-image:5', env_vars: { WARP_API_KEY: 'task-key-real-pull-2' } }));
    await h.server.waitForMessage('task_failed', 'real-pull-2', 90_000);
    const [posted] = await events.waitFor('real-pull-2', 1, 30_000);
    expect(posted!.body).toMatchObject({ event_name: 'setup_worker_image_pull', payload: { is_error: true } });
    expect(posted!.body.payload.latency_ms).toBe(Date.parse(posted!.body.payload.finish_ts) - Date.parse(posted!.body.payload.start_ts));
    expect(events.of('real-pull-2')).toHaveLength(1);
  }, 120_000);
});
