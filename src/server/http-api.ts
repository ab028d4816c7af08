// The local server's JSON HTTP API. Every error is `{"error": <sentence>, "code": <stable code>}`;
// every task read or write goes through the tenant guard (`guardTask`), which
// answers 403 {"error":"Forbidden"} alike for someone else's task and a missing one.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { z } from 'zod';
import type { Logger } from '../log/logger.js';
import { callerOwns, guardTask, ownersVisibleTo, principalTag } from './access.js';
import {
  AddMemberSchema,
  CreateDeviceSchema,
  CreateKeySchema,
  CreatePinSchema,
  CreateTaskSchema,
  CreateTeamSchema,
  CreateUserSchema,
  DefaultAgentSchema,
  describeZodError,
  type AgentConfig,
} from './api-schemas.js';
import { bearerToken } from './credentials.js';
import { CLIENT_EVENTS_PATH_PREFIX, CLIENT_EVENTS_PATH_SUFFIX, ClientEventSchema } from '../protocol/client-events.js';
import { LATE_CLIENT_EVENT_MS, MAX_CLIENT_EVENT_BODY_BYTES, MAX_CLIENT_EVENTS_PER_TASK } from './client-events.js';
import type { Dispatcher } from './dispatcher.js';
import {
  TASK_STATES,
  TERMINAL_STATES,
  type Device,
  type KeyInfo,
  type Pin,
  type Principal,
  type TaskEvent,
  type TaskOwner,
  type TaskRecord,
  type TaskState,
  type User,
} from './records.js';
import type { Store } from './store.js';
import { errorMessage } from '../errors/error-message.js';

export const MAX_BODY_BYTES = 256 * 1024;
const MAX_WAIT_SECONDS = 30;

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const FORBIDDEN = (): ApiError => new ApiError(403, 'forbidden', 'Forbidden');

/**
 * A task as the API shows it; `waitingReason` says why a queued task waits (null
 * otherwise). `failureDetails`: a failed task's structured details, given for
 * one task's views (a list leaves them out).
 */
export function taskJson(task: TaskRecord, waitingReason?: string, failureDetails?: { value: unknown }): Record<string, unknown> {
  return {
    id: task.id,
    title: task.title,
    prompt: task.prompt,
    owner: { type: task.owner.type, id: task.owner.id },
    agent_config: task.agentConfig ?? null,
    device_id: task.deviceId ?? null,
    state: task.state,
    worker_id: task.workerId ?? null,
    execution_id: task.executionId ?? null,
    reported_execution_id: task.reportedExecutionId ?? null,
    attempts: task.attempts,
    exit_code: task.exitCode ?? null,
    failure_reason: task.failureReason ?? null,
    message: task.message ?? null,
    created_at: task.createdAt,
    updated_at: task.updatedAt,
    assigned_at: task.assignedAt ?? null,
    claimed_at: task.claimedAt ?? null,
    finished_at: task.finishedAt ?? null,
    cancel_requested_at: task.cancelRequestedAt ?? null,
    waiting_reason: task.state === 'queued' ? (waitingReason ?? null) : null,
    ...(failureDetails ? { failure_details: failureDetails.value ?? null } : {}),
  };
}

const eventJson = (event: TaskEvent): Record<string, unknown> => ({
  seq: event.seq,
  at: event.at,
  kind: event.kind,
  detail: event.detail,
  ...(event.data !== undefined ? { data: event.data } : {}),
});

interface Request {
  method: string;
  path: string[];
  query: URLSearchParams;
  caller: Principal;
  body: () => Promise<unknown>;
}

type Handler = (request: Request, params: string[]) => Promise<[number, unknown]> | [number, unknown];

interface RouteOptions {
  /** A smaller request body limit than MAX_BODY_BYTES. */
  maxBodyBytes?: number;
  /** Task keys revoked this recently (their task ended) still authenticate here; the handler sees `revokedAt`. */
  lateTaskKeysMs?: number;
}

interface Route extends RouteOptions {
  method: string;
  pattern: string[];
  handler: Handler;
}

/** Deeper JSON than any request needs; deeper input would overflow the stack of whatever walks it. */
export const MAX_JSON_DEPTH = 64;
/** Beyond the limit a body is read and dropped (so the 413 arrives, not a reset) up to this much, then the connection is cut. */
const MAX_DISCARDED_BYTES = 16 * 1024 * 1024;

