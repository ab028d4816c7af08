// The dispatch connection through an HTTPS proxy (CONNECT) and to a server whose
// certificate comes from a private CA: a throw-away CA made with openssl, a TLS
// WebSocket server and a CONNECT proxy, all on loopback.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { createHttpPoster, PostError, type HttpPoster } from '../../src/observability/http-post.js';
import { startConnectProxy, type ConnectProxy } from '../support/connect-proxy.js';
import { until } from '../support/local-server.js';
import { FAKE_OZ, startWorker, tempDir, type WorkerProcess } from '../support/worker-process.js';

const HAS_OPENSSL = (() => {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

const dir = tempDir('tls');
let caPath = '';
let tlsServer: Server;
let tlsPort = 0;
const tlsConnections: { authorization: string | undefined }[] = [];
let proxy: ConnectProxy;
const workers: WorkerProcess[] = [];

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir.path, stdio: 'ignore' });
}

beforeAll(async () => {
  if (!HAS_OPENSSL) return;
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=oz-worker test CA');
  openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1');
  writeFileSync(join(dir.path, 'san.ext'), 'subjectAltName=IP:127.0.0.1\n');
  openssl(
    'x509',
    '-req',
    '-in',
    'server.csr',
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    'server.pem',
    '-days',
    '2',
    '-extfile',
    'san.ext',
  );
  caPath = join(dir.path, 'ca.pem');

  tlsServer = createHttpsServer({ key: readFileSync(join(dir.path, 'server.key')), cert: readFileSync(join(dir.path, 'server.pem')) });
  const wss = new WebSocketServer({ server: tlsServer });
  wss.on('connection', (_socket, request) => tlsConnections.push({ authorization: request.headers.authorization }));
  await new Promise<void>((resolve) => tlsServer.listen(0, '127.0.0.1', resolve));
  tlsPort = (tlsServer.address() as AddressInfo).port;

  proxy = await startConnectProxy();
});

afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop()));
  tlsConnections.length = 0;
  proxy.tunnels.length = 0;
});

afterAll(async () => {
  if (HAS_OPENSSL) {
    tlsServer.closeAllConnections();
    await Promise.all([new Promise((r) => tlsServer.close(r)), proxy.close()]);
  }
  dir.cleanup();
});

function worker(args: string[], env: Record<string, string> = {}): WorkerProcess {
  const config = join(dir.path, 'config.yaml');
  writeFileSync(config, `worker_id: tls-worker\nbackend:\n  direct:\n    oz_path: ${FAKE_OZ}\n    workspace_root: ${join(dir.path, 'ws')}\n`);
  const started = startWorker({
    args: ['--config-file', config, '--web-socket-url', `wss://127.0.0.1:${tlsPort}/ws`, ...args],
    env: { WARP_API_KEY: 'tls-key', ...env },
  });
  workers.push(started);
  return started;
}

