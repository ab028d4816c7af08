// The Helm chart against a real Kubernetes control plane (the one
// test/infra/kube/up.sh starts, found through $OZ_TEST_CACHE/kube/env):
// rendered manifests pass server-side dry-run; `helm install` runs the worker
// and a task completes as a Job; `helm upgrade` rolls the worker without two
// connections for one worker id at any moment.
//
// The env file names KUBECONFIG and, for the install tests, the images the
// cluster can run (OZ_KUBE_WORKER_IMAGE: this worker; OZ_KUBE_AGENT_IMAGE and
// OZ_KUBE_SIDECAR_IMAGE: the task's stand-ins) and OZ_KUBE_HOST_ADDRESS, the
// address of this machine that pods reach (a test network's, never a public one).
import { randomBytes } from 'node:crypto';
import { createServer, type Server, type Socket, connect } from 'node:net';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assignment, FakeDispatchServer } from '../support/fake-dispatch-server.js';
import { CACHE, CHART, FIXTURES, findHelm, parseManifests, readEnvFile, run } from './helm-support.js';

const KUBE_ENV_FILE = join(CACHE, 'kube', 'env');
const API_KEY = 'wk-helm-cluster-test';

function availability(): { helm: string; env: Record<string, string> } | { why: string } {
  const helm = findHelm();
  if ('why' in helm) return helm;
  const env = readEnvFile(KUBE_ENV_FILE);
  if (!env) return { why: `no ${KUBE_ENV_FILE} (test/infra/kube/up.sh writes it)` };
  if (env.OZ_KUBE_UNAVAILABLE) return { why: env.OZ_KUBE_UNAVAILABLE };
  if (!env.KUBECONFIG) return { why: `${KUBE_ENV_FILE} names no KUBECONFIG` };
  return { helm: helm.helm, env };
}

const found = availability();
if ('why' in found) console.warn(`real Helm cluster suite skipped: ${found.why}`);
const helm = 'helm' in found ? found.helm : '';
const kubeEnv = 'env' in found ? found.env : {};
const INSTALL_KEYS = ['OZ_KUBE_WORKER_IMAGE', 'OZ_KUBE_AGENT_IMAGE', 'OZ_KUBE_SIDECAR_IMAGE', 'OZ_KUBE_HOST_ADDRESS'] as const;
const missingForInstall = INSTALL_KEYS.filter((key) => !kubeEnv[key]);
if (helm && missingForInstall.length) console.warn(`real Helm install tests skipped: ${KUBE_ENV_FILE} lacks ${missingForInstall.join(', ')}`);

const kube = (args: string[], input?: string) => run('kubectl', args, { env: { KUBECONFIG: kubeEnv.KUBECONFIG! }, input, timeoutMs: 180_000 });
const helmRun = (args: string[]) => run(helm, args, { env: { KUBECONFIG: kubeEnv.KUBECONFIG! }, timeoutMs: 300_000 });
const suffix = randomBytes(3).toString('hex');
const namespaces: string[] = [];
const scratch = mkdtempSync(join(tmpdir(), 'oz-helm-cluster-'));

async function namespace(name: string): Promise<string> {
  const result = await kube(['create', 'namespace', name]);
  expect(result.code, result.stderr).toBe(0);
  namespaces.push(name);
  return name;
}

afterAll(async () => {
  if (!helm) return;
  for (const name of namespaces) await kube(['delete', 'namespace', name, '--wait=false']);
});