const tooLarge = (limit: number): ApiError => new ApiError(413, 'body_too_large', `request body is larger than ${limit} bytes; send less`);

/** How deeply a parsed JSON value nests (iterative: the input may be deep). */
export function jsonDepth(value: unknown): number {
  let deepest = 0;
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length > 0) {
    const [current, depth] = stack.pop()!;
    if (current === null || typeof current !== 'object') continue;
    deepest = Math.max(deepest, depth + 1);
    for (const child of Object.values(current)) stack.push([child, depth + 1]);
  }
  return deepest;
}

function readBody(incoming: IncomingMessage, limit = MAX_BODY_BYTES): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const declared = Number(incoming.headers['content-length'] ?? 0);
    if (declared > limit) {
      reject(tooLarge(limit));
      incoming.resume();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    incoming.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit + MAX_DISCARDED_BYTES) incoming.destroy();
      else if (size <= limit) chunks.push(chunk);
    });
    incoming.on('end', () => {
      if (size > limit) {
        reject(tooLarge(limit));
        return;
      }
      const text = Buffer.concat(chunks).toString('utf8');
      if (text.trim() === '') {
        resolve(undefined);
        return;
      }
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch (error) {
        reject(new ApiError(400, 'invalid_json', `request body is not valid JSON (${errorMessage(error)})`));
        return;
      }
      if (jsonDepth(value) > MAX_JSON_DEPTH)
        reject(new ApiError(400, 'invalid_json', `request body is nested deeper than ${MAX_JSON_DEPTH} levels; flatten it`));
      else resolve(value);
    });
    incoming.on('error', reject);
  });
}

/** A path segment, percent-decoded; a malformed one is kept as sent, so it matches no id and gets the same answer as an unknown one. */
function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

/** A whole-number query parameter (at least `min`; larger values are capped at `cap`), its default when absent, otherwise a 400. */
export function queryInt(query: URLSearchParams, name: string, bounds: { min: number; cap: number; fallback: number }): number {
  const text = query.get(name);
  if (text === null) return bounds.fallback;
  const value = Number(text);
  if (!/^\d{1,15}$/.test(text) || value < bounds.min) {
    throw new ApiError(
      400,
      'invalid_query',
      `${name} must be a whole number, at least ${bounds.min} (at most ${bounds.cap} is used); got ${JSON.stringify(text)}`,
    );
  }
  return Math.min(value, bounds.cap);
}

async function parseBody<S extends z.ZodType>(request: Request, schema: S): Promise<z.infer<S>> {
  const body = await request.body();
  const result = schema.safeParse(body ?? {});
  if (!result.success) throw new ApiError(400, 'invalid_request', `invalid request body: ${describeZodError(result.error)}`);
  return result.data;
}

function positiveInt(text: string, what: string): number {
  const value = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(value) || value < 1)
    throw new ApiError(400, 'invalid_id', `${what} must be a positive whole number, got ${JSON.stringify(text)}`);
  return value;
}

function requireAdmin(caller: Principal): void {
  if (caller.kind !== 'admin') throw new ApiError(403, 'admin_required', "this route needs the server's admin key (see admin.key in the state directory)");
}

export interface HttpApiOptions {
  /** Called once a key is revoked: its live connections end. */
  onKeyRevoked?: (keyId: number) => void;
  /** Called once a user or team (`principalTag`) is removed, with its keys: its live connections end. */
  onPrincipalRemoved?: (principal: string) => void;
  /** Most tasks one principal may have waiting (queued or assigned); default 1000. */
  maxQueuedPerPrincipal?: number;
}

export const DEFAULT_MAX_QUEUED_PER_PRINCIPAL = 1000;

export class HttpApi {
  private readonly routes: Route[] = [];

  constructor(
    private readonly store: Store,
    private readonly dispatcher: Dispatcher,
    private readonly log: Logger,
    private readonly options: HttpApiOptions = {},
  ) {
    this.defineRoutes();
  }

