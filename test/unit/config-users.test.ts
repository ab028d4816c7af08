// backend.direct.run_as_user: looked up and checked at start-up.
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/errors.js';
import { findPasswdEntry, resolveRunAsUser } from '../../src/config/users.js';

const PASSWD = 'root:x:0:0:root:/root:/bin/bash\nagent:x:1001:1002:Agent:/home/agent:/bin/sh\nbroken:x:abc:1:::\n';
const lookUp = (name: string) => findPasswdEntry(PASSWD, name);

describe('run_as_user', () => {
  it('finds a user by name or uid', () => {
    expect(lookUp('agent')).toEqual({ name: 'agent', uid: 1001, gid: 1002, home: '/home/agent' });
    expect(lookUp('1001')?.name).toBe('agent');
    expect(lookUp('broken')).toBeUndefined();
  });

  it.each<[string, string, number | undefined, RegExp | undefined]>([
    ['a user, worker as root', 'agent', 0, undefined],
    ["the worker's own user", 'agent', 1001, undefined],
    ['an unknown user', 'nobody-here', 0, /backend\.direct\.run_as_user: no user "nobody-here"/],
    ['root itself', 'root', 0, /is root/],
    ['another user while the worker is not root', 'agent', 1000, /runs as uid 1000, not root/],
  ])('%s', (_name, user, currentUid, error) => {
    if (error) expect(() => resolveRunAsUser(user, lookUp, currentUid)).toThrow(ConfigError);
    if (error) expect(() => resolveRunAsUser(user, lookUp, currentUid)).toThrow(error);
    else expect(resolveRunAsUser(user, lookUp, currentUid)?.name).toBe(user);
  });

  it('is off when not set', () => {
    expect(resolveRunAsUser('', lookUp, 0)).toBeUndefined();
  });
});
