// Bundles the CLI into dist/ with esbuild. Backends are loaded through dynamic
// import(), so each lands in its own chunk and is read only when selected.
//
// npm runs this as `prepare` too, whenever it installs the project from its
// folder (`npx oz-worker` in a clone with an empty npx cache does), while the
// clone's workers may be starting from dist/. So: nothing is rebuilt when the
// inputs are those of the last build (`--force` rebuilds anyway), and a build
// is made beside dist/ and moved in chunks first, entry last, so dist/ never
// lacks a file that its entry imports.
import { createHash } from 'node:crypto';
import { build } from 'esbuild';
import { access, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DIST = join(ROOT, 'dist');
const STAMP = join(DIST, '.build-inputs');
const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8'));

async function filesUnder(dir) {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

/** What the bundle is made of: the sources, this script and the locked dependencies. */
async function inputsHash() {
  const hash = createHash('sha256');
  const files = [...(await filesUnder(join(ROOT, 'src'))), join(ROOT, 'scripts/build.mjs'), join(ROOT, 'package.json'), join(ROOT, 'package-lock.json')];
  for (const file of files.sort()) hash.update(`${relative(ROOT, file)}\0`).update(await readFile(file).catch(() => ''));
  return hash.digest('hex');
}

const inputs = await inputsHash();
const force = process.argv.includes('--force');
const upToDate =
  (await readFile(STAMP, 'utf8').catch(() => '')) === inputs &&
  (await access(join(DIST, 'main.js')).then(
    () => true,
    () => false,
  ));
if (upToDate && !force) process.exit(0);

// zod's `z` namespace re-exports every locale (~40 languages) and evaluates them
// all at start-up; the worker only ever reports in English, so the bundle gets
// a locales module that holds just that one.
const englishOnlyZodLocales = {
  name: 'english-only-zod-locales',
  setup(build) {
    build.onResolve({ filter: /^\.\.?\/locales\/index\.js$/ }, (args) =>
      /[\\/]zod[\\/]v4[\\/](classic|core)$/.test(args.resolveDir) ? { path: 'zod-locales-en', namespace: 'oz-stub' } : undefined,
    );
    build.onLoad({ filter: /.*/, namespace: 'oz-stub' }, () => ({
      contents: "export { default as en } from 'zod/v4/locales/en.js';",
      resolveDir: process.cwd(),
      loader: 'js',
    }));
  },
};

const staging = join(ROOT, `.dist-build-${process.pid}`);
await rm(staging, { recursive: true, force: true });
await build({
  entryPoints: { main: join(ROOT, 'src/cli/main.ts') },
  outdir: staging,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node22',
  sourcemap: 'linked',
  // Whitespace and syntax only: identifiers stay, so stack traces still name
  // functions; the package (which ships no source maps) shrinks from 17.6 to 7.7 MB.
  minifyWhitespace: true,
  minifySyntax: true,
  keepNames: true,
  logLevel: 'warning',
  define: { OZ_WORKER_VERSION: JSON.stringify(pkg.version) },
  // Some CommonJS dependencies call require() for Node built-ins; give the ESM bundle one.
  banner: {
    js: "import { createRequire as __ozCreateRequire } from 'node:module'; const require = __ozCreateRequire(import.meta.url);",
  },
  chunkNames: 'chunks/[name]-[hash]',
  plugins: [englishOnlyZodLocales],
});

// Into dist/: chunks (content-hashed names) first, the entry last, each by rename; then what the new entry no longer uses.
const built = (await filesUnder(staging)).map((file) => relative(staging, file));
const entry = new Set(['main.js', 'main.js.map']);
for (const file of [...built.filter((f) => !entry.has(f)), ...built.filter((f) => entry.has(f))]) {
  await mkdir(join(DIST, file, '..'), { recursive: true });
  await rename(join(staging, file), join(DIST, file));
}
const kept = new Set([...built, '.build-inputs']);
for (const file of await filesUnder(DIST)) if (!kept.has(relative(DIST, file))) await rm(file, { force: true });
await rm(staging, { recursive: true, force: true });
await writeFile(STAMP, inputs);