  async handle(incoming: IncomingMessage, response: ServerResponse): Promise<void> {
    let status = 500;
    let payload: unknown;
    try {
      [status, payload] = await this.dispatch(incoming);
    } catch (error) {
      if (error instanceof ApiError) {
        status = error.status;
        payload = { error: error.message, code: error.code };
      } else {
        this.log.error({ err: errorMessage(error) }, 'HTTP API error');
        status = 500;
        payload = { error: 'internal server error; see the server log', code: 'internal' };
      }
    }
    const body = JSON.stringify(payload);
    response.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store' });
    response.end(body);
  }

  private async dispatch(incoming: IncomingMessage): Promise<[number, unknown]> {
    const url = new URL(incoming.url ?? '/', 'http://localhost');
    const method = incoming.method ?? 'GET';
    const path = url.pathname.split('/').filter(Boolean);
    if (method === 'GET' && url.pathname === '/healthz') return [200, { ok: true }];
    const matching = this.routes.filter(
      (route) => route.pattern.length === path.length && route.pattern.every((part, i) => part.startsWith(':') || part === path[i]),
    );
    if (matching.length === 0) throw new ApiError(404, 'not_found', `no route ${url.pathname}; see the API list in docs/local-server.md`);
    const route = matching.find((candidate) => candidate.method === method);
    if (!route) throw new ApiError(405, 'method_not_allowed', `${method} is not allowed on ${url.pathname}; use ${matching.map((r) => r.method).join(' or ')}`);

    const key = bearerToken(incoming.headers.authorization);
    const late = route.lateTaskKeysMs === undefined ? {} : { taskKeysRevokedSince: new Date(Date.now() - route.lateTaskKeysMs).toISOString() };
    const caller = key === undefined ? undefined : this.store.principal(key, late);
    if (!caller) throw new ApiError(401, 'unauthorized', 'missing or unknown API key: send "Authorization: Bearer <key>"');
    const params = route.pattern.flatMap((part, i) => (part.startsWith(':') ? [decodeSegment(path[i]!)] : []));
    let bodyPromise: Promise<unknown> | undefined;
    return route.handler({ method, path, query: url.searchParams, caller, body: () => (bodyPromise ??= readBody(incoming, route.maxBodyBytes)) }, params);
  }

  private route(method: string, path: string, handler: Handler, options: RouteOptions = {}): void {
    this.routes.push({ method, pattern: path.split('/').filter(Boolean), handler, ...options });
  }

  private taskView(task: TaskRecord): Record<string, unknown> {
    return taskJson(task, this.dispatcher.waitingReason(task.id));
  }

  /** One task's view: also its failure details (`failure_details`, null when it has none). */
  private oneTaskView(task: TaskRecord): Record<string, unknown> {
    return taskJson(task, this.dispatcher.waitingReason(task.id), { value: task.state === 'failed' ? this.store.failureDetails(task.id) : undefined });
  }

  /** The tenant guard for one task: the only way routes below reach a task. */
  private ownedTask(caller: Principal, taskId: string): TaskRecord {
    const task = guardTask(caller, taskId, this.store);
    if (!task) throw FORBIDDEN();
    return task;
  }

