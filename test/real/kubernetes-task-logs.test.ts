// Task logs from a real cluster, end to end through the local dispatch server:
// a task submitted to `oz-worker server` runs as a Job; the worker follows the
// pod's containers' logs (the setup init container and the task) into the
// task's log export, which the server keeps for `task logs --exported`.
// Skips, saying why, when no cluster is up.
import { describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import { clusterFor, Kube, kubeWorkerConfigFile, oneTestAtATimeOnTheCluster, until, type RealCluster } from '../support/real-kube.js';
import { startLocalServer } from '../support/local-server.js';
import { startWorker } from '../support/worker-process.js';

const cluster = await clusterFor('real Kubernetes task-log suite');

describe.skipIf(!cluster)('task logs of a real Kubernetes pod', () => {
  const c = cluster as RealCluster;
  const cleanups: (() => Promise<unknown> | unknown)[] = [];
  oneTestAtATimeOnTheCluster(cleanups);

  it('follows the setup and task containers’ logs, redacted, into the server’s task logs before the task completes', { timeout: 240_000 }, async () => {
    const kube = new Kube(c);
    const namespace = await kube.testNamespace('oz-logs', cleanups);
    const local = await startLocalServer();
    cleanups.push(() => local.close());
    const user = await local.createUser('kube-logs');
    const config = kubeWorkerConfigFile(
      c,
      { workerId: 'kube-logs-worker', namespace, kubernetes: [`setup_command: 'echo "setup sees $OPERATOR_SECRET"; echo setup-stderr >&2'`] },
      cleanups,
    );
    const worker = startWorker({
      args: [
        '--config-file',
        config,
        '--web-socket-url',
        local.server.webSocketUrl,
        '--server-root-url',
        local.server.httpUrl,
        '-e',
        'OPERATOR_SECRET=operator-kube-secret-7',
      ],
      env: { WARP_API_KEY: user.key },
    });
    cleanups.push(() => worker.stop());

    await until(() => local.server.dispatcher.connectedWorkers.length > 0 || worker.child.exitCode !== null, 60_000, 'the worker to connect');
    expect(worker.child.exitCode, worker.output.slice(-3000)).toBeNull();
    const client = local.as(user.key);
    const task = await client.submitTask({ prompt: 'log something', agent_config: {} });
    await worker.withOutput(local.waitForTask(client, task.id, ['completed', 'failed'], 180_000));
    expect((await client.task(task.id)).state, worker.output.slice(-3000)).toBe('completed');
    // Kept before the terminal status arrived: no waiting here.
    const { events } = await client.events(task.id, 0, 0);
    const lines = events.filter((e) => e.kind === 'log').map((e) => e.detail);
    expect(lines).toContain('[pod.setup] setup sees [REDACTED]');
    expect(lines).toContain('[pod.setup] setup-stderr');
    expect(lines.find((l) => l.startsWith('[pod.task] fake-oz: started with agent run --task-id '))).toBeDefined();
    expect(lines.join('\n')).not.toContain('operator-kube-secret-7');
    const printed = await runCli(['task', 'logs', task.id, '--exported', '--server', local.server.httpUrl, '--api-key', user.key]);
    expect(printed.code, printed.stderr).toBe(0);
    expect(printed.stdout).toContain('[pod.setup] setup sees [REDACTED]');
    await until(async () => (await kube.jobs(namespace)).length === 0 || undefined, 60_000, 'the completed Job to go');
  });
});
