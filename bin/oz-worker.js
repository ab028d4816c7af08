#!/usr/bin/env node
// Entry point. The compile cache keeps start-up fast for a service restarted often.
import module from 'node:module';

// The bundle uses APIs of Node 22.12+; on an older Node it would fail with a
// linker error that says nothing useful, so say what to do instead.
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 12)) {
  process.stderr.write(
    `oz-worker: error: Node.js ${process.versions.node} is too old; oz-worker needs Node.js 22.12 or newer (24 LTS recommended). Install a newer Node.js and run it again.\n`,
  );
  process.exit(2);
}

// Two deprecation notices come from inside the Kubernetes client's dependencies
// (punycode, url.parse); operators can do nothing about them, so they are not printed.
const HIDDEN_WARNINGS = new Set(['DEP0040', 'DEP0169']);
const emitWarning = process.emitWarning;
process.emitWarning = function (warning, ...rest) {
  const code = typeof rest[0] === 'object' && rest[0] !== null ? rest[0].code : rest[1];
  if (HIDDEN_WARNINGS.has(code)) return;
  return emitWarning.call(process, warning, ...rest);
};

module.enableCompileCache?.();
await import('../dist/main.js');
