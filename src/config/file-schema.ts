// The YAML config file: exactly the Go worker's keys plus `device`,
// `api_key_file` and `shutdown_grace_period`. Strict everywhere except the
// opaque Kubernetes blocks (`pod_template`, `preflight_resources`).
//
// Scalar rules follow Go's YAML decoder: string fields take any scalar's text
// (`worker_id: 123` is "123"), bool fields also take yes/no/on/off/y/n, int
// fields refuse quoted numbers, and null means "not set".
//
// Unlike Go, an empty block (`backend:\n  direct:`) selects that backend.
//
// Custom messages are predicates ("is required (...)"): the loader prefixes
// them with the key path and line. Each says what to do.
import { z } from 'zod';
import { InvalidDurationError, parseGoDuration } from './go-duration.js';
import { volumeSpecProblem } from './volume-spec.js';
import { treeToPlain, YamlScalar } from './yaml-tree.js';

export const IMAGE_PULL_POLICIES = ['Always', 'Never', 'IfNotPresent'] as const;
export type ImagePullPolicy = (typeof IMAGE_PULL_POLICIES)[number];
/**
 * `backend.docker.pull_policy`: oz-worker's own spelling, from before the Go
 * worker had `backend.docker.image_pull_policy`. The two keys are one setting;
 * each old value means the Go value it maps to.
 */
export const DOCKER_PULL_POLICIES = { always: 'Always', if_not_present: 'IfNotPresent', never: 'Never' } as const satisfies Record<string, ImagePullPolicy>;
export type DockerPullPolicy = keyof typeof DOCKER_PULL_POLICIES;
export const BACKEND_BLOCKS = ['docker', 'direct', 'command', 'kubernetes'] as const;

/** Issue params marking a message that already names what it is about. */
export const STANDALONE = { standalone: true } as const;

type Converted<T> = { value: T } | { problem: string };

/** A scalar leaf from a parsed YAML tree, or a plain value given programmatically. */
function asScalar(input: unknown): YamlScalar | undefined {
  if (input instanceof YamlScalar) return input;
  if (input === null) return new YamlScalar(null, '');
  const type = typeof input;
  if (type === 'string' || type === 'number' || type === 'boolean' || type === 'bigint') {
    return new YamlScalar(input, String(input as string | number | boolean | bigint));
  }
  return undefined;
}

function kindOf(input: unknown): string {
  if (Array.isArray(input)) return 'list';
  if (input instanceof YamlScalar) return typeof input.value === 'string' ? 'text' : typeof input.value;
  return typeof input === 'object' && input !== null ? 'mapping' : typeof input;
}

/** A scalar value; `convert` also sees null (`key:` with nothing, `~`) and decides what it means. */
function scalarLeaf<T>(expected: string, convert: (leaf: YamlScalar) => Converted<T>) {
  return z.unknown().transform((input, ctx): T => {
    const scalar = asScalar(input);
    if (!scalar) {
      ctx.addIssue({ code: 'custom', message: `must be ${expected}, not a ${kindOf(input)}`, input });
      return z.NEVER;
    }
    const result = convert(scalar);
    if ('problem' in result) {
      ctx.addIssue({ code: 'custom', message: result.problem, input });
      return z.NEVER;
    }
    return result.value;
  });
}

/** A scalar field where absent and null both mean "not set". */
function scalar<T>(expected: string, convert: (leaf: YamlScalar) => Converted<T>) {
  return scalarLeaf<T | undefined>(expected, (value) => (value.value === null ? { value: undefined } : convert(value))).optional();
}

const show = (leaf: YamlScalar): string => (leaf.value === null ? 'nothing' : JSON.stringify(leaf.text));

const textOf = (leaf: YamlScalar): Converted<string> => ({ value: leaf.text });

function goString() {
  return scalar('text', textOf);
}

/** Text that must be one word, such as an image reference. */
function noWhitespace(what: string) {
  return scalar(
    'text',
    (leaf): Converted<string> => (/\s/.test(leaf.text) ? { problem: `must not contain whitespace (got ${show(leaf)}; ${what})` } : { value: leaf.text }),
  );
}

const YAML11_TRUE = new Set(['y', 'yes', 'on']);
const YAML11_FALSE = new Set(['n', 'no', 'off']);

