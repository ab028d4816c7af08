// Reads a worker's journal from disk as the test sees it, so a test can wait
// for a record to be written (the journal coalesces its appends) instead of
// sleeping before it kills the worker.
import { existsSync, readFileSync } from 'node:fs';
import { journalPath } from '../../src/worker/journal.js';

export interface JournalRecord {
  /** A status that entered the outbox. */
  m?: { type?: string; data?: { task_id?: string } };
  /** The task a leftover note belongs to, and the note. */
  t?: string;
  x?: { processes?: unknown[] };
  [key: string]: unknown;
}

/** The records written so far; a line still being written (or damaged) is skipped. */
export function journalRecords(stateDir: string, workerId: string): JournalRecord[] {
  const path = journalPath(stateDir, workerId);
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .flatMap((line) => {
      try {
        return [JSON.parse(line) as JournalRecord];
      } catch {
        return [];
      }
    });
}

/** Whether the journal holds the status `type` for `taskId`. */
export function journalHasStatus(stateDir: string, workerId: string, type: string, taskId: string): boolean {
  return journalRecords(stateDir, workerId).some((record) => record.m?.type === type && record.m.data?.task_id === taskId);
}
