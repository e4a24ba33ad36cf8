/**
 * Vite config of the explorer. `base: './'` makes every asset URL relative, so the same dist/ can be
 * served at any path (the node serves it at /explorer/).
 *
 * The sdk's barrel (`@unc/sdk`) re-exports views.ts, transactions.ts and proofs.ts, which import
 * @unc/core, which uses node:crypto: a browser bundle of it does not build. The explorer needs only
 * the RPC client, and packages/sdk/src/client.ts imports nothing but types, so `@unc/sdk/client`
 * points at that one file (see README.md). Its `import('ws')` only runs where there is no global
 * WebSocket (Node 20), never in a browser, so `ws` is aliased to a stub that is never called.
 */
import { fileURLToPath } from 'node:url';
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));

export default defineConfig({
  root: here('.'),
  base: './',
  plugins: [react()],
  resolve: {
    alias: [
      { find: /^@unc\/sdk\/client$/, replacement: here('../sdk/src/client.ts') },
      { find: /^ws$/, replacement: here('src/shims/ws.ts') },
    ],
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    assetsInlineLimit: 0,
    reportCompressedSize: false,
  },
  server: { host: '127.0.0.1', port: 5173 },
  preview: { host: '127.0.0.1', port: 4173 },
});
