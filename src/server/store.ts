// Typed reads and writes of the local server's database. Synchronous (node:sqlite):
// the server is small and single-threaded, and every change is one short statement.
import { randomUUID } from 'node:crypto';
import type { DatabaseSync } from 'node:sqlite';
import { principalTag, type QueueSlice } from './access.js';
import type { AgentConfig } from './api-schemas.js';
import { generateKey, hashKey } from './credentials.js';
import type { Device, KeyInfo, OwnerType, Pin, Principal, QueuedTask, Team, TaskEvent, TaskOwner, TaskRecord, TaskState, User } from './records.js';

type Row = Record<string, unknown>;

const opt = <T>(value: unknown): T | undefined => (value === null || value === undefined ? undefined : (value as T));
const json = <T>(value: unknown): T | undefined => (typeof value === 'string' ? (JSON.parse(value) as T) : undefined);

function toTask(row: Row): TaskRecord {
  return {
    id: row.id as string,
    title: row.title as string,
    prompt: row.prompt as string,
    owner: { type: row.owner_type as OwnerType, id: Number(row.owner_id) },
    agentConfig: json<AgentConfig>(row.agent_config),
    deviceId: opt(row.device_id),
    state: row.state as TaskState,
    workerId: opt(row.worker_id),
    executionId: opt(row.execution_id),
    reportedExecutionId: opt(row.reported_execution_id),
    attempts: Number(row.attempts),
    exitCode: row.exit_code === null ? undefined : Number(row.exit_code),
    failureReason: opt(row.failure_reason),
    message: opt(row.message),
    createdAt: row.created_at as string,
    updatedAt: row.updated_at as string,
    assignedAt: opt(row.assigned_at),
    claimedAt: opt(row.claimed_at),
    finishedAt: opt(row.finished_at),
    cancelRequestedAt: opt(row.cancel_requested_at),
  };
}

const toQueued = (row: Row): QueuedTask => ({
  id: row.id as string,
  owner: { type: row.owner_type as OwnerType, id: Number(row.owner_id) },
  deviceId: opt(row.device_id),
});
const toUser = (row: Row): User => ({ id: Number(row.id), name: row.name as string, createdAt: row.created_at as string });
const toTeam = (row: Row): Team => ({
  id: Number(row.id),
  name: row.name as string,
  defaultAgentConfig: json<AgentConfig>(row.default_agent_config),
  createdAt: row.created_at as string,
});
const toKey = (row: Row): KeyInfo => ({
  id: Number(row.id),
  prefix: row.prefix as string,
  kind: row.kind as Principal['kind'],
  userId: row.user_id === null ? undefined : Number(row.user_id),
  teamId: row.team_id === null ? undefined : Number(row.team_id),
  taskId: opt(row.task_id),
  name: row.name as string,
  createdAt: row.created_at as string,
  revokedAt: opt(row.revoked_at),
});
const toDevice = (row: Row): Device => ({ id: row.id as string, userId: Number(row.user_id), name: row.name as string, createdAt: row.created_at as string });
const toPin = (row: Row): Pin => ({
  id: Number(row.id),
  deviceId: row.device_id as string,
  teamId: Number(row.team_id),
  createdAt: row.created_at as string,
  archivedAt: opt(row.archived_at),
});

/** The fields a state change may set; absent fields keep their value, `null` clears. */
export interface TaskUpdate {
  state?: TaskState;
  workerId?: string | null;
  executionId?: string | null;
  reportedExecutionId?: string | null;
  attempts?: number;
  exitCode?: number | null;
  failureReason?: string | null;
  message?: string | null;
  assignedAt?: string | null;
  claimedAt?: string | null;
  finishedAt?: string | null;
  cancelRequestedAt?: string | null;
}

const UPDATE_COLUMNS: Record<keyof TaskUpdate, string> = {
  state: 'state',
  workerId: 'worker_id',
  executionId: 'execution_id',
  reportedExecutionId: 'reported_execution_id',
  attempts: 'attempts',
  exitCode: 'exit_code',
  failureReason: 'failure_reason',
  message: 'message',
  assignedAt: 'assigned_at',
  claimedAt: 'claimed_at',
  finishedAt: 'finished_at',
  cancelRequestedAt: 'cancel_requested_at',
};