function goBool() {
  return scalar('true or false', (leaf): Converted<boolean> => {
    if (typeof leaf.value === 'boolean') return { value: leaf.value };
    const word = leaf.text.toLowerCase();
    if (YAML11_TRUE.has(word)) return { value: true };
    if (YAML11_FALSE.has(word)) return { value: false };
    if (word === 'true' || word === 'false') return { problem: `must be true or false without quotes (got ${show(leaf)}; remove the quotes)` };
    return { problem: `must be true or false (got ${show(leaf)})` };
  });
}

interface IntRule {
  min: number;
  max?: number;
  hint: string;
}

function intOf(rule: IntRule) {
  return (leaf: YamlScalar): Converted<number> => {
    const { value } = leaf;
    if (typeof value === 'string') {
      return /^\s*[-+]?\d+\s*$/.test(value)
        ? { problem: `must be a number, not the quoted text ${show(leaf)} (remove the quotes)` }
        : { problem: `must be a whole number (got ${show(leaf)}; ${rule.hint})` };
    }
    if (typeof value !== 'number' && typeof value !== 'bigint') {
      return { problem: `must be a whole number (got ${show(leaf)}; ${rule.hint})` };
    }
    const number = Number(value);
    if (!Number.isInteger(number)) return { problem: `must be a whole number (got ${leaf.text}; ${rule.hint})` };
    if (!Number.isSafeInteger(number) || number < rule.min || (rule.max !== undefined && number > rule.max)) {
      const range = rule.max === undefined ? `at least ${rule.min}` : `between ${rule.min} and ${rule.max}`;
      return { problem: `must be ${range} (got ${leaf.text}; ${rule.hint})` };
    }
    return { value: number };
  };
}

function goInt(rule: IntRule) {
  return scalar('a whole number', intOf(rule));
}

interface DurationRule {
  allowNegative: boolean;
  /** `""` means "not set" (the Go worker parses the key only when it is non-empty). */
  emptyIsUnset?: boolean;
}

function goDuration(rule: DurationRule) {
  return scalar('a duration such as 30s, 5m or 1h30m', (leaf): Converted<string | undefined> => {
    if (rule.emptyIsUnset && leaf.text === '') return { value: undefined };
    try {
      const ms = parseGoDuration(leaf.text);
      if (ms < 0 && !rule.allowNegative) return { problem: `must not be negative (got ${show(leaf)})` };
      return { value: leaf.text };
    } catch (error) {
      if (!(error instanceof InvalidDurationError)) throw error;
      return { problem: `is not a valid duration: ${error.message} (write a number with a unit: ns, us, ms, s, m or h, e.g. 30s, 5m or 1h30m)` };
    }
  });
}

// Kubernetes resource.Quantity: a decimal number with an optional SI, binary-SI or exponent suffix.
const QUANTITY = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+|Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?$/;

/** `""` is "not set", as in the Go worker. */
function quantity() {
  return scalar('a size such as 10Gi or 500Mi', (leaf): Converted<string | undefined> => {
    if (leaf.text === '') return { value: undefined };
    return QUANTITY.test(leaf.text) ? { value: leaf.text } : { problem: `is not a Kubernetes quantity (got ${show(leaf)}; write e.g. 10Gi, 500Mi or 1G)` };
  });
}

/** `""` is "not set" (the Go worker validates the key only when it is non-empty). */
function imagePullPolicy() {
  return scalar('one of Always, Never, IfNotPresent', (leaf): Converted<ImagePullPolicy | undefined> => {
    if (leaf.text === '') return { value: undefined };
    const policy = IMAGE_PULL_POLICIES.find((candidate) => candidate === leaf.text);
    if (policy) return { value: policy };
    const caseFix = IMAGE_PULL_POLICIES.find((candidate) => candidate.toLowerCase() === leaf.text.toLowerCase());
    return {
      problem: `must be one of Always, Never, IfNotPresent (got ${show(leaf)}${caseFix ? `; write ${caseFix}, the value is case-sensitive` : ''})`,
    };
  });
}

function dockerPullPolicy() {
  const names = Object.keys(DOCKER_PULL_POLICIES) as DockerPullPolicy[];
  return scalar('one of always, if_not_present, never', (leaf): Converted<DockerPullPolicy> => {
    const policy = names.find((candidate) => candidate === leaf.text);
    if (policy) return { value: policy };
    const spelled = leaf.text.toLowerCase().replace(/[^a-z]/g, '');
    const near = names.find((candidate) => candidate.replace(/_/g, '') === spelled);
    return {
      problem: `must be one of always, if_not_present, never (got ${show(leaf)}${near ? `; write ${near}` : ''}; or use image_pull_policy with Always, IfNotPresent or Never)`,
    };
  });
}

