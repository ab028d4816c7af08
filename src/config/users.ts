// `backend.direct.run_as_user`: the account agents, setup and teardown run as
// when the worker runs as root. Looked up once at start-up, in /etc/passwd and
// then through `getent` (directory services), so a missing user stops the
// worker with a message instead of failing every task.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { ConfigError } from './errors.js';

export interface RunAsUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

/** Finds a user by name (or numeric uid) in passwd-format text. */
export function findPasswdEntry(text: string, nameOrUid: string): RunAsUser | undefined {
  for (const line of text.split('\n')) {
    const fields = line.split(':');
    if (fields.length < 7) continue;
    const [name, , uid, gid, , home] = fields;
    if (name !== nameOrUid && uid !== nameOrUid) continue;
    const user = { name: name!, uid: Number(uid), gid: Number(gid), home: home! };
    if (Number.isInteger(user.uid) && Number.isInteger(user.gid)) return user;
  }
  return undefined;
}

export type LookUpUser = (nameOrUid: string) => RunAsUser | undefined;

export const lookUpUser: LookUpUser = (nameOrUid) => {
  try {
    const found = findPasswdEntry(readFileSync('/etc/passwd', 'utf8'), nameOrUid);
    if (found) return found;
  } catch {
    // no /etc/passwd (macOS keeps users elsewhere): ask getent below
  }
  try {
    return findPasswdEntry(execFileSync('getent', ['passwd', nameOrUid], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 5_000 }), nameOrUid);
  } catch {
    return undefined;
  }
};

const KEY = 'backend.direct.run_as_user';

/** The configured user, checked: it exists, and the worker may become it (runs as root, or already is that user). */
export function resolveRunAsUser(name: string, lookUp: LookUpUser, currentUid: number | undefined): RunAsUser | undefined {
  if (name === '') return undefined;
  const user = lookUp(name);
  if (!user) throw new ConfigError(`${KEY}: no user ${JSON.stringify(name)} on this machine; create it (useradd) or name an existing user`);
  if (user.uid === 0) throw new ConfigError(`${KEY}: ${JSON.stringify(name)} is root; name an unprivileged user, or leave the key out`);
  if (currentUid !== undefined && currentUid !== 0 && currentUid !== user.uid) {
    throw new ConfigError(
      `${KEY}: the worker runs as uid ${currentUid}, not root, so it cannot start processes as ${JSON.stringify(name)}; run the worker as root or leave the key out`,
    );
  }
  return user;
}
