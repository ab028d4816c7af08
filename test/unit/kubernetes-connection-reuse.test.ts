import * as http from 'node:http';
import * as https from 'node:https';
import { describe, expect, it } from 'vitest';
import { IDLE_CONNECTION_MS, SharedAgents } from '../../src/backends/kubernetes/connection-reuse.js';

const tls = (extra: https.AgentOptions = {}) => new https.Agent({ ca: 'CA-1', cert: 'CERT-1', key: 'KEY-1', ...extra });

describe('SharedAgents', () => {
  it('hands every call with the same TLS settings one keep-alive agent', () => {
    const agents = new SharedAgents();
    const first = agents.for(tls());
    expect(agents.for(tls())).toBe(first);
    expect(first).toBeInstanceOf(https.Agent);
    const options = (first as https.Agent & { options: https.AgentOptions }).options;
    expect(options.keepAlive).toBe(true);
    expect(options.timeout).toBe(IDLE_CONNECTION_MS);
    // The TLS material travels to the shared agent.
    expect([options.ca, options.cert, options.key]).toEqual(['CA-1', 'CERT-1', 'KEY-1']);
    agents.destroy();
  });

  it.each([
    ['a rotated client certificate', { cert: 'CERT-2' }],
    ['another key', { key: 'KEY-2' }],
    ['another CA', { ca: 'CA-2' }],
    ['TLS verification off', { rejectUnauthorized: false }],
    ['another server name', { servername: 'api.example' }],
  ])('opens new connections after %s', (_, change) => {
    const agents = new SharedAgents();
    const before = agents.for(tls());
    const after = agents.for(tls(change));
    expect(after).not.toBe(before);
    expect(agents.for(tls(change))).toBe(after);
    agents.destroy();
  });

  it('shares plain HTTP agents apart from HTTPS ones', () => {
    const agents = new SharedAgents();
    const plain = agents.for(new http.Agent());
    expect(plain).toBeInstanceOf(http.Agent);
    expect(plain).not.toBeInstanceOf(https.Agent);
    expect(agents.for(new http.Agent())).toBe(plain);
    expect(agents.for(new https.Agent())).not.toBe(plain);
    agents.destroy();
  });

  it('leaves proxy agents (any other agent class) as the client made them', () => {
    class TunnelAgent extends https.Agent {}
    const agents = new SharedAgents();
    const tunnel = new TunnelAgent();
    expect(agents.for(tunnel)).toBe(tunnel);
    agents.destroy();
  });
});
