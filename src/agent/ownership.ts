// The one ownership rule every backend's arguments come from: only team-owned
// tasks share their session with the team. A user-owned task runs with a
// user-scoped key that cannot create a team session, so the flag would make
// the agent fail at start-up.
import type { Owner } from '../protocol/messages.js';

export function isTeamOwned(owner: Owner | undefined): boolean {
  return owner?.Type === 'TEAM';
}
