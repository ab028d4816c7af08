#!/usr/bin/env node
// Writes docs/reference.md (every flag, environment variable and config file
// key, with meaning and default) from the code: `node scripts/reference.mjs`.
// `--check` changes nothing and exits 1 when the page differs from what the
// code gives, or when the code and its documentation tables disagree (a key,
// flag or variable that is undocumented, or documented but gone); it prints
// what to do. The generator is src/cli/reference.ts, bundled here on the fly.
import { build } from 'esbuild';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const check = process.argv.includes('--check');

const dir = await mkdtemp(join(tmpdir(), 'oz-worker-reference-'));
let reference;
try {
  const file = join(dir, 'reference.mjs');
  await build({
    entryPoints: [join(ROOT, 'src/cli/reference.ts')],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node22',
    outfile: file,
    logLevel: 'error',
    // Bundled packages that still `require` Node's built-ins.
    banner: { js: "import { createRequire as createRequireForBundle } from 'node:module'; const require = createRequireForBundle(import.meta.url);" },
  });
  reference = await import(pathToFileURL(file).href);
} finally {
  await rm(dir, { recursive: true, force: true });
}

const sourceFiles = (await readdir(join(ROOT, 'src'), { recursive: true })).filter((name) => name.endsWith('.ts')).sort();
const sources = await Promise.all(sourceFiles.map((name) => readFile(join(ROOT, 'src', name), 'utf8')));
const problems = reference.referenceProblems(sources);
const page = reference.renderReference();
const path = join(ROOT, reference.REFERENCE_PATH);
const current = await readFile(path, 'utf8').catch(() => '');

for (const problem of problems) process.stderr.write(`reference: ${problem}\n`);
if (check) {
  if (current !== page) process.stderr.write(`reference: ${reference.REFERENCE_PATH} is not what the code gives: run \`node scripts/reference.mjs\`\n`);
  process.exit(problems.length > 0 || current !== page ? 1 : 0);
}
if (current !== page) {
  await writeFile(path, page);
  process.stdout.write(`reference: wrote ${reference.REFERENCE_PATH}\n`);
} else {
  process.stdout.write(`reference: ${reference.REFERENCE_PATH} is up to date\n`);
}
process.exit(problems.length > 0 ? 1 : 0);