export class Store {
  constructor(
    private readonly db: DatabaseSync,
    private readonly now: () => Date = () => new Date(),
  ) {}

  private timestamp(): string {
    return this.now().toISOString();
  }

  close(): void {
    this.db.close();
  }

  /**
   * Runs a write with `RETURNING` and gives its row. Read with `all()`: `get()`
   * leaves such a statement unfinished, holding a snapshot that stops every WAL
   * checkpoint, so `-wal` grew with each write and the next write paid for all.
   */
  private returning(sql: string, ...params: (string | number | null)[]): Row {
    return this.db.prepare(sql).all(...params)[0] as Row;
  }

  // ---- users, teams, memberships -------------------------------------------

  createUser(name: string): User {
    const row = this.returning('INSERT INTO users (name, created_at) VALUES (?, ?) RETURNING *', name, this.timestamp());
    return toUser(row);
  }
  user(id: number): User | undefined {
    const row = this.db.prepare('SELECT * FROM users WHERE id = ?').get(id) as Row | undefined;
    return row && toUser(row);
  }
  userByName(name: string): User | undefined {
    const row = this.db.prepare('SELECT * FROM users WHERE name = ?').get(name) as Row | undefined;
    return row && toUser(row);
  }
  users(): User[] {
    return (this.db.prepare('SELECT * FROM users ORDER BY id').all() as Row[]).map(toUser);
  }

  createTeam(name: string): Team {
    const row = this.returning('INSERT INTO teams (name, created_at) VALUES (?, ?) RETURNING *', name, this.timestamp());
    return toTeam(row);
  }
  team(id: number): Team | undefined {
    const row = this.db.prepare('SELECT * FROM teams WHERE id = ?').get(id) as Row | undefined;
    return row && toTeam(row);
  }
  teams(): Team[] {
    return (this.db.prepare('SELECT * FROM teams ORDER BY id').all() as Row[]).map(toTeam);
  }
  setDefaultAgent(teamId: number, config: AgentConfig): void {
    this.db.prepare('UPDATE teams SET default_agent_config = ? WHERE id = ?').run(JSON.stringify(config), teamId);
  }

  addMember(teamId: number, userId: number): void {
    this.db.prepare('INSERT OR IGNORE INTO memberships (team_id, user_id, joined_at) VALUES (?, ?, ?)').run(teamId, userId, this.timestamp());
  }
  removeMember(teamId: number, userId: number): boolean {
    return Number(this.db.prepare('DELETE FROM memberships WHERE team_id = ? AND user_id = ?').run(teamId, userId).changes) > 0;
  }
  isMember(teamId: number, userId: number): boolean {
    return this.db.prepare('SELECT 1 FROM memberships WHERE team_id = ? AND user_id = ?').get(teamId, userId) !== undefined;
  }
  teamIdsOf(userId: number): number[] {
    return (this.db.prepare('SELECT team_id FROM memberships WHERE user_id = ? ORDER BY team_id').all(userId) as Row[]).map((r) => Number(r.team_id));
  }
  members(teamId: number): number[] {
    return (this.db.prepare('SELECT user_id FROM memberships WHERE team_id = ? ORDER BY user_id').all(teamId) as Row[]).map((r) => Number(r.user_id));
  }

  // ---- keys ------------------------------------------------------------------

  /** Creates a key and returns its secret (shown once) with its record. */
  createKey(
    spec: { kind: 'admin' } | { kind: 'user'; userId: number } | { kind: 'team'; teamId: number } | { kind: 'task'; taskId: string; owner: TaskOwner },
    name = '',
  ): { key: string; info: KeyInfo } {
    const { key, hash, prefix } = generateKey();
    const userId = spec.kind === 'user' ? spec.userId : spec.kind === 'task' && spec.owner.type === 'USER' ? spec.owner.id : null;
    const teamId = spec.kind === 'team' ? spec.teamId : spec.kind === 'task' && spec.owner.type === 'TEAM' ? spec.owner.id : null;
    const taskId = spec.kind === 'task' ? spec.taskId : null;
    const row = this.returning(
      'INSERT INTO api_keys (hash, prefix, kind, user_id, team_id, task_id, name, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING *',
      hash,
      prefix,
      spec.kind,
      userId,
      teamId,
      taskId,
      name,
      this.timestamp(),
    );
    return { key, info: toKey(row) };
  }

