import { describe, expect, it } from 'vitest';
import { authKey, familiarName, fullName, parseImageRef, pullTag, sanitizeName, shortDigest, sidecarVolumeBase } from '../../src/backends/docker/reference.js';

const DIGEST = 'sha256:3f1c9a0b7d2e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a';

describe('image references', () => {
  it.each([
    ['ubuntu:22.04', 'docker.io/library/ubuntu', '22.04', 'ubuntu'],
    ['ubuntu', 'docker.io/library/ubuntu', 'latest', 'ubuntu'],
    ['docker.io/warpdotdev/warp-agent:latest', 'docker.io/warpdotdev/warp-agent', 'latest', 'warpdotdev/warp-agent'],
    ['index.docker.io/library/busybox:1.36', 'docker.io/library/busybox', '1.36', 'busybox'],
    ['localhost:5000/team/agent:1.0', 'localhost:5000/team/agent', '1.0', 'localhost:5000/team/agent'],
    ['localhost/agent', 'localhost/agent', 'latest', 'localhost/agent'],
    ['registry.internal/agent:1.0', 'registry.internal/agent', '1.0', 'registry.internal/agent'],
    ['ghcr.io/org/sub/image', 'ghcr.io/org/sub/image', 'latest', 'ghcr.io/org/sub/image'],
    [`busybox@${DIGEST}`, 'docker.io/library/busybox', DIGEST, 'busybox'],
    [`busybox:1.36@${DIGEST}`, 'docker.io/library/busybox', DIGEST, 'busybox'],
  ])('%s pulls %s with tag %s (familiar %s)', (text, name, tag, familiar) => {
    const ref = parseImageRef(text)!;
    expect(fullName(ref)).toBe(name);
    expect(pullTag(ref)).toBe(tag);
    expect(familiarName(ref)).toBe(familiar);
  });

  it.each(['', 'Ubuntu', 'ubuntu:bad tag', 'a//b', `busybox@sha256:short`, '3f1c9a0b7d2e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a'])(
    'refuses %j',
    (text) => {
      expect(parseImageRef(text)).toBeUndefined();
    },
  );

  it('keys Docker Hub credentials like the CLI', () => {
    expect(authKey('docker.io')).toBe('https://index.docker.io/v1/');
    expect(authKey('ghcr.io')).toBe('ghcr.io');
  });
});

describe('sidecar volume naming (the Go worker table)', () => {
  it.each([
    ['docker.io/warpdotdev/warp-agent:latest', 'warpdotdev-warp-agent-3f1c9a0b7d2e'],
    ['busybox:1.36', 'busybox-3f1c9a0b7d2e'],
    ['localhost:5000/team/agent:1.0', 'localhost-5000-team-agent-3f1c9a0b7d2e'],
    ['registry.internal/agent:1.0', 'registry.internal-agent-3f1c9a0b7d2e'],
    ['Not A Reference', 'Not-A-Reference-3f1c9a0b7d2e'],
  ])('%s → %s', (image, volume) => {
    expect(sidecarVolumeBase(image, DIGEST)).toBe(volume);
  });

  it('keeps odd digests whole with ":" replaced', () => {
    expect(shortDigest('abc')).toBe('abc');
    expect(shortDigest('a:b:c')).toBe('a-b-c');
    expect(sanitizeName('a/b:c@d_e.f-g')).toBe('a-b-c-d_e.f-g');
  });
});
