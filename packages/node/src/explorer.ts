/**
 * Serves the built explorer (packages/explorer/dist) at /explorer/ on the RPC port, so the page
 * and the JSON-RPC it reads share one origin. Hashed assets are cached for good; index.html never.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join, normalize, resolve, sep } from 'node:path';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.json': 'application/json',
  '.woff2': 'font/woff2',
};

export const EXPLORER_PATH = '/explorer/';

/** What `vite build` puts at the top of dist/ (index.html, and public/'s files: favicon.svg). */
const PAGE_FILES = new Set(['index.html', 'favicon.svg']);

/**
 * Whether `rel` (relative to the served folder, normalized) is part of the built page: PAGE_FILES,
 * or a bundle, stylesheet, image or font directly in assets/. Anything else in dist/ is not served
 * (an allow-list, not a deny-list): the root build compiles the browser test and tsc's build info
 * into dist/test/, and whatever a later tool leaves there (source maps: the build emits none) is
 * not the page's to show.
 */
function builtPageFile(rel: string): boolean {
  if (PAGE_FILES.has(rel)) return true;
  const parts = rel.split(sep);
  return parts.length === 2 && parts[0] === 'assets' && Object.hasOwn(TYPES, extname(parts[1]!));
}

export function explorerHandler(dir: string): (req: IncomingMessage, res: ServerResponse) => boolean {
  const root = resolve(dir);
  return (req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return false;
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname === '/explorer' || url.pathname === '/') {
      // Relative asset URLs need the trailing slash.
      res.writeHead(302, { location: EXPLORER_PATH }).end();
      return true;
    }
    if (!url.pathname.startsWith(EXPLORER_PATH)) return false;
    let rel: string;
    try {
      rel = decodeURIComponent(url.pathname.slice(EXPLORER_PATH.length)) || 'index.html';
    } catch {
      res.writeHead(400).end();
      return true;
    }
    const file = normalize(join(root, rel));
    if (
      !file.startsWith(root + sep) ||
      !builtPageFile(file.slice(root.length + 1)) ||
      !existsSync(file) ||
      !statSync(file).isFile()
    ) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return true;
    }
    const immutable = rel.startsWith('assets/');
    res.writeHead(200, {
      'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
      'cache-control': immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
      // The page's own Content-Security-Policy is a <meta> in index.html (vite.config.ts), which
      // cannot say who may frame it: a renter signs lease openings in this page, and a site
      // framing it invisibly could steer their clicks. Nobody may frame it.
      'content-security-policy': "frame-ancestors 'none'",
      'x-frame-options': 'DENY',
      'x-content-type-options': 'nosniff',
    });
    res.end(req.method === 'HEAD' ? undefined : readFileSync(file));
    return true;
  };
}
