// The configuration reference, docs/reference.md: every config file key, every
// flag of every command and every environment variable, with its meaning and
// default. Generated from the code: the keys from the config file schema
// (src/config/file-schema.ts), the flags and their help texts and defaults from
// the commander program (src/cli/program.ts), what keys and variables mean from
// the tables of src/config/reference-docs.ts. `node scripts/reference.mjs`
// writes the page and `--check` fails when it drifted; referenceProblems() lists
// what the tables document that the code lacks, and what the code has that they
// do not document. Not part of the bundle: nothing the worker runs imports it.
import type { Command, Option } from 'commander';
import { isDeepStrictEqual } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { fileConfigSchema } from '../config/file-schema.js';
import { resolveWorkerConfig } from '../config/resolve.js';
import { ENVIRONMENT_DOCS, KEY_DOCS, type EnvironmentDoc, type KeyDoc } from '../config/reference-docs.js';
import { buildProgram } from './program.js';
import { OZ_WORKER_ONLY_FLAGS } from './worker-options.js';

/** A place in the config file: a key holding a value, a block of keys, or a list of blocks. */
export interface ConfigKey {
  /** Dotted path; `[]` stands for every item of a list (`backend.docker.environment[].name`). */
  path: string;
  kind: 'value' | 'block' | 'list of blocks';
}

interface ZodNode {
  _zod: { def: { type: string; in?: ZodNode; out?: ZodNode; innerType?: ZodNode; shape?: Record<string, ZodNode>; element?: ZodNode } };
}

/** What a field's schema holds once the preprocessing, optionality and transforms around it are peeled off. */
function inner(schema: ZodNode): ZodNode {
  const { def } = schema._zod;
  if (def.type === 'pipe' && def.out && def.out._zod.def.type !== 'transform') return inner(def.out);
  if (def.type === 'optional' && def.innerType) return inner(def.innerType);
  return schema;
}

/** Every key of a config file schema, blocks before their keys, in the schema's order. */
export function configKeys(schema: ZodNode = fileConfigSchema as unknown as ZodNode): ConfigKey[] {
  const keys: ConfigKey[] = [];
  const walk = (node: ZodNode, prefix: string): void => {
    for (const [name, field] of Object.entries(inner(node)._zod.def.shape ?? {})) {
      const path = prefix ? `${prefix}.${name}` : name;
      const held = inner(field);
      const { type, element } = held._zod.def;
      if (type === 'object') {
        keys.push({ path, kind: 'block' });
        walk(held, path);
      } else if (type === 'array' && element && inner(element)._zod.def.type === 'object') {
        keys.push({ path, kind: 'list of blocks' });
        walk(element, `${path}[]`);
      } else {
        keys.push({ path, kind: 'value' });
      }
    }
  };
  walk(schema, '');
  return keys;
}

/** A KEY_DOCS entry's path matches a key's when equal, `*` standing for one segment. */
function docPathMatches(pattern: string, path: string): boolean {
  const a = pattern.split('.');
  const b = path.split('.');
  return a.length === b.length && a.every((segment, i) => segment === '*' || segment === b[i]);
}

/** The doc for a key: its own entry, else a pattern's. */
function keyDoc(path: string, docs: Readonly<Record<string, KeyDoc>>): KeyDoc | undefined {
  return docs[path] ?? Object.entries(docs).find(([pattern]) => pattern.includes('*') && docPathMatches(pattern, path))?.[1];
}

// ---- flags ------------------------------------------------------------------

/** Every name an option answers to: `-v, --volumes`, `--websocket-url, --web-socket-url`. */
function optionNames(option: Option): string[] {
  return [option.short, option.long].filter((name): name is string => Boolean(name));
}

function optionFlags(option: Option): string {
  // commander's flags text, e.g. "-v, --volumes <spec>".
  return option.flags;
}

