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

/**
 * The Content-Security-Policy of the built page, as a <meta> in dist/index.html so that it holds
 * wherever dist/ is served (the node, a static host, the browser test's server). The page shows
 * what a node it does not trust answers (memos, names, endpoints): should any of it ever reach the
 * DOM as markup, no script but the bundle's own may run, and nothing may be sent anywhere but an
 * RPC node (`connect-src`: the node is the user's choice, `?rpc=`, so any http(s)/ws(s) origin).
 * Styles: the bundle's stylesheet only; React's `style` props are set through the CSSOM, which
 * `style-src` does not restrict. Only at build: the dev server injects an inline script.
 * `frame-ancestors` has no effect in a <meta>; the node sends it as a header (explorer.ts).
 */
export const EXPLORER_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self' http: https: ws: wss:",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "object-src 'none'",
].join('; ');

function contentSecurityPolicy(): Plugin {
  return {
    name: 'unc-content-security-policy',
    apply: 'build',
    transformIndexHtml: () => [
      {
        tag: 'meta',
        attrs: { 'http-equiv': 'Content-Security-Policy', content: EXPLORER_CSP },
        injectTo: 'head-prepend',
      },
    ],
  };
}

export default defineConfig({
  root: here('.'),
  base: './',
  plugins: [react(), emptyDistKeepingTest(), contentSecurityPolicy()],
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