  private defineRoutes(): void {
    const { store, dispatcher } = this;

    this.route('GET', '/api/v1/whoami', ({ caller }) => [200, principalJson(caller)]);

    // ---- tasks ----
    this.route('POST', '/api/v1/tasks', async (request) => {
      const body = await parseBody(request, CreateTaskSchema);
      const owner = this.ownerFor(request.caller, body.owner);
      if (body.device_id !== undefined) this.checkDevice(owner, body.device_id);
      const agentConfig = this.agentConfigFor(owner, body.agent_config);
      const submittedBy = principalTag(request.caller)!;
      this.checkQueueRoom(submittedBy);
      const title = body.title ?? (body.prompt.length > 80 ? `${body.prompt.slice(0, 77)}...` : body.prompt);
      const task = store.createTask({ title, prompt: body.prompt, owner, agentConfig, deviceId: body.device_id, submittedBy });
      dispatcher.submitted(task);
      return [201, this.taskView(store.task(task.id) ?? task)];
    });
    this.route('GET', '/api/v1/tasks', ({ caller, query }) => {
      const stateText = query.get('state');
      let state: TaskState | undefined;
      if (stateText) {
        state = TASK_STATES.find((s) => s === stateText);
        if (!state) throw new ApiError(400, 'invalid_state', `unknown state ${JSON.stringify(stateText)}; use one of ${TASK_STATES.join(', ')}`);
      }
      const limit = queryInt(query, 'limit', { min: 1, cap: 1000, fallback: 100 });
      const owners = ownersVisibleTo(caller, (userId) => store.teamIdsOf(userId));
      // Each listed task passes the same ownership check as a single read.
      const tasks = store.tasksOwnedBy(owners, limit, state).filter((task) => callerOwns(caller, task.owner, store));
      return [200, { tasks: tasks.map((task) => this.taskView(task)) }];
    });
    this.route('GET', '/api/v1/tasks/:id', ({ caller }, [id]) => [200, this.oneTaskView(this.ownedTask(caller, id!))]);
    this.route('POST', '/api/v1/tasks/:id/cancel', ({ caller }, [id]) => {
      const task = this.ownedTask(caller, id!);
      const outcome = dispatcher.cancel(task);
      if (outcome === 'already_finished') throw new ApiError(409, 'already_finished', `task ${task.id} already ended (${task.state}); nothing to cancel`);
      return [outcome === 'cancelled' ? 200 : 202, { outcome, task: this.taskView(store.task(task.id)!) }];
    });
    this.route('GET', '/api/v1/tasks/:id/events', async ({ caller, query }, [id]) => {
      const task = this.ownedTask(caller, id!);
      const after = queryInt(query, 'after', { min: 0, cap: Number.MAX_SAFE_INTEGER, fallback: 0 });
      const waitSeconds = queryInt(query, 'wait', { min: 0, cap: MAX_WAIT_SECONDS, fallback: 0 });
      const events = await dispatcher.eventsAfter(task.id, after, waitSeconds * 1000);
      return [200, { task: this.oneTaskView(store.task(task.id)!), events: events.map(eventJson) }];
    });

    // ---- the run client-events call (a worker reporting a task's setup phases) ----
    this.route(
      'POST',
      `${CLIENT_EVENTS_PATH_PREFIX}:id${CLIENT_EVENTS_PATH_SUFFIX}`,
      async (request, [id]) => {
        const { caller } = request;
        // The task's own key, or its owner; another task's key is refused even when it speaks for the same owner.
        if (caller.kind === 'task' && caller.taskId !== id) throw FORBIDDEN();
        const task = this.ownedTask(caller, id!);
        if (caller.kind === 'task' && caller.revokedAt !== undefined && !TERMINAL_STATES.has(task.state)) {
          // Revoked while the task goes on (it was assigned again): that run's events are over.
          throw new ApiError(401, 'unauthorized', 'missing or unknown API key: send "Authorization: Bearer <key>"');
        }
        const event = await parseBody(request, ClientEventSchema);
        const outcome = dispatcher.recordClientEvent(task.id, event);
        if (outcome === 'full') {
          throw new ApiError(429, 'too_many_events', `task ${task.id} already has ${MAX_CLIENT_EVENTS_PER_TASK} client events, the most this server keeps`);
        }
        return [200, { stored: outcome === 'stored' }];
      },
      { maxBodyBytes: MAX_CLIENT_EVENT_BODY_BYTES, lateTaskKeysMs: LATE_CLIENT_EVENT_MS },
    );

    // ---- administration (admin key) ----
    this.route('POST', '/api/v1/users', async (request) => {
      requireAdmin(request.caller);
      const { name } = await parseBody(request, CreateUserSchema);
      if (store.userByName(name)) throw new ApiError(409, 'name_taken', `a user named ${JSON.stringify(name)} exists; pick another name`);
      return [201, userJson(store.createUser(name))];
    });
    this.route('GET', '/api/v1/users', ({ caller }) => {
      requireAdmin(caller);
      return [200, { users: store.users().map(userJson) }];
    });
    this.route('POST', '/api/v1/teams', async (request) => {
      requireAdmin(request.caller);
      const { name } = await parseBody(request, CreateTeamSchema);
      if (store.teams().some((team) => team.name === name))
        throw new ApiError(409, 'name_taken', `a team named ${JSON.stringify(name)} exists; pick another name`);
      return [201, teamJson(store.createTeam(name), [])];
    });
    this.route('GET', '/api/v1/teams', ({ caller }) => {
      requireAdmin(caller);
      return [200, { teams: store.teams().map((team) => teamJson(team, store.members(team.id))) }];
    });
    this.route('POST', '/api/v1/teams/:id/members', async (request, [teamText]) => {
      requireAdmin(request.caller);
      const teamId = this.existingTeam(teamText!);
      const { user_id: userId } = await parseBody(request, AddMemberSchema);
      if (!store.user(userId)) throw new ApiError(404, 'unknown_user', `user ${userId} does not exist; create it with POST /api/v1/users`);
      store.addMember(teamId, userId);
      return [200, teamJson(store.team(teamId)!, store.members(teamId))];
    });
    this.route('DELETE', '/api/v1/teams/:id/members/:user', ({ caller }, [teamText, userText]) => {
      requireAdmin(caller);
      const teamId = this.existingTeam(teamText!);
      const userId = positiveInt(userText!, 'user id');
      if (!store.removeMember(teamId, userId)) throw new ApiError(404, 'not_a_member', `user ${userId} is not a member of team ${teamId}`);
      return [200, teamJson(store.team(teamId)!, store.members(teamId))];
    });
    this.route('PUT', '/api/v1/teams/:id/default-agent', async (request, [teamText]) => {
      requireAdmin(request.caller);
      const teamId = this.existingTeam(teamText!);
      const { agent_config: config } = await parseBody(request, DefaultAgentSchema);
      store.setDefaultAgent(teamId, config);
      return [200, teamJson(store.team(teamId)!, store.members(teamId))];
    });
    this.route('POST', '/api/v1/keys', async (request) => {
      requireAdmin(request.caller);
      const body = await parseBody(request, CreateKeySchema);
      if (body.user_id !== undefined) {
        if (!store.user(body.user_id)) throw new ApiError(404, 'unknown_user', `user ${body.user_id} does not exist`);
        const { key, info } = store.createKey({ kind: 'user', userId: body.user_id }, body.name);
        return [201, { key, ...keyJson(info) }];
      }
      const teamId = body.team_id!;
      if (!store.team(teamId)) throw new ApiError(404, 'unknown_team', `team ${teamId} does not exist`);
      const { key, info } = store.createKey({ kind: 'team', teamId }, body.name);
      return [201, { key, ...keyJson(info) }];
    });
    this.route('GET', '/api/v1/keys', ({ caller }) => {
      requireAdmin(caller);
      return [200, { keys: store.keys().map(keyJson) }];
    });
    this.route('DELETE', '/api/v1/keys/:id', ({ caller }, [idText]) => {
      requireAdmin(caller);
      const id = positiveInt(idText!, 'key id');
      if (!store.revokeKey(id)) throw new ApiError(404, 'unknown_key', `key ${id} does not exist or is already revoked`);
      this.options.onKeyRevoked?.(id);
      return [200, keyJson(store.key(id)!)];
    });
    this.route('POST', '/api/v1/devices', async (request) => {
      requireAdmin(request.caller);
      const body = await parseBody(request, CreateDeviceSchema);
      if (!store.user(body.user_id)) throw new ApiError(404, 'unknown_user', `user ${body.user_id} does not exist`);
      if (body.id !== undefined && store.device(body.id)) throw new ApiError(409, 'device_exists', `device ${body.id} is already registered`);
      return [201, deviceJson(store.createDevice(body.user_id, body.name, body.id))];
    });
    this.route('GET', '/api/v1/devices', ({ caller }) => {
      requireAdmin(caller);
      return [200, { devices: store.devices().map(deviceJson) }];
    });
    this.route('POST', '/api/v1/devices/:id/pins', async (request, [deviceId]) => {
      requireAdmin(request.caller);
      if (!store.device(deviceId!)) throw new ApiError(404, 'unknown_device', `device ${deviceId} is not registered`);
      const { team_id: teamId } = await parseBody(request, CreatePinSchema);
      if (!store.team(teamId)) throw new ApiError(404, 'unknown_team', `team ${teamId} does not exist`);
      const pin = store.createPin(deviceId!, teamId);
      dispatcher.pump();
      return [201, pinJson(pin)];
    });
    this.route('GET', '/api/v1/pins', ({ caller }) => {
      requireAdmin(caller);
      return [200, { pins: store.pins().map(pinJson) }];
    });
    this.route('POST', '/api/v1/pins/:id/archive', ({ caller }, [idText]) => {
      requireAdmin(caller);
      const id = positiveInt(idText!, 'pin id');
      if (!store.archivePin(id)) throw new ApiError(404, 'unknown_pin', `pin ${id} does not exist or is already archived`);
      return [200, pinJson(store.pin(id)!)];
    });
    this.route('DELETE', '/api/v1/users/:id', ({ caller }, [idText]) => {
      requireAdmin(caller);
      const id = positiveInt(idText!, 'user id');
      const outcome = store.removeUser(id);
      if (outcome === 'unknown') throw new ApiError(404, 'unknown_user', `user ${id} does not exist`);
      if (outcome === 'has_tasks')
        throw new ApiError(409, 'has_tasks', `user ${id} owns tasks, so it stays; revoke its keys and remove it from its teams instead`);
      if (outcome === 'has_devices') throw new ApiError(409, 'has_devices', `user ${id} still has devices; remove them first`);
      this.options.onPrincipalRemoved?.(principalTag({ kind: 'user', userId: id, deviceId: undefined })!);
      return [200, { removed: { user_id: id } }];
    });
    this.route('DELETE', '/api/v1/teams/:id', ({ caller }, [idText]) => {
      requireAdmin(caller);
      const id = positiveInt(idText!, 'team id');
      const outcome = store.removeTeam(id);
      if (outcome === 'unknown') throw new ApiError(404, 'unknown_team', `team ${id} does not exist`);
      if (outcome === 'has_tasks') throw new ApiError(409, 'has_tasks', `team ${id} owns tasks, so it stays; revoke its keys and remove its members instead`);
      this.options.onPrincipalRemoved?.(principalTag({ kind: 'team', teamId: id })!);
      return [200, { removed: { team_id: id } }];
    });
    this.route('DELETE', '/api/v1/teams/:id/default-agent', ({ caller }, [teamText]) => {
      requireAdmin(caller);
      const teamId = this.existingTeam(teamText!);
      store.clearDefaultAgent(teamId);
      return [200, teamJson(store.team(teamId)!, store.members(teamId))];
    });
    this.route('DELETE', '/api/v1/devices/:id', ({ caller }, [deviceId]) => {
      requireAdmin(caller);
      const outcome = store.removeDevice(deviceId!);
      if (outcome === 'unknown') throw new ApiError(404, 'unknown_device', `device ${deviceId} is not registered`);
      if (outcome === 'has_tasks') throw new ApiError(409, 'has_tasks', `tasks were routed to device ${deviceId}, so it stays; archive its pins instead`);
      return [200, { removed: { device_id: deviceId } }];
    });
    this.route('GET', '/api/v1/workers', ({ caller }) => {
      requireAdmin(caller);
      return [
        200,
        {
          workers: dispatcher.connectedWorkers.map((w) => ({
            worker_id: w.workerId,
            identity: w.identity,
            version: w.version ?? null,
            active_tasks: w.activeTasks,
            draining: w.draining,
          })),
        },
      ];
    });
  }

