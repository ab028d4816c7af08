// `host:port`, `[v6]:port` or `:port` (host defaults to 127.0.0.1). Pure.
export function parseHostPort(text: string): { host: string; port: number } | undefined {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(text.trim());
  if (!match || Number(match[3]) > 65535) return undefined;
  return { host: match[1] ?? (match[2] || '127.0.0.1'), port: Number(match[3]) };
}
