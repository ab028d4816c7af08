// The demo identity `oz-worker local` runs with: user "demo", team "demo-team"
// (demo is a member, with a default agent configuration), a user key for the
// `task` CLI, a team key for the team's worker and a second user key for the
// user's worker (user tasks run only on a worker of that user). Made on first
// run, reused after.
import type { Store } from '../server/store.js';
import type { LocalSettings } from './settings.js';

export const DEMO_USER = 'demo';
export const DEMO_TEAM = 'demo-team';
export const DEMO_AGENT_CONFIG = { model_id: 'auto', base_prompt: 'You are running inside the oz-worker local demo.' };

export interface DemoIdentity {
  userId: number;
  teamId: number;
  userKey: string;
  workerKey: string;
  userWorkerKey: string;
  /** Whether anything had to be created. */
  created: boolean;
}

export function ensureDemoIdentity(store: Store, previous: LocalSettings | undefined): DemoIdentity {
  return store.transaction(() => {
    let created = false;
    let user = store.userByName(DEMO_USER);
    if (!user) {
      user = store.createUser(DEMO_USER);
      created = true;
    }
    let team = store.teams().find((t) => t.name === DEMO_TEAM);
    if (!team) {
      team = store.createTeam(DEMO_TEAM);
      store.setDefaultAgent(team.id, DEMO_AGENT_CONFIG);
      created = true;
    }
    if (!store.isMember(team.id, user.id)) store.addMember(team.id, user.id);

    const userPrincipal = previous ? store.principal(previous.user_key) : undefined;
    const userKey =
      userPrincipal?.kind === 'user' && userPrincipal.userId === user.id
        ? previous!.user_key
        : store.createKey({ kind: 'user', userId: user.id }, 'local demo CLI').key;
    const workerPrincipal = previous ? store.principal(previous.worker_key) : undefined;
    const workerKey =
      workerPrincipal?.kind === 'team' && workerPrincipal.teamId === team.id
        ? previous!.worker_key
        : store.createKey({ kind: 'team', teamId: team.id }, 'local worker').key;
    const userWorkerPrincipal = previous?.user_worker_key ? store.principal(previous.user_worker_key) : undefined;
    const userWorkerKey =
      userWorkerPrincipal?.kind === 'user' && userWorkerPrincipal.userId === user.id
        ? previous!.user_worker_key!
        : store.createKey({ kind: 'user', userId: user.id }, 'local user worker').key;
    created ||= userKey !== previous?.user_key || workerKey !== previous?.worker_key || userWorkerKey !== previous?.user_worker_key;
    return { userId: user.id, teamId: team.id, userKey, workerKey, userWorkerKey, created };
  });
}
