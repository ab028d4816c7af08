// The worker's build on the WebSocket upgrade: `X-Warp-Worker-Version`, sent on
// every dial as the Go worker does, so a server can tell which workers run what.
// A value that could not travel as one clean header line is left out (the
// connection goes ahead without it): empty, over 128 bytes, not UTF-8, or
// holding a control character (a newline would inject another header).
// Header values travel as bytes; Node speaks them as latin1 strings, so the
// UTF-8 bytes are carried in a latin1 string each way.

export const WORKER_VERSION_HEADER = 'X-Warp-Worker-Version';
export const MAX_WORKER_VERSION_BYTES = 128;

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The version these bytes spell, when they may be sent; undefined otherwise. */
function acceptableVersion(bytes: Buffer): string | undefined {
  if (bytes.length === 0 || bytes.length > MAX_WORKER_VERSION_BYTES) return undefined;
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    return undefined;
  }
  // Any character below U+0020 (tab included) and DEL, as Go's check.
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x20 || code === 0x7f) return undefined;
  }
  return text;
}

/** The header value (latin1-carried UTF-8) to send for `version`, or undefined to leave the header out. */
export function workerVersionHeaderValue(version: string): string | undefined {
  // A lone surrogate has no UTF-8 form: Buffer would write U+FFFD instead, so it is compared back.
  const bytes = Buffer.from(version, 'utf8');
  if (bytes.toString('utf8') !== version) return undefined;
  return acceptableVersion(bytes) === undefined ? undefined : bytes.toString('latin1');
}

/** The version a worker announced on its upgrade request, when there is one that passes the same rule. */
export function announcedWorkerVersion(header: string | string[] | undefined): string | undefined {
  if (typeof header !== 'string') return undefined;
  return acceptableVersion(Buffer.from(header, 'latin1'));
}
