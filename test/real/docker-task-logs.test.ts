// Task logs from a real container: the worker (--backend docker) on the private
// dockerd follows both streams of the task container into the task's log
// export, redacted, to a stand-in identity server and collector. Skips, saying
// why, without the engine.
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assignment, FakeDispatchServer } from '../support/fake-dispatch-server.js';
import { findRealDocker } from '../support/real-docker.js';
import { TelemetryStub } from '../support/telemetry-stub.js';
import { startWorker, tempDir, type WorkerProcess } from '../support/worker-process.js';

const API_KEY = 'wk_real_docker_logs_4711';
const found = await findRealDocker();
const docker = 'skip' in found ? undefined : found;
if ('skip' in found) console.log(`real Docker task-log suite skipped: ${found.skip}`);

describe.skipIf(!docker)('task logs of a real Docker container', () => {
  let server: FakeDispatchServer;
  let stub: TelemetryStub;
  let worker: WorkerProcess;
  let dir: { path: string; cleanup: () => void };
  beforeAll(async () => {
    server = await FakeDispatchServer.start({ apiKey: API_KEY });
    stub = await TelemetryStub.start();
    dir = tempDir('real-docker-logs');
    const config = join(dir.path, 'config.yaml');
    writeFileSync(
      config,
      [`worker_id: real-docker-logs-${randomBytes(3).toString('hex')}`, 'backend:', '  docker:', '    image_pull_policy: IfNotPresent'].join('\n'),
    );
    worker = startWorker({
      args: ['--config-file', config, '--web-socket-url', server.url, '--server-root-url', stub.url, '-e', 'OPERATOR_SECRET=operator-docker-secret'],
      env: { WARP_API_KEY: API_KEY, DOCKER_HOST: docker!.dockerHost, HOME: dir.path },
    });
    await server.waitForConnection(1, 30_000);
  }, 60_000);
  afterAll(async () => {
    await worker?.stop();
    await server?.close();
    await stub?.close();
    dir?.cleanup();
  });

  it('exports stdout and stderr of the task container with its name and stream, before the terminal status', async () => {
    server.assign(
      assignment('docker-logs-1', {
        docker_image: docker!.agentImage,
        env_vars: {
          WARP_API_KEY: 'task-key-docker',
          WARP_WORKLOAD_TOKEN: 'workload-docker',
          TASK_SECRET: 'docker-task-secret-1',
          // A line that is a value of the task's environment is redacted whole.
          FAKE_OZ_PRINT: 'printed by the agent',
          // The operator's -e value, as the container sees it.
          FAKE_OZ_ECHO_VAR: 'OPERATOR_SECRET',
          // The stand-in agent is Node: this makes it write a line to stderr before it starts.
          NODE_OPTIONS: "--import=data:text/javascript,console.error('stderr:'+process.env.TASK_SECRET)",
        },
        telemetry_collection: { endpoint: stub.endpoint, logging_enabled: true },
      }),
    );
    await server.waitForMessage('task_completed', 'docker-logs-1', 120_000);
    const stdout = stub.records.filter((r) => r.attributes['log.source'] === 'container.stdout');
    const stderr = stub.records.filter((r) => r.attributes['log.source'] === 'container.stderr');
    expect(stdout.map((r) => r.body)).toEqual([expect.stringMatching(/^fake-oz: started with agent run /), '[REDACTED]', 'token=[REDACTED]']);
    expect(stderr.map((r) => r.body)).toEqual(['stderr:[REDACTED]']);
    const name = stdout[0]!.attributes['container.name'];
    expect(name).toMatch(/^oz-task-docker-logs-1/);
    expect(stdout.every((r) => r.attributes['container.name'] === name && r.attributes['log.iostream'] === 'stdout')).toBe(true);
    expect(stderr[0]!.attributes).toEqual({ 'container.name': name, 'log.iostream': 'stderr', 'log.source': 'container.stderr' });
    expect(stdout[0]!.resource).toMatchObject({ 'worker.backend': 'docker', run_id: 'docker-logs-1', execution_id: 'exec-docker-logs-1' });
    expect(stub.collectorCalls.every((c) => c.headers.authorization === 'Bearer issued-1')).toBe(true);
    const everything = stub.allText();
    for (const secret of ['docker-task-secret-1', 'operator-docker-secret', 'task-key-docker', 'workload-docker', API_KEY])
      expect(everything).not.toContain(secret);
  }, 150_000);
});
