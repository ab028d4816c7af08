// The install from k8s/, for real: the worker as the ServiceAccount with the
// Role and RoleBinding from k8s/ (token from the TokenRequest API), the same
// Role missing a verb, `kubectl apply --server-side --dry-run=server -k k8s/`,
// and `kubectl apply -k` of the worker Deployment with the worker image,
// connected to an `oz-worker server` on the host. Skips, saying why, when no
// cluster is up.
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { API_KEY } from '../support/direct-worker.js';
import { assignment, FakeDispatchServer } from '../support/fake-dispatch-server.js';
import { startLocalServer } from '../support/local-server.js';
import { freePort } from '../support/metrics.js';
import { clusterFor, Kube, oneTestAtATimeOnTheCluster, unique, until, type RealCluster } from '../support/real-kube.js';
import { REPO_ROOT, startWorker, tempDir } from '../support/worker-process.js';

const cluster = await clusterFor('real Kubernetes install suite');
const K8S_DIR = resolve(REPO_ROOT, 'k8s');

/** JSON-patch lines replacing the rendered Deployment's argument `index`, after testing it still holds `expected`. */
function argumentPatch(index: number, expected: string, value: string): string[] {
  const path = `/spec/template/spec/containers/0/args/${index}`;
  return [`      - {op: test, path: ${path}, value: "${expected}"}`, `      - {op: replace, path: ${path}, value: "${value}"}`];
}

