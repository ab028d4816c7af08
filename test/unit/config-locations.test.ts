import { describe, expect, it } from 'vitest';
import { defaultWorkspaceRoot, type WorkspaceRootContext } from '../../src/config/locations.js';

const ann: WorkspaceRootContext = { platform: 'linux', env: {}, home: '/home/ann', uid: 1000 };

describe('defaultWorkspaceRoot', () => {
  it.each<[string, WorkspaceRootContext, string]>([
    ['root keeps the Go default', { ...ann, uid: 0, home: '/root' }, '/var/lib/oz/workspaces'],
    ['a systemd service keeps the Go default', { ...ann, env: { INVOCATION_ID: 'abc' } }, '/var/lib/oz/workspaces'],
    ['a Linux user gets the XDG data directory', ann, '/home/ann/.local/share/oz-worker/workspaces'],
    ['XDG_DATA_HOME is honoured', { ...ann, env: { XDG_DATA_HOME: '/data/ann' } }, '/data/ann/oz-worker/workspaces'],
    [
      'a macOS user gets Application Support',
      { ...ann, platform: 'darwin', home: '/Users/ann' },
      '/Users/ann/Library/Application Support/oz-worker/workspaces',
    ],
  ])('%s', (_name, context, expected) => {
    expect(defaultWorkspaceRoot(context)).toBe(expected);
  });
});
