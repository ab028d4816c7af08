// The Docker Engine HTTP API, only the calls the backend makes, behind one
// interface. HTTP goes through an undici Pool (a unix socket or TCP with TLS);
// long-polling calls (wait, log follow, pull) have no idle timeout, the task's
// signal bounds them instead.
import { readFileSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { getSystemErrorMessage } from 'node:util';
import { Pool } from 'undici';
import type { DockerEndpoint } from './discovery.js';
import { JsonLines, pullEventError, type PullEvent } from './streams.js';
import { errorMessage } from '../../errors/error-message.js';

/** The newest API version this client speaks; an older daemon's own version is used instead. */
export const MAX_API_VERSION = '1.45';

export interface VersionInfo {
  Version?: string;
  ApiVersion?: string;
  Os?: string;
  Arch?: string;
}

export interface EngineInfo {
  NCPU?: number;
  MemTotal?: number;
}

export interface ImageInfo {
  Id: string;
  RepoDigests?: string[];
  Os?: string;
  Architecture?: string;
}

export interface VolumeInfo {
  Name: string;
  Labels?: Record<string, string> | null;
}

export interface ContainerSummary {
  Id: string;
  Names?: string[];
  State?: string;
  Labels?: Record<string, string> | null;
}

export interface ContainerInfo {
  Id: string;
  Name?: string;
  State?: { Status?: string; Running?: boolean; ExitCode?: number; OOMKilled?: boolean };
}

export interface WaitResult {
  StatusCode: number;
  Error?: { Message?: string } | null;
}

export interface PullOptions {
  platform: string;
  /** Encoded X-Registry-Auth header value. */
  registryAuth: string | undefined;
  signal: AbortSignal | undefined;
  onEvent: (event: PullEvent) => void;
}

/** The Engine API calls the Docker backend needs. */
export interface DockerEngine {
  /** Reachability check; resolves the API version to use from then on. */
  ping(timeoutMs: number): Promise<void>;
  version(): Promise<VersionInfo>;
  /** The daemon host's resources. */
  info(): Promise<EngineInfo>;
  /** Pulls `fromImage:tag`; rejects with the error a registry reported inside the progress stream. */
  pullImage(fromImage: string, tag: string, options: PullOptions): Promise<void>;
  inspectImage(name: string): Promise<ImageInfo>;
  inspectVolume(name: string): Promise<VolumeInfo | undefined>;
  createVolume(name: string, labels: Record<string, string>): Promise<VolumeInfo>;
  removeVolume(name: string): Promise<void>;
  listVolumes(labels: string[]): Promise<VolumeInfo[]>;
  createContainer(name: string | undefined, body: Record<string, unknown>): Promise<string>;
  startContainer(id: string): Promise<void>;
  waitContainer(id: string): Promise<WaitResult>;
  /** Stops with the daemon's grace period (`t` seconds), after which Docker sends SIGKILL. */
  stopContainer(id: string, graceSeconds: number, timeoutMs: number): Promise<void>;
  killContainer(id: string): Promise<void>;
  removeContainer(id: string, options: { force: boolean; volumes: boolean }): Promise<void>;
  inspectContainer(id: string): Promise<ContainerInfo>;
  listContainers(labels: string[]): Promise<ContainerSummary[]>;
  /** The multiplexed stdout/stderr stream, followed until the container stops. */
  containerLogs(id: string, signal: AbortSignal): Promise<Readable>;
  /** The container's root file system as a tar stream. */
  exportContainer(id: string): Promise<Readable>;
  /** Extracts a tar stream into `path` inside the (not necessarily running) container. */
  putArchive(id: string, path: string, tar: Readable): Promise<void>;
  close(): Promise<void>;
}

/** An error response from the daemon (4xx/5xx), with Docker's message. */
export class EngineError extends Error {
  constructor(
    readonly statusCode: number,
    readonly daemonMessage: string,
  ) {
    // The Go SDK's wording, which operators know from the docker CLI.
    super(`Error response from daemon: ${daemonMessage}`);
    this.name = 'EngineError';
  }
}

export function isNotFound(error: unknown): boolean {
  return error instanceof EngineError && error.statusCode === 404;
}

/** Text for a failed connection to the daemon, with what to do about it. */
export function connectionProblem(error: unknown, endpoint: DockerEndpoint): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const at = endpoint.url;
  if (error instanceof EngineError && /too new/i.test(error.daemonMessage)) {
    return `the Docker daemon at ${at} refused the pinned API version: ${error.daemonMessage}; unset DOCKER_API_VERSION (the worker then uses the daemon's version) or set it to that maximum`;
  }
  if (endpoint.kind === 'unix') {
    if (code === 'ENOENT') {
      return `Docker socket ${endpoint.socketPath} does not exist: Docker isn't running here, or it listens elsewhere; start Docker, or set DOCKER_HOST (e.g. unix://$XDG_RUNTIME_DIR/docker.sock for rootless Docker)`;
    }
    if (code === 'EACCES' || code === 'EPERM') {
      return `permission denied on the Docker socket ${endpoint.socketPath}: add this user to the docker group (sudo usermod -aG docker $USER, then log in again), or run rootless Docker and set DOCKER_HOST to its socket`;
    }
    if (code === 'ECONNREFUSED')
      return `nothing accepts connections on the Docker socket ${endpoint.socketPath}: is the Docker daemon running? (start it, e.g. sudo systemctl start docker)`;
  } else if (code === 'ECONNREFUSED') {
    return `nothing accepts connections at ${at}: is the Docker daemon listening there? Check DOCKER_HOST`;
  }
  if (code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'ETIMEDOUT' || code === 'TimeoutError') {
    return `the Docker daemon at ${at} did not answer in time; check that it is healthy (docker info)`;
  }
  return `cannot connect to the Docker daemon at ${at}: ${errorText(error)}`;
}