describe.skipIf(!helm)('Helm chart on a real cluster', () => {
  it('renders manifests the API server accepts (kubectl apply --dry-run=server)', async () => {
    const release = await namespace(`oz-helm-dry-${suffix}`);
    const tasks = await namespace(`oz-helm-dry-${suffix}-tasks`);
    const podMonitorCrd = (await kube(['get', 'crd', 'podmonitors.monitoring.coreos.com'])).code === 0;
    for (const values of [
      ['-f', join(FIXTURES, 'go-chart-defaults.yaml'), '--set', 'worker.workerId=dry-run', '--set', 'image.repository=registry.example.com/oz-worker'],
      ['-f', join(FIXTURES, 'go-chart-every-key.yaml'), '--set', `kubernetesBackend.namespace=${tasks}`, '--set', `metrics.podMonitor.create=${podMonitorCrd}`],
    ]) {
      const rendered = await helmRun(['template', 'dry', CHART, '--namespace', release, ...values]);
      expect(rendered.code, rendered.stderr).toBe(0);
      expect(parseManifests(rendered.stdout).length).toBeGreaterThan(4);
      const applied = await kube(['apply', '--dry-run=server', '-f', '-'], rendered.stdout);
      expect(applied.code, applied.stderr).toBe(0);
    }
  });

  describe.skipIf(missingForInstall.length > 0)('helm install and upgrade', () => {
    let server: FakeDispatchServer;
    let relay: Relay;
    let ns: string;
    const release = `oz-helm-${suffix}`;

    beforeAll(async () => {
      server = await FakeDispatchServer.start({ apiKey: API_KEY });
      relay = await Relay.start(kubeEnv.OZ_KUBE_HOST_ADDRESS!, new URL(server.url).port);
      ns = await namespace(`oz-helm-${suffix}`);
    }, 60_000);
    afterAll(async () => {
      await helmRun(['uninstall', release, '--namespace', ns, '--wait']);
      await relay?.close();
      await server?.close();
    });

    const [repository, tag] = splitImage(kubeEnv.OZ_KUBE_WORKER_IMAGE ?? '');
    const values = (namespace = ns) => [
      '--namespace', namespace,
      '--set', 'worker.workerId=helm-e2e',
      '--set', `image.repository=${repository}`, '--set', `image.tag=${tag}`,
      '--set', 'warp.apiKeySecret.create=true', '--set', `warp.apiKeySecret.value=${API_KEY}`,
      '--set', `warp.webSocketURL=ws://${relay.address}/api/v1/selfhosted/worker/ws`,
      '--set', 'kubernetesBackend.preflightTimeout=0s',
      '--wait', '--timeout', '4m',
    ];

    it('helm install runs the worker, and a task completes as a Job', async () => {
      const installed = await helmRun(['install', release, CHART, ...values()]);
      expect(installed.code, installed.stderr).toBe(0);
      await server.waitForConnection(1, 60_000);
      server.assign(assignment('helm-1', { docker_image: kubeEnv.OZ_KUBE_AGENT_IMAGE, sidecar_image: kubeEnv.OZ_KUBE_SIDECAR_IMAGE }));
      await server.waitForMessage('task_completed', 'helm-1', 180_000);
      expect(server.messagesFor('helm-1').map((m) => m.type)).not.toContain('task_failed');
    }, 300_000);

    it('helm upgrade with a changed value rolls the worker, never two connected at once', async () => {
      const before = await kube(['get', 'pods', '-n', ns, '-l', `app.kubernetes.io/instance=${release}`, '-o', 'jsonpath={.items[*].metadata.name}']);
      relay.resetPeak();
      const upgraded = await helmRun(['upgrade', release, CHART, ...values(), '--set', 'worker.logLevel=debug']);
      expect(upgraded.code, upgraded.stderr).toBe(0);
      const after = await kube(['get', 'deploy', '-n', ns, '-l', `app.kubernetes.io/instance=${release}`, '-o', 'jsonpath={.items[0].spec.template.spec.containers[0].args}']);
      expect(after.stdout).toContain('--log-level=debug');
      const pods = await kube(['get', 'pods', '-n', ns, '-l', `app.kubernetes.io/instance=${release}`, '-o', 'jsonpath={.items[*].metadata.name}']);
      expect(pods.stdout.trim()).not.toBe(before.stdout.trim());
      await server.until(() => relay.open === 1, 60_000, 'the new worker to connect');
      expect(relay.peak).toBe(1);
    }, 360_000);

    it("upgrades a release of the Go chart in place with the Go chart's values file", async () => {
      const goNs = await namespace(`oz-helm-go-${suffix}`);
      const goChart = writeGoLikeChart(join(scratch, 'go-like'), kubeEnv.OZ_KUBE_WORKER_IMAGE!);
      const installed = await helmRun(['install', 'oz-agent-worker', goChart, '--namespace', goNs, '--wait', '--timeout', '3m']);
      expect(installed.code, installed.stderr).toBe(0);
      const upgraded = await helmRun([
        'upgrade', 'oz-agent-worker', CHART, '-f', join(FIXTURES, 'go-chart-defaults.yaml'),
        '--set', 'nameOverride=oz-agent-worker', '--set', `image.repository=${repository}`, '--set', `image.tag=${tag}`,
        ...values(goNs),
        '--set', 'worker.workerId=helm-go-upgrade',
      ]);
      expect(upgraded.code, upgraded.stderr).toBe(0);
      const strategy = await kube(['get', 'deploy', 'oz-agent-worker', '-n', goNs, '-o', 'jsonpath={.spec.strategy}']);
      expect(JSON.parse(strategy.stdout)).toEqual({ type: 'Recreate' });
      await server.until(() => server.handshakes.some((h) => h.workerId === 'helm-go-upgrade'), 60_000, 'the upgraded worker to connect');
      await helmRun(['uninstall', 'oz-agent-worker', '--namespace', goNs, '--wait']);
    }, 360_000);
  });
});

