// Finds the Docker daemon the way the Docker CLI does: DOCKER_HOST, then
// DOCKER_CONTEXT, then the config's currentContext, then the usual sockets
// (system, rootless, Docker Desktop). Pure: the file system is passed in.
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { errorMessage } from '../../errors/error-message.js';

export type DockerEndpoint =
  | { kind: 'unix'; socketPath: string; url: string }
  | { kind: 'tcp'; host: string; port: number; url: string; tls: TlsSettings | undefined };

export interface TlsSettings {
  /** Files to read at connect time; absent files are left out. */
  caPath: string | undefined;
  certPath: string | undefined;
  keyPath: string | undefined;
  /** Whether the daemon's certificate is checked. */
  verify: boolean;
}

export interface Discovery {
  endpoint: DockerEndpoint;
  /** Where the endpoint came from, for messages: `DOCKER_HOST`, `Docker context "x"`, `the default socket`. */
  source: string;
  /** DOCKER_API_VERSION: a pinned API version (no negotiation). */
  apiVersion: string | undefined;
}

export interface DiscoveryInput {
  env: Readonly<Record<string, string | undefined>>;
  /** The worker user's home directory. */
  home: string;
  /** A file's text, or undefined when it does not exist or cannot be read. */
  readFile: (path: string) => string | undefined;
  exists: (path: string) => boolean;
}

export class DockerDiscoveryError extends Error {}

export const DEFAULT_SOCKET = '/var/run/docker.sock';

/** The Docker CLI's configuration directory (`DOCKER_CONFIG`, else `~/.docker`). */
export function dockerConfigDir(env: DiscoveryInput['env'], home: string): string {
  return env.DOCKER_CONFIG || join(home, '.docker');
}

export function discoverDocker(input: DiscoveryInput): Discovery {
  const { env } = input;
  const apiVersion = env.DOCKER_API_VERSION || undefined;
  const configDir = dockerConfigDir(env, input.home);
  // As in the CLI, DOCKER_HOST beats any context.
  if (env.DOCKER_HOST) {
    return { endpoint: parseHost(env.DOCKER_HOST, 'DOCKER_HOST', envTls(env, configDir, input)), source: 'DOCKER_HOST', apiVersion };
  }
  const [contextName, contextOrigin] = env.DOCKER_CONTEXT
    ? [env.DOCKER_CONTEXT, 'DOCKER_CONTEXT']
    : [currentContext(configDir, input), `currentContext in ${join(configDir, 'config.json')}`];
  if (contextName && contextName !== 'default') {
    return { endpoint: contextEndpoint(contextName, contextOrigin, configDir, input), source: `Docker context "${contextName}"`, apiVersion };
  }
  const candidates = [DEFAULT_SOCKET, ...(env.XDG_RUNTIME_DIR ? [join(env.XDG_RUNTIME_DIR, 'docker.sock')] : []), join(input.home, '.docker/run/docker.sock')];
  const socketPath = candidates.find((path) => input.exists(path)) ?? DEFAULT_SOCKET;
  return { endpoint: { kind: 'unix', socketPath, url: `unix://${socketPath}` }, source: 'the default socket', apiVersion };
}

function currentContext(configDir: string, input: DiscoveryInput): string | undefined {
  const text = input.readFile(join(configDir, 'config.json'));
  if (text === undefined) return undefined;
  try {
    const parsed = JSON.parse(text) as { currentContext?: unknown };
    return typeof parsed.currentContext === 'string' ? parsed.currentContext : undefined;
  } catch {
    // The CLI refuses a broken config; for finding the daemon, the default is the better guess.
    return undefined;
  }
}

/** The directory name the CLI stores a context under: the SHA-256 of its name. */
export function contextDirName(name: string): string {
  return createHash('sha256').update(name).digest('hex');
}

