// `server.json` in the state directory: where the server that owns this state
// directory listens, so `oz-worker admin` (and anything else on this machine)
// finds a bare `oz-worker server` without being told its URL.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';

export const SERVER_ADDRESS_FILE = 'server.json';

const ServerAddressSchema = z.object({ url: z.string() });

export function writeServerAddress(stateDir: string, url: string): void {
  writeFileSync(join(stateDir, SERVER_ADDRESS_FILE), `${JSON.stringify({ url }, null, 2)}\n`, { mode: 0o600 });
}

export function readServerAddress(stateDir: string): string | undefined {
  try {
    const parsed = ServerAddressSchema.safeParse(JSON.parse(readFileSync(join(stateDir, SERVER_ADDRESS_FILE), 'utf8')));
    return parsed.success ? parsed.data.url : undefined;
  } catch {
    return undefined;
  }
}
