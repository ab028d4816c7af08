// Bundles the CLI into dist/ with esbuild. Backends are loaded through dynamic
// import(), so each lands in its own chunk and is read only when selected.
import { build } from 'esbuild';
import { readFile, rm } from 'node:fs/promises';

const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8'));

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

await rm(new URL('../dist', import.meta.url), { recursive: true, force: true });
await build({
  entryPoints: { main: 'src/cli/main.ts' },
  outdir: 'dist',
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
