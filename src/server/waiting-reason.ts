// Why a queued task is not on its way to a worker, from the server's own
// records: which workers are connected, whom they run for (the routing rule),
// and whether those that may run it are busy, shutting down or refused it.
// Pure; the dispatcher feeds it and turns a changed answer into an event.
import { workerMayRun, type ScopeLookup, type WorkerIdentity } from './access.js';
import type { TaskRecord } from './records.js';

export interface WorkerView {
  workerId: string;
  identity: WorkerIdentity;
  activeTasks: number;
  /** Learned from `at_capacity`; undefined while unknown. */
  capacity: number | undefined;
  draining: boolean;
  /** It rejected this task for a reason other than load. */
  refused: boolean;
}

const owner = (task: Pick<TaskRecord, 'owner'>): string => `${task.owner.type === 'TEAM' ? 'team' : 'user'} ${task.owner.id}`;

/** Why no connected worker can take the task now; undefined when one can. */
export function waitingReason(task: Pick<TaskRecord, 'owner' | 'deviceId'>, workers: readonly WorkerView[], lookup: ScopeLookup): string | undefined {
  if (workers.length === 0) return 'no worker is connected to the server';
  const allowed = workers.filter((w) => workerMayRun(w.identity, task, lookup));
  if (allowed.length === 0) return noWorkerFor(task, workers, lookup);
  const blocked = allowed.map((w) => ({ w, why: blockedBecause(w) }));
  if (blocked.some((b) => b.why === undefined)) return undefined;
  return `every worker that may run it is unavailable: ${blocked.map((b) => `${b.w.workerId} ${b.why}`).join('; ')}`;
}

function blockedBecause(worker: WorkerView): string | undefined {
  if (worker.refused) return 'rejected this task';
  if (worker.draining) return 'is shutting down';
  if (worker.capacity !== undefined && worker.activeTasks >= worker.capacity) return `is at capacity (${worker.activeTasks} of ${worker.capacity} tasks)`;
  return undefined;
}

type DeviceWorker = WorkerView & { identity: Extract<WorkerIdentity, { kind: 'user' }> };

/** The connected device worker with this device id, if any. */
function deviceWorker(workers: readonly WorkerView[], deviceId: string): DeviceWorker | undefined {
  return workers.find((w): w is DeviceWorker => w.identity.kind === 'user' && w.identity.deviceId === deviceId);
}

function noWorkerFor(task: Pick<TaskRecord, 'owner' | 'deviceId'>, workers: readonly WorkerView[], lookup: ScopeLookup): string {
  if (task.owner.type === 'TEAM' && task.deviceId === undefined) {
    return `no connected worker runs the tasks of ${owner(task)}: connect one with a key of that team`;
  }
  if (task.deviceId === undefined) {
    return `no connected worker runs the tasks of ${owner(task)}: a user's tasks run on a worker connected with a key of that user (\`oz-worker local\` starts one for user demo)`;
  }
  const device = deviceWorker(workers, task.deviceId);
  if (task.owner.type === 'USER') {
    // Pinned to one of the user's devices: its worker is missing, or connected with someone else's key (not named here).
    if (!device) return `device ${task.deviceId} is not connected (its worker connects with --device-id ${task.deviceId} and a key of ${owner(task)})`;
    return `device ${task.deviceId} is connected, but not with a key of ${owner(task)}`;
  }
  if (!device) return `device ${task.deviceId} is not connected (its worker connects with --device-id ${task.deviceId} and its user's key)`;
  if (!lookup.activePinTeams(task.deviceId).includes(task.owner.id)) return `device ${task.deviceId} has no active pin for ${owner(task)}`;
  if (!lookup.isMember(task.owner.id, device.identity.userId)) return `the user of device ${task.deviceId} is not a member of ${owner(task)}`;
  return `device ${task.deviceId} may not run the tasks of ${owner(task)}`;
}
