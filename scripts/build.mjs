// Bundles the CLI into dist/ with esbuild. Backends are loaded through dynamic
// import(), so each lands in its own chunk and is read only when selected.
import { build } from 'esbuild';
import { readFile, rm } from 'node:fs/promises';

const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8'));

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
  logLevel: 'warning',
  define: { OZ_WORKER_VERSION: JSON.stringify(pkg.version) },
  // Some CommonJS dependencies call require() for Node built-ins; give the ESM bundle one.
  banner: {
    js: "import { createRequire as __ozCreateRequire } from 'node:module'; const require = __ozCreateRequire(import.meta.url);",
  },
  chunkNames: 'chunks/[name]-[hash]',
});
