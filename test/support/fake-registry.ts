// A container registry that never has the image: answers the OCI distribution
// API on 127.0.0.1 the way registries refuse pulls, chosen by repository name
// (`<host>/missing/…` 404 MANIFEST_UNKNOWN, `private/…` 401, `denied/…` 403,
// `flaky/…` 503). The real-cluster suite points containerd at it, so kubelet
// reports the registry's own words.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

const errors = (code: string, message: string): string => JSON.stringify({ errors: [{ code, message, detail: null }] });

export class FakeRegistry {
  /** Manifest requests seen: `<repository>:<reference>` and when. */
  readonly manifestRequests: { ref: string; at: number }[] = [];

  private constructor(private readonly server: Server) {}

  static async start(port: number): Promise<FakeRegistry> {
    const server = createServer();
    const registry = new FakeRegistry(server);
    server.on('request', (req, res) => {
      const path = new URL(req.url ?? '/', 'http://registry').pathname;
      const json = { 'content-type': 'application/json', 'docker-distribution-api-version': 'registry/2.0' };
      if (path === '/v2/' || path === '/v2') {
        res.writeHead(200, json).end('{}');
        return;
      }
      const manifest = /^\/v2\/(.+)\/manifests\/([^/]+)$/.exec(path);
      if (manifest) registry.manifestRequests.push({ ref: `${manifest[1]}:${manifest[2]}`, at: Date.now() });
      const top = manifest?.[1]?.split('/')[0];
      if (top === 'private') {
        res.writeHead(401, { ...json, 'www-authenticate': 'Basic realm="fake-registry"' }).end(errors('UNAUTHORIZED', 'authentication required'));
      } else if (top === 'denied') {
        res.writeHead(403, json).end(errors('DENIED', 'requested access to the resource is denied'));
      } else if (top === 'flaky') {
        res.writeHead(503, json).end(errors('UNAVAILABLE', 'service unavailable'));
      } else {
        res.writeHead(404, json).end(errors('MANIFEST_UNKNOWN', 'manifest unknown'));
      }
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', resolve);
    });
    return registry;
  }

  get host(): string {
    return `127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
