// The one device-scope decision (shared by worker and server) and the server's
// routing and ownership rules built on it.
import { describe, expect, it } from 'vitest';
import { decideAssignment, type OwnerRef } from '../../src/scope/decide.js';
import { callerOwns, deviceScope, principalTag, queueSlicesFor, workerMayRun, type WorkerIdentity } from '../../src/server/access.js';
import { jsonDepth, queryInt } from '../../src/server/http-api.js';
import { buildAssignment } from '../../src/server/assignment.js';
import { isLoopback, parseListen } from '../../src/server/server.js';
import type { Principal, TaskRecord } from '../../src/server/records.js';

describe('decideAssignment', () => {
  const scope = { ownerUserId: 7, teamIds: [3, 4] };
  const table: [string, OwnerRef | null | undefined, string][] = [
    ['own user task', { Type: 'USER', Id: 7 }, 'accept'],
    ['listed team', { Type: 'TEAM', Id: 3 }, 'accept'],
    ['second listed team', { Type: 'TEAM', Id: 4 }, 'accept'],
    ['unlisted team', { Type: 'TEAM', Id: 5 }, 'owner_out_of_scope'],
    ['another user', { Type: 'USER', Id: 8 }, 'owner_out_of_scope'],
    ['team with the owner user id', { Type: 'TEAM', Id: 7 }, 'owner_out_of_scope'],
    ['user with a listed team id', { Type: 'USER', Id: 3 }, 'owner_out_of_scope'],
    ['no owner', undefined, 'invalid_owner'],
    ['null owner', null, 'invalid_owner'],
    ['lower-case type', { Type: 'user', Id: 7 }, 'invalid_owner'],
    ['unknown type', { Type: 'ORG', Id: 3 }, 'invalid_owner'],
    ['type without id', { Type: 'USER' }, 'invalid_owner'],
    ['id without type', { Id: 7 }, 'invalid_owner'],
  ];
  it.each(table)('%s', (_name, owner, expected) => {
    const decision = decideAssignment(owner, scope);
    expect(decision.accept ? 'accept' : decision.code).toBe(expected);
  });

  it('names the owner and the scope when it refuses', () => {
    const decision = decideAssignment({ Type: 'TEAM', Id: 5 }, scope);
    expect(decision.accept).toBe(false);
    if (!decision.accept) expect(decision.reason).toBe("the task belongs to TEAM 5, outside this device's scope (user 7 and teams 3, 4)");
  });

  it('accepts only teams when there is no owner user', () => {
    expect(decideAssignment({ Type: 'USER', Id: 1 }, { ownerUserId: undefined, teamIds: [1] }).accept).toBe(false);
    expect(decideAssignment({ Type: 'TEAM', Id: 1 }, { ownerUserId: undefined, teamIds: [1] }).accept).toBe(true);
  });
});

