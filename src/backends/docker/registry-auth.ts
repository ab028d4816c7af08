// Registry credentials for pulls, read like the Docker CLI reads them:
// `$DOCKER_CONFIG/config.json` (default ~/.docker), `credHelpers` per registry,
// then `credsStore`, then the inline `auths` entries. The secret only ever goes
// into the X-Registry-Auth header; logs name the registry and user.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../../log/logger.js';
import { dockerConfigDir } from './discovery.js';
import { authKey, parseImageRef } from './reference.js';
import { errorMessage } from '../../errors/error-message.js';

export interface AuthConfig {
  username: string;
  password: string;
  serveraddress: string;
  identitytoken?: string;
  registrytoken?: string;
}

interface DockerCliConfig {
  auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string; registrytoken?: string } | null>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
}

export type AuthSource = { kind: 'helper'; helper: string; serverAddress: string } | { kind: 'inline'; auth: AuthConfig } | { kind: 'none' };

/** The host part of an `auths` key (`https://index.docker.io/v1/` → `index.docker.io`), as the CLI matches them. */
export function hostnameOf(key: string): string {
  return key.replace(/^https?:\/\//, '').split('/')[0]!;
}

/** An `auths` entry as credentials; undefined when it carries none. */
function inlineAuth(entry: NonNullable<NonNullable<DockerCliConfig['auths']>[string]>, serverAddress: string): AuthConfig | undefined {
  let username = entry.username ?? '';
  let password = entry.password ?? '';
  if (entry.auth) {
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon > 0) {
      username = decoded.slice(0, colon);
      password = decoded.slice(colon + 1);
    }
  }
  const auth: AuthConfig = { username, password, serveraddress: serverAddress };
  if (entry.identitytoken) auth.identitytoken = entry.identitytoken;
  if (entry.registrytoken) auth.registrytoken = entry.registrytoken;
  // Token-only entries count too (the Go worker dropped them).
  return username !== '' || auth.identitytoken || auth.registrytoken ? auth : undefined;
}

/** Where the credentials for a registry come from, per the parsed CLI config. Pure. */
export function findAuth(config: DockerCliConfig, domain: string): AuthSource {
  const serverAddress = authKey(domain);
  const helper = config.credHelpers?.[domain] || config.credHelpers?.[serverAddress] || config.credsStore;
  if (helper) return { kind: 'helper', helper, serverAddress };
  return inlineFor(config, serverAddress);
}

function inlineFor(config: DockerCliConfig, serverAddress: string): AuthSource {
  const auths = config.auths ?? {};
  let entry = Object.hasOwn(auths, serverAddress) ? auths[serverAddress] : undefined;
  if (!entry) {
    const wanted = hostnameOf(serverAddress);
    const key = Object.keys(auths).find((k) => hostnameOf(k) === wanted);
    entry = key === undefined ? undefined : auths[key];
  }
  const auth = entry ? inlineAuth(entry, serverAddress) : undefined;
  return auth ? { kind: 'inline', auth } : { kind: 'none' };
}

/** The X-Registry-Auth header value: padded base64url JSON, as the Go SDK encodes it (the daemon expects the padding). */
export function encodeRegistryAuth(auth: AuthConfig): string {
  return Buffer.from(JSON.stringify(auth)).toString('base64').replace(/\+/g, '-').replace(/\//g, '_');
}

/** Runs `docker-credential-<helper> get`; undefined when it has no credentials for the registry. */
export type CredentialHelper = (helper: string, serverAddress: string) => Promise<{ Username?: string; Secret?: string } | undefined>;

export const runCredentialHelper: CredentialHelper = async (helper, serverAddress) => {
  // Loaded on first use: most workers have no credential helper configured.
  const { execa } = await import('execa');
  const result = await execa(`docker-credential-${helper}`, ['get'], { input: serverAddress, timeout: 30_000, reject: false, stripFinalNewline: true });
  if (result.failed) {
    const output = `${String(result.stdout)} ${String(result.stderr)}`;
    if (/credentials not found/i.test(output)) return undefined;
    const why =
      result.code === 'ENOENT' ? 'it is not installed (not on PATH)' : result.timedOut ? 'it did not answer within 30 s' : `exit status ${result.exitCode}`;
    throw new Error(`credential helper docker-credential-${helper} failed: ${why}`);
  }
  return JSON.parse(String(result.stdout)) as { Username?: string; Secret?: string };
};

export interface AuthDeps {
  env: Readonly<Record<string, string | undefined>>;
  home: string;
  helper?: CredentialHelper | undefined;
}

/**
 * The encoded credentials for pulling `image`, or undefined to pull anonymously.
 * Problems are logged as warnings: an anonymous pull may still work.
 */
export async function registryAuthFor(image: string, deps: AuthDeps, log: Logger): Promise<string | undefined> {
  const ref = parseImageRef(image);
  if (!ref) return undefined;
  const path = join(dockerConfigDir(deps.env, deps.home), 'config.json');
  let config: DockerCliConfig;
  try {
    config = JSON.parse(await readFile(path, 'utf8')) as DockerCliConfig;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
      log.warn(`Failed to load Docker config ${path}: ${errorMessage(error)}. Attempting pull without auth.`);
    }
    return undefined;
  }
  let source = findAuth(config, ref.domain);
  if (source.kind === 'helper') {
    try {
      const found = await (deps.helper ?? runCredentialHelper)(source.helper, source.serverAddress);
      if (found && (found.Username || found.Secret)) {
        const auth: AuthConfig =
          found.Username === '<token>'
            ? { username: '', password: '', serveraddress: source.serverAddress, identitytoken: found.Secret ?? '' }
            : { username: found.Username ?? '', password: found.Secret ?? '', serveraddress: source.serverAddress };
        log.debug(`Using registry credentials for ${ref.domain} from docker-credential-${source.helper} (user ${auth.username || '<token>'})`);
        return encodeRegistryAuth(auth);
      }
    } catch (error) {
      log.warn(`${errorMessage(error)}. Attempting pull without auth.`);
      return undefined;
    }
    source = inlineFor(config, source.serverAddress);
  }
  if (source.kind !== 'inline') return undefined;
  log.debug(`Using registry credentials for ${ref.domain} from ${path} (user ${source.auth.username || '<token>'})`);
  return encodeRegistryAuth(source.auth);
}