  /**
   * The principal behind a presented key, or undefined for unknown and revoked
   * keys. `taskKeysRevokedSince`: a task key revoked at or after that time is
   * still taken, marked with when it was revoked.
   */
  principal(key: string, options: { taskKeysRevokedSince?: string } = {}): Principal | undefined {
    const row = (
      options.taskKeysRevokedSince === undefined
        ? this.db.prepare('SELECT * FROM api_keys WHERE hash = ? AND revoked_at IS NULL').get(hashKey(key))
        : this.db
            .prepare("SELECT * FROM api_keys WHERE hash = ? AND (revoked_at IS NULL OR (kind = 'task' AND revoked_at >= ?))")
            .get(hashKey(key), options.taskKeysRevokedSince)
    ) as Row | undefined;
    if (!row) return undefined;
    const info = toKey(row);
    switch (info.kind) {
      case 'admin':
        return { kind: 'admin', keyId: info.id };
      case 'user':
        return { kind: 'user', keyId: info.id, userId: info.userId! };
      case 'team':
        return { kind: 'team', keyId: info.id, teamId: info.teamId! };
      case 'task':
        return {
          kind: 'task',
          keyId: info.id,
          taskId: info.taskId!,
          owner: info.teamId !== undefined ? { type: 'TEAM', id: info.teamId } : { type: 'USER', id: info.userId! },
          ...(info.revokedAt !== undefined ? { revokedAt: info.revokedAt } : {}),
        };
    }
  }
  keys(): KeyInfo[] {
    return (this.db.prepare("SELECT * FROM api_keys WHERE kind != 'task' ORDER BY id").all() as Row[]).map(toKey);
  }
  key(id: number): KeyInfo | undefined {
    const row = this.db.prepare('SELECT * FROM api_keys WHERE id = ?').get(id) as Row | undefined;
    return row && toKey(row);
  }
  revokeKey(id: number): boolean {
    return Number(this.db.prepare('UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL').run(this.timestamp(), id).changes) > 0;
  }
  /** Revokes the task's keys, all of them or all but one. */
  revokeTaskKeys(taskId: string, exceptKeyId?: number): void {
    this.db.prepare('UPDATE api_keys SET revoked_at = ? WHERE task_id = ? AND revoked_at IS NULL AND id != ?').run(this.timestamp(), taskId, exceptKeyId ?? -1);
  }

  // ---- devices and pins ------------------------------------------------------

  createDevice(userId: number, name: string, id: string = randomUUID()): Device {
    const row = this.returning('INSERT INTO devices (id, user_id, name, created_at) VALUES (?, ?, ?, ?) RETURNING *', id, userId, name, this.timestamp());
    return toDevice(row);
  }
  device(id: string): Device | undefined {
    const row = this.db.prepare('SELECT * FROM devices WHERE id = ?').get(id) as Row | undefined;
    return row && toDevice(row);
  }
  devices(): Device[] {
    return (this.db.prepare('SELECT * FROM devices ORDER BY created_at, id').all() as Row[]).map(toDevice);
  }
  createPin(deviceId: string, teamId: number): Pin {
    const row = this.returning('INSERT INTO pins (device_id, team_id, created_at) VALUES (?, ?, ?) RETURNING *', deviceId, teamId, this.timestamp());
    return toPin(row);
  }
  pin(id: number): Pin | undefined {
    const row = this.db.prepare('SELECT * FROM pins WHERE id = ?').get(id) as Row | undefined;
    return row && toPin(row);
  }
  pins(): Pin[] {
    return (this.db.prepare('SELECT * FROM pins ORDER BY id').all() as Row[]).map(toPin);
  }
  archivePin(id: number): boolean {
    return Number(this.db.prepare('UPDATE pins SET archived_at = ? WHERE id = ? AND archived_at IS NULL').run(this.timestamp(), id).changes) > 0;
  }
  /** Teams with an active pin on the device. */
  activePinTeams(deviceId: string): number[] {
    return (this.db.prepare('SELECT DISTINCT team_id FROM pins WHERE device_id = ? AND archived_at IS NULL ORDER BY team_id').all(deviceId) as Row[]).map((r) =>
      Number(r.team_id),
    );
  }

