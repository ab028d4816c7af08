// The side effects of `oz-worker service …` behind one small interface: files,
// accounts, commands. Tests drive the commands with a recording fake.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, readFile, realpath, rm, stat, writeFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { lookUpUser } from '../config/users.js';

export interface ServiceAccount {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

export interface PathInfo {
  uid: number;
  gid: number;
  /** Permission bits. */
  mode: number;
  isDirectory: boolean;
}

export interface CommandResult {
  ok: boolean;
  output: string;
}

export interface ServiceHost {
  platform: NodeJS.Platform;
  env: Readonly<Record<string, string | undefined>>;
  /** Whether this process may change the system. */
  isRoot(): boolean;
  currentUser(): string;
  lookUpUser(name: string): Promise<ServiceAccount | undefined>;
  /** undefined when there is nothing at the path; throws when it cannot be looked at. */
  pathInfo(path: string): Promise<PathInfo | undefined>;
  /** The path with symlinks resolved, undefined when it does not exist. */
  realPath(path: string): Promise<string | undefined>;
  readText(path: string): Promise<string>;
  /** Writes the file (creating its directory), then applies `mode`. */
  writeFile(path: string, text: string, mode: number): Promise<void>;
  removeFile(path: string): Promise<void>;
  /** Creates the directory and its parents; applies mode and owner to the last one. */
  makeDirectory(path: string, mode: number, owner?: { uid: number; gid: number }): Promise<void>;
  setOwnership(path: string, owner: { uid: number; gid: number }, mode: number): Promise<void>;
  run(command: string, args: string[]): Promise<CommandResult>;
  sleep(ms: number): Promise<void>;
  print(text: string): void;
  /** Why this machine's service manager cannot be used, or undefined when it can. */
  serviceManagerMissing(): string | undefined;
}

async function run(command: string, args: string[]): Promise<CommandResult> {
  try {
    const { stdout, stderr } = await promisify(execFile)(command, args, { timeout: 60_000 });
    return { ok: true, output: `${stdout}${stderr}` };
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string; message: string };
    return { ok: false, output: `${e.stdout ?? ''}${e.stderr ?? ''}` || e.message };
  }
}

/** macOS keeps accounts in Directory Services: ids from `id`, the home from dscl. */
async function lookUpMacUser(name: string): Promise<ServiceAccount | undefined> {
  const uid = await run('id', ['-u', name]);
  const gid = await run('id', ['-g', name]);
  if (!uid.ok || !gid.ok) return undefined;
  const home = await run('dscl', ['.', '-read', `/Users/${name}`, 'NFSHomeDirectory']);
  const path = /NFSHomeDirectory:\s*(\S.*)$/m.exec(home.output)?.[1]?.trim();
  return { name, uid: Number(uid.output.trim()), gid: Number(gid.output.trim()), home: path ?? `/Users/${name}` };
}

export const realServiceHost: ServiceHost = {
  platform: process.platform,
  env: process.env,
  isRoot: () => process.getuid?.() === 0,
  currentUser: () => userInfo().username,
  async lookUpUser(name) {
    if (process.platform === 'darwin') return lookUpMacUser(name);
    const found = lookUpUser(name);
    return found && { name: found.name, uid: found.uid, gid: found.gid, home: found.home };
  },
  async pathInfo(path) {
    try {
      const info = await stat(path);
      return { uid: info.uid, gid: info.gid, mode: info.mode & 0o7777, isDirectory: info.isDirectory() };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  },
  async realPath(path) {
    try {
      return await realpath(path);
    } catch {
      return undefined;
    }
  },
  readText: (path) => readFile(path, 'utf8'),
  async writeFile(path, text, mode) {
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, text, { mode });
    await chmod(path, mode);
  },
  async removeFile(path) {
    await rm(path, { force: true });
  },
  async makeDirectory(path, mode, owner) {
    await mkdir(path, { recursive: true, mode });
    if (owner) await chown(path, owner.uid, owner.gid);
    await chmod(path, mode);
  },
  async setOwnership(path, owner, mode) {
    await chown(path, owner.uid, owner.gid);
    await chmod(path, mode);
  },
  run,
  sleep: (ms) => sleep(ms),
  print: (text) => process.stdout.write(text.endsWith('\n') ? text : `${text}\n`),
  serviceManagerMissing() {
    if (process.platform === 'darwin') return undefined;
    // systemd creates this directory at boot; containers and WSL without systemd lack it.
    return existsSync('/run/systemd/system') ? undefined : 'systemd is not running on this machine (no /run/systemd/system)';
  },
};