  private existingTeam(text: string): number {
    const teamId = positiveInt(text, 'team id');
    if (!this.store.team(teamId)) throw new ApiError(404, 'unknown_team', `team ${teamId} does not exist; list teams with GET /api/v1/teams`);
    return teamId;
  }

  /** The task's owner: as asked, if the caller owns such tasks; by default the caller itself. */
  private ownerFor(caller: Principal, requested: TaskOwner | undefined): TaskOwner {
    if (caller.kind === 'admin') {
      throw new ApiError(403, 'owner_required', 'the admin key owns no tasks; submit with a user key or a team key');
    }
    const owner: TaskOwner =
      requested ?? (caller.kind === 'user' ? { type: 'USER', id: caller.userId } : caller.kind === 'team' ? { type: 'TEAM', id: caller.teamId } : caller.owner);
    // A team that does not exist gets the same answer as one the caller is not in: ids cannot be probed.
    if (!callerOwns(caller, owner, this.store) || (owner.type === 'TEAM' && !this.store.team(owner.id))) {
      throw new ApiError(
        403,
        'forbidden',
        `you cannot create tasks for ${owner.type} ${owner.id}; use a key of that ${owner.type === 'TEAM' ? 'team or one of its members' : 'user'}`,
      );
    }
    return owner;
  }

