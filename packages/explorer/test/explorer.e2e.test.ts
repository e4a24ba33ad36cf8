/**
 * The explorer in a real browser (Chromium through playwright-core) against a real `unc dev` chain.
 *
 * It builds the app with Vite into a temporary folder (or uses UNC_EXPLORER_DIST, e.g.
 * packages/explorer/dist), serves it at /explorer/ from a tiny static server, as the node will, and
 * points it at the dev node with ?rpc=. Screenshots go to artifacts/explorer/.
 *
 * Compiled by packages/explorer/tsconfig.test.json into dist/test/, where scripts/run-tests.mjs
 * finds it. Needs Chromium: /usr/bin/chromium (Debian's `chromium`) or CHROMIUM_PATH.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { extname, join, normalize, sep } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type Browser, chromium, type Page } from 'playwright-core';

// dist/test/explorer.e2e.test.js → packages/explorer/ → the repository root.
const EXPLORER_DIR = fileURLToPath(new URL('../../', import.meta.url));
const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const UNC = join(ROOT, 'packages/cli/bin/unc.js');
const SHOTS = join(ROOT, 'artifacts/explorer');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const skip = existsSync(CHROMIUM)
  ? false
  : `no Chromium at ${CHROMIUM} (install Debian's chromium or set CHROMIUM_PATH)`;

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runUnc(args: string[]): Promise<RunResult> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [UNC, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d) => (stdout += d));
    proc.stderr.on('data', (d) => (stderr += d));
    proc.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

async function startDev(home: string): Promise<{ proc: ChildProcess; url: string; output: () => string }> {
  const proc = spawn(
    process.execPath,
    [UNC, 'dev', '--home', home, '--rpc-port', '0', '--block-time', '300'],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, UNC_LOG_LEVEL: 'warn' } },
  );
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`unc dev did not start in 30 s:\n${out}`)), 30_000);
    proc.stdout!.on('data', () => {
      const m = /RPC\s+(http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`unc dev exited with ${code}:\n${out}`));
    });
  });
  return { proc, url, output: () => out };
}

async function stopProcess(proc: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null || proc.pid === undefined) return;
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  process.kill(proc.pid, signal);
  const timer = setTimeout(() => {
    if (proc.exitCode === null && proc.signalCode === null && proc.pid !== undefined)
      process.kill(proc.pid, 'SIGKILL');
  }, 5000);
  await exited;
  clearTimeout(timer);
}

/** Builds the explorer with Vite's API into `outDir` (so the test always runs the current source). */
async function buildExplorer(outDir: string): Promise<void> {
  const { build } = await import('vite');
  await build({
    configFile: join(EXPLORER_DIR, 'vite.config.ts'),
    root: EXPLORER_DIR,
    logLevel: 'warn',
    build: { outDir, emptyOutDir: true },
  });
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.json': 'application/json',
  '.map': 'application/json',
};

/** Serves `dir` at /explorer/ (as the node does); / redirects there. */
function serveStatic(dir: string): Promise<{ server: Server; base: string }> {
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    if (!path.startsWith('/explorer/')) {
      res.writeHead(302, { location: '/explorer/' }).end();
      return;
    }
    const rel = normalize(path.slice('/explorer/'.length) || 'index.html');
    const file = join(dir, rel);
    if (!file.startsWith(dir + sep) || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404).end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' });
    res.end(readFileSync(file));
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      resolve({ server, base: `http://127.0.0.1:${port}/explorer/` });
    });
  });
}

async function rpc<T>(url: string, method: string, params: unknown[] = []): Promise<T> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
  });
  const body = (await res.json()) as { result?: T; error?: { message: string } };
  if (body.error) throw new Error(`${method}: ${body.error.message}`);
  return body.result as T;
}

