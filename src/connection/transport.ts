// How the WebSocket reaches the dispatch server: through HTTPS_PROXY / HTTP_PROXY
// (honouring NO_PROXY) and trusting a private CA when one is configured. Node's
// own agents do the proxy tunnelling (the `proxyEnv` option); we only choose one.
import type { Agent as HttpAgent } from 'node:http';
import { createRequire } from 'node:module';

// Loaded with require(), and only when an agent is needed: an ESM import of
// node:http makes Node evaluate every export, including the lazy WebSocket
// getter that pulls in its bundled undici (~15 ms of start-up).
const requireBuiltin = createRequire(import.meta.url);

export interface TransportOptions {
  url: string;
  env: Readonly<Record<string, string | undefined>>;
  /** PEM text of extra CA certificates (`--ca-file`); NODE_EXTRA_CA_CERTS works as usual too. */
  ca?: string;
}

/** The proxy variables of `env`, for Node's `proxyEnv` agent option. */
export function proxyVariables(env: TransportOptions['env']): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of ['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy', 'NO_PROXY', 'no_proxy']) {
    const value = env[name];
    if (value) out[name] = value;
  }
  return out;
}

/** An agent for the dispatch URL, or undefined when Node's defaults do. */
export function dispatchAgent(options: TransportOptions): HttpAgent | undefined {
  const proxyEnv = proxyVariables(options.env);
  const hasProxy = Object.keys(proxyEnv).some((k) => !/no_proxy/i.test(k));
  if (!hasProxy && !options.ca) return undefined;
  const secure = new URL(options.url).protocol === 'wss:';
  const { Agent: HttpAgentClass } = requireBuiltin('node:http') as typeof import('node:http');
  const { Agent: HttpsAgent } = requireBuiltin('node:https') as typeof import('node:https');
  const { rootCertificates } = requireBuiltin('node:tls') as typeof import('node:tls');
  const agentOptions = { keepAlive: false, ...(hasProxy ? { proxyEnv } : {}) };
  return secure ? new HttpsAgent({ ...agentOptions, ...(options.ca ? { ca: [...rootCertificates, options.ca] } : {}) }) : new HttpAgentClass(agentOptions);
}
