// The Kubernetes client makes a new HTTP agent for every API call, so each call
// opens its own connection: on a real cluster a TLS handshake per call (a Job
// create, a delete), CPU on both sides and native memory the worker keeps after
// a burst. Here every call whose credentials and TLS settings are the same goes
// through one keep-alive agent instead, as client-go shares one transport.
// Agents for proxies (a CONNECT tunnel, SOCKS) are left as the client made them.
import { createHash } from 'node:crypto';
import * as http from 'node:http';
import * as https from 'node:https';

/**
 * Idle connections are closed after this long: well before an API server
 * closes them (kube-apiserver: 90 s idle), so a call never races a server
 * closing its connection.
 */
export const IDLE_CONNECTION_MS = 30_000;

/** What makes two agents interchangeable: the TLS material and checks a connection is opened with. */
const IDENTITY_OPTIONS = ['ca', 'cert', 'key', 'pfx', 'passphrase', 'rejectUnauthorized', 'servername'] as const;

function identityOf(agent: http.Agent): string {
  const options = (agent as http.Agent & { options?: Record<string, unknown> }).options ?? {};
  const hash = createHash('sha256');
  hash.update(agent instanceof https.Agent ? 'https' : 'http');
  for (const name of IDENTITY_OPTIONS) {
    const value = options[name];
    hash.update(`\0${name}=`);
    if (value === undefined) continue;
    for (const part of Array.isArray(value) ? value : [value]) hash.update(Buffer.isBuffer(part) ? part : String(part));
  }
  return hash.digest('base64');
}

/** Hands out one keep-alive agent per identity, in place of the per-call agents the client makes. */
export class SharedAgents {
  private current: { identity: string; agent: http.Agent } | undefined;

  /** The shared agent for calls `made` would have served; `made` itself for proxy agents. */
  for(made: http.Agent | https.Agent): http.Agent | https.Agent {
    if (made.constructor !== https.Agent && made.constructor !== http.Agent) return made;
    const identity = identityOf(made);
    if (this.current?.identity === identity) return this.current.agent;
    // New credentials (a rotated client certificate): new connections from here on;
    // the old agent's idle ones time out, its busy ones finish.
    const options = { ...(made as http.Agent & { options: http.AgentOptions }).options, keepAlive: true, timeout: IDLE_CONNECTION_MS };
    const agent = made instanceof https.Agent ? new https.Agent(options) : new http.Agent(options);
    this.current = { identity, agent };
    return agent;
  }

  /** Closes every connection (the backend is done). */
  destroy(): void {
    this.current?.agent.destroy();
    this.current = undefined;
  }
}
