// An in-repo Docker Engine API for tests: a real node:http server on a unix
// socket in a temp dir, keeping images, containers and volumes in memory.
//
// It answers as Debian's dockerd 20.10 does (checked against it): Engine API
// 1.41, and 400 to a newer `/v1.xx` prefix.
//
// Task containers behave as their environment says:
//   FAKE_EXIT=<n>          exit with n right after start (default 0)
//   FAKE_OOM=1             allocate without bound: under a memory limit the kernel kills it
//                          (137, State.OOMKilled); without one it just finishes (0)
//   FAKE_RUN=forever       keep running until stopped or killed
//   FAKE_IGNORE_TERM=1     PID 1 ignores SIGTERM (e.g. a shell entrypoint without `exec`): a stop
//                          only ends it when the grace period is over (137); else it ends at once (143)
//   FAKE_STDOUT / FAKE_STDERR   output lines (`|` separates lines); default one line each
// Pulls succeed and create a linux/amd64 image unless the registry says otherwise:
// `registryUnreachable` (HTTP 500 before any stream, as with no network), `missingImages`
// (404 `manifest unknown` before any stream), `pullErrors` (an error inside the 200 OK
// progress stream) or `imageOverrides` (e.g. another platform). More CPUs than `hostCpus`
// are refused at create, as the daemon does.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface FakeImage {
  Id: string;
  Os: string;
  Architecture: string;
  RepoDigests: string[];
  /** What `export` of a container from this image returns (stands in for a tar). */
  tar: Buffer;
}

export interface FakeContainer {
  Id: string;
  Name: string;
  Image: string;
  body: Record<string, unknown>;
  Labels: Record<string, string>;
  Env: string[];
  Binds: string[];
  status: 'created' | 'running' | 'exited';
  ExitCode: number;
  OOMKilled: boolean;
  /** `t` of each stop call. */
  stops: number[];
  kills: number;
  started: boolean;
  frames: Buffer[];
  waiters: Array<() => void>;
}

export interface FakeVolume {
  Name: string;
  Labels: Record<string, string>;
  /** What was extracted into it (the bytes of each archive put). */
  content: Buffer[];
}

export interface RecordedRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
  body: string;
}

/** Docker's non-TTY log frame: stream byte, three zero bytes, big-endian length. */
export function logFrame(stream: 1 | 2, text: string): Buffer {
  const payload = Buffer.from(text);
  const header = Buffer.alloc(8);
  header[0] = stream;
  header.writeUInt32BE(payload.length, 4);
  return Buffer.concat([header, payload]);
}

/** Just enough normalisation to key images: `ubuntu` → `docker.io/library/ubuntu:latest`. */
export function normaliseImage(name: string): string {
  let rest = name;
  const slash = rest.indexOf('/');
  const first = slash < 0 ? '' : rest.slice(0, slash);
  if (slash < 0) rest = `docker.io/library/${rest}`;
  else if (!/[.:]/.test(first) && first !== 'localhost') rest = `docker.io/${rest}`;
  const lastSlash = rest.lastIndexOf('/');
  if (!rest.includes('@') && !rest.slice(lastSlash).includes(':')) rest += ':latest';
  return rest;
}

/** What Debian's dockerd 20.10 speaks. */
export const API_VERSION = '1.41';

export class FakeDockerEngine {
  readonly requests: RecordedRequest[] = [];
  readonly images = new Map<string, FakeImage>();
  readonly containers = new Map<string, FakeContainer>();
  /** Containers removed so far (by id). */
  readonly removed = new Map<string, FakeContainer>();
  readonly volumes = new Map<string, FakeVolume>();
  /** Normalised image → error message reported inside the pull stream. */
  readonly pullErrors = new Map<string, string>();
  /** Normalised image → image properties the next pull produces. */
  readonly imageOverrides = new Map<string, Partial<FakeImage>>();
  /** Scripted error responses: the first matching entry answers (and is used up when `once`). */
  readonly failures: Array<{ method: string; path: RegExp; status: number; message: string; once?: boolean }> = [];
  /** Milliseconds a volume fill (archive put) takes: lets tests overlap fills. */
  putArchiveDelayMs = 0;
  platform = { Os: 'linux', Arch: 'amd64' };
  /** No registry answers: every pull is an HTTP 500 (images already present still run). */
  registryUnreachable = false;
  /** Normalised images the registry does not have: a pull is a 404 before any stream. */
  readonly missingImages = new Set<string>();
  /** The daemon's CPUs: a container asking for more is refused at create. */
  hostCpus = 2;
  /** Pulls stop after their first progress line until `releasePulls()` (or the client gives up). */
  holdPulls = false;
  private heldPulls: Array<() => void> = [];
  private waiters: Array<() => void> = [];

