import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  classifyFailure,
  FAILURE_HINTS,
  FAILURE_REASONS,
  type FailureReason,
  goExitText,
  normaliseExitCode,
  TaskCancelled,
  TaskFailure,
  TaskTimedOut,
} from '../../src/task/failure.js';

const INTERRUPTED = 'The task was interrupted due to an infrastructure issue (context canceled). This is typically transient \u2014 please try again.';
const TIMED_OUT =
  'The task exceeded its maximum allowed execution time and was terminated. Consider breaking the task into smaller steps or increasing the timeout.';

function wrapped(message: string, cause: unknown): Error {
  return new Error(`${message}: ${(cause as Error).message}`, { cause });
}

describe('classifyFailure', () => {
  const cases: Array<{ name: string; error: unknown; source?: 'user' | 'shutdown'; reason: string; exitCode: number; message: string | RegExp }> = [
    { name: 'deadline exceeded', error: new TaskTimedOut(), reason: 'task_timeout', exitCode: 0, message: TIMED_OUT },
    { name: 'canceled', error: new TaskCancelled(), reason: 'task_cancelled', exitCode: 0, message: INTERRUPTED },
    {
      name: 'wrapped backend failure keeps its reason',
      error: wrapped('wrapped', new TaskFailure('image_pull', 'pull failed')),
      reason: 'image_pull',
      exitCode: 0,
      message: 'Failed to execute task: wrapped: pull failed',
    },
    { name: 'unknown plain error', error: new Error('boom'), reason: 'unknown', exitCode: 0, message: 'Failed to execute task: boom' },
    {
      name: 'exit code recorded on a wrapped failure',
      error: wrapped('outer', new TaskFailure('agent_invocation', 'oz agent exited with error: signal: terminated', { exitCode: 143 })),
      reason: 'agent_invocation',
      exitCode: 143,
      message: /signal: terminated/,
    },
    {
      name: 'cancellation wrapped inside an exec error reads as interruption',
      error: wrapped('exec failed', new TaskCancelled()),
      reason: 'task_cancelled',
      exitCode: 0,
      message: INTERRUPTED,
    },
    {
      name: 'cancellation overrides a backend reason',
      error: new TaskFailure('container_wait', 'wait failed', { cause: new TaskCancelled() }),
      reason: 'task_cancelled',
      exitCode: 0,
      message: INTERRUPTED,
    },
    {
      name: 'our shutdown turns a cancellation into graceful_shutdown',
      error: new TaskCancelled(),
      source: 'shutdown',
      reason: 'graceful_shutdown',
      exitCode: 0,
      message: /worker shut down/,
    },
    {
      name: 'SIGTERM exit during shutdown is graceful_shutdown',
      error: new TaskFailure('agent_invocation', 'oz agent exited with error: signal: terminated', { exitCode: 143 }),
      source: 'shutdown',
      reason: 'graceful_shutdown',
      exitCode: 143,
      message: /worker shut down/,
    },
    {
      name: 'another failure during shutdown keeps its reason',
      error: new TaskFailure('agent_invocation', 'oz agent exited with error: exit status 2', { exitCode: 2 }),
      source: 'shutdown',
      reason: 'agent_invocation',
      exitCode: 2,
      message: 'Failed to execute task: oz agent exited with error: exit status 2',
    },
  ];
  it.each(cases)('$name', ({ error, source, reason, exitCode, message }) => {
    const result = classifyFailure(error, source);
    expect(result.reason).toBe(reason);
    expect(result.phase).toBe('backend');
    expect(result.exitCode).toBe(exitCode);
    if (typeof message === 'string') expect(result.message).toBe(message);
    else expect(result.message).toMatch(message);
  });
});

describe('exit codes', () => {
  it.each([
    [2, undefined, 2],
    [null, 'SIGTERM', 143],
    [null, 'SIGKILL', 137],
    [null, 'SIGSEGV', 139],
    [0, undefined, 0],
  ])('exit %s / signal %s → %s', (code, signal, expected) => {
    expect(normaliseExitCode(code ?? undefined, signal ?? undefined)).toBe(expected);
  });

  it.each([
    [2, undefined, 'exit status 2'],
    [undefined, 'SIGTERM', 'signal: terminated'],
    [undefined, 'SIGKILL', 'signal: killed'],
    [undefined, 'SIGINT', 'signal: interrupt'],
    [undefined, 'SIGSEGV', 'signal: segmentation fault'],
  ])('Go exec text for exit %s / signal %s', (code, signal, text) => {
    expect(goExitText(code, signal)).toBe(text);
  });
});

describe('failure hints', () => {
  it('explains every failure reason in two sentences: what happened, then what to do', () => {
    expect(Object.keys(FAILURE_HINTS).sort()).toEqual([...FAILURE_REASONS].sort());
    for (const reason of FAILURE_REASONS) {
      const sentences = FAILURE_HINTS[reason].split(/(?<=\.) (?=[A-Z])/);
      expect(sentences.length, reason).toBeGreaterThanOrEqual(2);
      for (const sentence of sentences) expect(sentence, reason).toMatch(/^[A-Z].*\.$/);
      // What happened is said in words, not with the wire name (`image_pull`); config keys may appear in the advice.
      if (reason.includes('_')) expect(sentences[0], reason).not.toContain(reason);
    }
  });

  it.each<{ error: unknown; source?: 'user' | 'shutdown'; reason: FailureReason; mentions: RegExp }>([
    { error: new TaskFailure('image_pull', 'pull access denied'), reason: 'image_pull', mentions: /registry/ },
    { error: new TaskFailure('container_oom', 'exit 137', { exitCode: 137 }), reason: 'container_oom', mentions: /more memory/ },
    {
      error: new TaskFailure('agent_invocation', 'oz agent exited with error: exit status 2', { exitCode: 2 }),
      reason: 'agent_invocation',
      mentions: /--oz-path/,
    },
    { error: new TaskFailure('unschedulable', 'pod unschedulable'), reason: 'unschedulable', mentions: /capacity/ },
    { error: new TaskTimedOut(), reason: 'task_timeout', mentions: /time limit/ },
    { error: new TaskCancelled(), source: 'shutdown', reason: 'graceful_shutdown', mentions: /once the worker is back/ },
    { error: new Error('boom'), reason: 'unknown', mentions: /could not classify/ },
  ])('classifies $reason and attaches its hint', ({ error, source, reason, mentions }) => {
    const result = classifyFailure(error, source);
    expect(result.reason).toBe(reason);
    expect(result.hint).toBe(FAILURE_HINTS[reason]);
    expect(result.hint).toMatch(mentions);
    // The wire message keeps the Go worker's wording; the hint never replaces it.
    expect(result.message).not.toBe(result.hint);
  });
});

describe('docs/operations.md', () => {
  it('lists every failure reason with the hint the worker logs', () => {
    const doc = readFileSync(resolve(import.meta.dirname, '../../docs/operations.md'), 'utf8');
    for (const reason of FAILURE_REASONS) {
      const row = doc.split('\n').find((line) => line.startsWith(`| \`${reason}\` |`));
      expect(row, reason).toBeDefined();
      expect(row, reason).toContain(FAILURE_HINTS[reason]);
    }
  });
});
