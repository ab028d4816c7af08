// The Docker backend through its real HTTP client against the in-repo fake
// Engine API on a unix socket.
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Backend, TaskParams } from '../../src/task/contract.js';
import { createDockerBackend } from '../../src/backends/docker/docker-backend.js';
import { connectionProblem } from '../../src/backends/docker/engine.js';
import type { DockerBackendConfig, WorkerConfigFor } from '../../src/config/worker-config.js';
import type { Logger } from '../../src/log/logger.js';
import type { SidecarMount } from '../../src/protocol/messages.js';
import { TaskCancelled, TaskFailure } from '../../src/task/failure.js';
import { FakeDockerEngine } from '../support/fake-docker-engine.js';
import { tempDir } from '../support/worker-process.js';
import { rejection } from '../support/assertions.js';
import { testConfig } from '../support/test-config.js';

const WORKER = 'w-unit';
const L = (name: string) => `dev.warp.oz-worker.${name}`;

let engine: FakeDockerEngine;
let logs: Array<Record<string, unknown>>;
let log: Logger;
let home: { path: string; cleanup: () => void };
const backends: Backend[] = [];

beforeEach(async () => {
  engine = await FakeDockerEngine.start();
  home = tempDir('docker-home');
  logs = [];
  log = pino({ level: 'debug' }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) });
});

afterEach(async () => {
  for (const backend of backends.splice(0)) await backend.shutdown();
  await engine.close();
  home.cleanup();
});

function config(
  options: {
    cleanup?: boolean;
    cancelGraceMs?: number;
    operatorEnv?: Record<string, string>;
    volumes?: string[];
    pullPolicy?: DockerBackendConfig['pullPolicy'];
  } = {},
): WorkerConfigFor<'docker'> {
  return testConfig({
    apiKey: 'wk_secret',
    workerId: WORKER,
    backend: 'docker',
    cleanup: options.cleanup ?? true,
    cancelGraceMs: options.cancelGraceMs ?? 1_000,
    operatorEnv: options.operatorEnv ?? {},
    docker: { volumes: options.volumes ?? [], pullPolicy: options.pullPolicy ?? 'Always' },
  });
}

async function backend(options: Parameters<typeof config>[0] = {}, env: NodeJS.ProcessEnv = { DOCKER_HOST: engine.dockerHost }): Promise<Backend> {
  const created = await createDockerBackend(config(options), { log, env, home: home.path });
  backends.push(created);
  return created;
}

function params(
  taskId: string,
  options: { env?: Record<string, string>; image?: string; sidecars?: SidecarMount[]; shape?: TaskParams['instanceShape'] } = {},
): TaskParams {
  return {
    taskId,
    executionId: `exec-${taskId}`,
    task: { id: taskId },
    args: ['agent', 'run', '--task-id', taskId, '--sandboxed'],
    mcpServers: undefined,
    env: [`TASK_ID=${taskId}`, 'GIT_TERMINAL_PROMPT=0', ...Object.entries(options.env ?? {}).map(([k, v]) => `${k}=${v}`)],
    image: options.image ?? 'ubuntu:22.04',
    sidecars: options.sidecars ?? [],
    instanceShape: options.shape,
  };
}

function run(b: Backend, p: TaskParams, controller = new AbortController()) {
  return b.executeTask({ params: p, signal: controller.signal, log });
}

function messages(): string[] {
  return logs.map((l) => String(l.msg));
}