  /**
   * A task routed to a device must be one some worker could ever take: for a user
   * task, one of that user's devices; for a team task, a device with an active pin
   * for the team whose owner is a member. A device that does not exist gets the
   * same answer, so device ids cannot be probed.
   */
  private checkDevice(owner: TaskOwner, deviceId: string): void {
    const device = this.store.device(deviceId);
    if (owner.type === 'USER') {
      if (device?.userId === owner.id) return;
      throw new ApiError(400, 'device_not_allowed', `device ${deviceId} is not one of USER ${owner.id}'s devices; name one of theirs or leave device_id out`);
    }
    if (device && this.store.activePinTeams(deviceId).includes(owner.id) && this.store.isMember(owner.id, device.userId)) return;
    throw new ApiError(
      400,
      'device_not_allowed',
      `device ${deviceId} has no active pin for team ${owner.id} (with its owner a member), so no worker would take the task; pin it first (POST /api/v1/devices/:id/pins, admin) or leave device_id out`,
    );
  }

  /** Each user or team may have so many tasks waiting for a worker; one more is a 429. */
  private checkQueueRoom(submittedBy: string): void {
    const limit = this.options.maxQueuedPerPrincipal ?? DEFAULT_MAX_QUEUED_PER_PRINCIPAL;
    const waiting = this.store.waitingCount(submittedBy);
    if (waiting < limit) return;
    throw new ApiError(
      429,
      'queue_full',
      `you have ${waiting} tasks waiting for a worker, the most this server accepts (--max-queued-per-principal ${limit}); wait for some to start or cancel some`,
    );
  }

