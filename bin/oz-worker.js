#!/usr/bin/env node
// Entry point. The compile cache keeps start-up fast for a service restarted often.
import module from 'node:module';

// The bundle uses APIs of Node 22.12+; on an older Node only --help and
// --version load it (they need nothing newer). Anything else would fail with a
// linker error that says nothing useful, so name the command that runs it anyway:
// in a clone `npx` finds the project's own Node; elsewhere npx fetches a Node 24
// (the npm package node@24) to run this very install with.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
const [major, minor] = process.versions.node.split('.').map(Number);
const args = process.argv.slice(2);
const onlyHelp = args.some((arg) => arg === '--help' || arg === '-h' || arg === '--version') || args[0] === 'help';
if ((major < 22 || (major === 22 && minor < 12)) && !onlyHelp) {
  const word = (arg) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", "'\\''")}'`);
  const root = fileURLToPath(new URL('..', import.meta.url)).replace(/\/$/, '');
  const inCwd = `${process.cwd()}/`.startsWith(`${root}/`);
  const runner = !existsSync(`${root}/src/cli/main.ts`)
    ? `npx -p node@24 node ${word(fileURLToPath(import.meta.url))}`
    : inCwd
      ? 'npx oz-worker'
      : `npx --prefix ${word(root)} oz-worker`;
  const command = [runner, ...args.map(word)].join(' ');
  process.stderr.write(
    `oz-worker: error: Node.js ${process.versions.node} is too old; oz-worker needs Node.js 22.12 or newer (24 LTS recommended). Run it with a newer Node.js anyway:\n  ${command}\n`,
  );
  process.exit(2);
}

// Two deprecation notices come from inside the Kubernetes client's dependencies
// (punycode, url.parse); operators can do nothing about them, so they are not printed.
const HIDDEN_WARNINGS = new Set(['DEP0040', 'DEP0169']);
const emitWarning = process.emitWarning;
process.emitWarning = (warning, ...rest) => {
  const code = typeof rest[0] === 'object' && rest[0] !== null ? rest[0].code : rest[1];
  if (HIDDEN_WARNINGS.has(code)) return;
  return emitWarning.call(process, warning, ...rest);
};

module.enableCompileCache?.();
await import('../dist/main.js');
