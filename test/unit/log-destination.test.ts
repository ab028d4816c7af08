import { describe, expect, it } from 'vitest';
import { LogDestination, type WriteFn } from '../../src/log/destination.js';

const error = (code: string): NodeJS.ErrnoException => Object.assign(new Error(code), { code });

describe('LogDestination', () => {
  it('writes lines in order, batching what arrives while a write is in flight', async () => {
    const written: string[] = [];
    const write: WriteFn = (_fd, buffer, cb) => setImmediate(() => (written.push(buffer.toString()), cb(null, buffer.length)));
    const destination = new LogDestination(1, write);
    destination.write('a\n');
    destination.write('b\n');
    destination.write('c\n');
    await new Promise<void>((resolve) => destination.flush(() => resolve()));
    expect(written).toEqual(['a\n', 'b\nc\n']);
  });

  it('gives up at the first EPIPE: later lines are dropped and flush calls back at once', async () => {
    let calls = 0;
    const write: WriteFn = (_fd, _buffer, cb) => setImmediate(() => (calls++, cb(error('EPIPE'), 0)));
    const destination = new LogDestination(1, write);
    destination.write('a\n');
    destination.write('b\n');
    await new Promise<void>((resolve) => destination.flush(() => resolve()));
    expect(destination.error?.code).toBe('EPIPE');
    destination.write('c\n');
    await new Promise<void>((resolve) => destination.flush(() => resolve()));
    expect(calls).toBe(1);
  });

  it('retries after EAGAIN and finishes short writes', async () => {
    const written: string[] = [];
    let attempt = 0;
    const write: WriteFn = (_fd, buffer, cb) =>
      setImmediate(() => {
        attempt++;
        if (attempt === 1) return cb(error('EAGAIN'), 0);
        const n = Math.min(2, buffer.length);
        written.push(buffer.subarray(0, n).toString());
        cb(null, n);
      });
    const destination = new LogDestination(1, write);
    destination.write('abcde\n');
    await new Promise<void>((resolve) => destination.flush(() => resolve()));
    expect(written.join('')).toBe('abcde\n');
  });

  it('holds a bounded backlog for a reader that stopped reading', () => {
    const write: WriteFn = () => {}; // never completes
    const destination = new LogDestination(1, write, 12);
    destination.write('first line\n'); // taken by the stuck write
    destination.write('12345\n');
    destination.write('678\n');
    destination.write('dropped\n');
    expect(destination.dropped).toBe(1);
  });
});
