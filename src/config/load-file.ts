// Reads the YAML config file. Only the first YAML document counts (as in Go).
// Every problem is reported with the key path as written and its line, plus
// what to do about it, as one ConfigError.
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, resolve } from 'node:path';
import { LineCounter, parseAllDocuments, isScalar } from 'yaml';
import { zodProblems, type ZodIssue } from '../errors/zod-issues.js';
import { ConfigError, describeReadError } from './errors.js';
import { expandPath } from './paths.js';
import { fileConfigSchema, KNOWN_KEYS, REMOVED_KEYS, type FileConfig } from './file-schema.js';
import { documentToTree, YamlShapeError, type YamlPath, type YamlTree } from './yaml-tree.js';

/** Reads and validates a config file; throws ConfigError naming the file, line and fix. */
export async function loadConfigFile(path: string): Promise<FileConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new ConfigError(`could not read config file ${path}: ${describeReadError(error)} (check the --config-file path)`);
  }
  const config = parseConfigText(text, path);
  // A relative api_key_file is next to the config file, wherever the worker was started.
  if (config.api_key_file) config.api_key_file = expandPath(config.api_key_file, { home: homedir(), base: dirname(resolve(path)) });
  return config;
}

/** Validates config file text; `source` names the file in messages. */
export function parseConfigText(text: string, source: string): FileConfig {
  const lines = new LineCounter();
  const [document] = parseAllDocuments(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const [syntaxError] = document?.errors ?? [];
  if (syntaxError) {
    const line = lines.linePos(syntaxError.pos[0]).line;
    throw new ConfigError(
      `config file ${source}, line ${line}: invalid YAML: ${firstLine(syntaxError.message)} (fix the syntax; indent with spaces and quote values that contain ": " or start with a special character)`,
    );
  }
  const contents = document?.contents;
  if (!document || contents === null || contents === undefined || (isScalar(contents) && contents.value === null)) {
    throw new ConfigError(`config file ${source} is empty (write at least "worker_id: <name>", or leave out --config-file)`);
  }

  let tree: YamlTree;
  try {
    tree = documentToTree(document, lines);
  } catch (error) {
    if (error instanceof YamlShapeError) throw new ConfigError(`config file ${source}${error.line ? `, line ${error.line}` : ''}: ${error.message}`);
    throw error;
  }

  const result = fileConfigSchema.safeParse(tree.data);
  if (result.success) return result.data;
  throw new ConfigError(formatProblems(source, describeIssues(result.error.issues, tree)));
}

interface Problem {
  line: number | undefined;
  message: string;
}

function formatProblems(source: string, problems: Problem[]): string {
  const sorted = [...problems].sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
  const at = (problem: Problem): string => (problem.line === undefined ? problem.message : `line ${problem.line}: ${problem.message}`);
  const [only] = sorted;
  if (only && sorted.length === 1) {
    return only.line === undefined ? `config file ${source}: ${only.message}` : `config file ${source}, line ${only.line}: ${only.message}`;
  }
  return `config file ${source} has ${sorted.length} problems: ${sorted.map(at).join('; ')}`;
}

/** Each issue at the line of its key; an unknown key gets its own problem. */
function describeIssues(issues: readonly ZodIssue[], tree: YamlTree): Problem[] {
  return zodProblems(issues, { splitUnknownKeys: true, describe: describeIssue }).map(({ path, message }) => ({ line: tree.lineOf(path), message }));
}

function describeIssue(issue: ZodIssue, path: YamlPath): string {
  if (issue.code === 'unrecognized_keys') return `unknown key "${pathText(path)}" (${unknownKeyFix(path.slice(0, -1), String(path.at(-1)))})`;
  const subject = path.length === 0 ? 'the config file' : pathText(path);
  if (issue.code === 'custom') {
    return (issue.params as { standalone?: boolean } | undefined)?.standalone ? issue.message : `${subject} ${issue.message}`;
  }
  if (issue.code === 'invalid_type') {
    if (issue.expected === 'object' || issue.expected === 'record') {
      return path.length === 0
        ? 'the config file must be a mapping of keys such as "worker_id: my-worker"'
        : `${subject} must be a mapping of keys (indent its keys under it)`;
    }
    if (issue.expected === 'array') return `${subject} must be a list (write one "- item" per line under it)`;
  }
  return `${subject}: ${issue.message}`;
}

function unknownKeyFix(parent: YamlPath, key: string): string {
  const pattern = pathPattern(parent);
  const removed = REMOVED_KEYS[pattern]?.[key];
  if (removed) return removed;
  const known = KNOWN_KEYS[pattern] ?? [];
  const suggestion = closest(key, known);
  if (suggestion) return `did you mean "${suggestion}"?`;
  if (pattern === 'backend') return `remove it; the backend blocks are ${known.join(', ')}`;
  return known.length > 0 ? `remove it or fix its spelling; the keys allowed here are ${known.join(', ')}` : 'remove it';
}

/** The known key within a small edit distance of `key`, if any. */
function closest(key: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(key.length / 4)) + 1;
  for (const candidate of known) {
    const distance = editDistance(key.toLowerCase(), candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

/** `backend.docker.environment[0].name`: the path as the user wrote it. */
export function pathText(path: YamlPath): string {
  return path.reduce<string>((text, part) => (typeof part === 'number' ? `${text}[${part}]` : text === '' ? part : `${text}.${part}`), '');
}

/** Like pathText, with list indices replaced by `[]`. */
function pathPattern(path: YamlPath): string {
  return path.reduce<string>((text, part) => (typeof part === 'number' ? `${text}[]` : text === '' ? part : `${text}.${part}`), '');
}

function firstLine(message: string): string {
  return (message.split('\n')[0] ?? message).replace(/ at line \d+, column \d+:?$/, '').replace(/:$/, '');
}
