// Image references the way Docker normalises them (distribution/reference):
// `busybox:1.36` is `docker.io/library/busybox` with tag `1.36`. Pure.

export const DOCKER_HUB_DOMAIN = 'docker.io';
/** The key Docker's credential store uses for Docker Hub. */
export const DOCKER_HUB_AUTH_KEY = 'https://index.docker.io/v1/';

export interface ImageRef {
  /** Registry host (with port), `docker.io` for Docker Hub. */
  domain: string;
  /** Repository path inside the registry, e.g. `library/ubuntu`. */
  path: string;
  tag: string | undefined;
  digest: string | undefined;
}

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DOMAIN = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$/;

/** Parses and normalises a reference; undefined when Docker would refuse it. */
export function parseImageRef(text: string): ImageRef | undefined {
  if (text === '' || /^[a-f0-9]{64}$/.test(text)) return undefined;
  let rest = text;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) return undefined;
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) return undefined;
  }
  let domain = DOCKER_HUB_DOMAIN;
  let path = rest;
  const slash = rest.indexOf('/');
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    // Only a first component that looks like a host names a registry.
    if (/[.:]/.test(first) || first === 'localhost' || first.toLowerCase() !== first) {
      domain = first;
      path = rest.slice(slash + 1);
    }
  }
  if (domain === 'index.docker.io') domain = DOCKER_HUB_DOMAIN;
  if (domain === DOCKER_HUB_DOMAIN && !path.includes('/')) path = `library/${path}`;
  if (!DOMAIN.test(domain) || path === '' || !path.split('/').every((c) => COMPONENT.test(c))) return undefined;
  return { domain, path, tag, digest };
}

/** `docker.io/library/ubuntu` for the pull's `fromImage` (no tag or digest). */
export function fullName(ref: ImageRef): string {
  return `${ref.domain}/${ref.path}`;
}

/** What Docker pulls when no tag or digest is given. */
export function pullTag(ref: ImageRef): string {
  return ref.digest ?? ref.tag ?? 'latest';
}

/** The short form people write: `busybox`, `warpdotdev/warp-agent`, `localhost:5000/team/agent`. */
export function familiarName(ref: ImageRef): string {
  if (ref.domain !== DOCKER_HUB_DOMAIN) return fullName(ref);
  const rest = ref.path.slice('library/'.length);
  return ref.path.startsWith('library/') && !rest.includes('/') ? rest : ref.path;
}

/** The key of the registry's credentials in the Docker CLI config. */
export function authKey(domain: string): string {
  return domain === DOCKER_HUB_DOMAIN || domain === 'index.docker.io' ? DOCKER_HUB_AUTH_KEY : domain;
}

/** Every character Docker does not allow in volume names becomes `-`. */
export function sanitizeName(text: string): string {
  return text.replace(/[^a-zA-Z0-9_.-]/g, '-');
}

/** The first 12 hex characters of `sha256:<hex>`; anything else with `:` replaced. */
export function shortDigest(digest: string): string {
  const parts = digest.split(':');
  return parts.length === 2 ? parts[1]!.slice(0, 12) : digest.replaceAll(':', '-');
}

/** `<familiar repo>-<short digest>`, the Go worker's sidecar volume naming (kept so both workers share volumes; docs/backends.md). */
export function sidecarVolumeBase(image: string, digest: string): string {
  const ref = parseImageRef(image);
  return `${sanitizeName(ref ? familiarName(ref) : image)}-${shortDigest(digest)}`;
}
