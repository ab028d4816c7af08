// A registry on loopback that serves one image, read from the `docker save`
// tarball of an image the test engine already has: enough of the distribution
// API (v2 manifests and blobs, schema 2) for a real `docker pull` of
// `127.0.0.1:<port>/<repository>:<tag>` (Docker pulls from loopback registries
// over plain HTTP). The layers are served as saved (uncompressed; Docker
// detects that), so no compression is needed.
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { posix } from 'node:path';

/** The files of a tar archive (ustar, as `docker save` writes it), symlinks resolved. */
export function readTar(archive: Buffer): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  const links = new Map<string, string>();
  const text = (from: number, to: number) => archive.subarray(from, to).toString('utf8').replace(/\0.*$/s, '');
  for (let at = 0; at + 512 <= archive.length; ) {
    const header = at;
    const name = text(header, header + 100);
    if (name === '') break;
    const prefix = text(header + 345, header + 500);
    const path = prefix ? `${prefix}/${name}` : name;
    const size = Number.parseInt(text(header + 124, header + 136).trim() || '0', 8);
    const type = String.fromCharCode(archive[header + 156] ?? 48);
    if (type === '0' || type === '\0') files.set(path, archive.subarray(header + 512, header + 512 + size));
    if (type === '2') links.set(path, posix.normalize(posix.join(posix.dirname(path), text(header + 157, header + 257))));
    at = header + 512 + Math.ceil(size / 512) * 512;
  }
  for (const [path, target] of links) {
    const content = files.get(target);
    if (content) files.set(path, content);
  }
  return files;
}

const sha256 = (data: Buffer): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;
const MANIFEST_TYPE = 'application/vnd.docker.distribution.manifest.v2+json';

export class ImageRegistry {
  /** Blob digests served, in request order (manifests included as `manifest:<ref>`). */
  readonly served: string[] = [];

  private constructor(
    private readonly server: Server,
    readonly repository: string,
    readonly tag: string,
  ) {}

  /** Serves the image saved in `saved` (a `docker save` tarball of one image) as `<repository>:<tag>`. */
  static async serve(saved: Buffer, repository: string, tag: string): Promise<ImageRegistry> {
    const files = readTar(saved);
    const [entry] = JSON.parse(files.get('manifest.json')!.toString()) as Array<{ Config: string; Layers: string[] }>;
    const blobs = new Map<string, Buffer>();
    const config = files.get(entry!.Config)!;
    blobs.set(sha256(config), config);
    const layers = entry!.Layers.map((path) => {
      const layer = files.get(path)!;
      blobs.set(sha256(layer), layer);
      return { mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', size: layer.length, digest: sha256(layer) };
    });
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MANIFEST_TYPE,
        config: { mediaType: 'application/vnd.docker.container.image.v1+json', size: config.length, digest: sha256(config) },
        layers,
      }),
    );
    const server = createServer();
    const registry = new ImageRegistry(server, repository, tag);
    server.on('request', (req, res) => {
      const path = new URL(req.url ?? '/', 'http://registry').pathname;
      const send = (status: number, body: Buffer, type: string, digest?: string) => {
        res.writeHead(status, {
          'content-type': type,
          'content-length': body.length,
          'docker-distribution-api-version': 'registry/2.0',
          ...(digest ? { 'docker-content-digest': digest } : {}),
        });
        res.end(req.method === 'HEAD' ? undefined : body);
      };
      if (path === '/v2/' || path === '/v2') return send(200, Buffer.from('{}'), 'application/json');
      const match = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/.exec(path);
      if (match?.[1] === repository && match[2] === 'manifests' && (match[3] === tag || match[3] === sha256(manifest))) {
        registry.served.push(`manifest:${match[3]}`);
        return send(200, manifest, MANIFEST_TYPE, sha256(manifest));
      }
      const blob = match?.[1] === repository && match[2] === 'blobs' ? blobs.get(match[3]!) : undefined;
      if (blob) {
        registry.served.push(match![3]!);
        return send(200, blob, 'application/octet-stream', match![3]);
      }
      send(404, Buffer.from(JSON.stringify({ errors: [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown' }] })), 'application/json');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return registry;
  }

  /** The image reference to pull: `127.0.0.1:<port>/<repository>:<tag>`. */
  get image(): string {
    return `127.0.0.1:${(this.server.address() as AddressInfo).port}/${this.repository}:${this.tag}`;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