/** A block of keys. `whenNull: 'empty'` makes `key:` with nothing under it an empty block, not an absent one. */
function mapping<Shape extends z.core.$ZodLooseShape>(shape: Shape, whenNull: 'absent' | 'empty') {
  return z.preprocess((input) => {
    const value = input instanceof YamlScalar ? input.value : input;
    if (value === null) return whenNull === 'empty' ? {} : undefined;
    return value;
  }, z.strictObject(shape).optional());
}

function list<Item extends z.ZodType>(item: Item) {
  return z.preprocess((input) => {
    const value = input instanceof YamlScalar ? input.value : input;
    return value === null ? undefined : value;
  }, z.array(item).optional());
}

/** A mapping of free-form keys to text values (labels, annotations, image overrides). */
function textMap(valueRule?: (leaf: YamlScalar) => Converted<string>) {
  return z.preprocess(
    (input) => {
      const value = input instanceof YamlScalar ? input.value : input;
      return value === null ? undefined : value;
    },
    // Go reads `key:` with nothing as "".
    z.record(z.string(), scalarLeaf('text', valueRule ?? textOf)).optional(),
  );
}

/** Raw YAML handed to Kubernetes as written (a PodSpec, a ResourceRequirements). */
function opaqueMapping() {
  return z.preprocess((input) => {
    const plain = treeToPlain(input);
    return plain === null ? undefined : plain;
  }, z.record(z.string(), z.unknown()).optional());
}

const ENV_ENTRY_SHAPE = {
  name: goString(),
  /** Absent or null: inherit the worker's own value of `name`. */
  value: goString(),
};

const envEntry = mapping(ENV_ENTRY_SHAPE, 'empty').superRefine((entry, ctx) => {
  if (!entry) return;
  if (entry.name === undefined || entry.name === '') {
    ctx.addIssue({ code: 'custom', path: ['name'], message: 'is required (write each entry as "- name: FOO" with an optional "value: bar")' });
  } else if (/\s/.test(entry.name)) {
    ctx.addIssue({
      code: 'custom',
      path: ['name'],
      message: `must not contain whitespace (got ${JSON.stringify(entry.name)}; an environment variable name is one word)`,
    });
  }
});

const environment = () => list(envEntry);

const volumeSpec = scalarLeaf('text', (value): Converted<string> => {
  const problem = volumeSpecProblem(value.text);
  return problem ? { problem } : { value: value.text };
});

const IMAGE_HINT = 'an image reference has no spaces';

export const DOCKER_SHAPE = {
  volumes: list(volumeSpec),
  environment: environment(),
  /** Go's key; default Always (pull before every task). */
  image_pull_policy: imagePullPolicy(),
  /** Ours, older: the same setting as image_pull_policy, spelled always / if_not_present / never. */
  pull_policy: dockerPullPolicy(),
  /** Replaces the assignment's `/agent` sidecar image (only when the assignment has one). */
  sidecar_image: noWhitespace(IMAGE_HINT),
};

/** The Docker pull policy the block sets under either of its names, once they agree. */
export function dockerBlockPullPolicy(block: {
  image_pull_policy?: ImagePullPolicy | undefined;
  pull_policy?: DockerPullPolicy | undefined;
}): ImagePullPolicy | undefined {
  return block.image_pull_policy ?? (block.pull_policy === undefined ? undefined : DOCKER_PULL_POLICIES[block.pull_policy]);
}

const dockerBlock = mapping(DOCKER_SHAPE, 'empty').superRefine((block, ctx) => {
  if (!block?.image_pull_policy || !block.pull_policy) return;
  if (DOCKER_PULL_POLICIES[block.pull_policy] === block.image_pull_policy) return;
  ctx.addIssue({
    code: 'custom',
    path: ['pull_policy'],
    params: STANDALONE,
    message: `backend.docker.pull_policy (${block.pull_policy}) and backend.docker.image_pull_policy (${block.image_pull_policy}) are one setting and disagree (keep image_pull_policy: Always, IfNotPresent or Never, and remove pull_policy)`,
  });
});

export const DIRECT_SHAPE = {
  workspace_root: goString(),
  target_dir: goString(),
  oz_path: goString(),
  setup_command: goString(),
  teardown_command: goString(),
  /** Ours: when the worker runs as root, setup, agent and teardown run as this user. */
  run_as_user: goString(),
  environment: environment(),
};

export const COMMAND_SHAPE = {
  dispatch_command: goString(),
  cancel_command: goString(),
  /** Go duration; empty, zero or negative means the 60 s default. */
  dispatch_timeout: goDuration({ allowNegative: true, emptyIsUnset: true }),
  environment: environment(),
};

