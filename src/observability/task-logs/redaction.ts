// What keeps secrets out of exported task logs: every value the task or the
// operator put in the environment (and the credentials the worker holds for the
// task) is replaced by `[REDACTED]` wherever it appears raw, URL-escaped as Go's
// url.QueryEscape writes it, JSON-escaped as Go's encoding/json writes it, or
// (in raw output lines) split over lines. Pure: the Go worker's rules
// (internal/tasklogs/redaction.go), with two escapes added (see `variantsOf`).

export const REDACTED = '[REDACTED]';
/** More distinct variants than this, or more bytes, and every record is redacted whole (a task cannot slow redaction down without bound). */
export const MAX_VARIANTS = 4096;
export const MAX_VARIANT_BYTES = 1024 * 1024;
/** Input longer than this is never scanned: it is redacted whole. */
export const MAX_INPUT_BYTES = 64 * 1024;
/** A redacted record longer than this is redacted whole (a record's body budget). */
export const MAX_OUTPUT_BYTES = 16 * 1024;

const UNRESERVED = /[A-Za-z0-9\-_.~]/;

/** Go's url.QueryEscape: unreserved bytes kept, space as `+`, every other byte of the UTF-8 form as `%XX` (upper case). */
export function goQueryEscape(value: string): string {
  let out = '';
  for (const byte of Buffer.from(value, 'utf8')) {
    const ch = String.fromCharCode(byte);
    if (byte < 0x80 && UNRESERVED.test(ch)) out += ch;
    else if (byte === 0x20) out += '+';
    else out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

const SHORT_ESCAPES: Readonly<Record<string, string>> = { '"': '\\"', '\\': '\\\\', '\b': '\\b', '\f': '\\f', '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/**
 * A string as Go's encoding/json writes it (Go 1.22 and later), without the
 * quotes: short escapes, other controls as `\u00xx`, `<` `>` `&` U+2028 U+2029
 * escaped, an unpaired surrogate (invalid UTF-8 to Go) as `\ufffd`.
 */
export function goJsonEscape(value: string): string {
  let out = '';
  for (let i = 0; i < value.length; i++) {
    const ch = value[i]!;
    const code = value.charCodeAt(i);
    if (code >= 0xd800 && code <= 0xdbff && i + 1 < value.length) {
      const next = value.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        out += ch + value[++i]!;
        continue;
      }
    }
    if (code >= 0xd800 && code <= 0xdfff) out += '\\ufffd';
    else if (SHORT_ESCAPES[ch] !== undefined) out += SHORT_ESCAPES[ch];
    else if (code < 0x20 || ch === '<' || ch === '>' || ch === '&' || code === 0x2028 || code === 0x2029) out += `\\u${code.toString(16).padStart(4, '0')}`;
    else out += ch;
  }
  return out;
}

/**
 * The forms of one value to look for. Go's: the value, its query escape, its
 * JSON escape, and each non-empty line of a multi-line value (raw output only).
 * Added here: JSON as JavaScript's JSON.stringify and older Go write it
 * (`<>&` kept, `\u0008` for backspace), so output of a Node agent or an older
 * Go tool is covered too.
 */
export function variantsOf(value: string): { whole: string[]; pieces: string[] } {
  const whole = [value, goQueryEscape(value), goJsonEscape(value), JSON.stringify(value).slice(1, -1)];
  const pieces = /[\r\n]/.test(value) ? value.split(/[\r\n]/).filter((piece) => piece !== '') : [];
  return { whole: [...new Set(whole)], pieces };
}

/**
 * The set of secrets of one task and the redaction over them. Adding only
 * grows it; past the budget it redacts everything, for good.
 */
export class Redactor {
  /** Variant → whether it applies to raw lines only (a piece of a multi-line value). */
  private readonly variants = new Map<string, boolean>();
  private bytes = 0;
  private overflowed = false;
  private rawPattern: RegExp | undefined | null = null;
  private structuredPattern: RegExp | undefined | null = null;

  get overflow(): boolean {
    return this.overflowed;
  }

  /** Registers values; empty ones are ignored (they would match everywhere). */
  add(values: Iterable<string>): void {
    for (const value of values) {
      if (value === '' || this.overflowed) continue;
      if (Buffer.byteLength(value) > MAX_VARIANT_BYTES) {
        this.overflowed = true;
        continue;
      }
      const { whole, pieces } = variantsOf(value);
      for (const variant of whole) this.addVariant(variant, false);
      for (const piece of pieces) this.addVariant(piece, true);
    }
  }

  private addVariant(variant: string, rawOnly: boolean): void {
    if (this.overflowed) return;
    const known = this.variants.get(variant);
    if (known !== undefined) {
      if (known && !rawOnly) {
        this.variants.set(variant, false);
        this.structuredPattern = null;
      }
      return;
    }
    const size = Buffer.byteLength(variant);
    if (this.variants.size >= MAX_VARIANTS || this.bytes + size > MAX_VARIANT_BYTES) {
      this.overflowed = true;
      return;
    }
    this.variants.set(variant, rawOnly);
    this.bytes += size;
    this.rawPattern = null;
    if (!rawOnly) this.structuredPattern = null;
  }

  /** A raw output line: every variant, line pieces included. */
  redactLine(text: string): string {
    this.rawPattern ??= patternOf([...this.variants.keys()]);
    return this.redact(text, this.rawPattern);
  }

  /** Structured text (a JSON document): whole-value variants only, so a line piece such as `first` does not eat a field value. */
  redactStructured(text: string): string {
    this.structuredPattern ??= patternOf([...this.variants].filter(([, rawOnly]) => !rawOnly).map(([variant]) => variant));
    return this.redact(text, this.structuredPattern);
  }

  private redact(text: string, pattern: RegExp | undefined): string {
    if (this.overflowed || Buffer.byteLength(text) > MAX_INPUT_BYTES) return REDACTED;
    // One left-to-right pass: at each position the longest variant wins, and replacement text is never scanned again.
    const out = pattern === undefined ? text : text.replace(pattern, REDACTED);
    return Buffer.byteLength(out) > MAX_OUTPUT_BYTES ? REDACTED : out;
  }
}

/** An alternation tried longest first (a regex tries alternatives in order), or undefined when there is nothing to find. */
function patternOf(variants: string[]): RegExp | undefined {
  if (variants.length === 0) return undefined;
  const sorted = variants.sort((a, b) => Buffer.byteLength(b) - Buffer.byteLength(a) || (a < b ? -1 : 1));
  return new RegExp(sorted.map((v) => v.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|'), 'g');
}
