// `oz-worker server` answers malformed and hostile HTTP requests with a 4xx and
// a sentence, never a 500 or a reset, and tells a stranger nothing about which
// ids exist. Real server process, raw HTTP on loopback.
import { request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { startServerProcess, type ServerProcess } from '../support/server-process.js';

let s: ServerProcess | undefined;
afterEach(async () => {
  await s?.close();
  s = undefined;
});

interface Answer {
  status: number;
  body: { error?: string; code?: string };
}

/** One raw request: the path is sent as written, the body in the given chunks (chunked when there is more than one). */
function send(method: string, path: string, key: string, chunks: string[] = []): Promise<Answer> {
  const url = new URL(s!.httpUrl);
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' };
    if (chunks.length === 1) headers['Content-Length'] = String(Buffer.byteLength(chunks[0]!));
    const req = request({ host: url.hostname, port: url.port, method, path, headers }, (response) => {
      let text = '';
      response.on('data', (d: Buffer) => (text += d.toString()));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: JSON.parse(text) as Answer['body'] }));
      response.on('error', reject);
    });
    req.on('error', reject);
    for (const chunk of chunks) req.write(chunk);
    req.end();
  });
}

describe('HTTP edge cases', () => {
  it('answers a path with bad percent-encoding like an unknown id', async () => {
    s = await startServerProcess();
    const user = await s.createUser('u');
    const unknown = await send('GET', '/api/v1/tasks/00000000-0000-0000-0000-000000000000', user.key);
    expect(unknown).toEqual({ status: 403, body: { error: 'Forbidden', code: 'forbidden' } });
    for (const bad of ['%ZZ', '%E2%82', '%']) {
      expect(await send('GET', `/api/v1/tasks/${bad}`, user.key)).toEqual(unknown);
      expect(await send('POST', `/api/v1/tasks/${bad}/cancel`, user.key)).toEqual(unknown);
      expect(await send('GET', `/api/v1/tasks/${bad}/events`, user.key)).toEqual(unknown);
    }
    const pin = await send('POST', '/api/v1/pins/%zz/archive', s.adminKey);
    expect(pin.status).toBe(400);
    expect(pin.body).toMatchObject({ code: 'invalid_id', error: expect.stringMatching(/pin id must be a positive whole number/) });
    expect((await send('POST', '/api/v1/devices/%zz/pins', s.adminKey, ['{"team_id":1}'])).status).toBe(404);
  });

  it('refuses JSON nested 100,000 deep with 400, and keeps serving', async () => {
    s = await startServerProcess();
    const user = await s.createUser('u');
    const deep = (n: number) => '['.repeat(n) + ']'.repeat(n);
    for (const body of [
      `{"prompt":"x","agent_config":{"mcp_servers":{"deep":${deep(100_000)}}}}`,
      `{"prompt":"x","agent_config":${'{"a":'.repeat(40_000)}1${'}'.repeat(40_000)}}`,
    ]) {
      const answer = await send('POST', '/api/v1/tasks', user.key, [body]);
      expect(answer.status).toBe(400);
      expect(answer.body).toMatchObject({ code: 'invalid_json', error: expect.stringMatching(/nested deeper than 64 levels/) });
    }
    expect((await send('POST', '/api/v1/tasks', user.key, ['{"prompt":"still here"}'])).status).toBe(201);
  });

  it('answers a chunked body over 256 KiB with 413, not a reset', async () => {
    s = await startServerProcess();
    const user = await s.createUser('u');
    const chunk = 'x'.repeat(64 * 1024);
    const answer = await send('POST', '/api/v1/tasks', user.key, ['{"prompt":"', chunk, chunk, chunk, chunk, chunk, '"}']);
    expect(answer).toMatchObject({ status: 413, body: { code: 'body_too_large' } });
    expect((await send('POST', '/api/v1/tasks', user.key, ['{"prompt":"after"}'])).status).toBe(201);
  });

  it('refuses a limit, after or wait that is not a non-negative number', async () => {
    s = await startServerProcess();
    const user = await s.createUser('u');
    const task = await s.as(user.key).submitTask({ prompt: 'x' });
    for (const query of ['limit=-1', 'limit=abc', 'limit=0', 'limit=1.5']) {
      const answer = await send('GET', `/api/v1/tasks?${query}`, user.key);
      expect(answer, query).toMatchObject({
        status: 400,
        body: { code: 'invalid_query', error: expect.stringMatching(/limit must be a whole number, at least 1/) },
      });
    }
    for (const query of ['after=-1', 'after=x', 'wait=-5', 'wait=soon']) {
      expect((await send('GET', `/api/v1/tasks/${task.id}/events?${query}`, user.key)).status, query).toBe(400);
    }
    expect((await send('GET', '/api/v1/tasks?limit=2', user.key)).status).toBe(200);
    expect((await send('GET', '/api/v1/tasks?limit=5000', user.key)).status).toBe(200);
  });

  it('tells a non-member the same about a team that exists and one that does not', async () => {
    s = await startServerProcess();
    const outsider = await s.createUser('outsider');
    const team = await s.createTeam('private', { defaultAgent: { model_id: 'm' } });
    const body = (teamId: number) => [JSON.stringify({ prompt: 'x', owner: { type: 'TEAM', id: teamId } })];
    const existing = await send('POST', '/api/v1/tasks', outsider.key, body(team.id));
    const missing = await send('POST', '/api/v1/tasks', outsider.key, body(9999));
    expect(existing.status).toBe(403);
    expect(missing.status).toBe(existing.status);
    expect(missing.body.code).toBe(existing.body.code);
    expect(missing.body.error).toBe(existing.body.error!.replaceAll(`TEAM ${team.id}`, 'TEAM 9999'));
  });
});