  /** The explicit configuration, else the owning team's default; a team without one is a 404. */
  private agentConfigFor(owner: TaskOwner, explicit: AgentConfig | undefined): AgentConfig | undefined {
    if (explicit !== undefined) return explicit;
    if (owner.type === 'USER') return undefined;
    const team = this.store.team(owner.id)!;
    if (!team.defaultAgentConfig) {
      throw new ApiError(
        404,
        'no_default_agent',
        `team ${team.id} (${team.name}) has no default agent configuration; pass "agent_config" with the task, or set one with PUT /api/v1/teams/${team.id}/default-agent`,
      );
    }
    return team.defaultAgentConfig;
  }
}

function teamJson(
  team: { id: number; name: string; defaultAgentConfig: AgentConfig | undefined; createdAt: string },
  members: number[],
): Record<string, unknown> {
  return { id: team.id, name: team.name, default_agent_config: team.defaultAgentConfig ?? null, members, created_at: team.createdAt };
}

const userJson = (user: User): Record<string, unknown> => ({ id: user.id, name: user.name, created_at: user.createdAt });
const deviceJson = (device: Device): Record<string, unknown> => ({ id: device.id, user_id: device.userId, name: device.name, created_at: device.createdAt });
const pinJson = (pin: Pin): Record<string, unknown> => ({
  id: pin.id,
  device_id: pin.deviceId,
  team_id: pin.teamId,
  active: pin.archivedAt === undefined,
  created_at: pin.createdAt,
  archived_at: pin.archivedAt ?? null,
});
const keyJson = (key: KeyInfo): Record<string, unknown> => ({
  id: key.id,
  prefix: key.prefix,
  kind: key.kind,
  user_id: key.userId ?? null,
  team_id: key.teamId ?? null,
  name: key.name,
  created_at: key.createdAt,
  revoked_at: key.revokedAt ?? null,
});

function principalJson(caller: Principal): Record<string, unknown> {
  switch (caller.kind) {
    case 'admin':
      return { kind: 'admin' };
    case 'user':
      return { kind: 'user', user_id: caller.userId };
    case 'team':
      return { kind: 'team', team_id: caller.teamId };
    case 'task':
      return { kind: 'task', task_id: caller.taskId, owner: caller.owner };
  }
}
