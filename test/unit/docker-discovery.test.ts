import { describe, expect, it } from 'vitest';
import { contextDirName, discoverDocker, DockerDiscoveryError, type DiscoveryInput } from '../../src/backends/docker/discovery.js';

const HOME = '/home/u';

function input(env: Record<string, string>, files: Record<string, string> = {}): DiscoveryInput {
  return {
    env,
    home: HOME,
    readFile: (path) => files[path],
    exists: (path) => Object.hasOwn(files, path),
  };
}

function meta(name: string, host: string, skipVerify = false): Record<string, string> {
  return {
    [`${HOME}/.docker/contexts/meta/${contextDirName(name)}/meta.json`]: JSON.stringify({
      Name: name,
      Endpoints: { docker: { Host: host, SkipTLSVerify: skipVerify } },
    }),
  };
}

describe('Docker daemon discovery', () => {
  it.each([
    ['nothing set, nothing found: the system socket', {}, {}, 'unix', '/var/run/docker.sock'],
    [
      'the system socket when it exists',
      { XDG_RUNTIME_DIR: '/run/user/1000' },
      { '/var/run/docker.sock': '', '/run/user/1000/docker.sock': '' },
      'unix',
      '/var/run/docker.sock',
    ],
    [
      'the rootless socket when only it exists',
      { XDG_RUNTIME_DIR: '/run/user/1000' },
      { '/run/user/1000/docker.sock': '' },
      'unix',
      '/run/user/1000/docker.sock',
    ],
    ['the Docker Desktop socket when only it exists', {}, { [`${HOME}/.docker/run/docker.sock`]: '' }, 'unix', `${HOME}/.docker/run/docker.sock`],
    ['DOCKER_HOST unix://', { DOCKER_HOST: 'unix:///tmp/d.sock' }, {}, 'unix', '/tmp/d.sock'],
  ])('%s', (_name, env, files, kind, socketPath) => {
    const { endpoint } = discoverDocker(input(env, files));
    expect(endpoint).toMatchObject({ kind, socketPath });
  });

  it.each([
    ['plain tcp on 2375', { DOCKER_HOST: 'tcp://10.0.0.5' }, { host: '10.0.0.5', port: 2375, tls: undefined }],
    ['tcp with a port', { DOCKER_HOST: 'tcp://docker.internal:2377' }, { host: 'docker.internal', port: 2377, tls: undefined }],
    ['IPv6', { DOCKER_HOST: 'tcp://[::1]:2375' }, { host: '::1', port: 2375 }],
    [
      'TLS verify with DOCKER_CERT_PATH defaults to 2376',
      { DOCKER_HOST: 'tcp://d', DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: '/certs' },
      { port: 2376, tls: { caPath: '/certs/ca.pem', certPath: '/certs/cert.pem', keyPath: '/certs/key.pem', verify: true } },
    ],
    [
      'DOCKER_CERT_PATH without verify: TLS without verification',
      { DOCKER_HOST: 'tcp://d:2376', DOCKER_CERT_PATH: '/certs' },
      { tls: { caPath: '/certs/ca.pem', verify: false } },
    ],
    [
      'TLS verify with certs from ~/.docker',
      { DOCKER_HOST: 'tcp://d:2376', DOCKER_TLS_VERIFY: '1' },
      { tls: { caPath: `${HOME}/.docker/ca.pem`, verify: true } },
    ],
  ])('%s', (_name, env, expected) => {
    const files = {
      '/certs/ca.pem': '',
      '/certs/cert.pem': '',
      '/certs/key.pem': '',
      [`${HOME}/.docker/ca.pem`]: '',
    };
    expect(discoverDocker(input(env, files)).endpoint).toMatchObject({ kind: 'tcp', ...expected });
  });

  it('uses DOCKER_CONTEXT and its TLS material', () => {
    const id = contextDirName('remote');
    const files = {
      ...meta('remote', 'tcp://build-host:2376'),
      [`${HOME}/.docker/contexts/tls/${id}/docker/ca.pem`]: '',
      [`${HOME}/.docker/contexts/tls/${id}/docker/cert.pem`]: '',
      [`${HOME}/.docker/contexts/tls/${id}/docker/key.pem`]: '',
    };
    const found = discoverDocker(input({ DOCKER_CONTEXT: 'remote' }, files));
    expect(found.source).toBe('Docker context "remote"');
    expect(found.endpoint).toMatchObject({
      kind: 'tcp',
      host: 'build-host',
      port: 2376,
      tls: { caPath: `${HOME}/.docker/contexts/tls/${id}/docker/ca.pem`, verify: true },
    });
  });

  it("uses the config's currentContext, under DOCKER_CONFIG", () => {
    const files = {
      '/cfg/config.json': JSON.stringify({ currentContext: 'rootless' }),
      [`/cfg/contexts/meta/${contextDirName('rootless')}/meta.json`]: JSON.stringify({ Endpoints: { docker: { Host: 'unix:///run/user/1000/docker.sock' } } }),
    };
    expect(discoverDocker(input({ DOCKER_CONFIG: '/cfg' }, files)).endpoint).toEqual({
      kind: 'unix',
      socketPath: '/run/user/1000/docker.sock',
      url: 'unix:///run/user/1000/docker.sock',
    });
  });

  it('lets DOCKER_HOST win over DOCKER_CONTEXT, and treats the "default" context as no context', () => {
    expect(discoverDocker(input({ DOCKER_HOST: 'unix:///a.sock', DOCKER_CONTEXT: 'missing' })).endpoint).toMatchObject({ socketPath: '/a.sock' });
    expect(discoverDocker(input({ DOCKER_CONTEXT: 'default' })).endpoint).toMatchObject({ socketPath: '/var/run/docker.sock' });
  });

  it('ignores an unreadable config.json when looking for the daemon', () => {
    expect(discoverDocker(input({}, { [`${HOME}/.docker/config.json`]: '{not json' })).endpoint).toMatchObject({ socketPath: '/var/run/docker.sock' });
  });

  it('passes DOCKER_API_VERSION on', () => {
    expect(discoverDocker(input({ DOCKER_API_VERSION: '1.41' })).apiVersion).toBe('1.41');
  });

  it.each([
    ['a missing context', { DOCKER_CONTEXT: 'gone' }, /Docker context "gone" \(from DOCKER_CONTEXT\) does not exist: .*docker context ls/],
    ['ssh hosts', { DOCKER_HOST: 'ssh://me@host' }, /ssh:\/\/, which this worker does not support; forward the remote socket/],
    ['a host without scheme', { DOCKER_HOST: '/var/run/docker.sock' }, /has no scheme; write it as unix:\/\/\/var\/run\/docker.sock/],
    ['npipe', { DOCKER_HOST: 'npipe:////./pipe/docker_engine' }, /npipe:\/\/, which this worker does not support/],
    ['an empty unix path', { DOCKER_HOST: 'unix://' }, /names no socket/],
  ])('explains %s', (_name, env, message) => {
    expect(() => discoverDocker(input(env))).toThrow(DockerDiscoveryError);
    expect(() => discoverDocker(input(env))).toThrow(message);
  });
});