function contextEndpoint(name: string, origin: string, configDir: string, input: DiscoveryInput): DockerEndpoint {
  const id = contextDirName(name);
  const metaPath = join(configDir, 'contexts', 'meta', id, 'meta.json');
  const text = input.readFile(metaPath);
  if (text === undefined) {
    throw new DockerDiscoveryError(
      `Docker context "${name}" (from ${origin}) does not exist: ${metaPath} is missing; run "docker context ls" to see the contexts, or set DOCKER_HOST`,
    );
  }
  let host: unknown;
  let skipVerify = false;
  try {
    const meta = JSON.parse(text) as { Endpoints?: { docker?: { Host?: unknown; SkipTLSVerify?: unknown } } };
    host = meta.Endpoints?.docker?.Host;
    skipVerify = meta.Endpoints?.docker?.SkipTLSVerify === true;
  } catch (error) {
    throw new DockerDiscoveryError(`Docker context "${name}" is unreadable: ${metaPath}: ${errorMessage(error)}; recreate it with "docker context create"`);
  }
  if (typeof host !== 'string' || host === '') {
    throw new DockerDiscoveryError(`Docker context "${name}" has no Docker endpoint (${metaPath}); recreate it with "docker context create --docker host=..."`);
  }
  const tlsDir = join(configDir, 'contexts', 'tls', id, 'docker');
  const files = tlsFiles(tlsDir, input);
  const tls = files.caPath || files.certPath ? { ...files, verify: !skipVerify } : undefined;
  return parseHost(host, `Docker context "${name}"`, tls);
}

function tlsFiles(dir: string, input: DiscoveryInput): Omit<TlsSettings, 'verify'> {
  const file = (name: string): string | undefined => {
    const path = join(dir, name);
    return input.exists(path) ? path : undefined;
  };
  return { caPath: file('ca.pem'), certPath: file('cert.pem'), keyPath: file('key.pem') };
}

/** TLS from DOCKER_TLS_VERIFY / DOCKER_TLS / DOCKER_CERT_PATH (only used for TCP hosts). */
function envTls(env: DiscoveryInput['env'], configDir: string, input: DiscoveryInput): TlsSettings | undefined {
  const verify = Boolean(env.DOCKER_TLS_VERIFY);
  if (!verify && !env.DOCKER_TLS && !env.DOCKER_CERT_PATH) return undefined;
  return { ...tlsFiles(env.DOCKER_CERT_PATH || configDir, input), verify };
}

function parseHost(text: string, origin: string, tls: TlsSettings | undefined): DockerEndpoint {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(text)?.[1]?.toLowerCase();
  if (scheme === 'unix') {
    const socketPath = text.slice('unix://'.length);
    if (socketPath === '') throw new DockerDiscoveryError(`${origin} "${text}" names no socket; write it as unix:///path/to/docker.sock`);
    return { kind: 'unix', socketPath, url: text };
  }
  if (scheme === 'tcp' || scheme === 'http' || scheme === 'https') {
    let url: URL;
    try {
      url = new URL(`http://${text.slice(scheme.length + 3)}`);
    } catch {
      throw new DockerDiscoveryError(`${origin} "${text}" is not a valid address; write it as tcp://host:port`);
    }
    if (url.hostname === '') throw new DockerDiscoveryError(`${origin} "${text}" names no host; write it as tcp://host:port`);
    const useTls = tls ?? (scheme === 'https' ? { caPath: undefined, certPath: undefined, keyPath: undefined, verify: true } : undefined);
    const port = url.port ? Number(url.port) : useTls ? 2376 : 2375;
    return { kind: 'tcp', host: url.hostname.replace(/^\[|\]$/g, ''), port, url: text, tls: useTls };
  }
  if (scheme === 'ssh') {
    throw new DockerDiscoveryError(
      `${origin} "${text}" uses ssh://, which this worker does not support; forward the remote socket (ssh -nNT -L /tmp/docker.sock:/var/run/docker.sock user@host) and set DOCKER_HOST=unix:///tmp/docker.sock`,
    );
  }
  if (scheme === undefined) {
    throw new DockerDiscoveryError(`${origin} "${text}" has no scheme; write it as unix:///var/run/docker.sock or tcp://host:2376`);
  }
  throw new DockerDiscoveryError(`${origin} "${text}" uses ${scheme}://, which this worker does not support; use unix:// or tcp://`);
}
