// Running the worker from this clone as another (non-root) account. A clone
// inside a 0700 directory (what `mktemp -d` makes, and where CI puts it), run
// as root, is unreadable to that account, as is a Node provisioned inside it:
// then the bundle, the Node binary and the stand-in agent are copied where
// every user can read them, and removed at exit.
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, FAKE_OZ, REPO_ROOT } from './worker-process.js';

export interface RunnableFiles {
  node: string;
  bin: string;
  fakeOz: string;
  /** Where they came from: the clone itself, or a readable copy. */
  copied: boolean;
}

/** Whether the account can run `node` and read the given files. */
function canUse(account: { uid: number; gid: number }, node: string, files: string[]): boolean {
  const probe = spawnSync(node, ['-e', `for (const f of ${JSON.stringify(files)}) require('fs').accessSync(f, require('fs').constants.R_OK)`], {
    uid: account.uid,
    gid: account.gid,
    stdio: 'ignore',
  });
  return probe.status === 0;
}

let copy: RunnableFiles | undefined;

/** The worker's Node, bin and the stand-in agent, usable by `account`. */
export function runnableBy(account: { uid: number; gid: number }): RunnableFiles {
  if (canUse(account, process.execPath, [BIN, FAKE_OZ])) return { node: process.execPath, bin: BIN, fakeOz: FAKE_OZ, copied: false };
  if (copy) return copy;
  const dir = mkdtempSync(join(tmpdir(), 'oz-readable-install-'));
  chmodSync(dir, 0o755);
  copyFileSync(process.execPath, join(dir, 'node'));
  chmodSync(join(dir, 'node'), 0o755);
  for (const part of ['bin', 'dist', 'package.json']) cpSync(join(REPO_ROOT, part), join(dir, part), { recursive: true });
  copyFileSync(FAKE_OZ, join(dir, 'fake-oz.mjs'));
  chmodSync(join(dir, 'fake-oz.mjs'), 0o755);
  // A clone checked out under umask 077 has private files; the copies are everyone's to read.
  spawnSync('chmod', ['-R', 'a+rX', dir]);
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  copy = { node: join(dir, 'node'), bin: join(dir, 'bin', 'oz-worker.js'), fakeOz: join(dir, 'fake-oz.mjs'), copied: true };
  return copy;
}
