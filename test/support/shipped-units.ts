// The specs the example service definitions under deploy/ are written from: a
// global npm install on Debian (systemd) and on a Homebrew Mac (launchd).
import type { LaunchdSpec, SystemdSpec } from '../../src/service/units.js';

export const SHIPPED_SYSTEMD: SystemdSpec = {
  nodePath: '/usr/bin/node',
  binPath: '/usr/lib/node_modules/oz-worker/bin/oz-worker.js',
  configFile: '/etc/oz-worker/config.yaml',
  stateDir: '/var/lib/oz-worker',
  workerArgs: [],
  key: { kind: 'credential', sourceFile: '/etc/oz-worker/api-key' },
  user: 'oz-worker',
  writablePaths: ['/var/lib/oz/workspaces'],
  documentation: ['file:/usr/lib/node_modules/oz-worker/README.md'],
  graceSeconds: 25,
};

export const SHIPPED_LAUNCHD: LaunchdSpec = {
  nodePath: '/opt/homebrew/opt/node/bin/node',
  binPath: '/opt/homebrew/lib/node_modules/oz-worker/bin/oz-worker.js',
  configFile: '/Users/YOUR_USER/Library/Application Support/oz-worker/config.yaml',
  stateDir: '/Users/YOUR_USER/Library/Application Support/oz-worker',
  workerArgs: [],
  apiKeyFile: '/Users/YOUR_USER/Library/Application Support/oz-worker/api-key',
  user: 'YOUR_USER',
  logFile: '/Users/YOUR_USER/Library/Logs/oz-worker/worker.log',
  graceSeconds: 25,
};
