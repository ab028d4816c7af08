import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { encodeRegistryAuth, findAuth, registryAuthFor, type CredentialHelper } from '../../src/backends/docker/registry-auth.js';

const b64 = (text: string) => Buffer.from(text).toString('base64');

function decode(header: string | undefined): unknown {
  return header === undefined ? undefined : JSON.parse(Buffer.from(header.replace(/-/g, '+').replace(/_/g, '/'), 'base64').toString());
}

describe('finding credentials in the Docker CLI config', () => {
  it.each([
    [
      'Docker Hub under its v1 key',
      { auths: { 'https://index.docker.io/v1/': { auth: b64('hubuser:hubpass') } } },
      'docker.io',
      { username: 'hubuser', password: 'hubpass', serveraddress: 'https://index.docker.io/v1/' },
    ],
    [
      'a registry by host',
      { auths: { 'ghcr.io': { auth: b64('gh:tok:with:colons') } } },
      'ghcr.io',
      { username: 'gh', password: 'tok:with:colons', serveraddress: 'ghcr.io' },
    ],
    [
      'a registry keyed with scheme and path',
      { auths: { 'https://registry.internal/v2/': { username: 'u', password: 'p' } } },
      'registry.internal',
      { username: 'u', password: 'p' },
    ],
    [
      'a token-only entry (the Go worker dropped these)',
      { auths: { 'acr.io': { identitytoken: 'id-tok' } } },
      'acr.io',
      { username: '', identitytoken: 'id-tok' },
    ],
  ])('%s', (_name, config, domain, auth) => {
    const found = findAuth(config, domain);
    expect(found.kind).toBe('inline');
    expect(found.kind === 'inline' && found.auth).toMatchObject(auth);
  });

  it.each([
    ['no entry', { auths: { 'other.io': { auth: b64('a:b') } } }, 'ghcr.io', { kind: 'none' }],
    ['an entry without credentials', { auths: { 'ghcr.io': {} } }, 'ghcr.io', { kind: 'none' }],
    [
      'a per-registry helper',
      { credHelpers: { 'ghcr.io': 'gh' }, credsStore: 'desktop' },
      'ghcr.io',
      { kind: 'helper', helper: 'gh', serverAddress: 'ghcr.io' },
    ],
    ['the default store', { credsStore: 'pass' }, 'docker.io', { kind: 'helper', helper: 'pass', serverAddress: 'https://index.docker.io/v1/' }],
  ])('%s', (_name, config, domain, expected) => {
    expect(findAuth(config, domain)).toEqual(expected);
  });

  it('encodes the header as padded base64url JSON', () => {
    const header = encodeRegistryAuth({ username: 'u?', password: 'p>', serveraddress: 'r' });
    expect(header).toMatch(/^[A-Za-z0-9_-]+=*$/);
    expect(decode(header)).toEqual({ username: 'u?', password: 'p>', serveraddress: 'r' });
  });
});

describe('registry auth for a pull', () => {
  let dir: string;
  let lines: string[];
  const log = () => pino({ level: 'debug' }, { write: (line: string) => void lines.push(line) });

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'oz-docker-auth-'));
    mkdirSync(join(dir, '.docker'));
    lines = [];
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const write = (config: unknown) => writeFileSync(join(dir, '.docker', 'config.json'), typeof config === 'string' ? config : JSON.stringify(config));

  it('pulls anonymously without a config file, silently', async () => {
    expect(await registryAuthFor('ubuntu', { env: {}, home: dir }, log())).toBeUndefined();
    expect(lines.filter((l) => l.includes('"level":40'))).toEqual([]);
  });

  it('warns about a broken config and pulls anonymously', async () => {
    write('{broken');
    expect(await registryAuthFor('ubuntu', { env: {}, home: dir }, log())).toBeUndefined();
    expect(lines.join('\n')).toMatch(/Failed to load Docker config .*config.json.*Attempting pull without auth/);
  });

  it('uses DOCKER_CONFIG and never logs the secret', async () => {
    const other = join(dir, 'elsewhere');
    mkdirSync(other);
    writeFileSync(join(other, 'config.json'), JSON.stringify({ auths: { 'ghcr.io': { auth: b64('bot:s3cret-pass') } } }));
    const header = await registryAuthFor('ghcr.io/org/img:1', { env: { DOCKER_CONFIG: other }, home: dir }, log());
    expect(decode(header)).toEqual({ username: 'bot', password: 's3cret-pass', serveraddress: 'ghcr.io' });
    expect(lines.join('\n')).toMatch(/credentials for ghcr.io .*user bot/);
    expect(lines.join('\n')).not.toContain('s3cret-pass');
  });

  it('asks the credential helper, with identity tokens for <token> users, and falls back to auths when it has nothing', async () => {
    write({ credsStore: 'fake', auths: { 'registry.internal': { auth: b64('inline:pw') } } });
    const asked: string[] = [];
    const helper: CredentialHelper = async (name, server) => {
      asked.push(`${name} ${server}`);
      if (server === 'ghcr.io') return { Username: '<token>', Secret: 'id-token' };
      return undefined;
    };
    expect(decode(await registryAuthFor('ghcr.io/a/b', { env: {}, home: dir, helper }, log()))).toEqual({
      username: '',
      password: '',
      serveraddress: 'ghcr.io',
      identitytoken: 'id-token',
    });
    expect(decode(await registryAuthFor('registry.internal/x', { env: {}, home: dir, helper }, log()))).toMatchObject({ username: 'inline', password: 'pw' });
    expect(asked).toEqual(['fake ghcr.io', 'fake registry.internal']);
  });

  it('pulls anonymously when the helper is missing, saying which helper', async () => {
    write({ credsStore: 'definitely-not-installed-xyz' });
    expect(await registryAuthFor('ubuntu', { env: {}, home: dir }, log())).toBeUndefined();
    expect(lines.join('\n')).toMatch(
      /docker-credential-definitely-not-installed-xyz failed: it is not installed \(not on PATH\)\. Attempting pull without auth/,
    );
  });
});
