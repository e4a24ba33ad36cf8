/**
 * Vite config of the explorer. `base: './'` makes every asset URL relative, so the same dist/ can be
 * served at any path (the node serves it at /explorer/).
 *
 * The sdk is imported as a package: its `browser` export condition gives the browser entry, and
 * core's `browser` field swaps its node:crypto platform layer for the @noble one.
 *
 * dist/ is emptied before each build except dist/test/: the root `npm run build` runs `tsc -b`
 * (which compiles the browser test into dist/test/) before `vite build`, and Vite's own
 * `emptyOutDir` would delete it again.
 */
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import react from '@vitejs/plugin-react';
import { defineConfig, type Plugin } from 'vite';

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));

/** Empties this package's dist/ at the start of a build, keeping dist/test/ (see above). */
function emptyDistKeepingTest(): Plugin {
  const dist = resolve(here('dist'));
  let outDir = '';
  return {
    name: 'unc-empty-dist-keeping-test',
    apply: 'build',
    configResolved(config) {
      outDir = resolve(config.root, config.build.outDir);
    },
    buildStart() {
      // Another outDir (the browser test builds into a temporary folder) is left to Vite.
      if (outDir !== dist || !existsSync(dist)) return;
      for (const name of readdirSync(dist))
        if (name !== 'test') rmSync(join(dist, name), { recursive: true, force: true });
    },
  };
}

export default defineConfig({
  root: here('.'),
  base: './',
  plugins: [react(), emptyDistKeepingTest()],
  build: {
    outDir: 'dist',
    emptyOutDir: false,
    target: 'es2022',
    assetsInlineLimit: 0,
    reportCompressedSize: false,
  },
  server: { host: '127.0.0.1', port: 5173 },
  preview: { host: '127.0.0.1', port: 4173 },
});
