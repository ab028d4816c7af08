// Byte-exact JSON helpers for values the Go worker re-marshals or forwards as raw JSON.
// The `--mcp` argument must carry each server's JSON exactly as the server sent
// it (compacted, key order and number spelling kept), which JSON.parse loses, so
// we locate the value spans in the original frame text.
import type { RepositoryHeadOverride } from './messages.js';

const WHITESPACE = new Set([' ', '\t', '\n', '\r']);

/** Go's json.Marshal string encoding: HTML-safe escapes and U+2028/U+2029. */
export function goJsonString(value: string): string {
  // Escapes are rewritten pair by pair, so the `\\b` of an escaped backslash
  // followed by a letter b (`C:\\build`) is not mistaken for a backspace.
  const json = JSON.stringify(value).replace(/\\(.)/g, (pair, ch: string) => (ch === 'b' ? '\\u0008' : ch === 'f' ? '\\u000c' : pair));
  return goEscapeHtml(json);
}

function goEscapeHtml(json: string): string {
  return json.replace(/[<>&\u2028\u2029]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Go's encoding of a value it re-marshals (sorted map keys, HTML-safe strings). */
export function goJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    return typeof value === 'string' ? goJsonString(value) : (JSON.stringify(value) ?? 'null');
  }
  if (Array.isArray(value)) return `[${value.map(goJson).join(',')}]`;
  const entries = Object.entries(value).filter(([, v]) => v !== undefined);
  return `{${entries.map(([k, v]) => `${goJsonString(k)}:${goJson(v)}`).join(',')}}`;
}

/**
 * One override as Go's json.Marshal writes it: declaration order, `head` always
 * whole, `clone_from` only when sent, `preserve_origin` only when true, unknown
 * fields gone, HTML-safe escapes.
 */
export function repositoryHeadOverrideJson(override: RepositoryHeadOverride): string {
  const str = (value: string | undefined) => goJsonString(value ?? '');
  const { head, clone_from: from } = override;
  const fields = [
    `"code_forge":${str(override.code_forge)}`,
    `"repo_owner":${str(override.repo_owner)}`,
    `"repo_name":${str(override.repo_name)}`,
    `"head":{"type":${str(head?.type)},"value":${str(head?.value)}}`,
  ];
  if (from) fields.push(`"clone_from":{"code_forge":${str(from.code_forge)},"owner":${str(from.owner)},"repo":${str(from.repo)}}`);
  if (override.preserve_origin === true) fields.push('"preserve_origin":true');
  return `{${fields.join(',')}}`;
}

/** Compacts a JSON text the way Go's json.Compact + HTML escaping does. */
export function goCompact(raw: string): string {
  let out = '';
  let inString = false;
  for (let i = 0; i < raw.length; i++) {
    const ch = raw[i]!;
    if (inString) {
      if (ch === '\\') {
        out += ch + (raw[i + 1] ?? '');
        i++;
      } else {
        if (ch === '"') inString = false;
        out += ch === '"' ? ch : goEscapeHtml(ch);
      }
    } else if (!WHITESPACE.has(ch)) {
      if (ch === '"') inString = true;
      out += ch;
    }
  }
  return out;
}

type Span = { start: number; end: number };

class Scanner {
  constructor(
    private readonly text: string,
    public pos = 0,
  ) {}

  skipWhitespace(): void {
    while (this.pos < this.text.length && WHITESPACE.has(this.text[this.pos]!)) this.pos++;
  }

  /** Advances over one JSON value and returns its span. Assumes valid JSON. */
  value(): Span {
    this.skipWhitespace();
    const start = this.pos;
    const ch = this.text[this.pos];
    if (ch === '"') this.string();
    else if (ch === '{' || ch === '[') this.container();
    else while (this.pos < this.text.length && !/[\s,\]}]/.test(this.text[this.pos]!)) this.pos++;
    return { start, end: this.pos };
  }

  string(): string {
    const start = this.pos;
    this.pos++;
    while (this.text[this.pos] !== '"') this.pos += this.text[this.pos] === '\\' ? 2 : 1;
    this.pos++;
    return JSON.parse(this.text.slice(start, this.pos)) as string;
  }

  private container(): void {
    let depth = 0;
    do {
      const ch = this.text[this.pos];
      if (ch === '"') {
        this.string();
        continue;
      }
      if (ch === '{' || ch === '[') depth++;
      else if (ch === '}' || ch === ']') depth--;
      this.pos++;
    } while (depth > 0 && this.pos < this.text.length);
  }

  /** Members of the object starting at the current position, in order. */
  members(): Array<{ key: string; span: Span }> {
    this.skipWhitespace();
    if (this.text[this.pos] !== '{') return [];
    this.pos++;
    const members: Array<{ key: string; span: Span }> = [];
    for (;;) {
      this.skipWhitespace();
      if (this.text[this.pos] === '}') break;
      const key = this.string();
      this.skipWhitespace();
      this.pos++; // ':'
      members.push({ key, span: this.value() });
      this.skipWhitespace();
      if (this.text[this.pos] === ',') this.pos++;
    }
    this.pos++;
    return members;
  }
}

/** Follows object keys (case-insensitive, last duplicate wins) to a value's span. */
function findSpan(text: string, path: readonly string[]): Span | undefined {
  let span: Span = { start: 0, end: text.length };
  for (const key of path) {
    const members = new Scanner(text, span.start).members();
    const match = members.filter((m) => m.key.toLowerCase() === key).at(-1);
    if (!match) return undefined;
    span = match.span;
  }
  return span;
}

/**
 * The `--mcp` token: server names sorted byte-wise, each value the server's raw
 * JSON compacted. Falls back to re-encoding the parsed value if the frame text
 * cannot be followed (it always can for a frame that JSON.parse accepted).
 */
export function mcpServersArgument(frameText: string, parsed: Record<string, unknown>): string {
  const byName = new Map<string, string>();
  const span = findSpan(frameText, ['data', 'task', 'agent_config_snapshot', 'mcp_servers']);
  if (span) {
    for (const member of new Scanner(frameText, span.start).members()) {
      // The decoded record has no `__proto__` entry (zod drops that key), so neither does the argument.
      if (member.key === '__proto__') continue;
      byName.set(member.key, goCompact(frameText.slice(member.span.start, member.span.end)));
    }
  }
  if (byName.size !== Object.keys(parsed).length) {
    byName.clear();
    for (const [name, value] of Object.entries(parsed)) byName.set(name, goJson(value));
  }
  const names = [...byName.keys()].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  return `{${names.map((name) => `${goJsonString(name)}:${byName.get(name)}`).join(',')}}`;
}
