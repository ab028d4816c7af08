// Shared by the real Helm suites: finds the helm binary that
// test/infra/helm/build.sh caches (and the test cluster, for the suites that
// install), renders the chart, reads the result, and says what an install on
// the test cluster needs.
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { findCluster, type RealCluster } from '../support/real-kube.js';

export const REPO_ROOT = resolve(import.meta.dirname, '../..');
export const CHART = join(REPO_ROOT, 'k8s/chart/oz-worker');
export const FIXTURES = join(REPO_ROOT, 'test/fixtures/helm');
export const CACHE = process.env.OZ_TEST_CACHE || '/root/.cache/oz-worker-test';

/** KEY=VALUE lines of an infra env file; undefined when the file is missing. */
export function readEnvFile(path: string): Record<string, string> | undefined {
  if (!existsSync(path)) return undefined;
  const env: Record<string, string> = {};
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const match = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line.trim());
    if (match) env[match[1]!] = match[2]!.replace(/^(['"])(.*)\1$/, '$2');
  }
  return env;
}

/** The helm binary, or why there is none (the suites print it as their skip line). */
export function findHelm(): { helm: string } | { why: string } {
  if (process.env.HELM_BIN && existsSync(process.env.HELM_BIN)) return { helm: process.env.HELM_BIN };
  const env = readEnvFile(join(CACHE, 'helm', 'env'));
  if (!env) return { why: `no ${join(CACHE, 'helm', 'env')} (run bash test/infra/helm/build.sh)` };
  if (!env.HELM_BIN || !existsSync(env.HELM_BIN))
    return { why: `the helm binary named in ${join(CACHE, 'helm', 'env')} is missing (rerun test/infra/helm/build.sh)` };
  return { helm: env.HELM_BIN };
}

/** helm and the test cluster (test/infra/kube/up.sh), or why a suite that installs skips. */
export async function findHelmCluster(): Promise<{ helm: string; cluster: RealCluster } | { why: string }> {
  const helm = findHelm();
  if ('why' in helm) return helm;
  const cluster = await findCluster();
  if ('skip' in cluster) return { why: cluster.skip };
  return { helm: helm.helm, cluster };
}

/** `repository:tag` as the chart's image.repository and image.tag take it. */
export function splitImage(image: string): [string, string] {
  const at = image.lastIndexOf(':');
  return at > image.lastIndexOf('/') ? [image.slice(0, at), image.slice(at + 1)] : [image, 'latest'];
}

/** A helm --post-renderer that puts the worker pod on the host network (the test cluster has no kube-proxy). */
export function writeHostNetworkPostRenderer(path: string): string {
  writeFileSync(
    path,
    "#!/bin/sh\nexec sed 's/^      serviceAccountName: \\(.*\\)$/      serviceAccountName: \\1\\n      hostNetwork: true\\n      dnsPolicy: ClusterFirstWithHostNet/'\n",
  );
  chmodSync(path, 0o755);
  return path;
}

/**
 * What `helm install` needs on the test cluster that a real one does not: the
 * worker pod on the host network (`postRenderer`) with a free health port, the
 * API server's address (no kube-proxy), and the stand-in agent containerd
 * already has as task and preflight image, its pods stopping at once.
 */
export function testClusterSettings(cluster: RealCluster, options: { postRenderer: string; healthPort: number }): string[] {
  const apiServer = new URL(cluster.server || 'https://127.0.0.1:6443');
  // biome-ignore format: one flag and its value to a line
  return [
    '--post-renderer', options.postRenderer,
    '--set', `worker.healthPort=${options.healthPort}`,
    '--set', 'worker.extraEnv[0].name=KUBERNETES_SERVICE_HOST',
    '--set', `worker.extraEnv[0].value=${apiServer.hostname}`,
    '--set', 'worker.extraEnv[1].name=KUBERNETES_SERVICE_PORT',
    '--set-string', `worker.extraEnv[1].value=${apiServer.port || '443'}`,
    '--set', `kubernetesBackend.defaultImage=${cluster.agentImage}`,
    '--set', `kubernetesBackend.preflightImage=${cluster.agentImage}`,
    '--set', 'kubernetesBackend.podTemplate.terminationGracePeriodSeconds=1',
  ];
}

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export function run(command: string, args: string[], options: { env?: Record<string, string>; input?: string; timeoutMs?: number } = {}): Promise<Run> {
  return new Promise((done) => {
    const child = execFile(
      command,
      args,
      { cwd: REPO_ROOT, env: { ...process.env, ...options.env }, timeout: options.timeoutMs ?? 120_000, maxBuffer: 32 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        done({ code, stdout, stderr: stderr || (error && !stderr ? String(error.message) : '') });
      },
    );
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}

/** A rendered Kubernetes object (loosely typed: the tests read it like a user would). */
export type Manifest = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; [key: string]: any }; [key: string]: any };

export function parseManifests(text: string): Manifest[] {
  return parseAllDocuments(text)
    .map((document) => document.toJS() as Manifest | null)
    .filter((manifest): manifest is Manifest => manifest !== null);
}

export function only(manifests: Manifest[], kind: string, name?: string): Manifest {
  const found = manifests.filter((m) => m.kind === kind && (name === undefined || m.metadata.name === name));
  if (found.length !== 1)
    throw new Error(
      `expected one ${kind}${name ? ` ${name}` : ''}, rendered ${found.length}: ${manifests.map((m) => `${m.kind}/${m.metadata.name}`).join(', ')}`,
    );
  return found[0]!;
}
