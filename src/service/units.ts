// Service definitions for running the worker in the background: a systemd unit
// on Linux and a launchd LaunchDaemon on macOS. Pure builders: the same text is
// written by `oz-worker service install` and shipped under deploy/.

export interface ServiceSpec {
  /** Absolute path of the node binary. */
  nodePath: string;
  /** Absolute path of bin/oz-worker.js. */
  binPath: string;
  configFile: string;
  /** File holding the API key (never the key itself in the unit). */
  apiKeyFile: string;
  /** Account the worker runs as. */
  user: string;
  /** Directories the worker writes (workspaces, state). */
  writablePaths: string[];
  /** Where launchd writes the worker's output. */
  logFile: string;
  /** Graceful shutdown budget; the service manager waits a little longer. */
  graceSeconds: number;
}

export const SYSTEMD_UNIT_NAME = 'oz-worker.service';
export const LAUNCHD_LABEL = 'dev.oz.worker';

/** Extra time the service manager grants beyond the worker's own grace period. */
const STOP_MARGIN_SECONDS = 10;

function systemdQuote(arg: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(arg) ? arg : `"${arg.replace(/(["\\])/g, '\\$1')}"`;
}

export function systemdUnit(spec: ServiceSpec): string {
  const exec = [spec.nodePath, spec.binPath, '--config-file', spec.configFile].map(systemdQuote).join(' ');
  return `[Unit]
Description=Oz cloud-agent worker (oz-worker)
Documentation=https://www.npmjs.com/package/oz-worker
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User=${spec.user}
ExecStart=${exec}
# The key is read from a file, never from the command line or this unit.
Environment=WARP_API_KEY_FILE=${systemdQuote(spec.apiKeyFile)}
Environment=NODE_COMPILE_CACHE=%C/oz-worker/compile-cache
CacheDirectory=oz-worker
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
ReadWritePaths=${spec.writablePaths.map(systemdQuote).join(' ')}

[Install]
WantedBy=multi-user.target
`;
}

function xmlEscape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

export function launchdPlist(spec: ServiceSpec): string {
  const args = [spec.nodePath, spec.binPath, '--config-file', spec.configFile].map((arg) => `    <string>${xmlEscape(arg)}</string>`).join('\n');
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
