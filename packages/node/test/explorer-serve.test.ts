/** The node serving the built explorer at /explorer/: what the browser is told about the page. */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { explorerHandler } from '../src/explorer.js';

// A renter signs lease openings in the explorer: a page that framed it invisibly could steer
// their clicks (clickjacking); a <meta> policy cannot forbid framing, so the node's header does.
test('the explorer may not be framed by another site, and its files are not sniffed', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'unc-explorer-serve-'));
  writeFileSync(join(dir, 'index.html'), '<!doctype html><title>x</title>');
  const handle = explorerHandler(dir);
  const server = createServer((req, res) => {
    if (!handle(req, res)) res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/explorer/`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/);
    assert.equal(res.headers.get('x-frame-options'), 'DENY');
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  }
});

// dist/test/ holds the compiled browser test and tsc's build info (the root build compiles it there):
// not part of the page, so not served with it.
test('the explorer handler serves the page, not the browser test compiled beside it in dist/test/', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'unc-explorer-serve-'));
  writeFileSync(join(dir, 'index.html'), '<!doctype html><title>x</title>');
  mkdirSync(join(dir, 'test'));
  writeFileSync(join(dir, 'test', 'explorer.e2e.test.js'), '// test');
  const handle = explorerHandler(dir);
  const server = createServer((req, res) => {
    if (!handle(req, res)) res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/explorer/`;
    assert.equal((await fetch(base)).status, 200);
    for (const path of [
      'test/explorer.e2e.test.js',
      'test%2fexplorer.e2e.test.js',
      './test/explorer.e2e.test.js',
    ])
      assert.equal((await fetch(`${base}${path}`)).status, 404, path);
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  }
});

// An allow-list of what `vite build` makes (index.html, favicon.svg, assets/*), not a deny-list of
// what is known to be beside it: tsc's build info, source maps, another tool's output stay unserved.
test('the explorer handler serves only the built page: nothing else left in its folder', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'unc-explorer-serve-'));
  writeFileSync(join(dir, 'index.html'), '<!doctype html><title>x</title>');
  writeFileSync(join(dir, 'favicon.svg'), '<svg/>');
  mkdirSync(join(dir, 'assets'));
  writeFileSync(join(dir, 'assets', 'index-AbC123.js'), '// bundle');
  writeFileSync(join(dir, 'assets', 'index-AbC123.css'), 'a{}');
  writeFileSync(join(dir, 'assets', 'index-AbC123.js.map'), '{}');
  writeFileSync(join(dir, 'tsconfig.test.tsbuildinfo'), '{}');
  writeFileSync(join(dir, 'notes.txt'), 'x');
  mkdirSync(join(dir, 'src'));
  writeFileSync(join(dir, 'src', 'main.js'), '// compiled');
  mkdirSync(join(dir, 'assets', 'deeper'));
  writeFileSync(join(dir, 'assets', 'deeper', 'x.js'), '// x');
  const handle = explorerHandler(dir);
  const server = createServer((req, res) => {
    if (!handle(req, res)) res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/explorer/`;
    for (const path of ['', 'index.html', 'favicon.svg', 'assets/index-AbC123.js', 'assets/index-AbC123.css'])
      assert.equal((await fetch(`${base}${path}`)).status, 200, path);
    for (const path of [
      'assets/index-AbC123.js.map',
      'tsconfig.test.tsbuildinfo',
      'notes.txt',
      'src/main.js',
      'src%2fmain.js',
      'assets/deeper/x.js',
      'assets/../notes.txt',
    ])
      assert.equal((await fetch(`${base}${path}`)).status, 404, path);
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  }
});