describe.skipIf(!cluster)('the k8s/ install on a real cluster', () => {
  const c = cluster as RealCluster;
  let kube: Kube;
  const cleanups: (() => Promise<unknown> | unknown)[] = [];
  beforeAll(() => {
    kube = new Kube(c);
  });
  // Some tests kill the API server: one test at a time on the cluster, across files.
  oneTestAtATimeOnTheCluster(cleanups);

  /** Applies k8s/'s ServiceAccount, Role and RoleBinding into `ns` through kustomize, the Role edited by `editRole`. */
  async function applyRbac(ns: string, editRole: (yaml: string) => string = (y) => y): Promise<void> {
    const dir = tempDir('rbac');
    cleanups.push(dir.cleanup);
    for (const file of ['serviceaccount.yaml', 'rolebinding.yaml']) cpSync(join(K8S_DIR, file), join(dir.path, file));
    writeFileSync(join(dir.path, 'role.yaml'), editRole(readFileSync(join(K8S_DIR, 'role.yaml'), 'utf8')));
    writeFileSync(join(dir.path, 'kustomization.yaml'), `namespace: ${ns}\nresources: [serviceaccount.yaml, role.yaml, rolebinding.yaml]\n`);
    await kube.kubectl(['apply', '-k', dir.path]);
  }

  /** A kubeconfig holding a TokenRequest token of the oz-worker ServiceAccount. */
  async function serviceAccountKubeconfig(ns: string): Promise<string> {
    const token = (await kube.kubectl(['create', 'token', 'oz-worker', '-n', ns, '--duration=1h'])).trim();
    const admin = kube.config.getCurrentCluster()!;
    const dir = tempDir('sa-kubeconfig');
    cleanups.push(dir.cleanup);
    const path = join(dir.path, 'kubeconfig');
    const ca = readFileSync(join(c.kubeconfig), 'utf8').match(/certificate-authority-data: (\S+)/)![1];
    writeFileSync(
      path,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters:',
        `- name: test\n  cluster:\n    server: ${admin.server}\n    certificate-authority-data: ${ca}`,
        'users:',
        `- name: oz-worker\n  user:\n    token: ${token}`,
        'contexts:',
        '- name: test\n  context: {cluster: test, user: oz-worker}',
        'current-context: test',
        '',
      ].join('\n'),
    );
    return path;
  }

  function workerConfig(ns: string, kubeconfig: string, extra: string[] = []): string {
    const dir = tempDir('rbac-worker');
    cleanups.push(dir.cleanup);
    const path = join(dir.path, 'config.yaml');
    writeFileSync(
      path,
      [
        `worker_id: ${unique('rbac-worker')}`,
        'backend:',
        '  kubernetes:',
        `    namespace: ${ns}`,
        `    kubeconfig: ${kubeconfig}`,
        `    default_image: ${c.agentImage}`,
        `    preflight_image: ${c.agentImage}`,
        '    preflight_timeout: 120s',
        '    pod_template: {terminationGracePeriodSeconds: 1}',
        ...extra.map((line) => `    ${line}`),
      ].join('\n'),
    );
    return path;
  }

  it('runs tasks as the oz-worker ServiceAccount with exactly the Role from k8s/, and keeps and expires a failed Job', { timeout: 300_000 }, async () => {
    const ns = await kube.testNamespace('oz-rbac', cleanups);
    await applyRbac(ns);
    const kubeconfig = await serviceAccountKubeconfig(ns);
    const server = await FakeDispatchServer.start({ apiKey: API_KEY });
    cleanups.push(() => server.close());
    const worker = startWorker({
      args: ['--config-file', workerConfig(ns, kubeconfig, ['unschedulable_timeout: 4s']), '--web-socket-url', server.url],
      env: { WARP_API_KEY: API_KEY },
    });
    cleanups.push(() => worker.stop());
    await worker.withOutput(server.waitForConnection(1, 120_000));
    server.assign(assignment('as-sa', { execution_id: 'exec-as-sa', env_vars: { FAKE_OZ_SLEEP_MS: '1000' } }));
    await server.waitForMessage('task_completed', 'as-sa', 120_000);
    // A pod that has stopped: its pods are listed (by the Job's controller-uid) and the Job is kept as it is.
    server.assign(assignment('as-sa-fail', { execution_id: 'exec-as-sa-fail', env_vars: { FAKE_OZ_EXIT: '4' } }));
    const failed = await server.waitForMessage('task_failed', 'as-sa-fail', 120_000);
    expect(failed.data).toMatchObject({ failure_reason: 'container_exit', exit_code: 4 });
    // A pod that never ran: the Job is re-read and expired with a merge patch, all as the ServiceAccount.
    server.assign(assignment('as-sa-unsched', { execution_id: 'exec-as-sa-unsched', instance_shape: { vcpus: 64 } }));
    const unschedulable = await server.waitForMessage('task_failed', 'as-sa-unsched', 120_000);
    expect(unschedulable.data.failure_reason).toBe('unschedulable');
    const expired = await worker.withOutput(
      until(
        async () =>
          (await kube.jobs(ns)).find(
            (job) =>
              job.metadata?.labels?.['oz-task-id'] === 'as-sa-unsched' &&
              job.status?.conditions?.some((cond) => cond.type === 'Failed' && cond.reason === 'DeadlineExceeded'),
          ),
        90_000,
        'the unschedulable task Job to be kept and expired',
      ),
    );
    expect(expired.spec).toMatchObject({ activeDeadlineSeconds: 1, parallelism: 0 });
    expect(expired.metadata?.annotations?.['oz-worker.dev/reported']).toBe('true');
    const kept = (await kube.jobs(ns)).find((job) => job.metadata?.labels?.['oz-task-id'] === 'as-sa-fail');
    expect(kept?.spec?.activeDeadlineSeconds).not.toBe(1);
    expect(worker.output).not.toMatch(/Cannot confirm execution stopped|Cannot refresh abandoned Job|job expiration failed/);
  });

  it.each([
    [
      'watch',
      'pods',
      (y: string) => y.replace('verbs: ["list", "watch"]', 'verbs: ["list"]'),
      /lacks permissions in namespace "[^"]+": watch pods \(to notice failing task pods early\)/,
    ],
    [
      'patch',
      'batch/jobs',
      (y: string) => y.replace(', "delete", "patch"]', ', "delete"]'),
      /lacks permissions in namespace "[^"]+": patch batch\/jobs \(to mark Jobs whose result was reported, and to expire failed Jobs whose pods may still run\)/,
    ],
  ])('stops at start-up naming the verb when the Role lacks %s on %s', { timeout: 120_000 }, async (_verb, _resource, edit, message) => {
    const ns = await kube.testNamespace('oz-rbac', cleanups);
    await applyRbac(ns, edit);
    const kubeconfig = await serviceAccountKubeconfig(ns);
    const worker = startWorker({
      args: ['--config-file', workerConfig(ns, kubeconfig), '--web-socket-url', 'ws://127.0.0.1:9/unused'],
      env: { WARP_API_KEY: API_KEY },
    });
    cleanups.push(() => worker.stop());
    const exit = await worker.exited;
    expect(exit.code).toBe(1);
    expect(worker.output).toMatch(message);
    expect(worker.output).toMatch(/k8s\/role\.yaml/);
  });

  it('kubectl apply --server-side --dry-run=server -k k8s/ passes on the real API server', { timeout: 120_000 }, async () => {
    await kube.kubectl(['create', 'namespace', 'oz-agents']).catch((error: Error) => {
      if (!/AlreadyExists/.test(error.message)) throw error;
    });
    const out = await kube.kubectl(['apply', '--server-side', '--dry-run=server', '-k', K8S_DIR]);
    for (const object of [
      'serviceaccount/oz-worker',
      'role.rbac.authorization.k8s.io/oz-worker',
      'rolebinding.rbac.authorization.k8s.io/oz-worker',
      'configmap/oz-worker-config',
      'deployment.apps/oz-worker',
    ]) {
      expect(out).toContain(`${object} serverside-applied (server dry run)`);
    }
  });

  it.skipIf(!c?.workerImage)(
    'kubectl apply -k runs the worker Deployment: Ready, connected to oz-worker server on the host, a task done as a Job',
    { timeout: 300_000 },
    async () => {
      const ns = unique('oz-install');
      const local = await startLocalServer();
      cleanups.push(() => local.close());
      const alice = await local.createUser('alice');
      const team = await local.createTeam('platform', { members: [alice.id], defaultAgent: { model_id: 'claude-test' } });
      const [healthPort, metricsPort] = [await freePort(), await freePort()];
      const server = new URL(c.server);

      // An overlay on the unchanged k8s/ base, as a platform team would write one. Test-only changes: the
      // namespace, the locally imported image, and host networking (no kube-proxy here), so the pod reaches
      // the API server and the dispatch server on loopback.
      const dir = tempDir('overlay');
      cleanups.push(dir.cleanup);
      mkdirSync(join(dir.path, 'overlay'));
      const overlay = join(dir.path, 'overlay');
      const [imageName, imageTag] = c.workerImage.split(':');
      writeFileSync(
        join(overlay, 'config.yaml'),
        [
          'worker_id: oz-k8s-worker',
          'cleanup: true',
          'max_concurrent_tasks: 20',
          'backend:',
          '  kubernetes:',
          `    namespace: ${ns}`,
          `    default_image: ${c.agentImage}`,
          `    preflight_image: ${c.agentImage}`,
          '    image_pull_policy: IfNotPresent',
          '    preflight_timeout: 2m',
          '    pod_template:',
          '      terminationGracePeriodSeconds: 1',
          '      securityContext: {seccompProfile: {type: RuntimeDefault}}',
          '',
        ].join('\n'),
      );
      writeFileSync(
        join(overlay, 'kustomization.yaml'),
        [
          'apiVersion: kustomize.config.k8s.io/v1beta1',
          'kind: Kustomization',
          `namespace: ${ns}`,
          'resources:',
          // kustomize takes a base directory by relative path only.
          `  - ${relative(overlay, K8S_DIR)}`,
          'images:',
          `  - {name: ghcr.io/your-org/oz-worker, newName: ${imageName}, newTag: "${imageTag}"}`,
          'configMapGenerator:',
          '  - name: oz-worker-config',
          '    behavior: replace',
          '    files: [config.yaml]',
          'generatorOptions: {disableNameSuffixHash: true}',
          'patches:',
          '  - target: {kind: Deployment, name: oz-worker}',
          '    patch: |-',
          '      - {op: add, path: /spec/template/spec/hostNetwork, value: true}',
          '      - {op: add, path: /spec/template/spec/dnsPolicy, value: ClusterFirstWithHostNet}',
          // Each replaced argument is tested first, so a change in the rendered Deployment's argument order
          // fails `kubectl apply` here instead of patching the wrong flag. kubelet probes a host-network pod
          // at the node's address, so health listens on all addresses (on a free host port).
          ...argumentPatch(3, '--web-socket-url=wss://oz.warp.dev/api/v1/selfhosted/worker/ws', `--web-socket-url=${local.server.webSocketUrl}`),
          ...argumentPatch(4, '--server-root-url=https://app.warp.dev', `--server-root-url=${local.server.httpUrl}`),
          ...argumentPatch(5, '--health-listen=0.0.0.0:8080', `--health-listen=0.0.0.0:${healthPort}`),
          '      - op: replace',
          '        path: /spec/template/spec/containers/0/ports',
          `        value: [{name: health, containerPort: ${healthPort}}, {name: metrics, containerPort: ${metricsPort}}]`,
          '      - op: add',
          '        path: /spec/template/spec/containers/0/env/-',
          `        value: {name: KUBERNETES_SERVICE_HOST, value: "${server.hostname}"}`,
          '      - op: add',
          '        path: /spec/template/spec/containers/0/env/-',
          `        value: {name: KUBERNETES_SERVICE_PORT, value: "${server.port}"}`,
          '      - {op: replace, path: /spec/template/spec/containers/0/env/2/value, value: 127.0.0.1}',
          '      - op: replace',
          '        path: /spec/template/spec/containers/0/env/3/value',
          `        value: "${metricsPort}"`,
          '',
        ].join('\n'),
      );
      await kube.kubectl(['create', 'namespace', ns]);
      cleanups.push(() => kube.deleteNamespace(ns));
      await kube.kubectl(['-n', ns, 'create', 'secret', 'generic', 'oz-worker', `--from-literal=WARP_API_KEY=${team.key}`]);
      await kube.kubectl(['apply', '-k', overlay]);

      const describeFailure = async (): Promise<string> =>
        [
          await kube.kubectl(['-n', ns, 'get', 'pods', '-o', 'wide']).catch(String),
          await kube.kubectl(['-n', ns, 'logs', 'deploy/oz-worker', '--tail=40']).catch(String),
        ].join('\n');
      await kube.kubectl(['-n', ns, 'rollout', 'status', 'deploy/oz-worker', '--timeout=180s'], { timeoutMs: 200_000 }).catch(async (error: Error) => {
        throw new Error(`${error.message}\n${await describeFailure()}`);
      });
      const pod = (await kube.core.listNamespacedPod({ namespace: ns, labelSelector: 'app.kubernetes.io/name=oz-worker' })).items[0]!;
      expect(pod.status?.conditions?.find((cond) => cond.type === 'Ready')?.status).toBe('True');
      expect(pod.spec?.serviceAccountName).toBe('oz-worker');
      expect(pod.spec?.containers[0]?.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false });
      const logs = await kube.kubectl(['-n', ns, 'logs', pod.metadata!.name!]);
      expect(logs).toContain('Connected to dispatch server');
      expect(logs).not.toContain('Cannot write the worker journal');

      const client = local.as(alice.key);
      const submitted = await client.submitTask({ prompt: 'run in the cluster', owner: { type: 'TEAM', id: team.id } });
      const seenJob = until(
        async () => (await kube.jobs(ns)).find((job) => job.metadata?.labels?.['oz-task-id'] === submitted.id.toLowerCase()),
        120_000,
        'the task Job',
      ).catch(() => undefined);
      const done = await local.waitForTask(client, submitted.id, ['completed', 'failed'], 180_000).catch(async (error: Error) => {
        throw new Error(`${error.message}\n${await describeFailure()}`);
      });
      expect(done.state).toBe('completed');
      const job = await seenJob;
      expect(job).toBeDefined();
      expect(job!.metadata?.labels?.['oz-worker-id']).toBe('oz-k8s-worker');
      // The probes hit the port the worker serves: the pod ran the whole task without a restart.
      const after = await kube.core.readNamespacedPod({ namespace: ns, name: pod.metadata!.name! });
      expect(after.status?.containerStatuses?.[0]?.restartCount).toBe(0);
    },
  );
});
