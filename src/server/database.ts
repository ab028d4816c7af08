// The local server's embedded database (node:sqlite): one file in the state
// directory, schema versioned with `PRAGMA user_version` so an older file is
// migrated forward on open and a newer one is refused instead of misread.
import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import type { DatabaseSync } from 'node:sqlite';
import { errorMessage } from '../errors/error-message.js';

/** Each entry moves the schema one version forward; never edit a released entry, append a new one. */
const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
  );
  CREATE TABLE teams (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    default_agent_config TEXT,
    created_at TEXT NOT NULL
  );
  CREATE TABLE memberships (
    team_id INTEGER NOT NULL REFERENCES teams(id),
    user_id INTEGER NOT NULL REFERENCES users(id),
    joined_at TEXT NOT NULL,
    PRIMARY KEY (team_id, user_id)
  );
  CREATE TABLE api_keys (
    id INTEGER PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('admin', 'user', 'team', 'task')),
    user_id INTEGER REFERENCES users(id),
    team_id INTEGER REFERENCES teams(id),
    task_id TEXT,
    name TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    revoked_at TEXT
  );
  CREATE INDEX api_keys_task ON api_keys(task_id);
  CREATE TABLE devices (
    id TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    name TEXT NOT NULL,
    created_at TEXT NOT NULL
  );
  CREATE TABLE pins (
    id INTEGER PRIMARY KEY,
    device_id TEXT NOT NULL REFERENCES devices(id),
    team_id INTEGER NOT NULL REFERENCES teams(id),
    created_at TEXT NOT NULL,
    archived_at TEXT
  );
  CREATE TABLE tasks (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    prompt TEXT NOT NULL,
    owner_type TEXT NOT NULL CHECK (owner_type IN ('TEAM', 'USER')),
    owner_id INTEGER NOT NULL,
    agent_config TEXT,
    device_id TEXT REFERENCES devices(id),
    state TEXT NOT NULL,
    worker_id TEXT,
    execution_id TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    exit_code INTEGER,
    failure_reason TEXT,
    message TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    assigned_at TEXT,
    claimed_at TEXT,
    finished_at TEXT,
    cancel_requested_at TEXT
  );
  CREATE INDEX tasks_state ON tasks(state, created_at);
  CREATE TABLE task_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id TEXT NOT NULL REFERENCES tasks(id),
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL
  );
  CREATE INDEX task_events_task ON task_events(task_id, seq);
  `,
  // Worker ids bound to the user or team that first connected them; who submitted
  // each task (the per-principal queue cap); covering indexes for queue passes
  // (the routing columns sit after the prompt in a row: reading them from the
  // table walks the prompt's overflow pages).
  `
  CREATE TABLE worker_ids (
    worker_id TEXT PRIMARY KEY,
    principal TEXT NOT NULL,
    bound_at TEXT NOT NULL
  );
  ALTER TABLE tasks ADD COLUMN submitted_by TEXT;
  CREATE INDEX tasks_queue ON tasks(state, owner_type, owner_id, created_at, id, device_id);
  CREATE INDEX tasks_queue_order ON tasks(state, created_at, id, owner_type, owner_id, device_id);
  CREATE INDEX tasks_worker ON tasks(worker_id, state, created_at, id);
  CREATE INDEX tasks_submitter ON tasks(submitted_by, state);
  CREATE INDEX pins_device ON pins(device_id, archived_at);
  `,
  // The execution id a worker's final status named (workers before that field name none).
  `
  ALTER TABLE tasks ADD COLUMN reported_execution_id TEXT;
  `,
  // A failed task's structured failure details as the worker sent them (JSON, at
  // most 32 KiB); apart from the task row, which every queue pass and list reads.
  `
  CREATE TABLE task_failure_details (
    task_id TEXT PRIMARY KEY REFERENCES tasks(id),
    details TEXT NOT NULL
  );
  `,
  // An event's structured content, as JSON, beside the line a person reads (the
  // setup phases a task's worker reports through the run client-events call).
  // Only events with data are indexed (not every line of agent output), to find a posted event again by its uuid.
  `
  ALTER TABLE task_events ADD COLUMN data TEXT;
  CREATE INDEX task_events_with_data ON task_events(task_id, kind) WHERE data IS NOT NULL;
  `,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

export class DatabaseError extends Error {}

/** Opens (creating if needed) the database file and brings its schema up to date. */
export async function openDatabase(path: string): Promise<DatabaseSync> {
  let sqlite: typeof import('node:sqlite');
  try {
    sqlite = await import('node:sqlite');
  } catch {
    throw new DatabaseError(
      `the local server needs node:sqlite, which this Node.js (${process.version}) lacks; use Node.js 22.13 or newer (24 LTS recommended)`,
    );
  }
  let db: DatabaseSync;
  try {
    if (path !== ':memory:') createPrivately(path);
    db = new sqlite.DatabaseSync(path);
  } catch (error) {
    throw new DatabaseError(`cannot open the server database ${path}: ${errorMessage(error)}; check the --state-dir permissions`);
  }
  db.exec('PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;');
  migrate(db, path);
  return db;
}

/**
 * The database holds every task and key hash: owner-only whatever the umask.
 * SQLite creates `-wal` and `-shm` with the database file's mode, so making the
 * file first (0600) covers them; files an older version left readable are tightened.
 */
function createPrivately(path: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  closeSync(openSync(path, 'a', 0o600));
  for (const file of [path, `${path}-wal`, `${path}-shm`]) if (existsSync(file)) chmodSync(file, 0o600);
}

function migrate(db: DatabaseSync, path: string): void {
  const { user_version: current } = db.prepare('PRAGMA user_version').get() as { user_version: number };
  if (current > SCHEMA_VERSION) {
    db.close();
    throw new DatabaseError(
      `the server database ${path} has schema version ${current}, newer than this oz-worker understands (${SCHEMA_VERSION}); upgrade oz-worker or use another --state-dir`,
    );
  }
  for (let version = current; version < SCHEMA_VERSION; version++) {
    db.exec('BEGIN');
    try {
      db.exec(MIGRATIONS[version]!);
      db.exec(`PRAGMA user_version = ${version + 1}`);
      db.exec('COMMIT');
    } catch (error) {
      db.exec('ROLLBACK');
      throw new DatabaseError(`migrating the server database ${path} to version ${version + 1} failed: ${errorMessage(error)}`);
    }
  }
}