function optionDefault(option: Option): string | undefined {
  if (option.defaultValueDescription) return option.defaultValueDescription;
  if (option.negate || option.defaultValue === undefined) return undefined;
  return Array.isArray(option.defaultValue) ? option.defaultValue.join(', ') : String(option.defaultValue);
}

/** The worker's flags: the options of the program itself (without --help and --version, which every command has). */
function workerOptions(program: Command): Option[] {
  return program.options.filter((option) => option.long !== '--version');
}

/** Every command below the program, depth first: `local`, `server`, `service install`, … */
function subCommands(command: Command, path: string[] = []): { path: string; command: Command }[] {
  return command.commands.flatMap((sub) => {
    const here = [...path, sub.name()];
    return [{ path: here.join(' '), command: sub }, ...subCommands(sub, here)];
  });
}

// ---- rendering --------------------------------------------------------------

const cell = (text: string | undefined): string => (text === undefined || text === '' ? '' : text.replace(/\|/g, '\\|').replace(/\n/g, ' '));
const code = (text: string | undefined): string => (text === undefined || text === '' ? '' : `\`${text.replace(/\|/g, '\\|')}\``);
/** A default is a value (in code font) or, when it takes words to say, a sentence. */
const defaultCell = (text: string | undefined): string => (text !== undefined && /\s/.test(text) ? cell(text) : code(text));

function keyDescription(doc: KeyDoc, options: Option[]): string {
  if (doc.description) return doc.description;
  const option = doc.flag ? options.find((candidate) => optionNames(candidate).includes(doc.flag!)) : undefined;
  return option?.description ?? '';
}

function keyDefault(doc: KeyDoc, options: Option[]): string | undefined {
  if (doc.default !== undefined) return doc.default;
  const option = doc.flag ? options.find((candidate) => optionNames(candidate).includes(doc.flag!)) : undefined;
  return option ? optionDefault(option) : undefined;
}

function keyTable(keys: ConfigKey[], options: Option[]): string[] {
  const rows = ['| Key | Default | Flag | Meaning |', '|---|---|---|---|'];
  for (const key of keys) {
    const doc = keyDoc(key.path, KEY_DOCS) ?? {};
    const kind = key.kind === 'value' ? '' : `(${key.kind}) `;
    rows.push(`| ${code(key.path)} | ${defaultCell(keyDefault(doc, options))} | ${code(doc.flag)} | ${cell(kind + keyDescription(doc, options))} |`);
  }
  return rows;
}

function flagTable(options: Option[], ours: boolean): string[] {
  const rows = ['| Flag | Default | Config key | Environment | Meaning |', '|---|---|---|---|---|'];
  for (const option of options) {
    const names = optionNames(option);
    const keys = Object.entries(KEY_DOCS)
      .filter(([, doc]) => doc.flag !== undefined && names.includes(doc.flag))
      .map(([path]) => code(path));
    const variables = ENVIRONMENT_DOCS.filter((doc) => doc.flag !== undefined && names.includes(doc.flag)).map((doc) => code(doc.name));
    const hidden = option.hidden ? ' (Not shown by `--help`.)' : '';
    if (OZ_WORKER_ONLY_FLAGS.includes(option.long ?? '') !== ours) continue;
    rows.push(
      `| ${code(optionFlags(option))} | ${defaultCell(optionDefault(option))} | ${keys.join(', ')} | ${variables.join(', ')} | ${cell(option.description + hidden)} |`,
    );
  }
  return rows;
}

const GROUP_TITLES: Record<EnvironmentDoc['group'], string> = {
  worker: 'The worker',
  client: '`oz-worker task` and `oz-worker admin`',
  metrics: 'Metrics (OpenTelemetry)',
  network: 'Network',
  docker: 'Docker backend',
  kubernetes: 'Kubernetes backend',
  platform: 'Platform',
};