  // ---- tasks -------------------------------------------------------------------

  createTask(input: {
    title: string;
    prompt: string;
    owner: TaskOwner;
    agentConfig: AgentConfig | undefined;
    deviceId: string | undefined;
    /** Who submitted it (`principalTag`), for the per-principal queue cap. */
    submittedBy?: string;
  }): TaskRecord {
    const at = this.timestamp();
    const row = this.returning(
      `INSERT INTO tasks (id, title, prompt, owner_type, owner_id, agent_config, device_id, state, created_at, updated_at, submitted_by)
       VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?) RETURNING *`,
      randomUUID(),
      input.title,
      input.prompt,
      input.owner.type,
      input.owner.id,
      input.agentConfig === undefined ? null : JSON.stringify(input.agentConfig),
      input.deviceId ?? null,
      at,
      at,
      input.submittedBy ?? null,
    );
    const task = toTask(row);
    this.addEvent(task.id, 'created', `queued for ${task.owner.type} ${task.owner.id}${task.deviceId ? ` on device ${task.deviceId}` : ''}`);
    return task;
  }

  task(id: string): TaskRecord | undefined {
    const row = this.db.prepare('SELECT * FROM tasks WHERE id = ?').get(id) as Row | undefined;
    return row && toTask(row);
  }

  tasksInState(...states: TaskState[]): TaskRecord[] {
    const marks = states.map(() => '?').join(', ');
    return (this.db.prepare(`SELECT * FROM tasks WHERE state IN (${marks}) ORDER BY created_at, id`).all(...states) as Row[]).map(toTask);
  }

  /** Ids of the worker's tasks in one state (indexed; no task bodies read). */
  taskIdsOn(workerId: string, state: TaskState): string[] {
    return (this.db.prepare('SELECT id FROM tasks WHERE worker_id = ? AND state = ? ORDER BY created_at, id').all(workerId, state) as Row[]).map(
      (r) => r.id as string,
    );
  }

  /**
   * The oldest queued tasks in the given slices, at most `limit`, with only the
   * columns routing needs: one indexed read per slice, however long the queue.
   */
  queuedIn(slices: readonly QueueSlice[], limit: number): QueuedTask[] {
    if (slices.length === 0 || limit <= 0) return [];
    const select = this.db.prepare(
      `SELECT id, owner_type, owner_id, device_id, created_at FROM tasks
       WHERE state = 'queued' AND owner_type = ? AND owner_id = ? AND device_id IS ? ORDER BY created_at, id LIMIT ?`,
    );
    const rows = slices.flatMap((slice) => select.all(slice.ownerType, slice.ownerId, slice.deviceId, limit) as Row[]);
    rows.sort((a, b) => String(a.created_at).localeCompare(String(b.created_at)) || String(a.id).localeCompare(String(b.id)));
    return rows.slice(0, limit).map(toQueued);
  }

  /** The oldest queued tasks, ids and routing columns only. */
  oldestQueued(limit: number): QueuedTask[] {
    return (
      this.db.prepare("SELECT id, owner_type, owner_id, device_id FROM tasks WHERE state = 'queued' ORDER BY created_at, id LIMIT ?").all(limit) as Row[]
    ).map(toQueued);
  }

  /** How many of the principal's submissions wait for a worker (queued or assigned, not yet claimed). */
  waitingCount(submittedBy: string): number {
    const row = this.db.prepare("SELECT COUNT(*) AS n FROM tasks WHERE submitted_by = ? AND state IN ('queued', 'assigned')").get(submittedBy) as Row;
    return Number(row.n);
  }

