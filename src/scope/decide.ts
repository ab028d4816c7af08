// Whether a task's owner lies inside a device's scope. One pure function, used
// by the worker in device mode (before anything is claimed) and by the local
// dispatch server when it routes work to a device worker, so both sides always
// agree. It fails closed: an owner it cannot read is never in scope.

/** The owner as it appears in an assignment: `{"Type","Id"}`, possibly partial, absent or null. */
export interface OwnerRef {
  Type?: string | undefined;
  Id?: number | undefined;
}

export interface Scope {
  /** The device owner's user id: their USER-owned tasks are in scope. */
  ownerUserId: number | undefined;
  /** Teams whose tasks are in scope (pinned to this device). */
  teamIds: readonly number[];
}

export type ScopeRejectCode = 'owner_out_of_scope' | 'invalid_owner';

export type ScopeDecision = { accept: true } | { accept: false; code: ScopeRejectCode; reason: string };

export function describeOwner(owner: OwnerRef | null | undefined): string {
  if (owner === null) return 'null';
  if (owner === undefined) return 'none';
  return `${owner.Type ?? '(no type)'} ${owner.Id ?? '(no id)'}`;
}

export function describeScope(scope: Scope): string {
  const parts: string[] = [];
  if (scope.ownerUserId !== undefined) parts.push(`user ${scope.ownerUserId}`);
  if (scope.teamIds.length > 0) parts.push(`team${scope.teamIds.length > 1 ? 's' : ''} ${scope.teamIds.join(', ')}`);
  return parts.length > 0 ? parts.join(' and ') : 'nothing';
}

export function decideAssignment(owner: OwnerRef | null | undefined, scope: Scope): ScopeDecision {
  if (owner === null || owner === undefined) {
    return { accept: false, code: 'invalid_owner', reason: 'the task has no owner, and a device worker runs only tasks of its owner or pinned teams' };
  }
  const { Type: type, Id: id } = owner;
  if ((type !== 'USER' && type !== 'TEAM') || typeof id !== 'number' || !Number.isSafeInteger(id)) {
    return {
      accept: false,
      code: 'invalid_owner',
      reason: `the task owner (${describeOwner(owner)}) is not a USER or TEAM with a numeric id, so this device cannot tell whose work it is`,
    };
  }
  if (type === 'USER' && id === scope.ownerUserId) return { accept: true };
  if (type === 'TEAM' && scope.teamIds.includes(id)) return { accept: true };
  return {
    accept: false,
    code: 'owner_out_of_scope',
    reason: `the task belongs to ${type} ${id}, outside this device's scope (${describeScope(scope)})`,
  };
}
