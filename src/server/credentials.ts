// API keys of the local server. A key is 32 random bytes; only its SHA-256 is
// stored (a random key needs no slow hash), with a short prefix to tell keys apart.
import { createHash, randomBytes } from 'node:crypto';

const KEY_PREFIX = 'ozl_';

export interface NewKey {
  /** The secret, shown once. */
  key: string;
  hash: string;
  /** What listings show instead of the secret. */
  prefix: string;
}

export function generateKey(): NewKey {
  const key = KEY_PREFIX + randomBytes(32).toString('base64url');
  return { key, hash: hashKey(key), prefix: key.slice(0, KEY_PREFIX.length + 6) };
}

export function hashKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

/** The bearer token of an `Authorization` header, or undefined. */
export function bearerToken(header: string | undefined): string | undefined {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  return match?.[1];
}
