// `X-Warp-Worker-Version` on the upgrade: which values are sent (the Go
// worker's table, then byte-level edges), that every dial carries it, and that
// the local server reads back only what passes the same rule.
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { Connection } from '../../src/connection/connection.js';
import { Outbox } from '../../src/connection/outbox.js';
import { silentLogger, type Logger } from '../../src/log/logger.js';
import { announcedWorkerVersion, workerVersionHeaderValue } from '../../src/protocol/worker-version.js';
import { VERSION } from '../../src/version.js';

describe('workerVersionHeaderValue', () => {
  it.each<[string, string, string | undefined]>([
    // Go's table.
    ['a release build', 'v2026-08-04-15-14-28', 'v2026-08-04-15-14-28'],
    ['a development build', 'dev', 'dev'],
    ['a test build', 'test-build-1234', 'test-build-1234'],
    ['empty', '', undefined],
    ['129 bytes', 'v'.repeat(129), undefined],
    ['a newline (header injection)', 'v1\ninjected: header', undefined],
    ['a NUL', 'v1\u0000', undefined],
    // Edges of the same rule.
    ['exactly 128 bytes', 'v'.repeat(128), 'v'.repeat(128)],
    ['a tab', 'v1\t2', undefined],
    ['DEL', 'v1\u007f', undefined],
    ['a lone surrogate (no UTF-8 form)', 'v1-\ud800', undefined],
    ['non-ASCII: its UTF-8 bytes, carried as latin1', 'v1-é', 'v1-\u00c3\u00a9'],
    ['127 ASCII bytes and a two-byte character (129 bytes)', `${'v'.repeat(127)}é`, undefined],
  ])('%s', (_name, version, header) => {
    expect(workerVersionHeaderValue(version)).toBe(header);
  });
});

describe('announcedWorkerVersion (the local server)', () => {
  it.each<[string, string | string[] | undefined, string | undefined]>([
    ['a release build', 'v2026-08-04-15-14-28', 'v2026-08-04-15-14-28'],
    ['UTF-8 bytes as Node hands them over (latin1)', 'v1-\u00c3\u00a9', 'v1-é'],
    ['bytes that are not UTF-8', 'v1-\u00ff', undefined],
    ['no header', undefined, undefined],
    ['an empty header', '', undefined],
    ['too long', 'x'.repeat(129), undefined],
    ['a control character', 'v1\u0001', undefined],
    ['repeated (not a single value)', ['a', 'b'], undefined],
  ])('%s', (_name, header, version) => {
    expect(announcedWorkerVersion(header)).toBe(version);
  });
});

describe('the connection', () => {
  const closers: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const close of closers.splice(0)) await close();
  });

  /** A server that accepts each upgrade, records its headers, and closes the socket at once (so the worker dials again). */
  async function recordingServer(): Promise<{ url: string; upgrades: IncomingHttpHeaders[] }> {
    const upgrades: IncomingHttpHeaders[] = [];
    const http = createServer();
    const wss = new WebSocketServer({ server: http });
    wss.on('connection', (socket, request) => {
      upgrades.push(request.headers);
      socket.close(1000);
    });
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    closers.push(async () => {
      for (const client of wss.clients) client.terminate();
      await new Promise((resolve) => wss.close(resolve));
      await new Promise((resolve) => http.close(resolve));
    });
    return { url: `ws://127.0.0.1:${(http.address() as AddressInfo).port}/ws`, upgrades };
  }

  function connect(url: string, workerVersion: string | undefined, log: Logger = silentLogger()): Connection {
    const connection = new Connection({
      url,
      workerId: 'w',
      apiKey: 'key',
      ...(workerVersion === undefined ? {} : { workerVersion }),
      outbox: new Outbox(),
      log,
      onFrame: () => {},
      timings: { backoff: { initialMs: 1, maxMs: 1 } },
    });
    closers.unshift(() => connection.stop());
    connection.start();
    return connection;
  }

  async function until(check: () => boolean): Promise<void> {
    for (let i = 0; i < 500 && !check(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(check()).toBe(true);
  }

  it("sends this build's version on the first dial and on every reconnect", async () => {
    const server = await recordingServer();
    connect(server.url, undefined);
    await until(() => server.upgrades.length >= 3);
    expect(server.upgrades.map((h) => h['x-warp-worker-version'])).toEqual(server.upgrades.map(() => VERSION));
    expect(server.upgrades[0]!.authorization).toBe('Bearer key');
  });

  it('carries a non-ASCII version as its UTF-8 bytes, which the server reads back', async () => {
    const server = await recordingServer();
    connect(server.url, 'v1-é');
    await until(() => server.upgrades.length >= 1);
    expect(announcedWorkerVersion(server.upgrades[0]!['x-warp-worker-version'])).toBe('v1-é');
  });

  it('leaves an invalid version out, says so once without the value, and still connects', async () => {
    const server = await recordingServer();
    const warnings: unknown[][] = [];
    const log = { ...silentLogger(), warn: (...args: unknown[]) => void warnings.push(args) } as unknown as Logger;
    connect(server.url, 'v1\ninjected: header', log);
    await until(() => server.upgrades.length >= 2);
    expect(server.upgrades.every((h) => !('x-warp-worker-version' in h) && !('injected' in h))).toBe(true);
    const versionWarnings = warnings.filter((args) => JSON.stringify(args).includes('worker version'));
    expect(versionWarnings).toEqual([['Omitting invalid worker version metadata from the connection']]);
    expect(JSON.stringify(warnings)).not.toContain('injected');
  });
});