/** A chart shaped like the Go worker's (same object names and selector, RollingUpdate by default) running a placeholder. */
function writeGoLikeChart(dir: string, image: string): string {
  mkdirSync(join(dir, 'templates'), { recursive: true });
  writeFileSync(join(dir, 'Chart.yaml'), 'apiVersion: v2\nname: oz-agent-worker\nversion: 0.1.0\n');
  writeFileSync(
    join(dir, 'templates', 'objects.yaml'),
    `apiVersion: v1
kind: ServiceAccount
metadata:
  name: oz-agent-worker
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: oz-agent-worker-config
data:
  config.yaml: "worker_id: placeholder"
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: oz-agent-worker
spec:
  replicas: 1
  selector:
    matchLabels: &labels
      app.kubernetes.io/name: oz-agent-worker
      app.kubernetes.io/instance: {{ .Release.Name }}
  template:
    metadata:
      labels: *labels
    spec:
      serviceAccountName: oz-agent-worker
      containers:
        - name: oz-agent-worker
          image: ${image}
          command: ["sleep", "infinity"]
`,
  );
  return dir;
}

function splitImage(image: string): [string, string] {
  const at = image.lastIndexOf(':');
  return at > image.lastIndexOf('/') ? [image.slice(0, at), image.slice(at + 1)] : [image, 'latest'];
}

/** Forwards the cluster's connections to the loopback dispatch server, counting how many are open at once. */
class Relay {
  open = 0;
  peak = 0;
  private readonly sockets = new Set<Socket>();
  private constructor(private readonly server: Server, readonly address: string) {}

  static async start(host: string, targetPort: string): Promise<Relay> {
    const server = createServer();
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, host, resolve));
    const { port } = server.address() as { port: number };
    const relay = new Relay(server, `${host.includes(':') ? `[${host}]` : host}:${port}`);
    server.on('connection', (inbound) => relay.forward(inbound, Number(targetPort)));
    return relay;
  }

  private forward(inbound: Socket, targetPort: number): void {
    const outbound = connect(targetPort, '127.0.0.1');
    this.sockets.add(inbound).add(outbound);
    this.open += 1;
    this.peak = Math.max(this.peak, this.open);
    let closed = false;
    const close = () => {
      if (closed) return;
      closed = true;
      this.open -= 1;
      inbound.destroy();
      outbound.destroy();
      this.sockets.delete(inbound);
      this.sockets.delete(outbound);
    };
    inbound.pipe(outbound).on('error', close).on('close', close);
    outbound.pipe(inbound).on('error', close).on('close', close);
    inbound.on('error', close).on('close', close);
  }

  resetPeak(): void {
    this.peak = this.open;
  }

  close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
