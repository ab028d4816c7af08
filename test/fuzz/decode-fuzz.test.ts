// Protocol fuzzing at the decoder: well over 100,000 generated and mutated
// frames through decodeFrame. Each run is reproducible: the seed is fixed
// (FUZZ_SEED overrides it) and a failure names the seed and the shrunk frame.
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeFrame, type DecodedFrame } from '../../src/protocol/decode.js';
import { damagedTexts, expectedTaskId, FUZZ_SEED, mutatedFrames, randomBytesText, randomEnvelope, REGRESSION_FRAMES, render, validFrame } from './frames.js';

const PROTOTYPES = [Object.prototype, Array.prototype, Function.prototype, String.prototype];
/** Each built-in prototype's own properties and their values, before any frame was decoded. */
const baseline = PROTOTYPES.map((p) => {
  const names = Object.getOwnPropertyNames(p);
  return { names, values: names.map((n) => Object.getOwnPropertyDescriptor(p, n)!.value as unknown) };
});
let framesDecoded = 0;

/** A cheap assertion for the hot path (vitest's expect costs more than a decode). */
function check(condition: boolean, message: string, result?: unknown): asserts condition {
  if (!condition) throw new Error(`${message}: ${JSON.stringify(result)?.slice(0, 500)}`);
}

const nonEmptyString = (value: unknown): boolean => typeof value === 'string' && value.length > 0;

/** The decoder's contract for any frame: no throw, one well-formed result, no prototype reached. */
function decodeChecked(text: string): DecodedFrame {
  framesDecoded++;
  let result: DecodedFrame;
  try {
    result = decodeFrame(text);
  } catch (error) {
    throw new Error(`decodeFrame threw ${String(error)} for a frame of ${text.length} chars`);
  }
  switch (result.kind) {
    case 'assignment': {
      check(nonEmptyString(result.assignment.task_id), 'an assignment without a task id', result);
      check(typeof result.assignment.task === 'object' && result.assignment.task !== null, 'an assignment without a task', result);
      assertPlainTree(result.assignment);
      const servers = result.assignment.task.agent_config_snapshot?.mcp_servers;
      if (servers && Object.keys(servers).length > 0) {
        // The --mcp argument is JSON naming exactly the decoded servers.
        check(typeof result.mcpArgument === 'string', 'servers but no --mcp argument', result);
        const names = Object.keys(JSON.parse(result.mcpArgument) as object)
          .sort()
          .join('\0');
        check(names === Object.keys(servers).sort().join('\0'), '--mcp names differ from the decoded servers', result.mcpArgument);
      } else {
        check(result.mcpArgument === undefined, 'an --mcp argument without servers', result);
      }
      break;
    }
    case 'cancellation':
      check(nonEmptyString(result.taskId), 'a cancellation without a task id', result);
      break;
    case 'invalid':
      check(result.type === 'task_assignment' || result.type === 'task_cancellation', 'invalid of an unexpected type', result);
      check(result.taskId === undefined || nonEmptyString(result.taskId), 'invalid with an unusable task id', result);
      check(nonEmptyString(result.problem), 'invalid without a problem', result);
      break;
    case 'unparseable':
      check(nonEmptyString(result.problem), 'unparseable without a problem', result);
      break;
    case 'unknown':
      check(typeof result.type === 'string', 'unknown without a type', result);
      break;
    default:
      throw new Error(`unexpected result kind ${JSON.stringify(result)}`);
  }
  assertPrototypesClean();
  return result;
}

function assertPrototypesClean(): void {
  PROTOTYPES.forEach((p, i) => {
    const { names, values } = baseline[i]!;
    const now = Object.getOwnPropertyNames(p);
    if (now.length !== names.length) throw new Error(`a frame added properties to a built-in prototype: ${now.filter((n) => !names.includes(n)).join(', ')}`);
    names.forEach((name, j) => {
      if (Object.getOwnPropertyDescriptor(p, name)!.value !== values[j]) throw new Error(`a frame replaced the built-in ${name}`);
    });
  });
  check(({} as Record<string, unknown>).polluted === undefined, 'Object.prototype.polluted is set');
}

/** Every object the decoder built has an ordinary prototype (a `__proto__` key did not replace it). */
function assertPlainTree(root: unknown): void {
  const stack: unknown[] = [root];
  while (stack.length) {
    const value = stack.pop();
    if (value === null || typeof value !== 'object') continue;
    const proto = Object.getPrototypeOf(value) as unknown;
    if (proto !== Object.prototype && proto !== Array.prototype && proto !== null) {
      throw new Error(`a decoded object has a foreign prototype: ${JSON.stringify(proto)?.slice(0, 200)}`);
    }
    for (const key of Object.keys(value)) stack.push((value as Record<string, unknown>)[key]);
  }
}

