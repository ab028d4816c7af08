import { describe, expect, it } from 'vitest';
import { isPullMilestone, JsonLines, LogDemuxer, pullEventError, type LogStream, type PullEvent } from '../../src/backends/docker/streams.js';
import { logFrame } from '../support/fake-docker-engine.js';

function demux(chunks: Buffer[]): Array<[LogStream, string]> {
  const out: Array<[LogStream, string]> = [];
  const demuxer = new LogDemuxer((stream, data) => {
    const last = out.at(-1);
    if (last && last[0] === stream) last[1] += data.toString();
    else out.push([stream, data.toString()]);
  });
  for (const chunk of chunks) demuxer.push(chunk);
  return out;
}

describe('log stream demultiplexing', () => {
  const stream = Buffer.concat([logFrame(1, 'out one\n'), logFrame(2, 'err one\n'), logFrame(1, 'out two\n')]);

  it('separates stdout and stderr frames and drops the headers', () => {
    expect(demux([stream])).toEqual([
      ['stdout', 'out one\n'],
      ['stderr', 'err one\n'],
      ['stdout', 'out two\n'],
    ]);
  });

  it.each([1, 3, 7, 8, 9, 13])('gives the same result when chunks are split every %i bytes', (size) => {
    const chunks: Buffer[] = [];
    for (let i = 0; i < stream.length; i += size) chunks.push(stream.subarray(i, i + size));
    expect(demux(chunks)).toEqual(demux([stream]));
  });

  it('counts stdin frames (stream 0) as stdout and handles empty frames', () => {
    const header = Buffer.alloc(8);
    expect(demux([Buffer.concat([header, logFrame(2, 'e')])])).toEqual([['stderr', 'e']]);
    const stdin = Buffer.concat([Buffer.from([0, 0, 0, 0, 0, 0, 0, 1]), Buffer.from('x')]);
    expect(demux([stdin])).toEqual([['stdout', 'x']]);
  });
});

describe('pull progress stream', () => {
  function parse(chunks: string[]): PullEvent[] {
    const events: PullEvent[] = [];
    const lines = new JsonLines((event) => events.push(event));
    for (const chunk of chunks) lines.push(chunk);
    lines.end();
    return events;
  }

  it('parses CRLF-separated objects split anywhere', () => {
    const text =
      '{"status":"Pulling from library/ubuntu","id":"22.04"}\r\n{"status":"Downloading","progressDetail":{"current":1,"total":2},"id":"a"}\r\n{"status":"Status: Downloaded"}';
    const whole = parse([text]);
    expect(whole).toHaveLength(3);
    expect(parse(text.split(''))).toEqual(whole);
    expect(whole.map(isPullMilestone)).toEqual([true, false, true]);
  });

  it('finds the error a registry reports inside the stream', () => {
    const [event] = parse(['{"errorDetail":{"message":"manifest unknown"},"error":"manifest unknown"}\n']);
    expect(pullEventError(event!)).toBe('manifest unknown');
    expect(pullEventError({ error: 'only error' })).toBe('only error');
    expect(pullEventError({ status: 'ok' })).toBeUndefined();
  });

  it('skips garbage lines', () => {
    expect(parse(['not json\n', '{"status":"x"}\n', '[1]\n'])).toEqual([{ status: 'x' }]);
  });
});
