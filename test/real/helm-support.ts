// Shared by the real Helm suites: finds the helm binary that
// test/infra/helm/build.sh caches, renders the chart, and reads the result.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';

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