describe('start-up', () => {
  it('checks the daemon and reports its platform', async () => {
    await backend();
    expect(engine.calls('GET', /^\/_ping$/)).toHaveLength(1);
    expect(messages()).toContain(`Docker daemon is reachable at ${engine.dockerHost}, platform: linux/amd64, 2 CPUs`);
    // API version negotiated from the ping: later calls carry the daemon's 1.41 (the fake, like dockerd, refuses newer).
    expect(engine.requests.some((r) => r.path === '/version')).toBe(true);
  });

  it("speaks the daemon's API version, and says what to do when DOCKER_API_VERSION pins a newer one", async () => {
    const b = await backend();
    await run(b, params('v1'));
    expect(engine.calls('POST', /^\/containers\/create$/)).toHaveLength(1);
    await expect(backend({}, { DOCKER_HOST: engine.dockerHost, DOCKER_API_VERSION: '1.45' })).rejects.toThrow(
      /^failed to reach Docker daemon: .*client version 1\.45 is too new\. Maximum supported API version is 1\.41; unset DOCKER_API_VERSION/,
    );
  });

  it('refuses a daemon that is not linux/amd64 or linux/arm64', async () => {
    engine.platform = { Os: 'windows', Arch: 'amd64' };
    await expect(backend()).rejects.toThrow('unsupported Docker platform windows/amd64 (only linux/amd64 and linux/arm64 are supported)');
  });

  it('says Docker is not running when the socket does not exist', async () => {
    await expect(backend({}, { DOCKER_HOST: `unix://${home.path}/missing.sock` })).rejects.toThrow(
      /^failed to reach Docker daemon: Docker socket .*missing\.sock does not exist: Docker isn't running here.*set DOCKER_HOST/,
    );
  });

  it('explains a permission problem with the docker group or rootless Docker', () => {
    const error = Object.assign(new Error('connect EACCES /var/run/docker.sock'), { code: 'EACCES' });
    expect(connectionProblem(error, { kind: 'unix', socketPath: '/var/run/docker.sock', url: 'unix:///var/run/docker.sock' })).toMatch(
      /permission denied on the Docker socket \/var\/run\/docker.sock: add this user to the docker group .* or run rootless Docker/,
    );
  });

  it('explains an unusable DOCKER_HOST before connecting', async () => {
    await expect(backend({}, { DOCKER_HOST: 'ssh://me@host' })).rejects.toThrow(/^failed to create Docker client: DOCKER_HOST "ssh:\/\/me@host" uses ssh:\/\//);
  });

  it('removes leftovers of an earlier run of this worker, and only those', async () => {
    const mine = { [L('managed')]: 'true', [L('worker-id')]: WORKER };
    engine.addImage('ubuntu:22.04');
    const runningOld = engine.addContainer({ name: 'old-running', labels: { ...mine, [L('role')]: 'task', [L('run-id')]: 'r1' }, running: true });
    const stoppedOld = engine.addContainer({ name: 'old-helper', labels: { ...mine, [L('role')]: 'sidecar-helper' } });
    const other = engine.addContainer({ name: 'other-worker', labels: { [L('worker-id')]: 'someone-else', [L('role')]: 'task' }, running: true });
    const unrelated = engine.addContainer({ name: 'unrelated', labels: {}, running: true });
    engine.addVolume('old-task-volume', { ...mine, [L('role')]: 'task-sidecar' });
    engine.addVolume('half-filled', { ...mine, [L('role')]: 'sidecar-data' });
    engine.addVolume('complete-data', { ...mine, [L('role')]: 'sidecar-data' });
    engine.addVolume('marker', { ...mine, [L('role')]: 'sidecar-ready', [L('sidecar-data')]: 'complete-data' });
    engine.addVolume('someone-elses-half', { [L('worker-id')]: 'someone-else', [L('role')]: 'sidecar-data' });

    await backend();
    expect(engine.containers.has(runningOld.Id)).toBe(false);
    expect(engine.containers.has(stoppedOld.Id)).toBe(false);
    expect(engine.containers.has(other.Id)).toBe(true);
    expect(engine.containers.has(unrelated.Id)).toBe(true);
    expect([...engine.volumes.keys()].sort()).toEqual(['complete-data', 'marker', 'someone-elses-half']);
    expect(messages()).toContain('Removed leftover container old-running (run r1) from an earlier run of this worker');
  });

  it('with cleanup disabled, stops running leftovers but keeps them', async () => {
    const old = engine.addContainer({ name: 'old', labels: { [L('worker-id')]: WORKER, [L('role')]: 'task' }, running: true });
    engine.addVolume('old-task-volume', { [L('worker-id')]: WORKER, [L('role')]: 'task-sidecar' });
    await backend({ cleanup: false });
    expect(engine.containers.get(old.Id)?.status).toBe('exited');
    expect(engine.volumes.has('old-task-volume')).toBe(true);
  });
});

describe('running a task', () => {
  it('pulls for the daemon platform, runs the entrypoint with labels, streams output, removes the container', async () => {
    const b = await backend({ operatorEnv: { FROM_WORKER: 'yes' }, volumes: ['/data:/data:ro'] });
    const outcome = await run(b, params('t1', { env: { FAKE_STDOUT: 'line one|line two', FAKE_STDERR: 'oops' }, shape: { vcpus: 2, memory_gb: 4 } }));
    expect(outcome).toEqual({ kind: 'completed' });

    const [pull] = engine.calls('POST', /^\/images\/create$/);
    expect(Object.fromEntries(pull!.query)).toEqual({ fromImage: 'docker.io/library/ubuntu', tag: '22.04', platform: 'linux/amd64' });
    const container = engine.containerFor('t1')!;
    expect(container.Name).toMatch(/^oz-task-t1-[0-9a-f]{8}$/);
    expect(container.body).toMatchObject({
      Image: 'ubuntu:22.04',
      Cmd: ['/agent/entrypoint.sh', 'agent', 'run', '--task-id', 't1', '--sandboxed'],
      WorkingDir: '/workspace',
      HostConfig: { Binds: ['/data:/data:ro'], NanoCpus: 2e9, Memory: 4 * 2 ** 30, MemorySwap: 4 * 2 ** 30 },
    });
    expect(container.Env).toEqual(expect.arrayContaining(['TASK_ID=t1', 'FROM_WORKER=yes', 'OZ_RUN_ID=t1', 'OZ_WORKER_BACKEND=docker']));
    expect(container.Labels).toMatchObject({ [L('worker-id')]: WORKER, [L('run-id')]: 't1', [L('execution-id')]: 'exec-t1', [L('role')]: 'task' });

    const output = logs.filter((l) => l.stream !== undefined).map((l) => [l.stream, l.msg]);
    expect(output).toEqual([
      ['stdout', 'line one'],
      ['stdout', 'line two'],
      ['stderr', 'oops'],
    ]);
    // Cleanup: force-removed together with its anonymous volumes.
    await engine.until(() => engine.removed.has(container.Id), 5_000, 'container removal');
    expect(Object.fromEntries(engine.calls('DELETE', /^\/containers\//)[0]!.query)).toEqual({ force: '1', v: '1' });
  });

  it('reports the outcome before cleanup finishes when the worker takes the cleanup over', async () => {
    const b = await backend();
    const cleanups: Array<Promise<void>> = [];
    const outcome = await b.executeTask({ params: params('t2'), signal: new AbortController().signal, log, afterOutcome: (c) => cleanups.push(c) });
    expect(outcome).toEqual({ kind: 'completed' });
    expect(cleanups).toHaveLength(1);
    await cleanups[0];
    expect(engine.containers.size).toBe(0);
  });

  it('reports a non-zero exit with its code (container_exit)', async () => {
    const b = await backend();
    const error = await rejection(run(b, params('t3', { env: { FAKE_EXIT: '3' } })));
    expect(error).toBeInstanceOf(TaskFailure);
    expect(error).toMatchObject({ reason: 'container_exit', exitCode: 3, message: 'container exited with non-zero status: 3' });
  });

  it('recognises an OOM kill (container_oom) and says what to do', async () => {
    const b = await backend();
    const error = await rejection(run(b, params('t4', { env: { FAKE_OOM: '1' }, shape: { memory_gb: 2 } })));
    expect(error).toMatchObject({ reason: 'container_oom', exitCode: 137 });
    expect((error as Error).message).toBe(
      'container exited with non-zero status: 137 (out of memory: the kernel killed the task at its 2 GiB limit; run it on a larger instance shape)',
    );
  });

  it('fails the pull on an error inside the 200 OK progress stream, before creating anything', async () => {
    engine.pullErrors.set('docker.io/library/nope:1', 'manifest for nope:1 not found: manifest unknown');
    const b = await backend();
    const error = await rejection(run(b, params('t5', { image: 'nope:1' })));
    expect(error).toMatchObject({
      reason: 'image_pull',
      message: 'failed to pull image nope:1: manifest for nope:1 not found: manifest unknown; check that the image name and tag exist in the registry',
    });
    expect(engine.calls('POST', /^\/containers\/create$/)).toEqual([]);
  });

  it('fails fast, naming the image, when the registry cannot be reached (HTTP 500 before any stream)', async () => {
    engine.registryUnreachable = true;
    const b = await backend();
    const error = await rejection(run(b, params('t5b', { image: 'ubuntu:22.04' })));
    expect(error).toMatchObject({ reason: 'image_pull' });
    expect((error as Error).message).toMatch(
      /^failed to pull image ubuntu:22\.04: Error response from daemon: .*no such host; the Docker host cannot reach the registry: .*set backend\.docker\.image_pull_policy to IfNotPresent$/,
    );
    expect(engine.calls('POST', /^\/containers\/create$/)).toEqual([]);
  });

  it('names a missing image (404 manifest unknown)', async () => {
    engine.missingImages.add('docker.io/library/nope:2');
    const b = await backend();
    const error = await rejection(run(b, params('t5c', { image: 'nope:2' })));
    expect(error).toMatchObject({
      reason: 'image_pull',
      message:
        'failed to pull image nope:2: Error response from daemon: manifest for nope:2 not found: manifest unknown: manifest unknown; check that the image name and tag exist in the registry',
    });
  });

  it('image_pull_policy Always (the default) pulls even an image the engine has; IfNotPresent and Never use it', async () => {
    engine.addImage('local/agent:1');
    engine.registryUnreachable = true;
    const always = await backend();
    expect(await rejection(run(always, params('p1', { image: 'local/agent:1' })))).toMatchObject({ reason: 'image_pull' });
    for (const pullPolicy of ['IfNotPresent', 'Never'] as const) {
      const b = await backend({ pullPolicy });
      const pulls = engine.calls('POST', /^\/images\/create$/).length;
      await expect(run(b, params(`p-${pullPolicy}`, { image: 'local/agent:1' }))).resolves.toEqual({ kind: 'completed' });
      expect(engine.calls('POST', /^\/images\/create$/)).toHaveLength(pulls);
    }
  });

  it('image_pull_policy IfNotPresent pulls a missing image; Never refuses it naming the policy, without a pull', async () => {
    const pulling = await backend({ pullPolicy: 'IfNotPresent' });
    await expect(run(pulling, params('p3', { image: 'fresh:1' }))).resolves.toEqual({ kind: 'completed' });
    expect(engine.calls('POST', /^\/images\/create$/)).toHaveLength(1);
    const never = await backend({ pullPolicy: 'Never' });
    const error = await rejection(run(never, params('p4', { image: 'absent:1' })));
    expect(error).toMatchObject({
      reason: 'image_pull',
      message: expect.stringMatching(
        /^image absent:1 is not on the Docker engine and the pull policy is Never \(backend\.docker\.image_pull_policy\): load it first/,
      ),
    });
    expect(engine.calls('POST', /^\/images\/create$/)).toHaveLength(1);
  });

  it.each(['IfNotPresent', 'Never'] as const)(
    'image_pull_policy %s: an inspect error other than not-found fails the task without a pull',
    async (pullPolicy) => {
      engine.failures.push({ method: 'GET', path: /^\/images\/.*\/json$/, status: 500, message: 'inspect exploded', once: true });
      const b = await backend({ pullPolicy });
      const error = await rejection(run(b, params(`ie-${pullPolicy}`, { image: 'fresh:2' })));
      expect(error).toMatchObject({ reason: 'image_pull', message: expect.stringMatching(/^failed to inspect image fresh:2: .*inspect exploded/) });
      expect(engine.calls('POST', /^\/images\/create$/)).toHaveLength(0);
    },
  );

  it('image_pull_policy applies to sidecar images: Never with the sidecar missing fails before any pull or volume', async () => {
    engine.addImage('local/agent:1');
    const never = await backend({ pullPolicy: 'Never' });
    const sidecar = { image: 'warpdotdev/agent-sidecar:9', mount_path: '/agent', read_write: false };
    const error = await rejection(run(never, params('sc-never', { image: 'local/agent:1', sidecars: [sidecar] })));
    expect(error).toMatchObject({ reason: 'sidecar_prep', message: expect.stringContaining('pull policy is Never') });
    expect(engine.calls('POST', /^\/images\/create$/)).toHaveLength(0);
    expect(engine.calls('POST', /^\/volumes\/create$/)).toHaveLength(0);
    // IfNotPresent reuses a sidecar the engine has and pulls one it lacks.
    engine.addImage('warpdotdev/agent-sidecar:9');
    const reuse = await backend({ pullPolicy: 'IfNotPresent' });
    const extra = { image: 'tools/cache:3', mount_path: '/cache', read_write: false };
    await expect(run(reuse, params('sc-reuse', { image: 'local/agent:1', sidecars: [sidecar, extra] }))).resolves.toEqual({ kind: 'completed' });
    expect(engine.calls('POST', /^\/images\/create$/).map((call) => call.query.get('fromImage'))).toEqual(['docker.io/tools/cache']);
  });

  it("clamps instance_shape.vcpus to the host's CPUs with a warning (the daemon would refuse the container)", async () => {
    engine.hostCpus = 2;
    const b = await backend();
    await expect(run(b, params('c1', { shape: { vcpus: 8, memory_gb: 1 } }))).resolves.toEqual({ kind: 'completed' });
    expect(engine.containerFor('c1')!.body).toMatchObject({ HostConfig: { NanoCpus: 2e9, Memory: 2 ** 30 } });
    expect(messages()).toContain('instance_shape.vcpus 8 is more than the 2 CPUs of the Docker host; limiting the container to 2 CPUs');
  });

  it('refuses an image for another platform', async () => {
    engine.imageOverrides.set('docker.io/library/armonly:1', { Architecture: 'arm64' });
    const b = await backend();
    const error = await rejection(run(b, params('t6', { image: 'armonly:1' })));
    expect(error).toMatchObject({ reason: 'image_pull', message: 'image armonly:1 is for platform linux/arm64, but this worker requires linux/amd64' });
  });

  it('sends registry credentials from ~/.docker/config.json with the pull', async () => {
    const { mkdirSync, writeFileSync } = await import('node:fs');
    mkdirSync(`${home.path}/.docker`);
    writeFileSync(`${home.path}/.docker/config.json`, JSON.stringify({ auths: { 'registry.internal': { auth: Buffer.from('bot:pw').toString('base64') } } }));
    const b = await backend();
    await run(b, params('t7', { image: 'registry.internal/team/img:2' }));
    const header = engine.calls('POST', /^\/images\/create$/)[0]!.headers['x-registry-auth'] as string;
    expect(JSON.parse(Buffer.from(header, 'base64url').toString())).toEqual({ username: 'bot', password: 'pw', serveraddress: 'registry.internal' });
  });

  it.each([
    ['create', /^\/containers\/create$/, 'container_create', 'failed to create container: Error response from daemon: boom'],
    ['start', /^\/containers\/[0-9a-f]+\/start$/, 'container_start', 'failed to start container: Error response from daemon: boom'],
  ])('classifies a %s failure', async (_name, path, reason, message) => {
    const b = await backend();
    engine.failures.push({ method: 'POST', path, status: 500, message: 'boom' });
    const error = await rejection(run(b, params('t8')));
    expect(error).toMatchObject({ reason, message });
    // Nothing is left behind either way.
    await engine.until(() => engine.containers.size === 0, 5_000, 'container removal');
  });
});

describe('cancellation', () => {
  it('stops the container with the grace period, reports TaskCancelled, and removes it', async () => {
    const b = await backend({ cancelGraceMs: 3_000 });
    const controller = new AbortController();
    const execution = run(b, params('c1', { env: { FAKE_RUN: 'forever' } }), controller);
    const container = await engine.until(() => engine.containerFor('c1')?.started && engine.containerFor('c1'), 5_000, 'the container to start');
    controller.abort('user');
    expect(await rejection(execution)).toBeInstanceOf(TaskCancelled);
    expect(container.stops).toEqual([3]);
    expect(container.ExitCode).toBe(143);
    await engine.until(() => engine.removed.has(container.Id), 5_000, 'container removal');
  });

  it('kills a container the daemon failed to stop', async () => {
    const b = await backend();
    const controller = new AbortController();
    const execution = run(b, params('c2', { env: { FAKE_RUN: 'forever' } }), controller);
    const container = await engine.until(() => engine.containerFor('c2')?.started && engine.containerFor('c2'), 5_000, 'the container to start');
    engine.failures.push({ method: 'POST', path: /\/stop$/, status: 500, message: 'stop failed' });
    controller.abort('user');
    expect(await rejection(execution)).toBeInstanceOf(TaskCancelled);
    expect(container.kills).toBe(1);
    expect(messages().some((m) => /Failed to stop container .*stop failed; killing it/.test(m))).toBe(true);
  });

  it('with cleanup disabled, still stops the container but keeps it', async () => {
    const b = await backend({ cleanup: false });
    const controller = new AbortController();
    const cleanups: Array<Promise<void>> = [];
    const execution = b.executeTask({
      params: params('c3', { env: { FAKE_RUN: 'forever' } }),
      signal: controller.signal,
      log,
      afterOutcome: (c) => cleanups.push(c),
    });
    const container = await engine.until(() => engine.containerFor('c3')?.started && engine.containerFor('c3'), 5_000, 'the container to start');
    controller.abort('user');
    expect(await rejection(execution)).toBeInstanceOf(TaskCancelled);
    await Promise.all(cleanups);
    expect(container.status).toBe('exited');
    expect(engine.containers.has(container.Id)).toBe(true);
  });

  it('stops before anything starts when cancelled during the pull', async () => {
    const b = await backend();
    const controller = new AbortController();
    controller.abort('user');
    expect(await rejection(run(b, params('c4'), controller))).toBeInstanceOf(TaskCancelled);
    expect(engine.calls('POST', /^\/containers\/create$/)).toEqual([]);
  });
});

describe('sidecars', () => {
  const agent: SidecarMount = { image: 'docker.io/warpdotdev/warp-agent:latest', mount_path: '/agent', read_write: false };
  const rw: SidecarMount = { image: 'registry.internal/tools:1', mount_path: '/mnt/tools', read_write: true };

  it('fills a read-only sidecar volume once, even for concurrent tasks, and mounts it read-only', async () => {
    engine.putArchiveDelayMs = 300;
    const b = await backend();
    await Promise.all([run(b, params('s1', { sidecars: [agent] })), run(b, params('s2', { sidecars: [agent] }))]);
    await run(b, params('s3', { sidecars: [agent] }));

    const data = [...engine.volumes.values()].filter((v) => v.Labels[L('role')] === 'sidecar-data');
    const markers = [...engine.volumes.values()].filter((v) => v.Labels[L('role')] === 'sidecar-ready');
    expect(data).toHaveLength(1);
    expect(markers).toHaveLength(1);
    expect(markers[0]!.Name).toMatch(/^oz-sidecar-warpdotdev-warp-agent-[0-9a-f]{12}$/);
    expect(markers[0]!.Labels[L('sidecar-data')]).toBe(data[0]!.Name);
    // The image's files were copied in exactly once.
    expect(data[0]!.content.map(String)).toEqual(['tar of docker.io/warpdotdev/warp-agent:latest']);
    expect(engine.calls('PUT', /\/archive$/)).toHaveLength(1);
    for (const id of ['s1', 's2', 's3'])
      expect((engine.containerFor(id)!.body.HostConfig as { Binds: string[] }).Binds).toEqual([`${data[0]!.Name}:/agent:ro`]);
    // The copy's helper containers are gone.
    await engine.until(() => engine.containers.size === 0, 5_000, 'every container removed');
    expect([...engine.removed.values()].filter((c) => c.Labels[L('role')] === 'sidecar-helper')).toHaveLength(2);
  });

  it('never trusts a volume whose fill did not complete: a marker is only written after the copy', async () => {
    const b = await backend();
    engine.failures.push({ method: 'PUT', path: /\/archive$/, status: 500, message: 'disk full', once: true });
    const error = await rejection(run(b, params('s4', { sidecars: [agent] })));
    expect(error).toMatchObject({ reason: 'sidecar_prep' });
    expect((error as Error).message).toMatch(
      /^failed to prepare additional sidecar docker.io\/warpdotdev\/warp-agent:latest: failed to copy the sidecar's files to volume oz-sidecar-.*: Error response from daemon: disk full$/,
    );
    // The half-filled volume was removed and no marker vouches for anything.
    expect([...engine.volumes.keys()]).toEqual([]);
    await run(b, params('s5', { sidecars: [agent] }));
    expect([...engine.volumes.values()].filter((v) => v.Labels[L('role')] === 'sidecar-ready')).toHaveLength(1);
  });

  it('fills again when the marker names a volume that is gone', async () => {
    const b = await backend();
    await run(b, params('s6', { sidecars: [agent] }));
    const first = [...engine.volumes.values()].find((v) => v.Labels[L('role')] === 'sidecar-data')!;
    engine.volumes.delete(first.Name);
    await run(b, params('s7', { sidecars: [agent] }));
    const second = [...engine.volumes.values()].find((v) => v.Labels[L('role')] === 'sidecar-data')!;
    expect(second.Name).not.toBe(first.Name);
    expect((engine.containerFor('s7')!.body.HostConfig as { Binds: string[] }).Binds).toEqual([`${second.Name}:/agent:ro`]);
  });

  it('gives each task its own read-write sidecar volume, labelled with the run, and removes it afterwards', async () => {
    const b = await backend();
    const cleanups: Array<Promise<void>> = [];
    const go = (id: string) =>
      b.executeTask({ params: params(id, { sidecars: [agent, rw] }), signal: new AbortController().signal, log, afterOutcome: (c) => cleanups.push(c) });
    await Promise.all([go('rw1'), go('rw2')]);
    const binds = ['rw1', 'rw2'].map((id) => (engine.containerFor(id)!.body.HostConfig as { Binds: string[] }).Binds);
    expect(binds[0]![1]).toMatch(/^oz-task-rw1-[0-9a-f]{8}-sidecar-1:\/mnt\/tools$/);
    expect(binds[1]![1]).toMatch(/^oz-task-rw2-[0-9a-f]{8}-sidecar-1:\/mnt\/tools$/);
    expect(binds[0]![0]).toBe(binds[1]![0]);
    await Promise.all(cleanups);
    const left = [...engine.volumes.values()].map((v) => v.Labels[L('role')]);
    expect(left.sort()).toEqual(['sidecar-data', 'sidecar-ready']);
    const perTask = engine
      .calls('POST', /^\/volumes\/create$/)
      .map((r) => JSON.parse(r.body) as { Name: string; Labels: Record<string, string> })
      .filter((v) => v.Labels[L('role')] === 'task-sidecar');
    expect(perTask.map((v) => v.Labels[L('run-id')]).sort()).toEqual(['rw1', 'rw2']);
  });

  it('refuses a bad sidecar list before pulling anything', async () => {
    const b = await backend();
    const error = await rejection(run(b, params('s8', { sidecars: [agent, { ...rw, mount_path: '/agent' }] })));
    expect(error).toMatchObject({ reason: 'sidecar_prep', message: 'duplicate mount path /agent for additional sidecar registry.internal/tools:1' });
    expect(engine.calls('POST', /^\/images\/create$/)).toEqual([]);
  });

  it('names a sidecar pull failure (sidecar_prep)', async () => {
    engine.pullErrors.set('registry.internal/tools:1', 'unauthorized: authentication required');
    const b = await backend();
    const error = await rejection(run(b, params('s9', { sidecars: [rw] })));
    expect(error).toMatchObject({ reason: 'sidecar_prep' });
    expect((error as Error).message).toMatch(
      /^failed to pull additional sidecar image registry.internal\/tools:1: failed to pull image registry.internal\/tools:1: unauthorized: authentication required; log in to the registry/,
    );
  });
});

describe('setup phases', () => {
  type Phase = [name: string, isError: boolean];
  const recorder = () => {
    const phases: Phase[] = [];
    const spans: Array<{ start: Date; finish: Date }> = [];
    return {
      phases,
      spans,
      setupPhase: (name: string, start: Date, finish: Date, isError: boolean) => {
        phases.push([name, isError]);
        spans.push({ start, finish });
      },
    };
  };
  const timed = (b: Backend, p: TaskParams, record: ReturnType<typeof recorder>, controller = new AbortController()) =>
    b.executeTask({ params: p, signal: controller.signal, log, setupPhase: record.setupPhase });

  // Go's docker_pull_policy_test: container create is made to fail, so each run also times a failed container start.
  it.each<[string, DockerBackendConfig['pullPolicy'], () => void, string, Phase[]]>([
    [
      'Always, pull OK',
      'Always',
      () => engine.addImage('local/agent:1'),
      'local/agent:1',
      [
        ['setup_worker_image_pull', false],
        ['setup_worker_container_start', true],
      ],
    ],
    [
      'IfNotPresent, not on the engine, pull OK',
      'IfNotPresent',
      () => {},
      'fresh:1',
      [
        ['setup_worker_image_pull', false],
        ['setup_worker_container_start', true],
      ],
    ],
    ['IfNotPresent, on the engine', 'IfNotPresent', () => engine.addImage('local/agent:1'), 'local/agent:1', [['setup_worker_container_start', true]]],
    ['Never, on the engine', 'Never', () => engine.addImage('local/agent:1'), 'local/agent:1', [['setup_worker_container_start', true]]],
    [
      'IfNotPresent, the inspect fails (500)',
      'IfNotPresent',
      () => engine.failures.push({ method: 'GET', path: /^\/images\/.*\/json$/, status: 500, message: 'inspect exploded', once: true }),
      'fresh:2',
      [],
    ],
    ['Never, not on the engine', 'Never', () => {}, 'absent:1', []],
    ['IfNotPresent, an arm64 image on an amd64 engine', 'IfNotPresent', () => engine.addImage('armlocal:1', { Architecture: 'arm64' }), 'armlocal:1', []],
    ['Always, the pull fails (500)', 'Always', () => (engine.registryUnreachable = true), 'fresh:3', [['setup_worker_image_pull', true]]],
  ])('image pull is timed only when a pull runs: %s', async (_, pullPolicy, arrange, image, expected) => {
    arrange();
    engine.failures.push({ method: 'POST', path: /^\/containers\/create$/, status: 500, message: 'create refused' });
    const b = await backend({ pullPolicy });
    const record = recorder();
    await rejection(timed(b, params('pp', { image }), record));
    expect(record.phases).toEqual(expected);
  });

  it('times image pull, sidecar preparation and container start of a task that runs, in order, each ending before the next starts', async () => {
    const b = await backend();
    const record = recorder();
    const sidecar: SidecarMount = { image: 'docker.io/warpdotdev/warp-agent:latest', mount_path: '/agent', read_write: false };
    await expect(timed(b, params('ph1', { sidecars: [sidecar] }), record)).resolves.toEqual({ kind: 'completed' });
    expect(record.phases).toEqual([
      ['setup_worker_image_pull', false],
      ['setup_worker_sidecar_prep', false],
      ['setup_worker_container_start', false],
    ]);
    for (const [i, span] of record.spans.entries()) {
      expect(span.finish.getTime()).toBeGreaterThanOrEqual(span.start.getTime());
      if (i > 0) expect(span.start.getTime()).toBeGreaterThanOrEqual(record.spans[i - 1]!.finish.getTime());
    }
  });

  it('times no sidecar preparation without sidecars, and a failed one as an error', async () => {
    const b = await backend();
    const plain = recorder();
    await timed(b, params('ph2'), plain);
    expect(plain.phases.map(([name]) => name)).toEqual(['setup_worker_image_pull', 'setup_worker_container_start']);
    engine.pullErrors.set('registry.internal/tools:1', 'unauthorized: authentication required');
    const failing = recorder();
    await rejection(timed(b, params('ph3', { sidecars: [{ image: 'registry.internal/tools:1', mount_path: '/mnt/tools', read_write: true }] }), failing));
    expect(failing.phases).toEqual([
      ['setup_worker_image_pull', false],
      ['setup_worker_sidecar_prep', true],
    ]);
  });

  it('times a container that does not start as a failed container start', async () => {
    engine.failures.push({ method: 'POST', path: /^\/containers\/[^/]+\/start$/, status: 500, message: 'no start' });
    const b = await backend();
    const record = recorder();
    expect(await rejection(timed(b, params('ph4'), record))).toMatchObject({ reason: 'container_start' });
    expect(record.phases).toEqual([
      ['setup_worker_image_pull', false],
      ['setup_worker_container_start', true],
    ]);
  });
});