function environmentTable(group: EnvironmentDoc['group'], options: Option[]): string[] {
  const rows = ['| Variable | Default | Flag | Meaning |', '|---|---|---|---|'];
  for (const doc of ENVIRONMENT_DOCS.filter((candidate) => candidate.group === group)) {
    const option = doc.flag ? options.find((candidate) => optionNames(candidate).includes(doc.flag!)) : undefined;
    const description = doc.description ?? option?.description ?? '';
    const readBy = doc.readBy ? ` (Read by ${doc.readBy}.)` : '';
    rows.push(`| ${code(doc.name)} | ${defaultCell(doc.default)} | ${code(doc.flag)} | ${cell(description + readBy)} |`);
  }
  return rows;
}

function commandSection(path: string, command: Command): string[] {
  const options = command.options.filter((option) => option.long !== '--help');
  const args = command.registeredArguments.map((argument) =>
    argument.required ? `<${argument.name()}${argument.variadic ? '...' : ''}>` : `[${argument.name()}]`,
  );
  const lines = [`### \`oz-worker ${[path, ...args].join(' ')}\``, '', cell(command.description()), ''];
  if (command.commands.length > 0 && options.length === 0) return lines;
  if (options.length === 0) return [...lines, 'No options.', ''];
  lines.push('| Flag | Default | Meaning |', '|---|---|---|');
  for (const option of options) lines.push(`| ${code(optionFlags(option))} | ${defaultCell(optionDefault(option))} | ${cell(option.description)} |`);
  return [...lines, ''];
}

export const REFERENCE_PATH = 'docs/reference.md';

/** docs/reference.md, from the code. */
export function renderReference(program: Command = buildProgram()): string {
  const options = workerOptions(program);
  const keys = configKeys();
  const goKeys = keys.filter((key) => !keyDoc(key.path, KEY_DOCS)?.ours);
  const ourKeys = keys.filter((key) => keyDoc(key.path, KEY_DOCS)?.ours);
  const groups = [...new Set(ENVIRONMENT_DOCS.map((doc) => doc.group))];
  return [
    '# Reference: flags, environment variables, config file keys',
    '',
    '<!-- Generated by `node scripts/reference.mjs` from the code (src/config/file-schema.ts, src/cli/program.ts and its',
    '     options, src/config/reference-docs.ts). Edit those and run it; test/unit/reference.test.ts fails on drift. -->',
    '',
    'Every setting of `oz-worker`, generated from its option definitions and config schema. A flag wins over the',
    'config file, the file over the default; where a variable stands for a flag, the flag wins over it. How to write',
    'a config file, with examples, is in [configuration.md](configuration.md).',
    '',
    '- [Worker flags](#worker-flags)',
    '- [Config file keys](#config-file-keys)',
    '- [Environment variables](#environment-variables)',
    '- [Commands](#commands)',
    '',
    '## Worker flags',
    '',
    "`oz-worker [options]` runs the worker. The Go worker's flags, same names and meanings:",
    '',
    ...flagTable(options, false),
    '',
    'Added by oz-worker (the Go worker has no such flag):',
    '',
    ...flagTable(options, true),
    '',
    '`-h, --help` and `--version` print the help and the version.',
    '',
    '## Config file keys',
    '',
    'The YAML file named by `--config-file` (else `config.yaml` in the platform config directory, when it exists).',
    "Unknown keys are errors that name the key and its line. The Go worker's keys, same names and meanings:",
    '',
    ...keyTable(goKeys, options),
    '',
    'Added by oz-worker (a Go worker refuses them as unknown):',
    '',
    ...keyTable(ourKeys, options),
    '',
    '## Environment variables',
    '',
    ...groups.flatMap((group) => [`### ${GROUP_TITLES[group]}`, '', ...environmentTable(group, options), '']),
    '## Commands',
    '',
    'Sub-commands; `oz-worker help <command> [<sub-command>]` prints the same.',
    '',
    ...subCommands(program).flatMap(({ path, command }) => commandSection(path, command)),
  ]
    .join('\n')
    .replace(/\n+$/, '\n');
}

