// The HTTP side of http-post.ts, through undici: loaded with a dynamic import of
// this module (not of undici itself, whose CommonJS exports a bundle's dynamic
// import would only offer as a default).
import { rootCertificates } from 'node:tls';
import { EnvHttpProxyAgent, request, type Dispatcher } from 'undici';
import { proxyVariables } from '../connection/transport.js';

export const MAX_RESPONSE_TEXT_BYTES = 512;

export interface PostResponse {
  status: number;
  /** The start of the response body (for an error message), at most MAX_RESPONSE_TEXT_BYTES. */
  text: string;
}

export interface HttpPosterOptions {
  /** Where the proxy variables come from (the worker's environment). */
  env: Readonly<Record<string, string | undefined>>;
  /** PEM text of extra CA certificates (`--ca-file`). */
  ca?: string;
}

export function makeDispatcher(options: HttpPosterOptions): Dispatcher {
  const proxy = proxyVariables(options.env);
  const tls = options.ca ? { ca: [...rootCertificates, options.ca] } : undefined;
  // Empty strings, not undefined: undici would otherwise read process.env itself.
  return new EnvHttpProxyAgent({
    httpProxy: proxy.HTTP_PROXY ?? proxy.http_proxy ?? '',
    httpsProxy: proxy.HTTPS_PROXY ?? proxy.https_proxy ?? '',
    noProxy: proxy.NO_PROXY ?? proxy.no_proxy ?? '',
    ...(tls ? { connect: tls, requestTls: tls, proxyTls: tls } : {}),
  });
}

export async function post(
  dispatcher: Dispatcher,
  url: string,
  { headers, body, timeoutMs }: { headers: Record<string, string>; body: string; timeoutMs: number },
): Promise<PostResponse> {
  const response = await request(url, {
    method: 'POST',
    headers,
    body,
    dispatcher,
    signal: AbortSignal.timeout(timeoutMs),
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
  });
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of response.body) {
    chunks.push(chunk as Buffer);
    size += (chunk as Buffer).length;
    if (size >= MAX_RESPONSE_TEXT_BYTES) break;
  }
  return { status: response.statusCode, text: Buffer.concat(chunks).subarray(0, MAX_RESPONSE_TEXT_BYTES).toString('utf8') };
}
