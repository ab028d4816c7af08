// How the worker reaches the network: through HTTPS_PROXY / HTTP_PROXY
// (honouring NO_PROXY) and trusting a private CA when one is configured, for
// the WebSocket to the dispatch server and the worker's HTTP posts alike. Node's
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

/** Whether `env` names a proxy (NO_PROXY alone does not). */
function namesProxy(proxyEnv: Record<string, string>): boolean {
  return Object.keys(proxyEnv).some((k) => !/no_proxy/i.test(k));
}

/**
 * A Node agent for `http:` or `https:` (`secure`) requests: through the proxy
 * `env` names (honouring NO_PROXY), trusting `ca` besides Node's roots. The
 * worker's other HTTP calls (setup timings, task logs) get theirs here too.
 */
export function proxiedAgent(secure: boolean, options: { env: TransportOptions['env']; ca?: string | undefined; keepAlive: boolean }): HttpAgent {
  const proxyEnv = proxyVariables(options.env);
  const agentOptions = { keepAlive: options.keepAlive, ...(namesProxy(proxyEnv) ? { proxyEnv } : {}) };
  if (!secure) {
    const { Agent: HttpAgentClass } = requireBuiltin('node:http') as typeof import('node:http');
    return new HttpAgentClass(agentOptions);
  }
  const { Agent: HttpsAgent } = requireBuiltin('node:https') as typeof import('node:https');
  const { rootCertificates } = requireBuiltin('node:tls') as typeof import('node:tls');
  return new HttpsAgent({ ...agentOptions, ...(options.ca ? { ca: [...rootCertificates, options.ca] } : {}) });
}

/** An agent for the dispatch URL, or undefined when Node's defaults do. */
export function dispatchAgent(options: TransportOptions): HttpAgent | undefined {
  if (!namesProxy(proxyVariables(options.env)) && !options.ca) return undefined;
  return proxiedAgent(new URL(options.url).protocol === 'wss:', { env: options.env, ca: options.ca, keepAlive: false });
}