  /**
   * Binds a worker id to a principal the first time it is used; returns the
   * principal it is bound to (the given one, or whoever had it first).
   */
  bindWorkerId(workerId: string, principal: string): string {
    this.db.prepare('INSERT OR IGNORE INTO worker_ids (worker_id, principal, bound_at) VALUES (?, ?, ?)').run(workerId, principal, this.timestamp());
    return (this.db.prepare('SELECT principal FROM worker_ids WHERE worker_id = ?').get(workerId) as Row).principal as string;
  }

  /** Tasks owned by any of the given owners, newest first. */
  tasksOwnedBy(owners: TaskOwner[], limit: number, state?: TaskState): TaskRecord[] {
    if (owners.length === 0) return [];
    const clauses = owners.map(() => '(owner_type = ? AND owner_id = ?)').join(' OR ');
    const params: (string | number)[] = owners.flatMap((o) => [o.type, o.id]);
    const stateClause = state ? ' AND state = ?' : '';
    if (state) params.push(state);
    params.push(limit);
    return (this.db.prepare(`SELECT * FROM tasks WHERE (${clauses})${stateClause} ORDER BY created_at DESC, id LIMIT ?`).all(...params) as Row[]).map(toTask);
  }

  updateTask(id: string, update: TaskUpdate): TaskRecord {
    const entries = Object.entries(update) as [keyof TaskUpdate, unknown][];
    const sets = entries.map(([field]) => `${UPDATE_COLUMNS[field]} = ?`);
    const values = entries.map(([, value]) => (value === undefined ? null : (value as string | number | null)));
    const row = this.returning(`UPDATE tasks SET ${[...sets, 'updated_at = ?'].join(', ')} WHERE id = ? RETURNING *`, ...values, this.timestamp(), id);
    return toTask(row);
  }

  /** Keeps a failed task's failure details (JSON text), replacing any kept before. */
  setFailureDetails(taskId: string, json: string): void {
    this.db.prepare('INSERT OR REPLACE INTO task_failure_details (task_id, details) VALUES (?, ?)').run(taskId, json);
  }

  /** A task's failure details as kept, parsed; undefined when it has none. */
  failureDetails(taskId: string): unknown {
    const row = this.db.prepare('SELECT details FROM task_failure_details WHERE task_id = ?').get(taskId) as Row | undefined;
    return json<unknown>(row?.details);
  }

  addEvent(taskId: string, kind: string, detail: string, data?: Record<string, unknown>): TaskEvent {
    const row = this.returning(
      'INSERT INTO task_events (task_id, at, kind, detail, data) VALUES (?, ?, ?, ?, ?) RETURNING *',
      taskId,
      this.timestamp(),
      kind,
      detail,
      data === undefined ? null : JSON.stringify(data),
    );
    return { seq: Number(row.seq), taskId, at: row.at as string, kind, detail, ...(data !== undefined ? { data } : {}) };
  }

  events(taskId: string, afterSeq = 0): TaskEvent[] {
    return (this.db.prepare('SELECT * FROM task_events WHERE task_id = ? AND seq > ? ORDER BY seq').all(taskId, afterSeq) as Row[]).map((row) => {
      const data = json<Record<string, unknown>>(row.data);
      return {
        seq: Number(row.seq),
        taskId,
        at: row.at as string,
        kind: row.kind as string,
        detail: row.detail as string,
        ...(data !== undefined ? { data } : {}),
      };
    });
  }

  /** The `event_uuid`s of the client events kept for the task. */
  clientEventUuids(taskId: string, kinds: readonly string[]): string[] {
    const marks = kinds.map(() => '?').join(', ');
    return (
      this.db
        .prepare(`SELECT json_extract(data, '$.event_uuid') AS uuid FROM task_events WHERE task_id = ? AND kind IN (${marks}) AND data IS NOT NULL`)
        .all(taskId, ...kinds) as Row[]
    ).map((row) => String(row.uuid));
  }

