// Strict reading of `pod_template` and `preflight_resources`: every field must
// exist in the Kubernetes type at that place, so a typo (`nodeSelecter`) stops
// the worker at start-up with its path instead of being dropped silently.
// The field lists come from the Kubernetes client's own models.
import * as k8s from '@kubernetes/client-node';

export class TemplateError extends Error {}

interface Attribute {
  baseName: string;
  type: string;
}

type Model = { getAttributeTypeMap(): Attribute[] };

function modelFor(type: string): Model | undefined {
  const candidate = (k8s as unknown as Record<string, unknown>)[type];
  return typeof candidate === 'function' && 'getAttributeTypeMap' in candidate ? (candidate as unknown as Model) : undefined;
}

/** Levenshtein distance, for "did you mean" on short field names. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length]!;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  return typeof value === 'object' ? 'a mapping' : `${typeof value} ${JSON.stringify(value)}`;
}

function check(value: unknown, type: string, path: string): void {
  if (value === null || value === undefined) return;
  const array = /^Array<(.+)>$/.exec(type);
  if (array) {
    if (!Array.isArray(value)) throw new TemplateError(`${path} must be a list, got ${describe(value)}`);
    for (const [i, item] of value.entries()) check(item, array[1]!, `${path}[${i}]`);
    return;
  }
  if (type.startsWith('{ [key: string]:')) {
    if (typeof value !== 'object' || Array.isArray(value)) throw new TemplateError(`${path} must be a mapping, got ${describe(value)}`);
    for (const [key, item] of Object.entries(value)) {
      if (typeof item !== 'string' && typeof item !== 'number') throw new TemplateError(`${path}.${key} must be a string, got ${describe(item)}`);
    }
    return;
  }
  switch (type) {
    case 'string':
    case 'Date':
      if (typeof value !== 'string') throw new TemplateError(`${path} must be a string, got ${describe(value)}`);
      return;
    case 'number':
      if (typeof value !== 'number') throw new TemplateError(`${path} must be a number, got ${describe(value)}`);
      return;
    case 'boolean':
      if (typeof value !== 'boolean') throw new TemplateError(`${path} must be true or false, got ${describe(value)}`);
      return;
    case 'IntOrString':
      if (typeof value !== 'string' && typeof value !== 'number') throw new TemplateError(`${path} must be a number or a string, got ${describe(value)}`);
      return;
    case 'any':
    case 'object':
      return;
  }
  const model = modelFor(type);
  if (!model) return; // a type the client does not describe: accept as is
  if (typeof value !== 'object' || Array.isArray(value)) throw new TemplateError(`${path} must be a mapping, got ${describe(value)}`);
  const attributes = new Map(model.getAttributeTypeMap().map((attribute) => [attribute.baseName, attribute.type]));
  for (const [key, item] of Object.entries(value)) {
    const itemType = attributes.get(key);
    if (itemType === undefined) {
      const near = [...attributes.keys()].find((name) => editDistance(name.toLowerCase(), key.toLowerCase()) <= 2);
      throw new TemplateError(`unknown field ${path}.${key}${near ? ` (did you mean ${near}?)` : ''}; see the Kubernetes ${type.replace(/^V1/, '')} reference`);
    }
    check(item, itemType, `${path}.${key}`);
  }
}

/** `pod_template` as a PodSpec, or a TemplateError naming the first bad field. */
export function readPodTemplate(raw: unknown, path = 'backend.kubernetes.pod_template'): k8s.V1PodSpec | undefined {
  if (raw === undefined || raw === null) return undefined;
  check(raw, 'V1PodSpec', path);
  return raw as k8s.V1PodSpec;
}

export function readResources(raw: Record<string, unknown>, path?: string): k8s.V1ResourceRequirements;
export function readResources(raw: unknown, path?: string): k8s.V1ResourceRequirements | undefined;
export function readResources(raw: unknown, path = 'backend.kubernetes.preflight_resources'): k8s.V1ResourceRequirements | undefined {
  if (raw === undefined || raw === null) return undefined;
  check(raw, 'V1ResourceRequirements', path);
  return raw as k8s.V1ResourceRequirements;
}