export function errorText(error: unknown): string {
  if (error instanceof EngineError) return error.message;
  const e = error as (NodeJS.ErrnoException & { address?: string }) | undefined;
  if (e && typeof e.errno === 'number' && e.syscall) {
    const reason = getSystemErrorMessage(e.errno);
    return `${e.syscall}${e.address ? ` ${e.address}` : ''}: ${reason.charAt(0).toLowerCase()}${reason.slice(1)}`;
  }
  return errorMessage(error);
}

interface CallOptions {
  query?: Record<string, string | number | boolean>;
  body?: string | Readable;
  headers?: Record<string, string>;
  signal?: AbortSignal | undefined;
  /** Long-polling call: no header or body timeout. */
  longPoll?: boolean;
}

const DEFAULT_TIMEOUT_MS = 60_000;

function compareVersions(a: string, b: string): number {
  const [aMajor = 0, aMinor = 0] = a.split('.').map(Number);
  const [bMajor = 0, bMinor = 0] = b.split('.').map(Number);
  return aMajor - bMajor || aMinor - bMinor;
}

/** A name inside a URL path; `/`, `:` and `@` stay readable, as the docker CLI sends them. */
function pathPart(name: string): string {
  return encodeURIComponent(name).replace(/%2F/gi, '/').replace(/%3A/gi, ':').replace(/%40/g, '@');
}

function labelFilters(labels: string[]): string {
  return JSON.stringify({ label: labels });
}

/** The Engine API over HTTP. */
export class HttpDockerEngine implements DockerEngine {
  private readonly pool: Pool;
  private prefix: string;

  constructor(
    readonly endpoint: DockerEndpoint,
    private readonly pinnedVersion: string | undefined,
  ) {
    this.prefix = pinnedVersion ? `/v${pinnedVersion}` : '';
    if (endpoint.kind === 'unix') {
      this.pool = new Pool('http://localhost', { connect: { socketPath: endpoint.socketPath } });
    } else {
      const tls = endpoint.tls;
      const host = endpoint.host.includes(':') ? `[${endpoint.host}]` : endpoint.host;
      const read = (path: string | undefined): Buffer | undefined => (path ? readFileSync(path) : undefined);
      this.pool = new Pool(`${tls ? 'https' : 'http'}://${host}:${endpoint.port}`, {
        connect: tls ? { ca: read(tls.caPath), cert: read(tls.certPath), key: read(tls.keyPath), rejectUnauthorized: tls.verify } : {},
      });
    }
  }

  private async call(method: 'GET' | 'POST' | 'PUT' | 'DELETE' | 'HEAD', path: string, options: CallOptions = {}) {
    const query = options.query ? `?${new URLSearchParams(Object.entries(options.query).map(([k, v]): [string, string] => [k, String(v)]))}` : '';
    const headers: Record<string, string> = { ...options.headers };
    if (typeof options.body === 'string') headers['content-type'] = 'application/json';
    const response = await this.pool.request({
      method,
      path: `${this.prefix}${path}${query}`,
      headers,
      body: options.body ?? null,
      signal: options.signal ?? null,
      headersTimeout: options.longPoll ? 0 : DEFAULT_TIMEOUT_MS,
      bodyTimeout: options.longPoll ? 0 : DEFAULT_TIMEOUT_MS,
    });
    if (response.statusCode >= 400) {
      const text = await response.body.text().catch(() => '');
      let message = text.trim();
      try {
        const parsed = JSON.parse(text) as { message?: unknown };
        if (typeof parsed.message === 'string') message = parsed.message;
      } catch {
        // Not JSON: the raw text is the message.
      }
      throw new EngineError(response.statusCode, message || `HTTP ${response.statusCode}`);
    }
    return response;
  }

  private async json<T>(method: 'GET' | 'POST', path: string, options: CallOptions = {}): Promise<T> {
    const response = await this.call(method, path, options);
    const text = await response.body.text();
    return (text === '' ? {} : JSON.parse(text)) as T;
  }

