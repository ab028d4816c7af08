// Generators of hostile dispatch-server frames, shared by the unit-level decoder
// fuzz and the running-worker fuzz. Frames are built as a JSON *text tree* so a
// frame can carry what a JS object cannot: duplicate keys, keys that differ only
// in case, `__proto__` as an ordinary member, and number spellings such as
// `1e999` or `9007199254740993`. Everything is driven by fast-check, so a seed
// reproduces a run exactly.
import fc from 'fast-check';

/** The seed every fuzz run starts from; override with FUZZ_SEED=<n> to reproduce or explore. */
export const FUZZ_SEED = Number.parseInt(process.env.FUZZ_SEED ?? '', 10) || 0x5eed_0c0d;

/** A JSON text tree. `raw` holds already-rendered JSON (any scalar, or a pre-built deep value). */
export type JsonNode = { kind: 'raw'; text: string } | { kind: 'array'; items: JsonNode[] } | { kind: 'object'; members: Array<[string, JsonNode]> };

export function toNode(value: unknown): JsonNode {
  if (Array.isArray(value)) return { kind: 'array', items: value.map(toNode) };
  if (value !== null && typeof value === 'object') {
    // Object.keys includes an own `__proto__` (fast-check dictionaries can make one).
    return { kind: 'object', members: Object.keys(value).map((k) => [k, toNode((value as Record<string, unknown>)[k])]) };
  }
  return { kind: 'raw', text: JSON.stringify(value) ?? 'null' };
}

export function render(node: JsonNode): string {
  switch (node.kind) {
    case 'raw':
      return node.text;
    case 'array':
      return `[${node.items.map(render).join(',')}]`;
    case 'object':
      return `{${node.members.map(([k, v]) => `${JSON.stringify(k)}:${render(v)}`).join(',')}}`;
  }
}

/** A copy whose containers can be mutated; `raw` nodes are never mutated, so they are shared. */
function clone(node: JsonNode): JsonNode {
  switch (node.kind) {
    case 'raw':
      return node;
    case 'array':
      return { kind: 'array', items: node.items.map(clone) };
    case 'object':
      return { kind: 'object', members: node.members.map(([k, v]): [string, JsonNode] => [k, clone(v)]) };
  }
}

// ---- hostile values -----------------------------------------------------------

export const PROTO_KEYS = ['__proto__', 'constructor', 'prototype', '__PROTO__', 'Constructor', 'PROTOTYPE'] as const;

function deepArray(depth: number): string {
  return `${'['.repeat(depth)}1${']'.repeat(depth)}`;
}
function deepObject(depth: number): string {
  return `${'{"a":'.repeat(depth)}null${'}'.repeat(depth)}`;
}

const BIG_VALUES = {
  common: [deepArray(10), deepObject(10), deepArray(300), deepObject(300), JSON.stringify('x'.repeat(4_096))].map((text): JsonNode => ({ kind: 'raw', text })),
  rare: [
    ...[deepArray(300), deepObject(300), JSON.stringify('y'.repeat(1_000))].flatMap((text) => Array<string>(12).fill(text)),
    deepArray(5_000),
    deepObject(5_000),
    deepArray(20_000),
    deepObject(20_000),
    JSON.stringify('z'.repeat(65_536)),
    JSON.stringify('w'.repeat(300_000)),
  ].map((text): JsonNode => ({ kind: 'raw', text })),
};

const scalarTexts = [
  'null',
  'true',
  'false',
  '0',
  '-0',
  '1.5',
  '-1',
  '1e308',
  '-1e308',
  '1e999',
  '-1e999',
  '9007199254740993',
  '123456789012345678901234567890',
  '2147483648',
  '-9223372036854775809',
  '5e-324',
  '""',
  '"\\u0000"',
  '"\\ud800"',
  '"\\u2028<>&"',
  '"__proto__"',
  '"2026-13-45T99:99:99Z"',
  '"2026-01-02T03:04:05Z"',
  '[]',
  '[null]',
  '{}',
  '{"__proto__":{"polluted":true}}',
  '{"constructor":{"prototype":{"polluted":true}}}',
  '{"prototype":{"polluted":true}}',
];

