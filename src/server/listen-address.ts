// Where the server listens and which URL it tells others: a host name is
// resolved first (a name that does not resolve is an error that says so), and
// a wildcard address (0.0.0.0, ::) is advertised as an address of this
// machine that others can reach, while clients on this machine use loopback.
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { networkInterfaces, type NetworkInterfaceInfo } from 'node:os';

export class ListenAddressError extends Error {}

export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  if (isIP(host) === 6) return host === '::1';
  return false;
}

export const isWildcard = (host: string): boolean => host === '0.0.0.0' || host === '::';

/** The addresses `host` stands for; an IP literal stands for itself. */
export async function resolveListenHost(host: string): Promise<string[]> {
  if (isIP(host) !== 0) return [host];
  try {
    return (await lookup(host, { all: true })).map((entry) => entry.address);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new ListenAddressError(
      `cannot listen on ${host}: the host name does not resolve${code ? ` (${code})` : ''}; use an IP address of this machine (e.g. 127.0.0.1) or a name from /etc/hosts`,
    );
  }
}

/** `host` as it goes into a URL. */
export const urlHost = (host: string): string => (host.includes(':') ? `[${host}]` : host);

/**
 * The host other machines should use. For a wildcard: the first external
 * IPv4 address of this machine (then IPv6), else loopback when it has none.
 */
export function advertisedHost(host: string, interfaces: NodeJS.Dict<NetworkInterfaceInfo[]> = networkInterfaces()): string {
  if (!isWildcard(host)) return host;
  const external = Object.values(interfaces)
    .flatMap((list) => list ?? [])
    .filter((info) => !info.internal && !(info.family === 'IPv6' && info.address.toLowerCase().startsWith('fe80')));
  const v4 = external.find((info) => info.family === 'IPv4');
  const v6 = host === '::' ? external.find((info) => info.family === 'IPv6') : undefined;
  return v4?.address ?? v6?.address ?? (host === '::' ? '::1' : '127.0.0.1');
}

/** The host a client on this machine uses: loopback for a wildcard, else the host itself. */
export const localHost = (host: string): string => (host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host);
