// Who may see a task, and which worker may run it. The tenant guard below is the
// only way the HTTP API reaches a task; the routing rule reuses the worker's own
// device-scope decision so server and worker cannot disagree.
import { decideAssignment, type Scope } from '../scope/decide.js';
import type { Principal, TaskOwner, TaskRecord } from './records.js';

export interface MembershipLookup {
  isMember(teamId: number, userId: number): boolean;
}

export interface TaskLookup extends MembershipLookup {
  task(id: string): TaskRecord | undefined;
}

/** The owner a caller acts as: a task key acts as its task's owner. */
function actingAs(caller: Principal): { userId?: number; teamId?: number } {
  switch (caller.kind) {
    case 'user':
      return { userId: caller.userId };
    case 'team':
      return { teamId: caller.teamId };
    case 'task':
      return caller.owner.type === 'USER' ? { userId: caller.owner.id } : { teamId: caller.owner.id };
    case 'admin':
      return {};
  }
}

/** Whether the caller owns tasks of `owner`: it is that user, that team, or a member of that team. */
export function callerOwns(caller: Principal, owner: TaskOwner, memberships: MembershipLookup): boolean {
  const { userId, teamId } = actingAs(caller);
  if (owner.type === 'USER') return userId === owner.id;
  if (teamId !== undefined) return teamId === owner.id;
  return userId !== undefined && memberships.isMember(owner.id, userId);
}

/** The owners whose tasks the caller may list. */
export function ownersVisibleTo(caller: Principal, teamIdsOf: (userId: number) => number[]): TaskOwner[] {
  const { userId, teamId } = actingAs(caller);
  if (teamId !== undefined) return [{ type: 'TEAM', id: teamId }];
  if (userId === undefined) return [];
  return [{ type: 'USER', id: userId }, ...teamIdsOf(userId).map((id): TaskOwner => ({ type: 'TEAM', id }))];
}

/**
 * The tenant guard: the task when the caller owns it, otherwise undefined —
 * the same answer whether the task exists or not, so ids cannot be probed.
 */
export function guardTask(caller: Principal, taskId: string, lookup: TaskLookup): TaskRecord | undefined {
  const task = lookup.task(taskId);
  if (!task || !callerOwns(caller, task.owner, lookup)) return undefined;
  return task;
}

/** How a connected worker authenticated. */
export type WorkerIdentity =
  /** A team key: a fleet worker for that team. */
  | { kind: 'team'; teamId: number }
  /** A user key: the user's own worker; with a device id, a device worker. */
  | { kind: 'user'; userId: number; deviceId: string | undefined };

export interface ScopeLookup extends MembershipLookup {
  activePinTeams(deviceId: string): number[];
}

/**
 * A user worker's scope: its owner's tasks, plus each team the device has an
 * active pin for while the owner is still a member of it.
 */
export function deviceScope(identity: Extract<WorkerIdentity, { kind: 'user' }>, lookup: ScopeLookup): Scope {
  const teamIds = identity.deviceId === undefined ? [] : lookup.activePinTeams(identity.deviceId).filter((teamId) => lookup.isMember(teamId, identity.userId));
  return { ownerUserId: identity.userId, teamIds };
}

/**
 * Whether the server may send the task to this worker. Team work routed to a
 * device (`deviceId`) goes only to that device, and a device never gets team
 * work that was not routed to it: a pin does not widen a device's share of the
 * team's queue.
 */
export function workerMayRun(identity: WorkerIdentity, task: Pick<TaskRecord, 'owner' | 'deviceId'>, lookup: ScopeLookup): boolean {
  if (identity.kind === 'team') {
    return task.owner.type === 'TEAM' && task.owner.id === identity.teamId && task.deviceId === undefined;
  }
  if (task.deviceId !== undefined && task.deviceId !== identity.deviceId) return false;
  if (task.owner.type === 'TEAM' && task.deviceId === undefined) return false;
  return decideAssignment({ Type: task.owner.type, Id: task.owner.id }, deviceScope(identity, lookup)).accept;
}

/**
 * The user or team a key speaks for, as one string (`user:3`, `team:2`): what a
 * worker id is bound to and what the queue cap counts. A task key speaks for its
 * task's owner; the admin key for nobody.
 */
export function principalTag(who: Principal | WorkerIdentity): string | undefined {
  switch (who.kind) {
    case 'user':
      return `user:${who.userId}`;
    case 'team':
      return `team:${who.teamId}`;
    case 'task':
      return who.owner.type === 'USER' ? `user:${who.owner.id}` : `team:${who.owner.id}`;
    case 'admin':
      return undefined;
  }
}

/** One slice of the queue: tasks of this owner with exactly this `device_id` (null: none). */
export interface QueueSlice {
  ownerType: TaskOwner['type'];
  ownerId: number;
  deviceId: string | null;
}

/**
 * The parts of the queue `workerMayRun` can accept for this worker, so a queue
 * pass reads only those rows (through the index) instead of the whole queue.
 */
export function queueSlicesFor(identity: WorkerIdentity, lookup: ScopeLookup): QueueSlice[] {
  if (identity.kind === 'team') return [{ ownerType: 'TEAM', ownerId: identity.teamId, deviceId: null }];
  const own: QueueSlice[] = [{ ownerType: 'USER', ownerId: identity.userId, deviceId: null }];
  if (identity.deviceId === undefined) return own;
  const deviceId = identity.deviceId;
  return [
    ...own,
    { ownerType: 'USER', ownerId: identity.userId, deviceId },
    ...deviceScope(identity, lookup).teamIds.map((teamId): QueueSlice => ({ ownerType: 'TEAM', ownerId: teamId, deviceId })),
  ];
}