  /** Bytes of agent output kept for the task (its `stdout`/`stderr` events). */
  /** Bytes of a task's events of one kind (each counted as at least 1). */
  eventBytes(taskId: string, kind: string): number {
    const row = this.db
      .prepare('SELECT COALESCE(SUM(MAX(LENGTH(CAST(detail AS BLOB)), 1)), 0) AS bytes FROM task_events WHERE task_id = ? AND kind = ?')
      .get(taskId, kind) as Row;
    return Number(row.bytes);
  }

  outputBytes(taskId: string): number {
    const row = this.db
      .prepare("SELECT COALESCE(SUM(MAX(LENGTH(CAST(detail AS BLOB)), 1)), 0) AS bytes FROM task_events WHERE task_id = ? AND kind IN ('stdout', 'stderr')")
      .get(taskId) as Row;
    return Number(row.bytes);
  }

  // ---- removal -----------------------------------------------------------------
  // Users, teams and devices with task history stay (their ids are in the tasks,
  // and a reused id would inherit them); anything else about them goes with them,
  // keys included, so a removed identity can no longer authenticate.

  private ownsTasks(owner: TaskOwner): boolean {
    return this.db.prepare('SELECT 1 FROM tasks WHERE owner_type = ? AND owner_id = ? LIMIT 1').get(owner.type, owner.id) !== undefined;
  }

  removeUser(id: number): 'removed' | 'unknown' | 'has_tasks' | 'has_devices' {
    return this.transaction(() => {
      if (!this.user(id)) return 'unknown';
      if (this.ownsTasks({ type: 'USER', id })) return 'has_tasks';
      if (this.db.prepare('SELECT 1 FROM devices WHERE user_id = ? LIMIT 1').get(id) !== undefined) return 'has_devices';
      this.db.prepare('DELETE FROM memberships WHERE user_id = ?').run(id);
      this.db.prepare('DELETE FROM api_keys WHERE user_id = ?').run(id);
      // Ids can be reused: a later user with this id must not inherit its worker ids.
      this.db.prepare('DELETE FROM worker_ids WHERE principal = ?').run(principalTag({ kind: 'user', userId: id, deviceId: undefined })!);
      this.db.prepare('DELETE FROM users WHERE id = ?').run(id);
      return 'removed';
    });
  }

  removeTeam(id: number): 'removed' | 'unknown' | 'has_tasks' {
    return this.transaction(() => {
      if (!this.team(id)) return 'unknown';
      if (this.ownsTasks({ type: 'TEAM', id })) return 'has_tasks';
      this.db.prepare('DELETE FROM memberships WHERE team_id = ?').run(id);
      this.db.prepare('DELETE FROM api_keys WHERE team_id = ?').run(id);
      this.db.prepare('DELETE FROM pins WHERE team_id = ?').run(id);
      this.db.prepare('DELETE FROM worker_ids WHERE principal = ?').run(principalTag({ kind: 'team', teamId: id })!);
      this.db.prepare('DELETE FROM teams WHERE id = ?').run(id);
      return 'removed';
    });
  }

  removeDevice(id: string): 'removed' | 'unknown' | 'has_tasks' {
    return this.transaction(() => {
      if (!this.device(id)) return 'unknown';
      if (this.db.prepare('SELECT 1 FROM tasks WHERE device_id = ? LIMIT 1').get(id) !== undefined) return 'has_tasks';
      this.db.prepare('DELETE FROM pins WHERE device_id = ?').run(id);
      this.db.prepare('DELETE FROM devices WHERE id = ?').run(id);
      return 'removed';
    });
  }

  clearDefaultAgent(teamId: number): void {
    this.db.prepare('UPDATE teams SET default_agent_config = NULL WHERE id = ?').run(teamId);
  }

  /** Runs `work` in one transaction. */
  transaction<T>(work: () => T): T {
    this.db.exec('BEGIN');
    try {
      const result = work();
      this.db.exec('COMMIT');
      return result;
    } catch (error) {
      this.db.exec('ROLLBACK');
      throw error;
    }
  }
}
