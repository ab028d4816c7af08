// Go's strings.TrimSpace: trims Unicode white space as Go defines it (which
// includes U+0085 and excludes U+FEFF, unlike String.prototype.trim).
const GO_SPACE = '[\\t\\n\\v\\f\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]';
const EDGES = new RegExp(`^${GO_SPACE}+|${GO_SPACE}+$`, 'g');

export function goTrim(text: string): string {
  return text.replace(EDGES, '');
}