describe.skipIf(!HAS_OPENSSL)('private CA and proxies', () => {
  it('refuses a server signed by an unknown CA, and trusts it with --ca-file', async () => {
    const untrusted = worker([]);
    await untrusted.waitForLog((l) => /self-signed|unable to (get|verify)|certificate/i.test(String(l.err ?? l.msg)));
    expect(tlsConnections).toHaveLength(0);
    await untrusted.stop();

    worker(['--ca-file', caPath]);
    await until(() => tlsConnections.length > 0, 15_000, 'a TLS connection');
    expect(tlsConnections[0]!.authorization).toBe('Bearer tls-key');
  });

  it('trusts NODE_EXTRA_CA_CERTS as Node does', async () => {
    worker([], { NODE_EXTRA_CA_CERTS: caPath });
    await until(() => tlsConnections.length > 0, 15_000, 'a TLS connection');
  });

  it('goes through HTTPS_PROXY with a CONNECT tunnel, and around it for NO_PROXY hosts', async () => {
    worker(['--ca-file', caPath], { HTTPS_PROXY: proxy.url });
    await until(() => tlsConnections.length > 0, 15_000, 'a TLS connection through the proxy');
    expect(proxy.tunnels).toEqual([`127.0.0.1:${tlsPort}`]);
    await workers.pop()!.stop();

    tlsConnections.length = 0;
    proxy.tunnels.length = 0;
    worker(['--ca-file', caPath], { HTTPS_PROXY: proxy.url, NO_PROXY: '127.0.0.1' });
    await until(() => tlsConnections.length > 0, 15_000, 'a direct TLS connection');
    expect(proxy.tunnels).toEqual([]);
  });

  it('says what is wrong with an unreadable or non-PEM --ca-file, before connecting', async () => {
    const missing = worker(['--ca-file', join(dir.path, 'nope.pem')]);
    expect((await missing.exited).code).toBe(2);
    expect(missing.output).toMatch(/could not read --ca-file .*nope\.pem/);
    writeFileSync(join(dir.path, 'der.bin'), Buffer.from([0x30, 0x82, 0x01]));
    const der = worker(['--ca-file', join(dir.path, 'der.bin')]);
    expect((await der.exited).code).toBe(2);
    expect(der.output).toMatch(/holds no PEM certificate/);
  });
});

describe.skipIf(!HAS_OPENSSL)('posts to the server (setup timings, task logs): the same private CA and proxies', () => {
  const posted: { url: string | undefined; authorization: string | undefined }[] = [];
  const answer = (request: IncomingMessage, response: ServerResponse) => {
    posted.push({ url: request.url, authorization: request.headers.authorization });
    request.resume();
    request.on('end', () => response.writeHead(204).end());
  };
  beforeAll(() => {
    if (HAS_OPENSSL) tlsServer.on('request', answer);
  });
  afterAll(() => {
    if (HAS_OPENSSL) tlsServer.off('request', answer);
  });
  afterEach(() => {
    posted.length = 0;
  });

  const post = async (poster: HttpPoster) =>
    poster.post(`https://127.0.0.1:${tlsPort}/api/v1/agent/runs/t-1/client-events`, {
      headers: { Authorization: 'Bearer task-key', 'Content-Type': 'application/json' },
      body: '{}',
      deadline: Date.now() + 5_000,
      maxResponseBytes: 512,
      redirects: 'none',
    });

  it('refuses the unknown CA, and trusts it with --ca-file', async () => {
    const untrusted = createHttpPoster({ env: {} });
    const refusal = await post(untrusted).catch((error: unknown) => error);
    expect(refusal).toBeInstanceOf(PostError);
    expect(((refusal as PostError).cause as Error).message).toMatch(/self-signed|unable to (get|verify)|certificate/i);
    untrusted.close();
    const trusting = createHttpPoster({ env: {}, ca: readFileSync(caPath, 'utf8') });
    expect((await post(trusting)).status).toBe(204);
    trusting.close();
    expect(posted).toEqual([{ url: '/api/v1/agent/runs/t-1/client-events', authorization: 'Bearer task-key' }]);
  });

  it('goes through HTTPS_PROXY with a CONNECT tunnel, and around it for NO_PROXY hosts', async () => {
    const ca = readFileSync(caPath, 'utf8');
    const proxied = createHttpPoster({ env: { HTTPS_PROXY: proxy.url }, ca });
    expect((await post(proxied)).status).toBe(204);
    proxied.close();
    expect(proxy.tunnels).toEqual([`127.0.0.1:${tlsPort}`]);
    proxy.tunnels.length = 0;
    const direct = createHttpPoster({ env: { HTTPS_PROXY: proxy.url, NO_PROXY: '127.0.0.1' }, ca });
    expect((await post(direct)).status).toBe(204);
    direct.close();
    expect(proxy.tunnels).toEqual([]);
    expect(posted).toHaveLength(2);
  });
});
