#!/usr/bin/env node
// Entry point. The compile cache keeps start-up fast for a service restarted often.
import module from 'node:module';

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