describe('server routing', () => {
  // user 1 is a member of teams 10 and 11; device "mac" (user 1) has active pins for 10, 12 (not a member) and none for 11.
  const members = new Set(['10:1', '11:1', '12:2']);
  const lookup = {
    isMember: (teamId: number, userId: number) => members.has(`${teamId}:${userId}`),
    activePinTeams: (deviceId: string) => (deviceId === 'mac' ? [10, 12] : []),
  };
  const device: WorkerIdentity = { kind: 'user', userId: 1, deviceId: 'mac' };
  const personal: WorkerIdentity = { kind: 'user', userId: 1, deviceId: undefined };
  const fleet10: WorkerIdentity = { kind: 'team', teamId: 10 };
  const task = (type: 'TEAM' | 'USER', id: number, deviceId?: string) => ({ owner: { type, id }, deviceId });

  const table: [string, WorkerIdentity, ReturnType<typeof task>, boolean][] = [
    ['device: own task', device, task('USER', 1), true],
    ['device: own task routed to it', device, task('USER', 1, 'mac'), true],
    ['device: own task routed to another device', device, task('USER', 1, 'pc'), false],
    ['device: pinned team, member, routed here', device, task('TEAM', 10, 'mac'), true],
    ['device: pinned team, unpinned work', device, task('TEAM', 10), false],
    ['device: pinned team but not a member', device, task('TEAM', 12, 'mac'), false],
    ['device: member but no pin', device, task('TEAM', 11, 'mac'), false],
    ['device: another user', device, task('USER', 2), false],
    ['personal worker: own task', personal, task('USER', 1), true],
    ['personal worker: team work routed to a device', personal, task('TEAM', 10, 'mac'), false],
    ['fleet: its team', fleet10, task('TEAM', 10), true],
    ['fleet: its team, routed to a device', fleet10, task('TEAM', 10, 'mac'), false],
    ['fleet: another team', fleet10, task('TEAM', 11), false],
    ['fleet: a user task', fleet10, task('USER', 1), false],
  ];
  it.each(table)('%s', (_name, identity, candidate, expected) => {
    expect(workerMayRun(identity, candidate, lookup)).toBe(expected);
  });

  // The queue pass reads only these slices: each must hold exactly the tasks workerMayRun accepts.
  it.each(table)('queue slices agree: %s', (_name, identity, candidate, expected) => {
    const inSlice = queueSlicesFor(identity, lookup).some(
      (slice) => slice.ownerType === candidate.owner.type && slice.ownerId === candidate.owner.id && slice.deviceId === (candidate.deviceId ?? null),
    );
    expect(inSlice).toBe(expected);
  });

  it('names the principal a worker id is bound to and a submission counted against', () => {
    expect([device, fleet10].map((who) => principalTag(who))).toEqual(['user:1', 'team:10']);
    expect(principalTag({ kind: 'task', keyId: 1, taskId: 't', owner: { type: 'TEAM', id: 3 } })).toBe('team:3');
    expect(principalTag({ kind: 'admin', keyId: 1 })).toBeUndefined();
  });

  it('derives a device scope from active pins the owner may still use', () => {
    expect(deviceScope({ kind: 'user', userId: 1, deviceId: 'mac' }, lookup)).toEqual({ ownerUserId: 1, teamIds: [10] });
    expect(deviceScope({ kind: 'user', userId: 1, deviceId: undefined }, lookup)).toEqual({ ownerUserId: 1, teamIds: [] });
  });
});

describe('task ownership', () => {
  const lookup = { isMember: (teamId: number, userId: number) => teamId === 10 && userId === 1 };
  const callers: Record<string, Principal> = {
    user1: { kind: 'user', keyId: 1, userId: 1 },
    user2: { kind: 'user', keyId: 2, userId: 2 },
    team10: { kind: 'team', keyId: 3, teamId: 10 },
    team11: { kind: 'team', keyId: 4, teamId: 11 },
    admin: { kind: 'admin', keyId: 5 },
    taskKeyTeam10: { kind: 'task', keyId: 6, taskId: 't', owner: { type: 'TEAM', id: 10 } },
    taskKeyUser2: { kind: 'task', keyId: 7, taskId: 't', owner: { type: 'USER', id: 2 } },
  };
  const table: [string, { type: 'TEAM' | 'USER'; id: number }, boolean][] = [
    ['user1', { type: 'USER', id: 1 }, true],
    ['user1', { type: 'TEAM', id: 10 }, true],
    ['user1', { type: 'TEAM', id: 11 }, false],
    ['user2', { type: 'USER', id: 1 }, false],
    ['team10', { type: 'TEAM', id: 10 }, true],
    ['team10', { type: 'USER', id: 1 }, false],
    ['team11', { type: 'TEAM', id: 10 }, false],
    ['admin', { type: 'USER', id: 1 }, false],
    ['taskKeyTeam10', { type: 'TEAM', id: 10 }, true],
    ['taskKeyUser2', { type: 'USER', id: 2 }, true],
    ['taskKeyUser2', { type: 'USER', id: 1 }, false],
  ];
  it.each(table)('%s owns %o: %s', (caller, owner, expected) => {
    expect(callerOwns(callers[caller]!, owner, lookup)).toBe(expected);
  });
});