/** A value of the wrong type, out of range, huge, deeply nested, or prototype-shaped. */
export const hostileValue: fc.Arbitrary<JsonNode> = fc.oneof(
  { arbitrary: fc.constantFrom(...scalarTexts).map((text): JsonNode => ({ kind: 'raw', text })), weight: 8 },
  { arbitrary: fc.jsonValue({ maxDepth: 3 }).map(toNode), weight: 4 },
  { arbitrary: fc.string({ unit: 'binary', maxLength: 24 }).map(toNode), weight: 2 },
  { arbitrary: fc.double().map((n): JsonNode => ({ kind: 'raw', text: Number.isFinite(n) ? String(n) : '1e999' })), weight: 1 },
  // Built once: big texts as Map keys (fast-check's constant lookup) or rebuilt per run would dominate the run time.
  { arbitrary: fc.constantFrom(...BIG_VALUES.common), weight: 1 },
  { arbitrary: fc.constantFrom(...BIG_VALUES.rare), weight: 1 },
);

// ---- valid frames ---------------------------------------------------------------

const text = fc.oneof(fc.string({ maxLength: 12 }), fc.string({ unit: 'binary', maxLength: 8 }));
const taskId = fc.stringMatching(/^[a-z0-9][a-z0-9-]{0,11}$/);
const int = fc.integer();
const timestamp = fc.date({ min: new Date('1970-01-01T00:00:00Z'), max: new Date('2100-01-01T00:00:00Z'), noInvalidDate: true }).map((d) => d.toISOString());
const optional = { requiredKeys: [] as never[] };

const snapshot = fc.record(
  {
    environment_id: text,
    base_prompt: text,
    model_id: text,
    profile_id: text,
    skill_spec: text,
    mcp_servers: fc.dictionary(text, fc.jsonValue({ maxDepth: 3 }), { maxKeys: 3 }),
    computer_use_enabled: fc.boolean(),
    idle_timeout_minutes: int,
    harness: fc.record({ type: text }, optional),
    harness_auth_secrets: fc.record({ claude_auth_secret_name: text }, optional),
    inference_providers: fc.record({ aws: fc.record({ disabled: fc.boolean(), role_arn: text, region: text }, optional) }, optional),
    session_sharing: fc.record({ public_access: fc.constantFrom('VIEWER', 'EDITOR', 'NONE') }, optional),
    snapshot_disabled: fc.boolean(),
    snapshot_upload_timeout_secs: int,
    snapshot_script_timeout_secs: int,
  },
  optional,
);

const task = fc.record(
  {
    id: taskId,
    title: text,
    task_definition: fc.record({ prompt: text }, optional),
    created_at: timestamp,
    updated_at: timestamp,
    owner: fc.record({ Type: fc.constantFrom('USER', 'TEAM'), Id: int }, optional),
    agent_config_snapshot: snapshot,
    agent_conversation_id: text,
  },
  optional,
);

export const validAssignment = fc.record(
  {
    task_id: taskId,
    execution_id: text,
    task,
    docker_image: text,
    sidecar_image: text,
    env_vars: fc.dictionary(text, text, { maxKeys: 3 }),
    additional_sidecars: fc.array(fc.record({ image: text, mount_path: text, read_write: fc.boolean() }, optional), { maxLength: 2 }),
    additional_oz_args: fc.array(text, { maxLength: 3 }),
    instance_shape: fc.record({ vcpus: int, memory_gb: int }, optional),
  },
  { requiredKeys: ['task_id', 'task'] },
);

/** A well-formed frame of one of the two inbound types. */
export const validFrame: fc.Arbitrary<JsonNode> = fc.oneof(
  { arbitrary: validAssignment.map((data) => toNode({ type: 'task_assignment', data })), weight: 4 },
  { arbitrary: taskId.map((id) => toNode({ type: 'task_cancellation', data: { task_id: id } })), weight: 1 },
);

// ---- mutations --------------------------------------------------------------------

export type Mutation =
  | { op: 'replace' | 'nullify' | 'delete' | 'recase' | 'dupCase'; at: number; value: JsonNode; salt: number }
  | { op: 'proto'; at: number; key: string; value: JsonNode; salt: number };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({
    op: fc.constantFrom('replace', 'nullify', 'delete', 'recase', 'dupCase'),
    at: fc.nat(),
    value: hostileValue,
    salt: fc.nat(),
  }),
  fc.record({
    op: fc.constant('proto' as const),
    at: fc.nat(),
    key: fc.constantFrom(...PROTO_KEYS),
    value: fc.oneof(hostileValue, fc.constant<JsonNode>({ kind: 'raw', text: '{"polluted":true,"toString":1}' })),
    salt: fc.nat(),
  }),
);