  private constructor(
    private readonly server: Server,
    readonly dir: string,
    readonly socketPath: string,
  ) {}

  static async start(): Promise<FakeDockerEngine> {
    const dir = mkdtempSync(join(tmpdir(), 'oz-fake-docker-'));
    const socketPath = join(dir, 'docker.sock');
    let engine: FakeDockerEngine | undefined;
    const server = createServer((req, res) => void engine!.handle(req, res));
    engine = new FakeDockerEngine(server, dir, socketPath);
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
    return engine;
  }

  get dockerHost(): string {
    return `unix://${this.socketPath}`;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    rmSync(this.dir, { recursive: true, force: true });
  }

  // ---- test helpers ------------------------------------------------------

  /** Lets held pulls go on (and new ones through). */
  releasePulls(): void {
    this.holdPulls = false;
    for (const release of this.heldPulls.splice(0)) release();
  }

  addImage(name: string, props: Partial<FakeImage> = {}): FakeImage {
    const key = normaliseImage(name);
    const image: FakeImage = {
      Id: `sha256:${createHash('sha256').update(key).digest('hex')}`,
      Os: 'linux',
      Architecture: 'amd64',
      RepoDigests: [`${key.replace(/:[^:/]*$/, '')}@sha256:${createHash('sha256').update(`digest ${key}`).digest('hex')}`],
      tar: Buffer.from(`tar of ${key}`),
      ...props,
    };
    this.images.set(key, image);
    return image;
  }

  addContainer(options: { name: string; image?: string; labels: Record<string, string>; running?: boolean }): FakeContainer {
    const container = this.newContainer(options.name, { Image: options.image ?? 'ubuntu:22.04', Labels: options.labels });
    if (options.running) {
      container.status = 'running';
      container.started = true;
    }
    return container;
  }

  addVolume(name: string, labels: Record<string, string> = {}): FakeVolume {
    const volume: FakeVolume = { Name: name, Labels: labels, content: [] };
    this.volumes.set(name, volume);
    return volume;
  }

  /** The task containers (role label `task`), live and removed, in creation order. */
  taskContainers(): FakeContainer[] {
    return [...this.containers.values(), ...this.removed.values()].filter((c) => c.Labels['dev.warp.oz-worker.role'] === 'task');
  }

  containerFor(runId: string): FakeContainer | undefined {
    return this.taskContainers().find((c) => c.Labels['dev.warp.oz-worker.run-id'] === runId);
  }

  calls(method: string, pattern: RegExp): RecordedRequest[] {
    return this.requests.filter((r) => r.method === method && pattern.test(r.path));
  }

