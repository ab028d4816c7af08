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
  it('adds reported_execution_id and event data to a version-2 file and keeps its tasks and events', async () => {
    const dir = tempDir('server-db');
    dirs.push(dir);
    const path = join(dir.path, 'server.db');
    // A file as version 2 left it: no reported_execution_id column, no event data.
    const old = await openDatabase(path);
    const before = new Store(old).createTask({ title: 't', prompt: 'p', owner: { type: 'TEAM', id: 1 }, agentConfig: undefined, deviceId: undefined });
    old.exec(
      'DROP INDEX task_events_with_data; ALTER TABLE task_events DROP COLUMN data; DROP TABLE task_failure_details; ALTER TABLE tasks DROP COLUMN reported_execution_id; PRAGMA user_version = 2;',
    );
    old.close();

    const db = await openDatabase(path);
    expect((db.prepare('PRAGMA user_version').get() as { user_version: number }).user_version).toBe(SCHEMA_VERSION);
    const store = new Store(db);
    expect(store.task(before.id)).toMatchObject({ id: before.id, reportedExecutionId: undefined });
    expect(store.updateTask(before.id, { reportedExecutionId: 'exec-1' }).reportedExecutionId).toBe('exec-1');
    expect(store.events(before.id)).toEqual([expect.objectContaining({ kind: 'created' })]);
    expect(store.events(before.id)[0]).not.toHaveProperty('data');
    store.addEvent(before.id, 'setup', 'image pull took 1.2 s', { event_uuid: 'u-1', event_name: 'setup_worker_image_pull' });
    expect(store.events(before.id)[1]).toMatchObject({ kind: 'setup', data: { event_uuid: 'u-1', event_name: 'setup_worker_image_pull' } });
    expect(store.clientEventUuids(before.id, ['setup'])).toEqual(['u-1']);
    db.close();
  });

  it('adds the failure details table to a version-3 file; a task keeps its details, one without has none', async () => {
    const dir = tempDir('server-db');
    dirs.push(dir);
    const path = join(dir.path, 'server.db');
    const old = await openDatabase(path);
    const owner = { type: 'TEAM' as const, id: 1 };
    const before = new Store(old).createTask({ title: 't', prompt: 'p', owner, agentConfig: undefined, deviceId: undefined });
    old.exec('DROP INDEX task_events_with_data; ALTER TABLE task_events DROP COLUMN data; DROP TABLE task_failure_details; PRAGMA user_version = 3;');
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
