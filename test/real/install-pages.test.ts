// The `sh cluster` blocks of the README and docs/install-kubernetes.md, run line
// by line, in order, on the test cluster that test/infra/kube/up.sh starts:
// namespace, Secret, helm install, rollout status, logs, then a task through the
// installed worker, then helm uninstall. Each case asserts what the page says the
// line does; a line with no case, or a case whose line is gone, fails.
//
// Changes from the text, and why: the namespace gets a name of its own (runs share
// the cluster); `<your team key>` is a key of a fake dispatch server on this host,
// which the worker reaches instead of Warp (`warp.webSocketURL`); the image is the
// one imported into the cluster's containerd (`image.repository`/`image.tag`)
// instead of one pushed to registry.example.com; and `helm install` gets what this
// cluster needs that a real one does not: host networking through a post-renderer
// and the API server's address (it has no kube-proxy), a free health port, the
// imported stand-in agent as task and preflight image. Skips, saying why, without
// a cluster, its images or helm.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { linesMarked, normalise } from '../support/doc-blocks.js';
import { lockCluster } from '../support/cluster-lock.js';
import { assignment, FakeDispatchServer } from '../support/fake-dispatch-server.js';
import { freePort } from '../support/metrics.js';
import { ENV_FILE, type RealCluster } from '../support/real-kube.js';
import { CACHE, findHelmCluster, run, splitImage, testClusterSettings, writeHostNetworkPostRenderer } from './helm-support.js';

const LINES = linesMarked('cluster');
const CLAIMED = new Set<string>();
/** A page line a case runs, comment included (the comment is the promise). */
const page = (text: string): string => {
  const line = normalise(text);
  CLAIMED.add(line);
  return line;
};

const STEPS = {
  namespace: page('kubectl create namespace oz-agents'),
  secret: page('kubectl -n oz-agents create secret generic oz-agent-worker --from-literal=WARP_API_KEY=<your team key>'),
  install: page(
    'helm install oz-worker k8s/chart/oz-worker -n oz-agents --set worker.workerId=my-worker --set image.repository=registry.example.com/oz-worker',
  ),
  rollout: page('kubectl -n oz-agents rollout status deploy/oz-worker     # waits until /readyz answers: connected, backend ready'),
  logs: page('kubectl -n oz-agents logs deploy/oz-worker               # shows "Connected to dispatch server"'),
  uninstall: page('helm uninstall oz-worker -n oz-agents'),
};

async function availability(): Promise<{ helm: string; cluster: RealCluster } | { why: string }> {
  const found = await findHelmCluster();
  if ('why' in found) return found;
  const missing = Object.entries({ OZ_KUBE_WORKER_IMAGE: found.cluster.workerImage, OZ_KUBE_AGENT_IMAGE: found.cluster.agentImage })
    .filter(([, image]) => !image)
    .map(([name]) => name);
  return missing.length > 0 ? { why: `${ENV_FILE} names no ${missing.join(', ')}` } : found;
}

const found = await availability();
if ('why' in found) console.log(`install page cluster suite skipped: ${found.why}`);

describe('the pages', () => {
  it('have a case here for every line of their sh cluster blocks, and no case for a line they lost', () => {
    expect(LINES.filter((line) => !CLAIMED.has(line))).toEqual([]);
    expect([...CLAIMED].filter((line) => !LINES.includes(line))).toEqual([]);
  });
});

describe.skipIf('why' in found)('the sh cluster lines, on the test cluster', () => {
  const { helm, cluster } = found as { helm: string; cluster: RealCluster };
  const namespace = `oz-agents-${randomBytes(3).toString('hex')}`;
  const scratch = mkdtempSync(join(tmpdir(), 'oz-install-pages-'));
  const clusterEnv = { KUBECONFIG: cluster.kubeconfig };
  let server: FakeDispatchServer;
  let unlock: (() => void) | undefined;
  const key = `wk-install-pages-${randomBytes(4).toString('hex')}`;

  beforeAll(async () => {
    // Some suites kill the API server mid-test: hold the lock they share.
    unlock = await lockCluster(CACHE);
    server = await FakeDispatchServer.start({ apiKey: key });
  }, 16 * 60_000);
  afterAll(async () => {
    try {
      await run(cluster.kubectlPath, ['delete', 'namespace', namespace, '--wait=false'], { env: clusterEnv });
      await server?.close();
      rmSync(scratch, { recursive: true, force: true });
    } finally {
      unlock?.();
    }
  });

  /** The line as the page has it, with this run's namespace and key, as argv (no word here needs shell quoting). */
  function argv(line: string): string[] {
    const words = line
      .split(' # ')[0]!
      .replace('<your team key>', key)
      .trim()
      .split(' ')
      .map((word) => (word === 'oz-agents' ? namespace : word));
    if (words[0] === 'kubectl') words[0] = cluster.kubectlPath;
    else if (words[0] === 'helm') words[0] = helm;
    return words;
  }
  const runLine = (words: string[], timeoutMs = 120_000) => run(words[0]!, words.slice(1), { env: clusterEnv, timeoutMs });

  it.sequential(STEPS.namespace, async () => {
    const result = await runLine(argv(STEPS.namespace));
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain(`namespace/${namespace} created`);
  });

  it.sequential(STEPS.secret, async () => {
    const result = await runLine(argv(STEPS.secret));
    expect(result.code, result.stderr).toBe(0);
    const stored = await runLine([...argv('kubectl -n oz-agents get secret oz-agent-worker'), '-o', 'jsonpath={.data.WARP_API_KEY}']);
    expect(Buffer.from(stored.stdout, 'base64').toString()).toBe(key);
  });

  it.sequential(STEPS.install, { timeout: 300_000 }, async () => {
    const [repository, tag] = splitImage(cluster.workerImage);
    const words = argv(STEPS.install).map((word) => (word === 'image.repository=registry.example.com/oz-worker' ? `image.repository=${repository}` : word));
    const postRenderer = writeHostNetworkPostRenderer(join(scratch, 'host-network.sh'));
    // biome-ignore format: one flag and its value to a line
    const forThisCluster = [
      '--set', `image.tag=${tag}`,
      '--set', `warp.webSocketURL=${server.url}`,
      ...testClusterSettings(cluster, { postRenderer, healthPort: await freePort() }),
    ];
    const result = await runLine([...words, ...forThisCluster], 240_000);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/STATUS: deployed/);
  });

  it.sequential(STEPS.rollout, { timeout: 300_000 }, async () => {
    const result = await runLine(argv(STEPS.rollout), 280_000);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain('successfully rolled out');
    // Ready means /readyz answered: the worker is connected, as my-worker, with the key from the Secret.
    expect(server.handshakes.map((handshake) => handshake.workerId)).toContain('my-worker');
  });

  it.sequential(STEPS.logs, async () => {
    const result = await runLine(argv(STEPS.logs));
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain('Connected to dispatch server');
  });

  it.sequential('the installed worker runs a task as a Job', { timeout: 300_000 }, async () => {
    server.assign(assignment('page-1'));
    await server.waitForMessage('task_completed', 'page-1', 280_000);
    expect(server.messagesFor('page-1').map((message) => message.type)).not.toContain('task_failed');
  });

  it.sequential(STEPS.uninstall, { timeout: 180_000 }, async () => {
    const result = await runLine(argv(STEPS.uninstall), 170_000);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain('release "oz-worker" uninstalled');
  });
});