  /** Waits until `check` returns something other than undefined/false. */
  async until<T>(check: () => T | undefined | false, timeoutMs = 10_000, what = 'condition'): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = check();
      if (value !== undefined && value !== false) return value;
      if (Date.now() > deadline)
        throw new Error(
          `timed out waiting for ${what}; requests: ${this.requests
            .slice(-15)
            .map((r) => `${r.method} ${r.path}`)
            .join(', ')}`,
        );
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 100);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  private notify(): void {
    for (const wake of this.waiters.splice(0)) wake();
  }

  // ---- the API -----------------------------------------------------------

  private newContainer(name: string, body: Record<string, unknown>): FakeContainer {
    const host = (body.HostConfig ?? {}) as { Binds?: string[] };
    const container: FakeContainer = {
      Id: randomBytes(32).toString('hex'),
      Name: name,
      Image: String(body.Image),
      body,
      Labels: (body.Labels ?? {}) as Record<string, string>,
      Env: (body.Env ?? []) as string[],
      Binds: host.Binds ?? [],
      status: 'created',
      ExitCode: 0,
      OOMKilled: false,
      stops: [],
      kills: 0,
      started: false,
      frames: [],
      waiters: [],
    };
    this.containers.set(container.Id, container);
    return container;
  }

  private env(container: FakeContainer, key: string): string | undefined {
    const entry = [...container.Env].reverse().find((e) => e.startsWith(`${key}=`));
    return entry?.slice(key.length + 1);
  }

  private exit(container: FakeContainer, code: number, oom = false): void {
    if (container.status !== 'running') return;
    container.status = 'exited';
    container.ExitCode = code;
    container.OOMKilled = oom;
    for (const wake of container.waiters.splice(0)) wake();
    this.notify();
  }

  private run(container: FakeContainer): void {
    container.status = 'running';
    container.started = true;
    const lines = (value: string | undefined, fallback: string) => (value ?? fallback).split('|').filter((l) => l !== '');
    for (const line of lines(this.env(container, 'FAKE_STDOUT'), 'hello from the agent')) container.frames.push(logFrame(1, `${line}\n`));
    for (const line of lines(this.env(container, 'FAKE_STDERR'), 'warning on stderr')) container.frames.push(logFrame(2, `${line}\n`));
    if (this.env(container, 'FAKE_RUN') === 'forever') return;
    // Exit a moment later, as a real process would, so followers see a running container first.
    setTimeout(() => {
      const limited = ((container.body.HostConfig as { Memory?: number } | undefined)?.Memory ?? 0) > 0;
      if (this.env(container, 'FAKE_OOM') === '1' && limited) this.exit(container, 137, true);
      else this.exit(container, Number(this.env(container, 'FAKE_EXIT') ?? '0'));
    }, 20);
  }

  private find(id: string): FakeContainer | undefined {
    return this.containers.get(id) ?? [...this.containers.values()].find((c) => c.Name === id || c.Id.startsWith(id));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://docker');
    const prefix = /^\/v(\d+)\.(\d+)(?=\/)/.exec(url.pathname);
    const path = decodeURIComponent(url.pathname).slice(prefix?.[0].length ?? 0);
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks);
    const record: RecordedRequest = { method: req.method ?? 'GET', path, query: url.searchParams, headers: req.headers, body: '' };
    record.body = req.headers['content-type'] === 'application/x-tar' ? `<${raw.length} bytes of tar>` : raw.toString();
    this.requests.push(record);
    this.notify();
    if (prefix && (Number(prefix[1]) > 1 || Number(prefix[2]) > 41)) {
      return this.json(res, 400, { message: `client version ${prefix[1]}.${prefix[2]} is too new. Maximum supported API version is ${API_VERSION}` });
    }
    try {
      await this.route(record, raw, res);
    } catch (error) {
      if (!res.headersSent) this.json(res, 500, { message: String(error) });
      else res.end();
    }
  }

  private json(res: ServerResponse, status: number, body: unknown): void {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  }

  private noSuch(res: ServerResponse, what: string): void {
    this.json(res, 404, { message: `No such ${what}` });
  }

  private async route(r: RecordedRequest, raw: Buffer, res: ServerResponse): Promise<void> {
    const { method, path, query } = r;
    let m: RegExpExecArray | null;
    const failure = this.failures.find((f) => f.method === method && f.path.test(path));
    if (failure) {
      if (failure.once) this.failures.splice(this.failures.indexOf(failure), 1);
      return this.json(res, failure.status, { message: failure.message });
    }
    if (method === 'GET' && path === '/_ping') {
      res.writeHead(200, { 'api-version': API_VERSION, 'content-type': 'text/plain' });
      res.end('OK');
      return;
    }
    if (method === 'GET' && path === '/version')
      return this.json(res, 200, { Version: '20.10.24', ApiVersion: API_VERSION, MinAPIVersion: '1.12', ...this.platform });
    if (method === 'GET' && path === '/info')
      return this.json(res, 200, { NCPU: this.hostCpus, MemTotal: 8 * 2 ** 30, OSType: this.platform.Os, Architecture: 'x86_64' });

    if (method === 'POST' && path === '/images/create') {
      const name = `${query.get('fromImage')}${query.get('tag')?.includes(':') ? '@' : ':'}${query.get('tag')}`;
      // Like dockerd: registry failures found before the first layer are plain HTTP errors.
      if (this.registryUnreachable) {
        return this.json(res, 500, { message: 'Get "https://registry-1.docker.io/v2/": dial tcp: lookup registry-1.docker.io: no such host' });
      }
      if (this.missingImages.has(name)) {
        const short = name.replace(/^docker\.io\/(library\/)?/, '');
        return this.json(res, 404, { message: `manifest for ${short} not found: manifest unknown: manifest unknown` });
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(`${JSON.stringify({ status: `Pulling from ${query.get('fromImage')}`, id: query.get('tag') })}\r\n`);
      res.write(`${JSON.stringify({ status: 'Downloading', progressDetail: { current: 10, total: 100 }, id: 'abc123' })}\r\n`);
      if (this.holdPulls) {
        await new Promise<void>((resolve) => {
          this.heldPulls.push(resolve);
          res.once('close', resolve);
        });
        if (res.destroyed) return;
      }
      const error = this.pullErrors.get(name);
      if (error !== undefined) {
        res.end(`${JSON.stringify({ errorDetail: { message: error }, error })}\r\n`);
        return;
      }
      if (!this.images.has(name)) this.addImage(name, this.imageOverrides.get(name));
      res.end(`${JSON.stringify({ status: `Status: Downloaded newer image for ${name}` })}\r\n`);
      return;
    }
    if (method === 'GET' && (m = /^\/images\/(.+)\/json$/.exec(path))) {
      const image = this.images.get(normaliseImage(m[1]!));
      return image
        ? this.json(res, 200, { Id: image.Id, RepoDigests: image.RepoDigests, Os: image.Os, Architecture: image.Architecture })
        : this.noSuch(res, `image: ${m[1]}`);
    }

    if (method === 'GET' && path === '/volumes') {
      const labels = labelFilter(query);
      return this.json(res, 200, {
        Volumes: [...this.volumes.values()].filter((v) => matches(v.Labels, labels)).map(({ Name, Labels }) => ({ Name, Labels })),
        Warnings: null,
      });
    }
    if (method === 'POST' && path === '/volumes/create') {
      const body = JSON.parse(raw.toString()) as { Name: string; Labels?: Record<string, string> };
      // Docker returns an existing volume of the same name instead of failing.
      const volume = this.volumes.get(body.Name) ?? this.addVolume(body.Name, body.Labels ?? {});
      return this.json(res, 201, { Name: volume.Name, Labels: volume.Labels });
    }
    if ((m = /^\/volumes\/([^/]+)$/.exec(path))) {
      const volume = this.volumes.get(m[1]!);
      if (!volume) return this.noSuch(res, `volume: ${m[1]}`);
      if (method === 'GET') return this.json(res, 200, { Name: volume.Name, Labels: volume.Labels });
      if (method === 'DELETE') {
        const user = [...this.containers.values()].find((c) => c.Binds.some((b) => b.split(':')[0] === volume.Name));
        if (user) return this.json(res, 409, { message: `remove ${volume.Name}: volume is in use - [${user.Id}]` });
        this.volumes.delete(volume.Name);
        res.writeHead(204).end();
        return;
      }
    }

    if (method === 'GET' && path === '/containers/json') {
      const labels = labelFilter(query);
      const list = [...this.containers.values()].filter((c) => matches(c.Labels, labels));
      return this.json(
        res,
        200,
        list.map((c) => ({ Id: c.Id, Names: [`/${c.Name}`], State: c.status, Labels: c.Labels, Image: c.Image })),
      );
    }
    if (method === 'POST' && path === '/containers/create') {
      const body = JSON.parse(raw.toString()) as Record<string, unknown>;
      const name = query.get('name') ?? `fake_${randomBytes(3).toString('hex')}`;
      if (!this.images.has(normaliseImage(String(body.Image)))) return this.noSuch(res, `image: ${String(body.Image)}`);
      if ([...this.containers.values()].some((c) => c.Name === name))
        return this.json(res, 409, { message: `Conflict. The container name "/${name}" is already in use` });
      const nanoCpus = (body.HostConfig as { NanoCpus?: number } | undefined)?.NanoCpus ?? 0;
      if (nanoCpus > this.hostCpus * 1e9) {
        return this.json(res, 400, { message: `Range of CPUs is from 0.01 to ${this.hostCpus.toFixed(2)}, as there are only ${this.hostCpus} CPUs available` });
      }
      const container = this.newContainer(name, body);
      return this.json(res, 201, { Id: container.Id, Warnings: [] });
    }
    if (!(m = /^\/containers\/([^/]+)(?:\/(\w+))?$/.exec(path))) return this.json(res, 404, { message: `page not found: ${path}` });
    const container = this.find(m[1]!);
    const action = m[2];
    if (!container) return this.noSuch(res, `container: ${m[1]}`);

    if (method === 'POST' && action === 'start') {
      if (container.status === 'running') {
        res.writeHead(304).end();
        return;
      }
      this.run(container);
      res.writeHead(204).end();
      return;
    }
    if (method === 'POST' && action === 'wait') {
      // Like Docker: headers at once, the body once the container stopped.
      res.writeHead(200, { 'content-type': 'application/json' });
      res.flushHeaders();
      if (container.status === 'running') await new Promise<void>((resolve) => container.waiters.push(resolve));
      res.end(JSON.stringify({ StatusCode: container.ExitCode, Error: null }));
      return;
    }
    if (method === 'POST' && action === 'stop') {
      const t = Number(query.get('t') ?? '10');
      container.stops.push(t);
      this.notify();
      if (container.status !== 'running') {
        res.writeHead(304).end();
        return;
      }
      if (this.env(container, 'FAKE_IGNORE_TERM') === '1') {
        await new Promise((resolve) => setTimeout(resolve, t * 1000));
        this.exit(container, 137);
      } else {
        this.exit(container, 143);
      }
      res.writeHead(204).end();
      return;
    }
    if (method === 'POST' && action === 'kill') {
      container.kills++;
      if (container.status !== 'running') return this.json(res, 409, { message: `Container ${container.Id} is not running` });
      this.exit(container, 137);
      res.writeHead(204).end();
      return;
    }
    if (method === 'DELETE' && action === undefined) {
      if (container.status === 'running' && query.get('force') !== '1') {
        return this.json(res, 409, { message: 'You cannot remove a running container. Stop the container before attempting removal or force remove' });
      }
      this.exit(container, 137);
      this.containers.delete(container.Id);
      this.removed.set(container.Id, container);
      this.notify();
      res.writeHead(204).end();
      return;
    }
    if (method === 'GET' && action === 'json') {
      return this.json(res, 200, {
        Id: container.Id,
        Name: `/${container.Name}`,
        State: { Status: container.status, Running: container.status === 'running', ExitCode: container.ExitCode, OOMKilled: container.OOMKilled },
        Config: { Image: container.Image, Env: container.Env, Labels: container.Labels },
      });
    }
    if (method === 'GET' && action === 'logs') {
      res.writeHead(200, { 'content-type': 'application/vnd.docker.multiplexed-stream' });
      let sent = 0;
      const flush = () => {
        while (sent < container.frames.length) res.write(container.frames[sent++]);
      };
      flush();
      if (query.get('follow') === '1') {
        while (container.status === 'running' && !res.destroyed) {
          await new Promise<void>((resolve) => {
            const wake = () => {
              clearTimeout(timer);
              resolve();
            };
            const timer = setTimeout(() => {
              const index = container.waiters.indexOf(wake);
              if (index >= 0) container.waiters.splice(index, 1);
              resolve();
            }, 50);
            container.waiters.push(wake);
          });
          flush();
        }
      }
      res.end();
      return;
    }
    if (method === 'GET' && action === 'export') {
      const image = this.images.get(normaliseImage(container.Image));
      res.writeHead(200, { 'content-type': 'application/x-tar' });
      res.end(image?.tar ?? Buffer.alloc(0));
      return;
    }
    if (method === 'PUT' && action === 'archive') {
      const target = query.get('path');
      const bind = container.Binds.find((b) => b.split(':')[1] === target);
      const volume = bind ? this.volumes.get(bind.split(':')[0]!) : undefined;
      if (!volume) return this.json(res, 404, { message: `Could not find the file ${target} in container ${container.Id}` });
      if (this.putArchiveDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.putArchiveDelayMs));
      volume.content.push(raw);
      res.writeHead(200).end();
      return;
    }
    this.json(res, 404, { message: `page not found: ${method} ${path}` });
  }
}

function labelFilter(query: URLSearchParams): string[] {
  const filters = query.get('filters');
  if (!filters) return [];
  return (JSON.parse(filters) as { label?: string[] }).label ?? [];
}

function matches(labels: Record<string, string>, wanted: string[]): boolean {
  return wanted.every((filter) => {
    const eq = filter.indexOf('=');
    if (eq < 0) return Object.hasOwn(labels, filter);
    return labels[filter.slice(0, eq)] === filter.slice(eq + 1);
  });
}