/** Base units as the explorer prints them: whole UNC grouped, at most 4 decimals. */
function uncText(base: bigint): string {
  const whole = (base / 10n ** 18n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  const frac = (base % 10n ** 18n).toString().padStart(18, '0').slice(0, 4).replace(/0+$/, '');
  return frac ? `${whole}.${frac}` : whole;
}

async function heightOf(page: Page): Promise<number> {
  const text = (await page.getByTestId('height').textContent()) ?? '';
  return Number(text.replace(/[^\d]/g, ''));
}

async function search(page: Page, query: string): Promise<void> {
  const box = page.getByTestId('search-input');
  await box.fill(query);
  await box.press('Enter');
}

async function shot(page: Page, name: string, fullPage = true): Promise<void> {
  // Let entry animations settle so the picture shows the page as a person sees it.
  await page.waitForTimeout(400);
  await page.screenshot({ path: join(SHOTS, name), fullPage });
}

describe('explorer in a real browser', { skip }, () => {
  const home = mkdtempSync(join(tmpdir(), 'unc-explorer-home-'));
  const built = mkdtempSync(join(tmpdir(), 'unc-explorer-dist-'));
  let dev: Awaited<ReturnType<typeof startDev>>;
  let server: Server;
  let base: string;
  let browser: Browser;
  let page: Page;
  let appUrl: string;
  const pageErrors: string[] = [];
  let tx: { hash: string; height: number; status: string };
  let dev1: string;

  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    const dist = process.env.UNC_EXPLORER_DIST;
    const [node] = await Promise.all([startDev(home), dist ? Promise.resolve() : buildExplorer(built)]);
    dev = node;
    ({ server, base } = await serveStatic(dist ? normalize(join(process.cwd(), dist)) : built));
    appUrl = `${base}?rpc=${encodeURIComponent(dev.url)}`;
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
    page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
    page.on('pageerror', (err) => pageErrors.push(err.message));
    const keys = JSON.parse((await runUnc(['keys', 'list', '--home', home, '--output', 'json'])).stdout) as {
      name: string;
      address: string;
    }[];
    dev1 = keys.find((k) => k.name === 'dev1')!.address;
  });

  after(async () => {
    await browser?.close();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    if (dev) await stopProcess(dev.proc);
    rmSync(home, { recursive: true, force: true });
    rmSync(built, { recursive: true, force: true });
  });

  test('the overview shows a height above 0 that rises live, with charts and supply', {
    timeout: 60_000,
  }, async () => {
    await page.goto(`${appUrl}#/`);
    await page
      .getByTestId('height')
      .filter({ hasText: /^[1-9][\d,]*$/ })
      .waitFor({ timeout: 15_000 });
    const h0 = await heightOf(page);
    assert.ok(h0 > 0, `height ${h0}`);
    await page.waitForFunction(
      (h) => Number(document.querySelector('[data-testid="height"]')?.textContent?.replace(/[^\d]/g, '')) > h,
      h0,
      { timeout: 10_000 },
    );
    // Live over the WebSocket subscription, not by polling.
    await page.locator('[data-live="ws"]').first().waitFor({ timeout: 10_000 });
    assert.ok(
      (await page.locator('[data-testid="interval-chart"] rect.bar').count()) > 0,
      'no interval bars',
    );
    assert.ok((await page.locator('[data-testid="tx-chart"] rect.bar').count()) >= 0);
    const supply = (await page.getByTestId('supply').textContent()) ?? '';
    assert.match(supply, /Circulating/);
    assert.match(supply, /Genesis allocation/);
    assert.match(supply, /Burned fees/);
    assert.ok((await page.locator('[data-testid="latest-blocks"] tbody tr').count()) > 0);
  });

  test('a transfer appears live, and the search box finds it, the account of dev1 and its block', {
    timeout: 90_000,
  }, async () => {
    const balanceBefore = BigInt((await rpc<{ balance: string }>(dev.url, 'unc_getAccount', [dev1])).balance);
    const res = await runUnc([
      'tx',
      'transfer',
      '--home',
      home,
      '--from',
      'dev0',
      '--to',
      dev1,
      '--amount',
      '1.5',
      '--yes',
      '--output',
      'json',
    ]);
    assert.equal(res.code, 0, res.stderr);
    tx = JSON.parse(res.stdout) as typeof tx;
    assert.equal(tx.status, 'included');

    // The overview, still open, hears of it over the subscription.
    await page.locator(`[data-testid="latest-txs"] a[href="#/tx/${tx.hash}"]`).waitFor({ timeout: 10_000 });
    await shot(page, 'overview.png');

    // A 64-hex hash: not a block, so the transaction.
    await search(page, tx.hash);
    await page.waitForURL(new RegExp(`#/tx/${tx.hash}$`), { timeout: 10_000 });
    await page.getByTestId('tx-amount').filter({ hasText: '1.5' }).waitFor({ timeout: 10_000 });
    const feeText = (await page.getByTestId('fee-split').textContent()) ?? '';
    assert.match(feeText, /Burned/);
    assert.match(feeText, /To proposer/);
    await shot(page, 'tx.png');

    // An address.
    await search(page, dev1);
    await page.waitForURL(new RegExp(`#/account/${dev1}$`), { timeout: 10_000 });
    const expected = uncText(balanceBefore + 15n * 10n ** 17n);
    await page.getByTestId('account-balance').filter({ hasText: expected }).waitFor({ timeout: 10_000 });
    await page.locator(`[data-testid="account-txs"] a[href="#/tx/${tx.hash}"]`).waitFor({ timeout: 20_000 });
    await shot(page, 'account.png');

    // A height.
    await search(page, String(tx.height));
    await page.waitForURL(new RegExp(`#/block/${tx.height}$`), { timeout: 10_000 });
    await page
      .getByTestId('block-title')
      .filter({ hasText: `Block #${tx.height.toLocaleString('en-US')}` })
      .waitFor({ timeout: 10_000 });
    await page.locator(`[data-testid="block-txs"] a[href="#/tx/${tx.hash}"]`).waitFor({ timeout: 10_000 });
    await shot(page, 'block.png');

    // A block hash resolves to its block.
    const blockHash = (await page
      .locator('.kv-row', { hasText: 'Hash' })
      .first()
      .locator('.mono')
      .first()
      .textContent())!;
    await page.goto(`${appUrl}#/`);
    await search(page, blockHash.trim());
    await page.waitForURL(new RegExp(`#/block/${tx.height}$`), { timeout: 10_000 });

    // Something that is none of these says so, in place.
    await search(page, 'hello');
    await page.getByTestId('search-error').waitFor({ timeout: 5000 });
  });

  test('POCI pages are marked as coming, and the blocks list pages', { timeout: 30_000 }, async () => {
    for (const path of ['chips', 'validators', 'market', 'miner']) {
      await page.goto(`${appUrl}#/${path}`);
      await page.getByTestId('poci-placeholder').waitFor({ timeout: 10_000 });
      assert.match((await page.locator('.badge-poci').first().textContent()) ?? '', /coming with POCI/);
      if (path === 'chips') await shot(page, 'chips.png');
    }
    await page.goto(`${appUrl}#/blocks`);
    await page.locator('[data-testid="blocks-table"] tbody tr').nth(5).waitFor({ timeout: 10_000 });
  });

  test('on a phone-sized screen nothing scrolls sideways', { timeout: 60_000 }, async () => {
    const ctx = await browser.newContext({
      viewport: { width: 390, height: 844 },
      deviceScaleFactor: 2,
      isMobile: true,
    });
    const phone = await ctx.newPage();
    phone.on('pageerror', (err) => pageErrors.push(err.message));
    try {
      for (const [path, name] of [
        ['#/', 'overview-mobile.png'],
        [`#/tx/${tx.hash}`, 'tx-mobile.png'],
        [`#/account/${dev1}`, 'account-mobile.png'],
        [`#/block/${tx.height}`, 'block-mobile.png'],
      ] as const) {
        await phone.goto(`${appUrl}${path}`);
        await phone.locator('.page h1').first().waitFor({ timeout: 10_000 });
        await phone
          .locator('.skeleton')
          .first()
          .waitFor({ state: 'detached', timeout: 15_000 })
          .catch(() => undefined);
        const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        assert.ok(overflow <= 0, `${path} is ${overflow}px wider than the screen`);
        await shot(phone, name);
      }
    } finally {
      await ctx.close();
    }
  });

  test('when the node goes away, a clear message replaces nothing', { timeout: 60_000 }, async () => {
    assert.deepEqual(pageErrors, [], 'uncaught errors in the page');
    await page.goto(`${appUrl}#/`);
    await page
      .getByTestId('height')
      .filter({ hasText: /^[1-9][\d,]*$/ })
      .waitFor({ timeout: 15_000 });
    await stopProcess(dev.proc, 'SIGKILL');
    const banner = page.getByTestId('banner');
    await banner
      .filter({ hasText: /Cannot reach the node at http:\/\/127\.0\.0\.1:\d+ — retrying/ })
      .waitFor({
        timeout: 15_000,
      });
    // What was shown stays (a block already on its way when the node died may still land first).
    const shown = await heightOf(page);
    assert.ok(shown > 0, `height ${shown}`);
    await page.waitForTimeout(1500);
    assert.equal(await heightOf(page), shown);
    assert.ok(await page.locator('.page h1', { hasText: 'Network overview' }).isVisible());
    await shot(page, 'node-down.png', false);

    // Opened while the node is down: the page, the banner, never a blank screen.
    const fresh = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    try {
      await fresh.goto(`${appUrl}#/block/1`);
      await fresh
        .getByTestId('banner')
        .filter({ hasText: /Cannot reach the node at/ })
        .waitFor({ timeout: 15_000 });
      assert.ok(await fresh.locator('.page h1').first().isVisible());
      await shot(fresh, 'node-down-fresh.png', false);
    } finally {
      await fresh.close();
    }
  });
});
