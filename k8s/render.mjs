#!/usr/bin/env node
// Renders the plain manifests of this directory from the Helm chart
// (k8s/chart/oz-worker) with plain-values.yaml, so the chart is their one
// source: `node k8s/render.mjs` rewrites them, `node k8s/render.mjs --check`
// exits 1 naming the files that differ. Needs helm: $HELM_BIN, the one
// test/infra/helm/build.sh caches, or helm on PATH.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const DIR = dirname(fileURLToPath(import.meta.url));
export const RELEASE = 'oz-worker';
export const NAMESPACE = 'oz-agents';

/** The file each kind goes to (kustomization.yaml lists them). */
const FILE_OF_KIND = {
  ServiceAccount: 'serviceaccount.yaml',
  Role: 'role.yaml',
  RoleBinding: 'rolebinding.yaml',
  ConfigMap: 'configmap.yaml',
  Deployment: 'deployment.yaml',
  Service: 'metrics-service.yaml',
};

// Lines that only mean something to a Helm release: its labels (kustomize users
// apply these files with kubectl, and the Deployment's selector must stay what
// it was) and the release namespace, on each object and on the RoleBinding's
// subject (kustomization.yaml or -n chooses it; kustomize leaves a subject's
// namespace alone once it is written).
const HELM_ONLY_LINE = /^\s*(helm\.sh\/chart|app\.kubernetes\.io\/instance|app\.kubernetes\.io\/managed-by):|^ {2}namespace: /;
const SUBJECT_NAMESPACE = /^ {4}namespace: /;

const HEADER =
  '# Rendered from k8s/chart/oz-worker with k8s/plain-values.yaml by k8s/render.mjs:\n# edit those and run `node k8s/render.mjs`, not this file.\n';

export function findHelm(env = process.env) {
  const cache = join(env.OZ_TEST_CACHE || '/root/.cache/oz-worker-test', 'helm', 'bin', 'helm');
  for (const candidate of [env.HELM_BIN, cache]) if (candidate && existsSync(candidate)) return candidate;
  try {
    execFileSync('helm', ['version', '--short'], { stdio: 'ignore' });
    return 'helm';
  } catch {
    return undefined;
  }
}

/** Splits `helm template` output into this directory's files: { 'deployment.yaml': text, ... }. */
export function splitRendered(rendered) {
  const files = {};
  for (const document of rendered.split(/^---\s*$/m)) {
    const kind = /^kind:\s*(\S+)/m.exec(document)?.[1];
    const lines = document
      .split('\n')
      .filter((line) => !line.startsWith('# Source:') && !HELM_ONLY_LINE.test(line) && !(kind === 'RoleBinding' && SUBJECT_NAMESPACE.test(line)));
    const body = lines.join('\n').trim();
    if (!body) continue;
    const file = kind && FILE_OF_KIND[kind];
    if (!file) throw new Error(`the chart rendered a ${kind ?? 'document without a kind'} that no file under k8s/ holds`);
    if (files[file]) throw new Error(`the chart rendered two objects for ${file}`);
    files[file] = `${HEADER}${body}\n`;
  }
  return files;
}

export function renderPlainManifests(helm) {
  const rendered = execFileSync(helm, ['template', RELEASE, join(DIR, 'chart', 'oz-worker'), '--namespace', NAMESPACE, '-f', join(DIR, 'plain-values.yaml')], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return splitRendered(rendered);
}

/** The files whose content differs from what the chart renders. */
export function driftedFiles(files) {
  return Object.entries(files)
    .filter(([file, text]) => !existsSync(join(DIR, file)) || readFileSync(join(DIR, file), 'utf8') !== text)
    .map(([file]) => file);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const helm = findHelm();
  if (!helm) {
    console.error('render.mjs: no helm found; run `bash test/infra/helm/build.sh` (builds it into the test cache) or set HELM_BIN');
    process.exit(2);
  }
  const files = renderPlainManifests(helm);
  if (process.argv.includes('--check')) {
    const drifted = driftedFiles(files);
    if (drifted.length) {
      console.error(`k8s/: ${drifted.join(', ')} differ from the chart's rendering; run \`node k8s/render.mjs\``);
      process.exit(1);
    }
    console.log('k8s/: the plain manifests match the chart');
  } else {
    for (const [file, text] of Object.entries(files)) writeFileSync(join(DIR, file), text);
    console.log(`k8s/: wrote ${Object.keys(files).join(', ')}`);
  }
}
