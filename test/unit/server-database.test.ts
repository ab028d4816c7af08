// The local server's database file across versions: one written by the
// previous schema is migrated forward on open, keeping its tasks.
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openDatabase, SCHEMA_VERSION } from '../../src/server/database.js';
import { Store } from '../../src/server/store.js';
import { tempDir } from '../support/worker-process.js';

const dirs: { cleanup(): void }[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) dir.cleanup();
});

describe('server database migrations', () => {
  it('adds reported_execution_id to a version-2 file and keeps its tasks', async () => {
    const dir = tempDir('server-db');
    dirs.push(dir);
    const path = join(dir.path, 'server.db');
    // A file as the previous version left it: schema 2, no reported_execution_id column.
    const old = await openDatabase(path);
    old.exec('DROP TABLE task_failure_details; ALTER TABLE tasks DROP COLUMN reported_execution_id; PRAGMA user_version = 2;');
    const before = new Store(old).createTask({ title: 't', prompt: 'p', owner: { type: 'TEAM', id: 1 }, agentConfig: undefined, deviceId: undefined });
    old.close();

    const db = await openDatabase(path);
    expect((db.prepare('PRAGMA user_version').get() as { user_version: number }).user_version).toBe(SCHEMA_VERSION);
    const store = new Store(db);
    expect(store.task(before.id)).toMatchObject({ id: before.id, reportedExecutionId: undefined });
    expect(store.updateTask(before.id, { reportedExecutionId: 'exec-1' }).reportedExecutionId).toBe('exec-1');
    db.close();
  });

  it('adds the failure details table to a version-3 file; a task keeps its details, one without has none', async () => {
    const dir = tempDir('server-db');
    dirs.push(dir);
    const path = join(dir.path, 'server.db');
    const old = await openDatabase(path);
    old.exec('DROP TABLE task_failure_details; PRAGMA user_version = 3;');
    const owner = { type: 'TEAM' as const, id: 1 };
    const before = new Store(old).createTask({ title: 't', prompt: 'p', owner, agentConfig: undefined, deviceId: undefined });
    old.close();

    const db = await openDatabase(path);
    expect((db.prepare('PRAGMA user_version').get() as { user_version: number }).user_version).toBe(SCHEMA_VERSION);
    const store = new Store(db);
    expect(store.task(before.id)?.id).toBe(before.id);
    expect(store.failureDetails(before.id)).toBeUndefined();
    const details = { kubernetes: { schema_version: 1, observed_at: '2026-11-22T12:00:00.000Z', pod: { name: 'p', phase: 'Failed' } } };
    store.setFailureDetails(before.id, JSON.stringify(details));
    expect(store.failureDetails(before.id)).toEqual(details);
    db.close();
  });
});