describe('assignment frame', () => {
  const record: TaskRecord = {
    id: 'task-1',
    title: 'Fix it',
    prompt: 'Fix the build',
    owner: { type: 'TEAM', id: 3 },
    agentConfig: { model_id: 'm' },
    deviceId: undefined,
    state: 'queued',
    workerId: undefined,
    executionId: undefined,
    reportedExecutionId: undefined,
    attempts: 0,
    exitCode: undefined,
    failureReason: undefined,
    message: undefined,
    createdAt: '2026-11-22T10:00:00.123Z',
    updatedAt: '2026-11-22T10:00:01.000Z',
    assignedAt: undefined,
    claimedAt: undefined,
    finishedAt: undefined,
    cancelRequestedAt: undefined,
  };
  it('serialises the owner as the Warp server does and carries the task key', () => {
    expect(buildAssignment(record, 'exec-1', 'ozl_key')).toEqual({
      type: 'task_assignment',
      data: {
        task_id: 'task-1',
        execution_id: 'exec-1',
        task: {
          id: 'task-1',
          title: 'Fix it',
          task_definition: { prompt: 'Fix the build' },
          created_at: '2026-11-22T10:00:00Z',
          updated_at: '2026-11-22T10:00:01Z',
          owner: { Type: 'TEAM', Id: 3 },
          agent_config_snapshot: { model_id: 'm' },
        },
        env_vars: { WARP_API_KEY: 'ozl_key' },
      },
    });
  });
  it('leaves the agent config out when the task has none', () => {
    expect(buildAssignment({ ...record, agentConfig: undefined }, 'e', 'k').data.task).not.toHaveProperty('agent_config_snapshot');
  });
});

describe('listen address', () => {
  it.each([
    ['127.0.0.1:7317', { host: '127.0.0.1', port: 7317 }],
    [':0', { host: '127.0.0.1', port: 0 }],
    ['[::1]:80', { host: '::1', port: 80 }],
    ['localhost:9', { host: 'localhost', port: 9 }],
  ])('parses %s', (text, expected) => expect(parseListen(text)).toEqual(expected));
  it.each(['7317', 'host:', 'a:b', '1.2.3.4:70000'])('refuses %s with the expected form', (text) => expect(() => parseListen(text)).toThrow(/host:port/));
  it.each([
    ['127.0.0.1', true],
    ['127.4.5.6', true],
    ['::1', true],
    ['localhost', true],
    ['0.0.0.0', false],
    ['192.168.1.2', false],
    ['::', false],
    ['example.com', false],
  ])('%s is loopback: %s', (host, expected) => expect(isLoopback(host)).toBe(expected));
});

describe('HTTP input bounds', () => {
  it.each([
    ['a scalar', 1, 0],
    ['an empty object', {}, 1],
    ['nested arrays', [[[1]]], 3],
    ['the deepest branch counts', { a: 1, b: { c: [{}] } }, 4],
  ] as const)('measures the depth of %s', (_name, value, depth) => {
    expect(jsonDepth(value)).toBe(depth);
  });

  it('measures 100,000 levels without overflowing the stack', () => {
    expect(jsonDepth(JSON.parse('['.repeat(100_000) + ']'.repeat(100_000)))).toBe(100_000);
  });

  it.each([
    ['', 100],
    ['limit=5', 5],
    ['limit=5000', 1000],
  ])('reads %j as %d', (text, value) => {
    expect(queryInt(new URLSearchParams(text), 'limit', { min: 1, cap: 1000, fallback: 100 })).toBe(value);
  });

  it.each(['limit=-1', 'limit=0', 'limit=abc', 'limit=1.5', 'limit=', 'limit=1e3'])('refuses %j', (text) => {
    expect(() => queryInt(new URLSearchParams(text), 'limit', { min: 1, cap: 1000, fallback: 100 })).toThrow(/limit must be a whole number, at least 1/);
  });
});