export const KUBERNETES_SHAPE = {
  namespace: goString(),
  kubeconfig: goString(),
  default_image: noWhitespace(IMAGE_HINT),
  image_pull_policy: imagePullPolicy(),
  use_image_volumes: goBool(),
  preflight_image: noWhitespace(IMAGE_HINT),
  sidecar_image: noWhitespace(IMAGE_HINT),
  coding_cli_sidecars: textMap((leaf) =>
    /\s/.test(leaf.text) ? { problem: `must not contain whitespace (got ${show(leaf)}; ${IMAGE_HINT})` } : { value: leaf.text },
  ),
  setup_command: goString(),
  teardown_command: goString(),
  extra_labels: textMap(),
  extra_annotations: textMap(),
  /** 0 (ours): no deadline, overriding the 8 h default (the Go worker had none by default). */
  active_deadline_seconds: goInt({ min: 0, hint: 'the longest a task Job may run, in seconds; 0 means no limit' }),
  ttl_seconds_after_finished: goInt({ min: 0, max: 2_147_483_647, hint: 'seconds a finished Job is kept' }),
  workspace_size_limit: quantity(),
  /** Go duration; zero or negative disables the check. */
  unschedulable_timeout: goDuration({ allowNegative: true }),
  /** Go duration: how long a pod may keep failing to mount a volume before the task fails; zero or negative: never. Default 2m. */
  volume_mount_timeout: goDuration({ allowNegative: true, emptyIsUnset: true }),
  /** Ours: how long a transient image pull failure may last before the task fails (Go duration; zero or negative: at the first). Default 60s. */
  image_pull_timeout: goDuration({ allowNegative: true }),
  /** Ours: how long the start-up preflight Job may take (Go duration; zero or negative skips it). Default 2m. */
  preflight_timeout: goDuration({ allowNegative: true }),
  pod_template: opaqueMapping(),
  preflight_resources: opaqueMapping(),
};

export const BACKEND_SHAPE = {
  docker: dockerBlock,
  direct: mapping(DIRECT_SHAPE, 'empty'),
  command: mapping(COMMAND_SHAPE, 'empty').superRefine((block, ctx) => {
    if (block && !block.dispatch_command) {
      ctx.addIssue({
        code: 'custom',
        path: ['dispatch_command'],
        message: 'is required (set it to the command that starts a task; it gets the task as JSON on stdin)',
      });
    }
  }),
  kubernetes: mapping(KUBERNETES_SHAPE, 'empty'),
};

const ID_HINT = 'a Warp user or team id';

export const DEVICE_SHAPE = {
  owner_user_id: goInt({ min: 1, hint: ID_HINT }),
  team_ids: list(scalarLeaf('a whole number', intOf({ min: 1, hint: ID_HINT }))),
  /** Sent to the dispatch server as `device_id` (the local server routes pinned team work by it). */
  device_id: goString(),
};

/**
 * Keys the Go worker knows and oz-worker deliberately does not implement. A
 * config written for the Go worker must still load, so each is accepted with
 * its values unchecked, and named once in a start-up warning that gives the
 * reason. Each lists the keys its block may hold: a misspelling inside it is
 * still an error, and so is a key nobody knows.
 */
export interface IgnoredGoKey {
  /** The key's block, as a path pattern ('' is the top level). */
  block: string;
  key: string;
  /** The keys allowed inside it (the Go worker's). */
  fields: readonly string[];
  /** Why oz-worker ignores it, ending the warning. */
  reason: string;
}

export const IGNORED_GO_KEYS: readonly IgnoredGoKey[] = [
  {
    block: '',
    key: 'debug_log_capture',
    fields: ['directory', 'max_total_bytes', 'max_execution_bytes', 'max_concurrent_uploads'],
    reason: "it configures the Go worker's debug log archives for the server's debug_archive_logs_requested frames, which oz-worker does not implement",
  },
];

/** The schema of an ignored key: its block's keys, their values unchecked. */
function ignoredGoKey(key: string) {
  const ignored = IGNORED_GO_KEYS.find((entry) => entry.key === key);
  if (!ignored) throw new Error(`${key} is not in IGNORED_GO_KEYS`);
  return mapping(Object.fromEntries(ignored.fields.map((field) => [field, z.unknown().optional()])), 'empty');
}

