// `local.json` in the state directory: where `oz-worker local` left its server
// and the demo keys, so `oz-worker task …` works with no flags afterwards.
// Owner-only, like any file that holds keys.
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';

export const LOCAL_SETTINGS_FILE = 'local.json';

const LocalSettingsSchema = z.object({
  server_url: z.string(),
  /** The demo user's key: what `oz-worker task` uses by default. */
  user_key: z.string(),
  /** The demo team's key: what the team's local worker connects with. */
  worker_key: z.string(),
  /** A key of the demo user: what the user's local worker connects with (absent in files from older versions). */
  user_worker_key: z.string().optional(),
  user_id: z.int(),
  team_id: z.int(),
});
export type LocalSettings = z.infer<typeof LocalSettingsSchema>;

export function readLocalSettings(stateDir: string): LocalSettings | undefined {
  let text: string;
  try {
    text = readFileSync(join(stateDir, LOCAL_SETTINGS_FILE), 'utf8');
  } catch {
    return undefined;
  }
  try {
    const parsed = LocalSettingsSchema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

export function writeLocalSettings(stateDir: string, settings: LocalSettings): void {
  const path = join(stateDir, LOCAL_SETTINGS_FILE);
  writeFileSync(path, `${JSON.stringify(settings, null, 2)}\n`, { mode: 0o600 });
  chmodSync(path, 0o600);
}
