// Service definitions for running the worker in the background: a systemd unit
// on Linux and a launchd LaunchDaemon on macOS. Pure builders: the same text is
// written by `oz-worker service install` and shipped under deploy/.
import { posix } from 'node:path';

export const SYSTEMD_UNIT_NAME = 'oz-worker.service';
export const LAUNCHD_LABEL = 'dev.oz.worker';

/** The system account `service install` creates on Linux when no --user is given. */
export const SERVICE_USER = 'oz-worker';
export const SYSTEMD_CONFIG_DIR = '/etc/oz-worker';
/** The worker's state (its crash journal) and the service user's home. */
export const SYSTEMD_STATE_DIR = '/var/lib/oz-worker';
/** Where systemd keeps StateDirectory= entries. */
const SYSTEMD_STATE_ROOT = '/var/lib';
/** The name of the key among the unit's credentials (LoadCredential=). */
const KEY_CREDENTIAL = 'api-key';
/** Where systemd puts the unit's credentials ($CREDENTIALS_DIRECTORY; %d needs systemd 251). */
export const CREDENTIAL_KEY_PATH = `/run/credentials/${SYSTEMD_UNIT_NAME}/${KEY_CREDENTIAL}`;
/** LoadCredential= came with systemd 247. */
export const CREDENTIALS_SINCE_SYSTEMD = 247;

/** Extra time the service manager grants beyond the worker's own grace period. */
const STOP_MARGIN_SECONDS = 10;

/**
 * How the unit hands the API key to the worker.
 * `credential`: the file stays root's; systemd copies it at each start into a
 * directory only the service's user can read (LoadCredential=).
 * `owned-file`: (systemd < 247) the file itself belongs to the service user, mode 0600.
 */
export type KeyDelivery = { kind: 'credential'; sourceFile: string } | { kind: 'owned-file'; path: string };

export function keyDeliveryFor(systemdVersion: number | undefined, keyFile: string): KeyDelivery {
  // An unknown version (a --dry-run where systemd is not running) gets what any current systemd takes.
  return systemdVersion !== undefined && systemdVersion < CREDENTIALS_SINCE_SYSTEMD
    ? { kind: 'owned-file', path: keyFile }
    : { kind: 'credential', sourceFile: keyFile };
}

/** What the worker's unit makes writable: systemd-managed directories under /var/lib, other paths as they are. */
export interface WritableDirectories {
  /** StateDirectory= names (relative to /var/lib), created by systemd and owned by the service user. */
  stateDirectories: string[];
  /** ReadWritePaths= for directories outside /var/lib (created by `service install`). */
  readWritePaths: string[];
}

/**
 * Splits the directories the worker writes into StateDirectory= entries (those
 * under /var/lib) and ReadWritePaths=. A directory inside one already listed
 * adds nothing.
 */
export function writableDirectories(paths: readonly string[]): WritableDirectories {
  const stateDirectories: string[] = [];
  const readWritePaths: string[] = [];
  const covered = (path: string) =>
    [...stateDirectories.map((name) => posix.join(SYSTEMD_STATE_ROOT, name)), ...readWritePaths].some((dir) => path === dir || path.startsWith(`${dir}/`));
  for (const raw of paths) {
    const path = posix.normalize(raw).replace(/\/+$/, '') || '/';
    if (covered(path)) continue;
    if (path.startsWith(`${SYSTEMD_STATE_ROOT}/`)) stateDirectories.push(path.slice(SYSTEMD_STATE_ROOT.length + 1));
    else readWritePaths.push(path);
  }
  return { stateDirectories, readWritePaths };
}

export interface SystemdSpec {
  /** Absolute path of the node binary. */
  nodePath: string;
  /** Absolute path of bin/oz-worker.js. */
  binPath: string;
  configFile: string;
  /** Where the worker keeps its journal (--state-dir); a StateDirectory= of the unit. */
  stateDir: string;
  /** Further worker flags, after the ones the unit owns. */
  workerArgs: string[];
  key: KeyDelivery;
  /** Account the worker runs as. */
  user: string;
  /** Directories the worker writes besides its state directory (workspaces). */
  writablePaths: string[];
  /** Documentation= URIs. */
  documentation: string[];
  /** Graceful shutdown budget; the service manager waits a little longer. */
  graceSeconds: number;
}