/** Every object in the tree, depth-first (deep `raw` values are not entered). */
function objects(root: JsonNode): Array<Extract<JsonNode, { kind: 'object' }>> {
  const out: Array<Extract<JsonNode, { kind: 'object' }>> = [];
  const stack = [root];
  while (stack.length) {
    const node = stack.pop()!;
    if (node.kind === 'object') {
      out.push(node);
      for (const [, v] of node.members) stack.push(v);
    } else if (node.kind === 'array') stack.push(...node.items);
  }
  return out;
}

function recase(key: string, salt: number): string {
  let out = '';
  for (let i = 0; i < key.length; i++) out += (salt >> (i % 16)) & 1 ? key[i]!.toUpperCase() : key[i]!.toLowerCase();
  return out === key ? key.toUpperCase() : out;
}

export function applyMutation(root: JsonNode, m: Mutation): void {
  const targets = objects(root);
  const target = targets[m.at % targets.length];
  if (!target) return;
  const index = target.members.length ? m.salt % target.members.length : -1;
  const member = index >= 0 ? target.members[index] : undefined;
  switch (m.op) {
    case 'replace':
      if (member) member[1] = clone(m.value);
      return;
    case 'nullify':
      if (member) member[1] = { kind: 'raw', text: 'null' };
      return;
    case 'delete':
      if (member) target.members.splice(index, 1);
      return;
    case 'recase':
      if (member) member[0] = recase(member[0], m.salt);
      return;
    case 'dupCase':
      // A second key for the same field, differing in case; its value is sometimes the same value, sometimes hostile.
      if (member) target.members.push([recase(member[0], m.salt >> 3), clone(m.salt & 1 ? member[1] : m.value)]);
      return;
    case 'proto':
      target.members.splice(m.salt % (target.members.length + 1), 0, [m.key, clone(m.value)]);
      return;
  }
}

/**
 * `variants` copies of one valid frame, each with its own one to four structural
 * mutations (generating the frame costs more than decoding it, so it is reused).
 */
export function mutatedFrames(variants: number): fc.Arbitrary<JsonNode[]> {
  return fc.tuple(validFrame, fc.array(fc.array(mutation, { minLength: 1, maxLength: 4 }), { minLength: variants, maxLength: variants })).map(([frame, sets]) =>
    sets.map((mutations) => {
      const root = clone(frame);
      for (const m of mutations) applyMutation(root, m);
      return root;
    }),
  );
}

const damage = fc.tuple(fc.nat(), fc.constantFrom('truncate', 'insert', 'flip'), fc.string({ unit: 'binary', minLength: 1, maxLength: 3 }));

/** `variants` text-level damages of one rendered frame: truncation, stray characters, a flipped character. */
export function damagedTexts(variants: number): fc.Arbitrary<string[]> {
  return fc.tuple(validFrame, fc.array(damage, { minLength: variants, maxLength: variants })).map(([frame, damages]) => {
    const t = render(frame);
    return damages.map(([at, op, junk]) => {
      const i = at % (t.length + 1);
      if (op === 'truncate') return t.slice(0, i);
      if (op === 'insert') return t.slice(0, i) + junk + t.slice(i);
      return t.slice(0, i) + junk[0] + t.slice(i + 1);
    });
  });
}

/** An envelope around arbitrary JSON data, with a known, near-known or random type. */
export const randomEnvelope: fc.Arbitrary<string> = fc
  .tuple(
    fc.oneof(
      fc.constantFrom('task_assignment', 'task_cancellation', 'TASK_ASSIGNMENT', 'heartbeat', '', 'task_claimed'),
      fc.string({ maxLength: 20 }),
      fc.jsonValue({ maxDepth: 1 }),
    ),
    fc.jsonValue({ maxDepth: 4 }),
    fc.constantFrom('type', 'Type', 'TYPE'),
    fc.constantFrom('data', 'Data', 'DATA', 'payload'),
  )
  .map(([type, data, typeKey, dataKey]) => `{${JSON.stringify(typeKey)}:${JSON.stringify(type)},${JSON.stringify(dataKey)}:${JSON.stringify(data)}}`);

