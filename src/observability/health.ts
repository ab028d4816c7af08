// Health endpoints for probes: /livez answers whenever the event loop does (no
// dependency checks, so a dispatch-server outage never gets the worker killed);
// /readyz is 200 only while connected, with a ready backend, and not draining,
// otherwise 503 with the reason in JSON.
import type { Server } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';

// require(), not an ESM import: importing node:http as ESM makes Node load its
// bundled undici at start-up (see src/connection/transport.ts).
const requireBuiltin = createRequire(import.meta.url);

export interface Readiness {
  connected(): boolean;
  draining(): boolean;
  /** Undefined when the backend is ready, else why not. */
  backendProblem(): string | undefined;
}

/** Why the worker is not ready, or undefined when it is. Pure. */
export function notReadyReason(state: { connected: boolean; draining: boolean; backendProblem: string | undefined }): string | undefined {
  if (state.draining) return 'the worker is shutting down and takes no new tasks';
  if (state.backendProblem) return `backend not ready: ${state.backendProblem}`;
  if (!state.connected) return 'not connected to the dispatch server';
  return undefined;
}

export interface HealthServer {
  /** The bound address, e.g. 127.0.0.1:8080 (the port is real when 0 was asked for). */
  address: string;
  close(): Promise<void>;
}

export async function startHealthServer(listen: { host: string; port: number }, readiness: Readiness): Promise<HealthServer> {
  const { createServer } = requireBuiltin('node:http') as typeof import('node:http');
  const server: Server = createServer((request, response) => {
    const path = new URL(request.url ?? '/', 'http://localhost').pathname;
    const reply = (status: number, body: object): void => {
      const text = JSON.stringify(body);
      response.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', 'Content-Length': Buffer.byteLength(text) });
      response.end(text);
    };
    if (path === '/livez') return reply(200, { status: 'ok' });
    if (path === '/readyz') {
      const reason = notReadyReason({ connected: readiness.connected(), draining: readiness.draining(), backendProblem: readiness.backendProblem() });
      return reason ? reply(503, { status: 'not ready', reason }) : reply(200, { status: 'ready' });
    }
    reply(404, { status: 'not found', reason: 'use /livez or /readyz' });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  return {
    address: `${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