function run<T>(name: string, arbitrary: fc.Arbitrary<T>, numRuns: number, check: (value: T) => void, seedOffset: number): void {
  const seed = FUZZ_SEED + seedOffset;
  try {
    fc.assert(
      fc.property(arbitrary, (value) => {
        check(value);
      }),
      { seed, numRuns, endOnFailure: false },
    );
  } catch (error) {
    throw new Error(`${name}: fuzz failure — reproduce with FUZZ_SEED=${FUZZ_SEED} (property seed ${seed})\n${(error as Error).message}`);
  }
}

// A fixed number of frames per case: on a loaded CI machine a case can take well over the default 30 s.
describe('decodeFrame under fuzzing', { timeout: 180_000 }, () => {
  afterAll(() => {
    // The suite's promise: at least 100,000 frames went through the decoder.
    expect(framesDecoded).toBeGreaterThanOrEqual(100_000);
  });

  it('handles the regression frames', () => {
    for (const frame of REGRESSION_FRAMES) decodeChecked(frame);
    expect(decodeChecked(REGRESSION_FRAMES[0]!)).toMatchObject({ kind: 'assignment', assignment: { task_id: 'proto-deep' } });
    const protoMcp = decodeChecked(REGRESSION_FRAMES[1]!);
    expect(protoMcp.kind).toBe('assignment');
    if (protoMcp.kind === 'assignment') expect(protoMcp.mcpArgument).toBe('{"srv":{"url":"https://x"}}');
    // An id only on an inherited-looking `__proto__` member is no id at all.
    expect(decodeChecked(REGRESSION_FRAMES[2]!)).toMatchObject({ kind: 'invalid', taskId: undefined });
    expect(decodeChecked(REGRESSION_FRAMES[7]!)).toMatchObject({ kind: 'invalid', type: 'task_assignment', taskId: 'nul' });
    expect(decodeChecked('{"type":"task_assignment","data":{"task_id":"big-int","task":{"owner":{"Type":"TEAM","Id":1e999}}}}')).toMatchObject({
      kind: 'invalid',
      taskId: 'big-int',
    });
  });

  it('random strings (arbitrary code units, lone surrogates included)', () => {
    run('strings', fc.string({ unit: 'binary', maxLength: 200 }), 35_000, (t) => void decodeChecked(t), 1);
  });

  it('random bytes decoded as UTF-8 or Latin-1', () => {
    run('bytes', randomBytesText, 30_000, (t) => void decodeChecked(t), 2);
  });

  it('envelopes around random JSON, with near-miss types and key spellings', () => {
    run('envelopes', randomEnvelope, 20_000, (t) => void decodeChecked(t), 3);
  });

  it('valid frames decode to the message they carry', () => {
    run(
      'valid',
      validFrame,
      1_500,
      (frame) => {
        const result = decodeChecked(render(frame));
        const expected = expectedTaskId(frame)!;
        if (expected.type === 'task_assignment')
          check(result.kind === 'assignment' && result.assignment.task_id === expected.taskId, 'valid assignment not decoded', result);
        else check(result.kind === 'cancellation' && result.taskId === expected.taskId, 'valid cancellation not decoded', result);
      },
      4,
    );
  });

  it('mutated frames: wrong types, nulls, huge and deep values, prototype keys, case-duplicated keys', () => {
    let invalidWithId = 0;
    run(
      'mutated',
      mutatedFrames(5),
      3_000,
      (frames) => {
        for (const frame of frames) {
          const result = decodeChecked(render(frame));
          const expected = expectedTaskId(frame);
          if (!expected) continue;
          // A usable task_id is never lost: the frame decodes, or is reported invalid *with that id*.
          if (result.kind === 'invalid') {
            invalidWithId++;
            check(result.type === expected.type && result.taskId === expected.taskId, `invalid without the task id ${expected.taskId}`, result);
          } else if (expected.type === 'task_assignment') {
            check(result.kind === 'assignment' && result.assignment.task_id === expected.taskId, `expected assignment ${expected.taskId}`, result);
          } else {
            check(result.kind === 'cancellation' && result.taskId === expected.taskId, `expected cancellation ${expected.taskId}`, result);
          }
        }
      },
      5,
    );
    // The generator must actually reach the invalid-with-id path a good share of the time.
    expect(invalidWithId).toBeGreaterThan(2_000);
  });

  it('frames damaged as text (truncated, stray bytes, flipped characters)', () => {
    run('damaged', damagedTexts(6), 1_500, (texts) => texts.forEach((t) => void decodeChecked(t)), 6);
  });
});
