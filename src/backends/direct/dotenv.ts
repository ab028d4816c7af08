// Parser for the env file a setup command writes to $OZ_ENVIRONMENT_FILE.
// Follows godotenv v1.5.1 (the Go worker's parser), quirks included, so a setup
// script written for the Go worker yields the same variables here. Pure.
//
// Error messages name the line and the problem but never quote values: the file
// typically holds credentials and the message ends up in the worker's log.

export class DotenvError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DotenvError';
  }
}

/** Go's unicode.IsSpace: separates statements. */
const GO_SPACE = /[\t\n\v\f\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]/;

/** godotenv's own "space": white space that is not a line break. */
function isInlineSpace(ch: string | undefined): boolean {
  return ch === ' ' || ch === '\t' || ch === '\v' || ch === '\f' || ch === '\r' || ch === '\u0085' || ch === '\u00A0';
}

/**
 * godotenv checks key characters byte by byte, reading each UTF-8 byte as a
 * Latin-1 code point: letters, digits, `_`, `.` and in-line spaces are allowed.
 */
function isKeyByte(byte: number): boolean {
  if (byte < 0x80) {
    const ch = String.fromCharCode(byte);
    return /[A-Za-z0-9_.]/.test(ch) || isInlineSpace(ch);
  }
  if (byte === 0x85 || byte === 0xa0) return true; // in-line spaces
  if (byte === 0xaa || byte === 0xb5 || byte === 0xba) return true; // Latin-1 letters
  if (byte === 0xb2 || byte === 0xb3 || byte === 0xb9 || (byte >= 0xbc && byte <= 0xbe)) return true; // Latin-1 numbers
  return byte >= 0xc0 && byte !== 0xd7 && byte !== 0xf7;
}

const ENCODER = new TextEncoder();

function isKeyCharacter(ch: string): boolean {
  return [...ENCODER.encode(ch)].every(isKeyByte);
}

function trimInlineSpace(text: string): string {
  const chars = Array.from(text);
  let start = 0;
  let end = chars.length;
  while (start < end && isInlineSpace(chars[start])) start++;
  while (end > start && isInlineSpace(chars[end - 1])) end--;
  return chars.slice(start, end).join('');
}

function trimEndGoSpace(text: string): string {
  const chars = Array.from(text);
  let end = chars.length;
  while (end > 0 && GO_SPACE.test(chars[end - 1]!)) end--;
  return chars.slice(0, end).join('');
}

function lineOf(src: string, index: number): number {
  let line = 1;
  for (let i = 0; i < index && i < src.length; i++) if (src[i] === '\n') line++;
  return line;
}

/** Index of the next statement (skipping blank space and `#` comment lines), or -1 at the end. */
function statementStart(src: string, from: number): number {
  let pos = from;
  for (;;) {
    while (pos < src.length && GO_SPACE.test(src[pos]!)) pos++;
    if (pos >= src.length) return -1;
    if (src[pos] !== '#') return pos;
    pos = src.indexOf('\n', pos);
    if (pos < 0) return -1;
  }
}

function skipInlineSpace(src: string, from: number): number {
  let pos = from;
  while (pos < src.length && isInlineSpace(src[pos])) pos++;
  return pos;
}

/** Reads `[export ]KEY` up to `=` or `:`; returns the key and where the value starts. */
function readKey(src: string, from: number): { key: string; next: number } {
  let start = skipInlineSpace(src, from);
  if (src.startsWith('export', start) && isInlineSpace(src[start + 6])) {
    start = skipInlineSpace(src, start + 6);
  }
  let pos = start;
  while (pos < src.length) {
    const ch = String.fromCodePoint(src.codePointAt(pos)!);
    if (ch === '=' || ch === ':') {
      return { key: trimEndGoSpace(src.slice(start, pos)), next: skipInlineSpace(src, pos + 1) };
    }
    if (!isKeyCharacter(ch)) {
      const shown = ch === '\n' ? 'a line break' : JSON.stringify(ch);
      throw new DotenvError(
        `line ${lineOf(src, pos)}: unexpected character ${shown} in variable name ${JSON.stringify(src.slice(start, pos).trim())} ` +
          '(write KEY=value; names use letters, digits, "_" and ".")',
      );
    }
    pos += ch.length;
  }
  // The file ended without `=`: godotenv reads the rest as the value of an empty key.
  return { key: '', next: skipInlineSpace(src, start) };
}

function readValue(src: string, from: number, key: string, vars: ReadonlyMap<string, string>): { value: string; next: number } {
  const quote = src[from];
  if (quote === '"' || quote === "'") {
    for (let i = from + 1; i < src.length; i++) {
      if (src[i] !== quote || src[i - 1] === '\\') continue;
      const raw = stripQuoteRuns(src.slice(from, i), quote);
      const value = quote === '"' ? expandVariables(expandEscapes(raw), vars) : raw;
      return { value, next: i + 1 };
    }
    throw new DotenvError(`line ${lineOf(src, from)}: unterminated quoted value for ${JSON.stringify(key)} (add the closing ${quote})`);
  }
  let end = from;
  while (end < src.length && src[end] !== '\n' && src[end] !== '\r') end++;
  const line = Array.from(src.slice(from, end));
  let valueEnd = line.length;
  // The last `#` that follows white space starts a comment.
  for (let i = line.length - 1; i > 0; i--) {
    if (line[i] === '#' && isInlineSpace(line[i - 1])) {
      valueEnd = i;
      break;
    }
  }
  return { value: expandVariables(trimInlineSpace(line.slice(0, valueEnd).join('')), vars), next: end };
}

/** godotenv trims every quote character at both ends (so `"a\"` loses its escaped quote too). */
function stripQuoteRuns(text: string, quote: string): string {
  let start = 0;
  let end = text.length;
  while (end > start && text[end - 1] === quote) end--;
  while (start < end && text[start] === quote) start++;
  return text.slice(start, end);
}

/** Double-quoted escapes: `\n`, `\r`, then any other `\x` becomes `x` — except `\$`. */
function expandEscapes(text: string): string {
  const lineBreaks = text.replace(/\\[^\n]/g, (match) => (match[1] === 'n' ? '\n' : match[1] === 'r' ? '\r' : match));
  return lineBreaks.replace(/\\([^$])/g, '$1');
}

const VARIABLE = /(\\)?(\$)(\()?\{?([A-Z0-9_]+)?\}?/g;

/** `$NAME` / `${NAME}` from variables defined earlier in the file; `\$` stays a literal `$`. */
function expandVariables(text: string, vars: ReadonlyMap<string, string>): string {
  return text.replace(VARIABLE, (match: string, escaped: string | undefined, _dollar: string, _paren: string | undefined, name: string | undefined) => {
    if (escaped !== undefined) return match.slice(1);
    if (name !== undefined) return vars.get(name) ?? '';
    return match;
  });
}

/**
 * Parses dotenv text. Keys keep the order of their first definition; a later
 * definition replaces the value. Throws DotenvError on a malformed key or
 * an unterminated quote (the caller then uses none of the file).
 */
export function parseDotenv(text: string): Map<string, string> {
  const src = text.replaceAll('\r\n', '\n');
  const vars = new Map<string, string>();
  let pos = statementStart(src, 0);
  while (pos >= 0) {
    const { key, next } = readKey(src, pos);
    const { value, next: after } = readValue(src, next, key, vars);
    vars.set(key, value);
    pos = statementStart(src, after);
  }
  return vars;
}