/** The start-up warning for each ignored key the file sets. */
export function ignoredKeyWarnings(file: FileConfig | undefined): string[] {
  if (!file) return [];
  return IGNORED_GO_KEYS.filter((ignored) => {
    const parent =
      ignored.block === '' ? file : ignored.block.split('.').reduce<unknown>((at, part) => (at as Record<string, unknown> | undefined)?.[part], file);
    return (
      typeof parent === 'object' && parent !== null && Object.hasOwn(parent, ignored.key) && (parent as Record<string, unknown>)[ignored.key] !== undefined
    );
  }).map((ignored) => {
    const path = ignored.block === '' ? ignored.key : `${ignored.block}.${ignored.key}`;
    return `config file key ${path} is ignored: oz-worker does not implement it (${ignored.reason}); remove it to silence this warning`;
  });
}

export const TOP_LEVEL_SHAPE = {
  worker_id: goString(),
  cleanup: goBool(),
  /** Negative means unlimited, as 0 does (the Go worker's reading; the worker warns). */
  max_concurrent_tasks: goInt({ min: Number.MIN_SAFE_INTEGER, hint: '0 means unlimited' }),
  idle_on_complete: goString(),
  /** Run one task, then exit (direct and Docker backends). */
  one_shot: goBool(),
  /** Collect the task's logs for the server (default true). */
  collect_task_logs: goBool(),
  backend: mapping(BACKEND_SHAPE, 'absent').superRefine((backend, ctx) => {
    if (!backend) return;
    const present = BACKEND_BLOCKS.filter((name) => backend[name] !== undefined);
    const [, second] = present;
    if (second) {
      ctx.addIssue({
        code: 'custom',
        path: [second],
        params: STANDALONE,
        message: `at most one backend may be configured, found ${present.map((name) => `backend.${name}`).join(' and ')} (keep only the block of the backend you use)`,
      });
    }
  }),
  device: mapping(DEVICE_SHAPE, 'empty'),
  api_key_file: goString(),
  shutdown_grace_period: goDuration({ allowNegative: false }),
  debug_log_capture: ignoredGoKey('debug_log_capture'),
};

export const fileConfigSchema = z.strictObject(TOP_LEVEL_SHAPE);

export type FileConfig = z.output<typeof fileConfigSchema>;
export type FileBackend = NonNullable<FileConfig['backend']>;
export type FileBackendName = (typeof BACKEND_BLOCKS)[number];
export type FileEnvEntry = NonNullable<NonNullable<NonNullable<FileBackend['docker']>['environment']>[number]>;

/** The keys allowed at each block, by path pattern (`[]` for "any list item"). */
export const KNOWN_KEYS: Readonly<Record<string, readonly string[]>> = {
  '': Object.keys(TOP_LEVEL_SHAPE),
  backend: Object.keys(BACKEND_SHAPE),
  'backend.docker': Object.keys(DOCKER_SHAPE),
  'backend.direct': Object.keys(DIRECT_SHAPE),
  'backend.command': Object.keys(COMMAND_SHAPE),
  'backend.kubernetes': Object.keys(KUBERNETES_SHAPE),
  'backend.docker.environment[]': Object.keys(ENV_ENTRY_SHAPE),
  'backend.direct.environment[]': Object.keys(ENV_ENTRY_SHAPE),
  'backend.command.environment[]': Object.keys(ENV_ENTRY_SHAPE),
  device: Object.keys(DEVICE_SHAPE),
  ...Object.fromEntries(IGNORED_GO_KEYS.map((ignored) => [ignored.block === '' ? ignored.key : `${ignored.block}.${ignored.key}`, ignored.fields])),
};

const POD_TEMPLATE_HINT = 'remove it; declarative pod settings go in backend.kubernetes.pod_template';

/** Keys the Go worker removed; each gets a specific fix instead of "unknown key". */
export const REMOVED_KEYS: Readonly<Record<string, Readonly<Record<string, string>>>> = {
  'backend.kubernetes': {
    image_pull_secret: `${POD_TEMPLATE_HINT}, as imagePullSecrets`,
    service_account: `${POD_TEMPLATE_HINT}, as serviceAccountName`,
    node_selector: `${POD_TEMPLATE_HINT}, as nodeSelector`,
    tolerations: `${POD_TEMPLATE_HINT}, as tolerations`,
    resources: `${POD_TEMPLATE_HINT}, as containers[].resources`,
    termination_grace_period_seconds: `${POD_TEMPLATE_HINT}, as terminationGracePeriodSeconds`,
    environment: `${POD_TEMPLATE_HINT}, as containers[].env, or pass -e KEY=VALUE flags`,
  },
};