function systemdQuote(arg: string): string {
  const quoted = /^[A-Za-z0-9_@+=:,./-]+$/.test(arg) ? arg : `"${arg.replace(/(["\\])/g, '\\$1')}"`;
  // % starts a specifier in ExecStart= and Environment=.
  return quoted.replace(/%/g, '%%');
}

/** The worker's command line: node, the bin, then the flags the service gives it. */
export function workerCommand(spec: Pick<SystemdSpec, 'nodePath' | 'binPath' | 'configFile' | 'stateDir' | 'workerArgs'>): string[] {
  return [spec.nodePath, spec.binPath, '--config-file', spec.configFile, '--state-dir', spec.stateDir, ...spec.workerArgs];
}

function keyLines(key: KeyDelivery): string {
  if (key.kind === 'credential') {
    return `# The key file stays root's; systemd copies it at each start into a directory only
# this service's user can read, and the worker reads that copy.
LoadCredential=${KEY_CREDENTIAL}:${systemdQuote(key.sourceFile)}
Environment=WARP_API_KEY_FILE=${CREDENTIAL_KEY_PATH}`;
  }
  return `# The key file belongs to the service's user alone (mode 0600); never the key itself here.
Environment=WARP_API_KEY_FILE=${systemdQuote(key.path)}`;
}

export function systemdUnit(spec: SystemdSpec): string {
  const dirs = writableDirectories([spec.stateDir, ...spec.writablePaths]);
  const readWrite = dirs.readWritePaths.length > 0 ? `ReadWritePaths=${dirs.readWritePaths.map(systemdQuote).join(' ')}\n` : '';
  return `[Unit]
Description=Oz cloud-agent worker (oz-worker)
${spec.documentation.length > 0 ? `Documentation=${spec.documentation.join(' ')}\n` : ''}After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User=${spec.user}
ExecStart=${workerCommand(spec).map(systemdQuote).join(' ')}
${keyLines(spec.key)}
Environment=NODE_COMPILE_CACHE=%C/oz-worker/compile-cache
CacheDirectory=oz-worker
# Created by systemd (owned by User=) and writable under ProtectSystem=strict:
# the worker's journal, and the direct backend's workspaces.
StateDirectory=${dirs.stateDirectories.join(' ')}
StateDirectoryMode=0700
Restart=on-failure
RestartSec=5
# SIGTERM goes to the worker alone; it stops its agents and reports them, then
# systemd kills whatever is left once TimeoutStopSec has passed.
KillSignal=SIGTERM
KillMode=mixed
TimeoutStopSec=${spec.graceSeconds + STOP_MARGIN_SECONDS}
# Hardening that keeps Node's JIT working (no MemoryDenyWriteExecute).
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=read-only
PrivateTmp=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictSUIDSGID=yes
LockPersonality=yes
${readWrite}
[Install]
WantedBy=multi-user.target
`;
}

export interface LaunchdSpec {
  nodePath: string;
  binPath: string;
  configFile: string;
  /** Where the worker keeps its journal (--state-dir). */
  stateDir: string;
  workerArgs: string[];
  /** File holding the API key (never the key itself in the plist). */
  apiKeyFile: string;
  user: string;
  /** Where launchd writes the worker's output; its directory must exist before the job loads. */
  logFile: string;
  graceSeconds: number;
}

function xmlEscape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

export function launchdPlist(spec: LaunchdSpec): string {
  const args = workerCommand(spec)
    .map((arg) => `    <string>${xmlEscape(arg)}</string>`)
    .join('\n');
  return `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>Label</key>
  <string>${LAUNCHD_LABEL}</string>
  <key>ProgramArguments</key>
  <array>
${args}
  </array>
  <key>UserName</key>
  <string>${xmlEscape(spec.user)}</string>
  <key>EnvironmentVariables</key>
  <dict>
    <key>WARP_API_KEY_FILE</key>
    <string>${xmlEscape(spec.apiKeyFile)}</string>
  </dict>
  <key>RunAtLoad</key>
  <true/>
  <key>KeepAlive</key>
  <true/>
  <key>ExitTimeOut</key>
  <integer>${spec.graceSeconds + STOP_MARGIN_SECONDS}</integer>
  <key>ThrottleInterval</key>
  <integer>10</integer>
  <key>StandardOutPath</key>
  <string>${xmlEscape(spec.logFile)}</string>
  <key>StandardErrorPath</key>
  <string>${xmlEscape(spec.logFile)}</string>
</dict>
</plist>
`;
}