// ---- both ways --------------------------------------------------------------

/** Names of environment variables a source file reads by property (`env.X`, `process.env.X`, `(… ?? process.env).X`). */
export function environmentReads(source: string): string[] {
  const names = new Set<string>();
  for (const match of source.matchAll(/\b(?:env|hostEnv|environment)\)?\.([A-Z][A-Z0-9_]{2,})\b(?!\s*=[^=])/g)) names.add(match[1]!);
  for (const match of source.matchAll(/\b(?:env|hostEnv)\[['"]([A-Z][A-Z0-9_]{2,})['"]\]/g)) names.add(match[1]!);
  // Through the helpers of src/config/oz-worker-env.ts, or a constant named for the variable it holds.
  for (const match of source.matchAll(/\benv(?:Text|Flag|Milliseconds)\(\s*\w+,\s*['"]([A-Z][A-Z0-9_]{2,})['"]/g)) names.add(match[1]!);
  for (const match of source.matchAll(/\b[A-Z][A-Z0-9_]*_ENV\s*=\s*['"]([A-Z][A-Z0-9_]{2,})['"]/g)) names.add(match[1]!);
  return [...names];
}

/** Names in quotes (`'HTTPS_PROXY'`): read through a list, or set for a task; evidence that a documented name exists. */
function quotedNames(source: string): string[] {
  return [...source.matchAll(/['"`]([A-Z][A-Z0-9]*_[A-Z0-9_]+)['"`]/g)].map((match) => match[1]!);
}

/**
 * What the reference tables and the code disagree on, one sentence each (empty: they agree): keys, flags and
 * variables the code has that nothing documents, and documentation of keys, flags and variables the code lacks.
 * `sources` are the texts of src/**\/*.ts, for the environment variables.
 */
export function referenceProblems(
  sources: readonly string[],
  inputs: { keys?: ConfigKey[]; keyDocs?: Readonly<Record<string, KeyDoc>>; environmentDocs?: readonly EnvironmentDoc[]; program?: Command } = {},
): string[] {
  const keys = inputs.keys ?? configKeys();
  const keyDocs = inputs.keyDocs ?? KEY_DOCS;
  const environmentDocs = inputs.environmentDocs ?? ENVIRONMENT_DOCS;
  const program = inputs.program ?? buildProgram();
  const options = workerOptions(program);
  const flagNames = new Set(options.flatMap(optionNames));
  const problems: string[] = [];
  const where = 'src/config/reference-docs.ts';

  for (const key of keys) {
    const doc = keyDoc(key.path, keyDocs);
    if (!doc) problems.push(`config key ${key.path} is not documented: add it to KEY_DOCS in ${where}`);
    else if (!keyDescription(doc, options)) problems.push(`config key ${key.path} has no description (give one, or a flag whose help says it)`);
  }
  problems.push(...defaultProblems(keyDocs, keys));
  for (const [pattern, doc] of Object.entries(keyDocs)) {
    if (!keys.some((key) => docPathMatches(pattern, key.path))) problems.push(`KEY_DOCS documents ${pattern}, which the config file schema does not have`);
    if (doc.flag !== undefined && !flagNames.has(doc.flag)) problems.push(`KEY_DOCS links ${pattern} to ${doc.flag}, which is not a worker flag`);
  }

  for (const option of [...options, ...subCommands(program).flatMap(({ command }) => command.options)]) {
    if (!option.description) problems.push(`flag ${option.flags} has no help text`);
  }
  for (const name of OZ_WORKER_ONLY_FLAGS) {
    if (!options.some((option) => option.long === name)) problems.push(`OZ_WORKER_ONLY_FLAGS names ${name}, which is not the long name of a worker flag`);
  }

  const documented = new Map(environmentDocs.map((doc) => [doc.name, doc]));
  const read = new Set(sources.flatMap(environmentReads));
  const mentioned = new Set([...read, ...sources.flatMap(quotedNames)]);
  for (const name of [...read].sort()) {
    if (!documented.has(name)) problems.push(`the environment variable ${name} is read by src/ but not documented: add it to ENVIRONMENT_DOCS in ${where}`);
  }
  for (const doc of environmentDocs) {
    if (!doc.readBy && !mentioned.has(doc.name)) {
      problems.push(`ENVIRONMENT_DOCS documents ${doc.name}, which nothing in src/ reads (remove it, or say in readBy what reads it)`);
    }
    if (doc.flag !== undefined && !flagNames.has(doc.flag)) problems.push(`ENVIRONMENT_DOCS links ${doc.name} to ${doc.flag}, which is not a worker flag`);
    if (!doc.description && !doc.flag) problems.push(`ENVIRONMENT_DOCS has no description for ${doc.name}`);
    // A flag's help names its variable ($NAME), as the Go worker's does: the two must agree.
    const option = doc.flag ? options.find((candidate) => optionNames(candidate).includes(doc.flag!)) : undefined;
    if (option && !option.description.includes(`$${doc.name}`)) problems.push(`the help of ${doc.flag} does not mention $${doc.name}, which stands for it`);
  }
  for (const option of options) {
    for (const match of option.description.matchAll(/\$([A-Z][A-Z0-9_]+)/g)) {
      const doc = documented.get(match[1]!);
      if (!doc?.flag || !optionNames(option).includes(doc.flag)) {
        problems.push(`the help of ${option.long} mentions $${match[1]}, which ENVIRONMENT_DOCS does not link to it`);
      }
    }
  }
  return problems;
}

/** `{backend: {kubernetes: {x: 1}}}` for `backend.kubernetes.x`. */
function nested(path: string, value: unknown): Record<string, unknown> {
  return path
    .split('.')
    .reverse()
    .reduce<unknown>((inside, name) => ({ [name]: inside }), value) as Record<string, unknown>;
}

/** The backend block a key belongs to, or the direct backend's for the keys every backend shares. */
function blockFor(path: string): Record<string, unknown> {
  const backend = /^backend\.(\w+)/.exec(path)?.[1] ?? 'direct';
  return { backend: { [backend]: backend === 'command' ? { dispatch_command: 'true' } : {} } };
}

function deepMerge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const merged: Record<string, unknown> = { ...a };
  for (const [key, value] of Object.entries(b)) {
    const here = merged[key];
    merged[key] =
      here && value && typeof here === 'object' && typeof value === 'object' && !Array.isArray(value)
        ? deepMerge(here as Record<string, unknown>, value as Record<string, unknown>)
        : value;
  }
  return merged;
}

/**
 * Documented defaults the worker does not apply: for each key documented with a default of its own, the configuration
 * resolved with the key set to that default must equal the one resolved without the key.
 */
export function defaultProblems(keyDocs: Readonly<Record<string, KeyDoc>> = KEY_DOCS, keys: ConfigKey[] = configKeys()): string[] {
  const resolve = (file: Record<string, unknown>) =>
    resolveWorkerConfig({ apiKey: 'reference-key', workerId: 'reference' }, fileConfigSchema.parse(file), {}, () => '', {
      platform: 'linux',
      home: '/home/reference',
      uid: 1000,
    });
  const problems: string[] = [];
  for (const key of keys) {
    const doc = keyDoc(key.path, keyDocs);
    if (doc?.default === undefined || key.path.includes('[]')) continue;
    const base = blockFor(key.path);
    const withDefault = deepMerge(base, nested(key.path, parseYaml(doc.default) as unknown));
    try {
      if (!isDeepStrictEqual(resolve(withDefault), resolve(base))) {
        problems.push(`the documented default of ${key.path}, ${doc.default}, is not what the worker uses when the key is absent`);
      }
    } catch (error) {
      problems.push(
        `the documented default of ${key.path}, ${doc.default}, is refused by the worker: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
  }
  return problems;
}
