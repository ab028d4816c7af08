// The manifests under k8s/: valid against the Kubernetes schema, the Role grants
// exactly what the worker checks for, the config parses with the worker's own
// schema, and the Deployment passes only flags the worker knows.
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Command } from 'commander';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { Role } from 'kubernetes-models/rbac.authorization.k8s.io/v1/Role';
import { RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Secret } from 'kubernetes-models/v1/Secret';
import { Service } from 'kubernetes-models/v1/Service';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { readPodTemplate } from '../../src/backends/kubernetes/pod-template.js';
import { REQUIRED_ACCESS } from '../../src/backends/kubernetes/startup-checks.js';
import { addWorkerOptions } from '../../src/cli/worker-options.js';
import { parseConfigText } from '../../src/config/load-file.js';
import { resolveWorkerConfig } from '../../src/config/resolve.js';
import { DEFAULT_SHUTDOWN_GRACE_MS } from '../../src/config/worker-config.js';

const DIR = resolve(import.meta.dirname, '../../k8s');
const load = (file: string): any => parse(readFileSync(join(DIR, file), 'utf8'));
const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  Deployment,
  Role,
  RoleBinding,
  ConfigMap,
  Secret,
  Service,
  ServiceAccount,
};

describe('k8s/ manifests', () => {
  const kustomization = load('kustomization.yaml');
  const files = [...kustomization.resources, 'secret.example.yaml', 'metrics-service.yaml'] as string[];

  it.each(files)('%s is valid against the Kubernetes schema', (file) => {
    const manifest = load(file);
    const Model = MODELS[manifest.kind];
    expect(Model, `no schema for kind ${manifest.kind}`).toBeDefined();
    expect(() => new Model!(manifest as never).validate()).not.toThrow();
  });

  it('grants exactly the permissions the worker checks at start-up', () => {
    const granted = load('role.yaml').rules.flatMap((rule: { apiGroups: string[]; resources: string[]; verbs: string[] }) =>
      rule.apiGroups.flatMap((group) => rule.resources.flatMap((resource) => rule.verbs.map((verb) => `${verb} ${group}/${resource}`))),
    );
    const needed = REQUIRED_ACCESS.map((a) => `${a.verb} ${a.group}/${a.resource}${a.subresource ? `/${a.subresource}` : ''}`);
    expect([...granted].sort()).toEqual([...needed].sort());
  });

  it('ships a config the worker accepts, with a valid pod_template', () => {
    const text = load('configmap.yaml').data['config.yaml'] as string;
    const file = parseConfigText(text, 'k8s/configmap.yaml');
    const config = resolveWorkerConfig({}, file, { WARP_API_KEY: 'k' }, () => '');
    if (config.backend !== 'kubernetes') throw new Error(`expected the kubernetes backend, got ${config.backend}`);
    expect(() => readPodTemplate(config.kubernetes.podTemplate)).not.toThrow();
  });

  it('runs one worker per id, drains within the pod grace period, and probes health', () => {
    const deployment = load('deployment.yaml');
    expect(deployment.spec.replicas).toBe(1);
    expect(deployment.spec.strategy.type).toBe('Recreate');
    const pod = deployment.spec.template.spec;
    expect(pod.terminationGracePeriodSeconds * 1000).toBeGreaterThan(DEFAULT_SHUTDOWN_GRACE_MS);
    const [worker] = pod.containers;
    expect(worker.livenessProbe.httpGet.path).toBe('/livez');
    expect(worker.readinessProbe.httpGet.path).toBe('/readyz');
    expect(worker.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false });
    expect(pod.securityContext.runAsNonRoot).toBe(true);
    // Every flag the Deployment passes is one the worker knows.
    const known = new Set(addWorkerOptions(new Command()).options.flatMap((option) => [option.long, option.short].filter(Boolean)));
    for (const arg of worker.args as string[]) {
      const flag = arg.split('=')[0]!;
      if (flag.startsWith('-')) expect(known.has(flag), `unknown flag ${flag}`).toBe(true);
    }
    // The key comes from a Secret, never from the manifest: the one secret.example.yaml shows how to make.
    const { secretKeyRef } = worker.env.find((e: { name: string }) => e.name === 'WARP_API_KEY').valueFrom;
    const example = load('secret.example.yaml');
    expect(secretKeyRef.name).toBe(example.metadata.name);
    expect(Object.keys(example.stringData)).toEqual([secretKeyRef.key]);
  });
});