/** Random bytes as the worker would see them: a text frame's payload decoded as UTF-8, or as Latin-1. */
export const randomBytesText: fc.Arbitrary<string> = fc
  .tuple(fc.uint8Array({ maxLength: 256 }), fc.boolean())
  .map(([bytes, utf8]) => Buffer.from(bytes).toString(utf8 ? 'utf8' : 'latin1'));

// ---- oracle -------------------------------------------------------------------------

/** The member a Go-style decoder uses for `name`: the last case-insensitive match, when unambiguous. */
function lastMember(node: JsonNode, name: string): { value: JsonNode } | 'absent' | 'ambiguous' {
  if (node.kind !== 'object') return 'absent';
  const matches = node.members.filter(([k]) => k.toLowerCase() === name);
  if (matches.length === 0) return 'absent';
  // JSON.parse keeps an exact duplicate at its first position, and Go gives a
  // later null a per-type meaning; frames mixing those are not judged here.
  const exact = new Set(matches.map(([k]) => k));
  if (exact.size !== matches.length) return 'ambiguous';
  const last = matches.at(-1)!;
  if (last[1].kind === 'raw' && last[1].text === 'null') return matches.length > 1 ? 'ambiguous' : 'absent';
  return { value: last[1] };
}

/**
 * What a frame must decode to as far as the task id goes: for a frame whose
 * envelope says task_assignment / task_cancellation and whose data carries a
 * non-empty string task_id, that id (the decoder must then return the decoded
 * message or `invalid` carrying that id). Undefined when the frame has no usable
 * id or is ambiguous.
 */
export function expectedTaskId(root: JsonNode): { type: string; taskId: string } | undefined {
  const type = lastMember(root, 'type');
  const data = lastMember(root, 'data');
  if (typeof type !== 'object' || typeof data !== 'object') return undefined;
  if (type.value.kind !== 'raw') return undefined;
  const typeName: unknown = JSON.parse(type.value.text);
  if (typeName !== 'task_assignment' && typeName !== 'task_cancellation') return undefined;
  const id = lastMember(data.value, 'task_id');
  if (typeof id !== 'object' || id.value.kind !== 'raw') return undefined;
  const taskId: unknown = JSON.parse(id.value.text);
  return typeof taskId === 'string' && taskId.length > 0 ? { type: typeName, taskId } : undefined;
}

/** Hand-picked frames that once broke (or could break) a decoder; always part of a fuzz run. */
export const REGRESSION_FRAMES: string[] = [
  // mcp_servers with a `__proto__` server next to a deeply nested one (decoder threw RangeError, killing the worker)
  `{"type":"task_assignment","data":{"task_id":"proto-deep","task":{"agent_config_snapshot":{"mcp_servers":{"__proto__":{"polluted":true},"srv":${deepArray(20_000)}}}}}}`,
  `{"type":"task_assignment","data":{"task_id":"proto-mcp","task":{"agent_config_snapshot":{"mcp_servers":{"__proto__":{"polluted":true},"srv":{"url":"https://x"}}}}}}`,
  '{"type":"task_assignment","data":{"__proto__":{"task_id":"inherited"},"task":{}}}',
  '{"__proto__":{"type":"task_assignment"},"data":{"task_id":"x","task":{}}}',
  '{"type":"task_assignment","data":{"task_id":"env-proto","task":{},"env_vars":{"__proto__":"x","constructor":"y","prototype":"z"}}}',
  '{"type":"task_assignment","data":{"constructor":{"prototype":{"polluted":true}},"task_id":"ctor","task":{"constructor":{"prototype":{"polluted":true}}}}}',
  '{"type":"task_assignment","data":{"task_id":"dup","TASK_ID":"dup-2","task":{"ID":"a","id":"b"}}}',
  '{"type":"task_assignment","data":{"task_id":"nul","task":null}}',
  '{"type":"task_assignment","data":null}',
  '{"type":"task_assignment"}',
  '{"type":"task_cancellation","data":{"task_id":""}}',
  '{"type":null,"data":{"task_id":"x"}}',
  `{"type":"task_assignment","data":${deepObject(50_000)}}`,
  `${'['.repeat(100_000)}${']'.repeat(100_000)}`,
  '{"type":"task_assignment","data":{"task_id":"big-int","task":{"owner":{"Type":"TEAM","Id":1e999}}}}',
  '{"type":"task_assignment","data":{"task_id":"lone","task":{"title":"\\ud800\\udc00\\udfff"},"additional_oz_args":["\\u0000"]}}',
];