  private async empty(method: 'POST' | 'PUT' | 'DELETE', path: string, options: CallOptions = {}): Promise<void> {
    const response = await this.call(method, path, options);
    await response.body.dump();
  }

  async ping(timeoutMs: number): Promise<void> {
    const response = await this.call('GET', '/_ping', { signal: AbortSignal.timeout(timeoutMs) });
    await response.body.dump();
    if (this.pinnedVersion) return;
    const header = response.headers['api-version'];
    const daemon = Array.isArray(header) ? header[0] : header;
    const version = daemon && compareVersions(daemon, MAX_API_VERSION) < 0 ? daemon : MAX_API_VERSION;
    this.prefix = `/v${version}`;
  }

  version(): Promise<VersionInfo> {
    return this.json('GET', '/version');
  }

  info(): Promise<EngineInfo> {
    return this.json('GET', '/info');
  }

  async pullImage(fromImage: string, tag: string, options: PullOptions): Promise<void> {
    const response = await this.call('POST', '/images/create', {
      query: { fromImage, tag, platform: options.platform },
      headers: options.registryAuth ? { 'x-registry-auth': options.registryAuth } : {},
      signal: options.signal,
      longPoll: true,
    });
    let failure: string | undefined;
    const lines = new JsonLines((event) => {
      failure ??= pullEventError(event);
      options.onEvent(event);
    });
    for await (const chunk of response.body) lines.push(chunk as Buffer);
    lines.end();
    // A 200 OK pull can still fail: the registry's error arrives inside the stream.
    if (failure !== undefined) throw new Error(failure);
  }

  inspectImage(name: string): Promise<ImageInfo> {
    return this.json('GET', `/images/${pathPart(name)}/json`);
  }

  async inspectVolume(name: string): Promise<VolumeInfo | undefined> {
    try {
      return await this.json<VolumeInfo>('GET', `/volumes/${pathPart(name)}`);
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  createVolume(name: string, labels: Record<string, string>): Promise<VolumeInfo> {
    return this.json('POST', '/volumes/create', { body: JSON.stringify({ Name: name, Labels: labels }) });
  }

  removeVolume(name: string): Promise<void> {
    return this.empty('DELETE', `/volumes/${pathPart(name)}`);
  }

  async listVolumes(labels: string[]): Promise<VolumeInfo[]> {
    const result = await this.json<{ Volumes?: VolumeInfo[] | null }>('GET', '/volumes', { query: { filters: labelFilters(labels) } });
    return result.Volumes ?? [];
  }

  async createContainer(name: string | undefined, body: Record<string, unknown>): Promise<string> {
    const result = await this.json<{ Id: string }>('POST', '/containers/create', {
      query: name ? { name } : {},
      body: JSON.stringify(body),
    });
    return result.Id;
  }

  startContainer(id: string): Promise<void> {
    return this.empty('POST', `/containers/${id}/start`);
  }

  waitContainer(id: string): Promise<WaitResult> {
    return this.json('POST', `/containers/${id}/wait`, { query: { condition: 'not-running' }, longPoll: true });
  }

  stopContainer(id: string, graceSeconds: number, timeoutMs: number): Promise<void> {
    return this.empty('POST', `/containers/${id}/stop`, { query: { t: graceSeconds }, signal: AbortSignal.timeout(timeoutMs), longPoll: true });
  }

  killContainer(id: string): Promise<void> {
    return this.empty('POST', `/containers/${id}/kill`);
  }

  removeContainer(id: string, options: { force: boolean; volumes: boolean }): Promise<void> {
    return this.empty('DELETE', `/containers/${id}`, { query: { force: options.force ? 1 : 0, v: options.volumes ? 1 : 0 } });
  }

  inspectContainer(id: string): Promise<ContainerInfo> {
    return this.json('GET', `/containers/${id}/json`);
  }

  async listContainers(labels: string[]): Promise<ContainerSummary[]> {
    return this.json('GET', '/containers/json', { query: { all: 1, filters: labelFilters(labels) } });
  }

  async containerLogs(id: string, signal: AbortSignal): Promise<Readable> {
    const response = await this.call('GET', `/containers/${id}/logs`, {
      query: { follow: 1, stdout: 1, stderr: 1 },
      signal,
      longPoll: true,
    });
    return response.body;
  }

  async exportContainer(id: string): Promise<Readable> {
    const response = await this.call('GET', `/containers/${id}/export`, { longPoll: true });
    return response.body;
  }

  putArchive(id: string, path: string, tar: Readable): Promise<void> {
    return this.empty('PUT', `/containers/${id}/archive`, {
      query: { path },
      body: tar,
      headers: { 'content-type': 'application/x-tar' },
      longPoll: true,
    });
  }

  async close(): Promise<void> {
    await this.pool.destroy();
  }
}
