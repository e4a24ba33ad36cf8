/**
 * The explorer in a real browser (Chromium through playwright-core) against a real `unc dev` chain
 * with two software chips and one chip backed by a real software TPM (swtpm), 24-block epochs.
 *
 * It builds the app with Vite into a temporary folder (or uses UNC_EXPLORER_DIST, e.g.
 * packages/explorer/dist), serves it at /explorer/ from a tiny static server, as the node will, and
 * points it at the dev node with ?rpc=. Screenshots go to artifacts/explorer/.
 *
 * Compiled by packages/explorer/tsconfig.test.json into dist/test/, where scripts/run-tests.mjs
 * finds it. Needs Chromium: /usr/bin/chromium (Debian's `chromium`) or CHROMIUM_PATH. Without swtpm
 * on the PATH the chain runs software chips only and the test that kills a chip's TPM is skipped.
 *
 * Every process it starts (the node, and the swtpm the node starts, by the PID the node prints) and
 * every temporary folder is removed at the end, whatever failed.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, extname, join, normalize, sep } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type Browser, chromium, type Page, type WebSocket } from 'playwright-core';

// dist/test/explorer.e2e.test.js → packages/explorer/ → the repository root.
const EXPLORER_DIR = fileURLToPath(new URL('../../', import.meta.url));
const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const UNC = join(ROOT, 'packages/cli/bin/unc.js');
const SHOTS = join(ROOT, 'artifacts/explorer');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const skip = existsSync(CHROMIUM)
  ? false
  : `no Chromium at ${CHROMIUM} (install Debian's chromium or set CHROMIUM_PATH)`;
/**
 * How long the page gets to show what the chain already has: generous, since on a loaded machine
 * Chromium, the node and the dev miner share two cores; a wait only bounds how long a real failure
 * takes to report (10 s ones were within a loaded machine's delays).
 */
const UI_WAIT = 30_000;
const SWTPM = (process.env.PATH ?? '').split(delimiter).some((dir) => dir && existsSync(join(dir, 'swtpm')));
/** The dev chain's chips: software chips driven by the dev miner, and swtpm-backed ones. */
const SOFT_CHIPS = 2;
const TPM_CHIPS = SWTPM ? 1 : 0;
const CHIPS = SOFT_CHIPS + TPM_CHIPS;
/** A chip goes offline after 3 missed slots (4 per 24-block epoch, 20-block answer window, 300 ms blocks). */
const OFFLINE_WITHIN_MS = 60_000;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The fields of `unc_getChips` the test reads. */
interface ChipView {
  chipId: string;
  owner: string;
  vendorId: string;
  profile: string;
  power: string;
  online: boolean;
  status: string;
}

/** The fields of `unc_getOffers` and `unc_getLeases` the test reads. */
interface OfferView {
  id: string;
  available: number;
}
interface LeaseView {
  id: string;
  chipId: string;
}

/** The fields of `unc_getEpoch` the test reads. */
interface EpochView {
  epoch: number;
  budget: string;
}

/** TFLOPS × 1000 as the explorer prints TFLOPS: "1,302", "0.5". */
function tflopsText(milli: bigint): string {
  const whole = (milli / 1000n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  const frac = (milli % 1000n).toString().padStart(3, '0').replace(/0+$/, '');
  return frac ? `${whole}.${frac}` : whole;
}

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI; one still running after `timeoutMs` is killed (and reads as failed). */
function runUnc(args: string[], timeoutMs = 90_000): Promise<RunResult> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [UNC, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
    proc.stdout.on('data', (d) => (stdout += d));
    proc.stderr.on('data', (d) => (stderr += d));
    proc.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

interface Dev {
  proc: ChildProcess;
  url: string;
  /** The swtpm processes behind the TPM chips, from the line "Dev miner … swtpm chips (pids N, …)". */
  swtpmPids: number[];
  output: () => string;
}

async function startDev(home: string): Promise<Dev> {
  const proc = spawn(
    process.execPath,
    [
      UNC,
      'dev',
      '--home',
      home,
      '--rpc-port',
      '0',
      '--block-time',
      '300',
      '--chips',
      String(SOFT_CHIPS),
      '--tpm-chips',
      String(TPM_CHIPS),
      '--epoch-blocks',
      '24',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, UNC_LOG_LEVEL: 'warn' } },
  );
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  const url = await new Promise<string>((resolve, reject) => {
    // Generous: on a shared, loaded machine the swtpm chip's set-up alone can take half a minute.
    const timer = setTimeout(() => reject(new Error(`unc dev did not start in 120 s:\n${out}`)), 120_000);
    proc.stdout!.on('data', () => {
      const m = /RPC\s+(http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (m && /Dev miner .*\n/.test(out)) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`unc dev exited with ${code}:\n${out}`));
    });
  });
  const pids = /swtpm chips \(pids ([\d, ]+)\)/.exec(out)?.[1];
  const swtpmPids = pids ? pids.split(',').map((p) => Number(p.trim())) : [];
  if (swtpmPids.length !== TPM_CHIPS) throw new Error(`expected ${TPM_CHIPS} swtpm pids in:\n${out}`);
  return { proc, url, swtpmPids, output: () => out };
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

async function rpc<T>(
  url: string,
  method: string,
  params: unknown[] | Record<string, unknown> = [],
): Promise<T> {
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
  let dev: Dev;
  /** swtpm processes this test killed itself (not to be signalled again: the PID may be reused). */
  const killedSwtpm = new Set<number>();
  let server: Server;
  let base: string;
  let browser: Browser;
  let page: Page;
  let appUrl: string;
  const pageErrors: string[] = [];
  /** What the page's Content-Security-Policy refused: the app itself must need nothing it forbids. */
  const cspViolations: string[] = [];
  let tx: { hash: string; height: number; status: string };
  let dev1: string;
  let dev9: string;
  let chips: ChipView[] = [];
  /** The chip the test takes offline (the swtpm one), or a software chip without swtpm. */
  let tpmChip: ChipView;
  /** The lease the marketplace test found or opened (for the phone screenshots). */
  let marketLease: string | undefined;

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
    page.on('console', (m) => {
      if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text());
    });
    const keys = JSON.parse((await runUnc(['keys', 'list', '--home', home, '--output', 'json'])).stdout) as {
      name: string;
      address: string;
    }[];
    dev1 = keys.find((k) => k.name === 'dev1')!.address;
    const shown = await runUnc(['keys', 'show', 'dev9', '--home', home, '--output', 'json']);
    assert.equal(shown.code, 0, shown.stderr);
    dev9 = (JSON.parse(shown.stdout) as { address: string }).address;
    // The dev miner registers its chips in the first blocks (the swtpm one after its TPM's set-up,
    // which alone can take half a minute on a loaded machine).
    const deadline = Date.now() + 120_000;
    while (chips.length < CHIPS && Date.now() < deadline) {
      chips = await rpc<ChipView[]>(dev.url, 'unc_getChips', []);
      if (chips.length < CHIPS) await new Promise((r) => setTimeout(r, 300));
    }
    assert.equal(chips.length, CHIPS, `chips registered: ${chips.length}\n${dev.output()}`);
    tpmChip = chips.find((c) => c.profile === 'tpm2') ?? chips[0]!;
  });

  after(async () => {
    await browser?.close();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    if (dev) await stopProcess(dev.proc);
    // A node killed with SIGKILL leaves its swtpm behind: stop it by the PID the node printed.
    for (const pid of dev ? dev.swtpmPids : [])
      if (!killedSwtpm.has(pid) && alive(pid)) process.kill(pid, 'SIGKILL');
    rmSync(home, { recursive: true, force: true });
    rmSync(built, { recursive: true, force: true });
  });

  test('the overview shows a height above 0 that rises live, with charts and supply', {
    timeout: 120_000,
  }, async () => {
    await page.goto(`${appUrl}#/`);
    await page
      .getByTestId('height')
      .filter({ hasText: /^[1-9][\d,]*$/ })
      .waitFor({ timeout: UI_WAIT });
    const h0 = await heightOf(page);
    assert.ok(h0 > 0, `height ${h0}`);
    await page.waitForFunction(
      (h) => Number(document.querySelector('[data-testid="height"]')?.textContent?.replace(/[^\d]/g, '')) > h,
      h0,
      { timeout: UI_WAIT },
    );
    // Live over the WebSocket subscription, not by polling.
    await page.locator('[data-live="ws"]').first().waitFor({ timeout: UI_WAIT });
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
    // Finality: the head block signed by 1 of the 1 validator of `unc dev`.
    await page
      .getByTestId('finality')
      .filter({ hasText: /^1\s*\/\s*1$/ })
      .waitFor({ timeout: UI_WAIT });
  });

  // The page shows what an untrusted node answers (memos, names, endpoints): markup from it that
  // ever reached the DOM must not run. An inline script appended runs at once when allowed.
  test('the page runs under a strict Content-Security-Policy: an injected inline script does not run', {
    timeout: 120_000,
  }, async () => {
    // A page of its own: the violation it provokes is the test's, not one the app caused.
    const probe = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    try {
      await probe.goto(`${appUrl}#/`);
      await probe.getByTestId('height').waitFor({ timeout: UI_WAIT });
      const ran = await probe.evaluate(() => {
        const w = window as unknown as { injected?: number };
        const s = document.createElement('script');
        s.textContent = 'window.injected = 1';
        document.body.appendChild(s);
        s.remove();
        return w.injected === 1;
      });
      assert.equal(ran, false, 'an inline script ran');
      const csp = await probe.evaluate(
        () =>
          document.querySelector('meta[http-equiv="Content-Security-Policy"]')?.getAttribute('content') ?? '',
      );
      assert.match(csp, /script-src 'self'(;|$)/);
      assert.match(csp, /default-src 'none'/);
    } finally {
      await probe.close();
    }
  });

  test('the emission card shows the current epoch, its budget so far and its progress; power and chips over time', {
    timeout: 120_000,
  }, async () => {
    await page.goto(`${appUrl}#/`);
    const card = page.getByTestId('emission');
    await card.getByTestId('epoch-budget').waitFor({ timeout: UI_WAIT });
    // The card follows the node's epoch (it may move on while we look: compare with a range).
    const before = (await rpc<EpochView>(dev.url, 'unc_getEpoch', [])).epoch;
    await page.waitForFunction(
      (e) =>
        Number(document.querySelector('[data-testid="emission-epoch"]')?.textContent?.replace(/\D/g, '')) >=
        e,
      before,
      { timeout: UI_WAIT },
    );
    const shown = Number(((await card.getByTestId('emission-epoch').textContent()) ?? '').replace(/\D/g, ''));
    let now = await rpc<EpochView>(dev.url, 'unc_getEpoch', []);
    assert.ok(shown >= before && shown <= now.epoch, `epoch ${shown} not in ${before}…${now.epoch}`);
    // E(t) grows with chain time, so the budget so far is above zero once the epoch has a block past
    // its first (at its first block no chain time has passed yet: 0 is right there).
    const budgetBy = Date.now() + UI_WAIT;
    while (BigInt(now.budget) === 0n && Date.now() < budgetBy) {
      await new Promise((r) => setTimeout(r, 300));
      now = await rpc<EpochView>(dev.url, 'unc_getEpoch', []);
    }
    assert.ok(BigInt(now.budget) > 0n, `node budget ${now.budget}`);
    // The card shows the sample it last took, which may be from the epoch's first block (0 UNC):
    // it follows the node's non-zero budget at a later sample.
    await page.waitForFunction(
      () =>
        /[1-9][\d,.]*\s*UNC/.test(document.querySelector('[data-testid="epoch-budget"]')?.textContent ?? ''),
      undefined,
      { timeout: UI_WAIT },
    );
    assert.match((await card.getByTestId('epoch-budget').textContent()) ?? '', /[1-9][\d,.]*\s*UNC/);
    assert.match(
      (await card.getByTestId('epoch-progress').textContent()) ?? '',
      /block #[\d,]+ of #[\d,]+–#[\d,]+/,
    );
    const text = (await card.textContent()) ?? '';
    assert.match(text, /Mined \(paid to chip owners\)/);
    assert.match(text, /Reserve not emitted yet/);
    assert.match(text, /Burned fees/);
    // A bar per epoch; the current one's budget so far is above zero, so it has a height.
    await page.waitForFunction(
      () =>
        Array.from(document.querySelectorAll('[data-testid="epoch-budget-chart"] rect.bar')).some(
          (r) => Number(r.getAttribute('height')) > 0,
        ),
      undefined,
      { timeout: UI_WAIT },
    );
    // Online power and chips over time, from the watcher's samples.
    await page
      .getByTestId('network-chips')
      .filter({ hasText: new RegExp(`^${CHIPS}$`) })
      .waitFor({ timeout: UI_WAIT });
    assert.equal(await page.locator('[data-testid="power-history"] path.step-line').count(), 1);
    assert.equal(await page.locator('[data-testid="chips-history"] path.step-line').count(), 1);
    await card.scrollIntoViewIfNeeded();
    await shot(page, 'emission.png', false);
  });

  test('a transfer appears live, and the search box finds it, the account of dev1 and its block', {
    timeout: 180_000,
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
    await page.locator(`[data-testid="latest-txs"] a[href="#/tx/${tx.hash}"]`).waitFor({ timeout: UI_WAIT });
    await shot(page, 'overview.png');

    // A 64-hex hash: not a block, so the transaction.
    await search(page, tx.hash);
    await page.waitForURL(new RegExp(`#/tx/${tx.hash}$`), { timeout: UI_WAIT });
    await page.getByTestId('tx-amount').filter({ hasText: '1.5' }).waitFor({ timeout: UI_WAIT });
    const feeText = (await page.getByTestId('fee-split').textContent()) ?? '';
    assert.match(feeText, /Burned/);
    assert.match(feeText, /To proposer/);
    await shot(page, 'tx.png');

    // An address.
    await search(page, dev1);
    await page.waitForURL(new RegExp(`#/account/${dev1}$`), { timeout: UI_WAIT });
    const expected = uncText(balanceBefore + 15n * 10n ** 17n);
    await page.getByTestId('account-balance').filter({ hasText: expected }).waitFor({ timeout: UI_WAIT });
    await page.locator(`[data-testid="account-txs"] a[href="#/tx/${tx.hash}"]`).waitFor({ timeout: UI_WAIT });
    await shot(page, 'account.png');

    // A height.
    await search(page, String(tx.height));
    await page.waitForURL(new RegExp(`#/block/${tx.height}$`), { timeout: UI_WAIT });
    await page
      .getByTestId('block-title')
      .filter({ hasText: `Block #${tx.height.toLocaleString('en-US')}` })
      .waitFor({ timeout: UI_WAIT });
    await page.locator(`[data-testid="block-txs"] a[href="#/tx/${tx.hash}"]`).waitFor({ timeout: UI_WAIT });
    // The commit says the round it was decided in, and the signers' share of the set's power.
    const block = await rpc<{ commit: { round: number } }>(dev.url, 'unc_getBlock', [tx.height]);
    assert.equal(typeof block.commit.round, 'number');
    await page
      .getByTestId('commit-round')
      .filter({ hasText: `decided in round ${block.commit.round}` })
      .waitFor({ timeout: UI_WAIT });
    assert.match(
      (await page.getByTestId('block-commit').locator('.card-sub').textContent()) ?? '',
      new RegExp(`decided in round ${block.commit.round}`),
    );
    await page.getByTestId('commit-power').filter({ hasText: '100%' }).waitFor({ timeout: UI_WAIT });
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
    await page.waitForURL(new RegExp(`#/block/${tx.height}$`), { timeout: UI_WAIT });

    // Something that is none of these says so, in place.
    await search(page, 'hello');
    await page.getByTestId('search-error').waitFor({ timeout: UI_WAIT });
  });

  test('account history comes from the node index: heartbeats hidden by default, a type filter, older pages, CSV', {
    timeout: 180_000,
  }, async () => {
    // dev9 runs the dev miner: its account sends a heartbeat for every slot its chips answer.
    const all = await rpc<{ transactions: { tx: { actions: { type: string }[] } }[] }>(
      dev.url,
      'unc_getAccountTransactions',
      { address: dev9, limit: 100 },
    );
    assert.ok(
      all.transactions.some((t) => t.tx.actions.every((a) => a.type === 'heartbeat')),
      'the miner account has sent heartbeats',
    );
    await page.goto(`${appUrl}#/account/${dev9}`);
    const rows = page.locator('[data-testid="account-txs"] tbody tr');
    await rows.first().waitFor({ timeout: UI_WAIT });
    const kinds = async () =>
      page.locator('[data-testid="account-txs"] tbody tr .cell-sub .faint').allTextContents();
    assert.ok(!(await kinds()).includes('heartbeat'), 'heartbeats are hidden by default');
    await page.getByTestId('account-heartbeats').check();
    await page.waitForFunction(
      () =>
        Array.from(document.querySelectorAll('[data-testid="account-txs"] tbody tr .cell-sub .faint')).some(
          (e) => e.textContent === 'heartbeat',
        ),
      undefined,
      { timeout: UI_WAIT },
    );
    // Older pages load by cursor: more rows than one page once "Load older" is pressed.
    if (all.transactions.length > 25) {
      const before = await rows.count();
      await page.getByTestId('account-older').click();
      await page.waitForFunction(
        (n) => document.querySelectorAll('[data-testid="account-txs"] tbody tr').length > n,
        before,
        { timeout: UI_WAIT },
      );
    }
    // The type filter keeps only that type (the types offered are those of the loaded rows).
    const types = (
      await page
        .locator('[data-testid="account-type-filter"] option')
        .evaluateAll((os) => os.map((o) => (o as HTMLOptionElement).value))
    ).filter((v) => v !== '');
    assert.ok(types.includes('heartbeat'), types.join());
    const other = types.find((t) => t !== 'heartbeat') ?? 'heartbeat';
    await page.getByTestId('account-type-filter').selectOption(other);
    await page.waitForFunction(
      (want) => {
        const k = Array.from(
          document.querySelectorAll('[data-testid="account-txs"] tbody tr .cell-sub .faint'),
        );
        return k.length > 0 && k.every((e) => (e.textContent ?? '').split('+').includes(want));
      },
      other,
      { timeout: UI_WAIT },
    );
    await page.getByTestId('account-type-filter').selectOption('');
    await page.getByTestId('account-heartbeats').uncheck();
    // The CSV of dev1's history holds the transfer the test before sent, amount in base units.
    await page.goto(`${appUrl}#/account/${dev1}`);
    await page.locator(`[data-testid="account-txs"] a[href="#/tx/${tx.hash}"]`).waitFor({ timeout: UI_WAIT });
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByTestId('account-csv-all').click(),
    ]);
    const csv = readFileSync((await download.path())!, 'utf8');
    const lines = csv.trim().split('\n');
    assert.equal(
      lines[0],
      'hash,height,index,time,direction,from,to,types,amount_base_units,fee_base_units,nonce',
    );
    const row = lines.find((l) => l.startsWith(tx.hash));
    assert.ok(row, 'the transfer is in the CSV');
    assert.match(row, new RegExp(`,in,unc1[0-9a-z]+,${dev1},transfer,1500000000000000000,`));
    await shot(page, 'account-history.png');
  });

  test('the marketplace lists offers, leases (escrow split) and providers; search, lease, chip and account pages', {
    timeout: 300_000,
  }, async () => {
    let offers: OfferView[];
    try {
      offers = await rpc<OfferView[]>(dev.url, 'unc_getOffers', []);
    } catch (err) {
      // A node without the market methods: the page says so clearly.
      assert.match(String(err), /not found/i);
      await page.goto(`${appUrl}#/market`);
      await page.getByTestId('market-unavailable').waitFor({ timeout: UI_WAIT });
      await shot(page, 'market.png');
      return;
    }
    // `unc dev` may offer its chips itself; otherwise dev9 (their owner) offers a software chip here.
    // dev9 is also the miner's account, so its heartbeats can take the nonce: retry a few times.
    if (offers.length === 0) {
      const chip = chips.find((c) => c.profile !== 'tpm2') ?? chips[0]!;
      let last: RunResult | null = null;
      for (let attempt = 0; attempt < 4 && offers.length === 0; attempt++) {
        last = await runUnc(
          [
            'market',
            'offer',
            'create',
            '--home',
            home,
            '--from',
            'dev9',
            '--chips',
            chip.chipId,
            '--price',
            '2.5',
            '--min-hours',
            '1',
            '--max-hours',
            '24',
            '--notice',
            '30m',
            '--endpoint',
            'http://127.0.0.1:47001',
            '--region',
            'dev',
            '--yes',
            '--output',
            'json',
          ],
          60_000,
        );
        offers = await rpc<OfferView[]>(dev.url, 'unc_getOffers', []);
      }
      assert.ok(offers.length > 0, `no offer created: ${last?.stderr}`);
    }
    // dev1 rents a chip of it (dev1 is not the miner: no nonce race).
    let leases = await rpc<LeaseView[]>(dev.url, 'unc_getLeases', { renter: dev1 });
    // Only a chip proven online (answered a challenge since its registration) is available to rent:
    // the dev miner answers its chips' first challenges in the epoch after registration.
    for (
      let waited = 0;
      leases.length === 0 && !offers.some((o) => o.available > 0) && waited < 60_000;
      waited += 500
    ) {
      await new Promise((r) => setTimeout(r, 500));
      offers = await rpc<OfferView[]>(dev.url, 'unc_getOffers', []);
    }
    const offer = offers.find((o) => o.available > 0) ?? offers[0]!;
    if (leases.length === 0 && offer.available > 0) {
      const res = await runUnc(
        [
          'market',
          'lease',
          offer.id,
          '--home',
          home,
          '--from',
          'dev1',
          '--hours',
          '2',
          '--yes',
          '--output',
          'json',
        ],
        90_000,
      );
      assert.equal(res.code, 0, res.stderr);
      leases = await rpc<LeaseView[]>(dev.url, 'unc_getLeases', { renter: dev1 });
    }

    await page.goto(`${appUrl}#/market`);
    const offerRow = page.locator(`[data-testid="offers-table"] tr[data-offer="${offer.id}"]`);
    await offerRow.waitFor({ timeout: UI_WAIT });
    assert.match((await offerRow.getByTestId('offer-price').textContent()) ?? '', /[\d.]+\s*UNC/);
    assert.equal(
      await page.locator('[data-testid="offers-table"] tbody tr').count(),
      offers.length,
      'every open offer listed',
    );
    await page.locator('[data-testid="providers-table"] tbody tr').first().waitFor({ timeout: UI_WAIT });
    const lease = leases[0];
    if (lease) {
      const leaseRow = page.locator(`[data-testid="leases-table"] tr[data-lease="${lease.id}"]`);
      await leaseRow.locator('[data-testid="escrow-bar"]').waitFor({ timeout: UI_WAIT });
      assert.match((await leaseRow.getByTestId('lease-status').textContent()) ?? '', /active|closing|closed/);
    }
    await shot(page, 'market.png');

    // An offer id in the search box: not a block, a transaction, a chip or a lease, so the offer.
    await search(page, offer.id);
    await page.waitForURL(new RegExp(`#/offer/${offer.id}$`), { timeout: UI_WAIT });
    await page.getByTestId('offer-facts').waitFor({ timeout: UI_WAIT });
    await shot(page, 'offer.png');
    if (!lease) return;

    // A lease id: its page shows the escrow split (paid / refunded / remaining) and the parties.
    await search(page, lease.id);
    await page.waitForURL(new RegExp(`#/lease/${lease.id}$`), { timeout: UI_WAIT });
    const escrow = page.getByTestId('lease-escrow');
    await escrow.locator('[data-testid="escrow-bar"] [data-part="remaining"]').waitFor({ timeout: UI_WAIT });
    const escrowText = (await escrow.textContent()) ?? '';
    for (const part of ['Paid', 'Refunded', 'Remaining']) assert.match(escrowText, new RegExp(part));
    assert.match((await page.getByTestId('lease-facts').textContent()) ?? '', new RegExp(dev1));
    await shot(page, 'lease.png');

    // The chip's page lists its lease; the renter's account page lists it as rented.
    await page.goto(`${appUrl}#/chip/${lease.chipId}`);
    await page
      .locator(`[data-testid="chip-leases"] tr[data-lease="${lease.id}"]`)
      .waitFor({ timeout: UI_WAIT });
    await page.goto(`${appUrl}#/account/${dev1}`);
    await page
      .locator(`[data-testid="account-leases-renter"] tr[data-lease="${lease.id}"]`)
      .waitFor({ timeout: UI_WAIT });
    marketLease = lease.id;
  });

  test('marketplace filters (model, price per TFLOPS-hour, free or leased); earnings, a lease log, signing uptime; no confirmations', {
    timeout: 180_000,
  }, async () => {
    const offers = await rpc<
      { id: string; available: number; chips: { modelId: string; leaseId: string | null }[] }[]
    >(dev.url, 'unc_getOffers', []);
    const open = offers.length;
    await page.goto(`${appUrl}#/market`);
    const rows = page.locator('[data-testid="offers-table"] tbody tr');
    const rowCount = async (n: number) =>
      page.waitForFunction(
        (want) => document.querySelectorAll('[data-testid="offers-table"] tbody tr').length === want,
        n,
        { timeout: UI_WAIT },
      );
    await rows.first().waitFor({ timeout: UI_WAIT });
    // Every offer shows its price per TFLOPS-hour (dev chips: 2 UNC/h for hundreds of TFLOPS).
    assert.match((await page.getByTestId('offer-price-tflops').first().textContent()) ?? '', /TFLOPS-h/);
    // Cheaper than any dev chip: nothing; a generous bound: everything again.
    await page.getByTestId('offers-max-price').fill('0.000001');
    await page
      .locator('[data-testid="offers-card"] .empty, [data-testid="offers-card"] p')
      .first()
      .waitFor({ timeout: UI_WAIT });
    assert.equal(await rows.count(), 0);
    await page.getByTestId('offers-max-price').fill('1');
    await rowCount(open);
    const leased = offers.filter((o) => o.chips.some((c) => c.leaseId !== null)).length;
    const free = offers.filter((o) => o.available > 0).length;
    await page.getByTestId('offers-availability').selectOption('leased');
    if (leased > 0) await rowCount(leased);
    await page.getByTestId('offers-availability').selectOption('free');
    if (free > 0) await rowCount(free);
    await page.getByTestId('offers-availability').selectOption('all');
    const model = offers[0]!.chips[0]!.modelId;
    await page.getByTestId('offers-model').selectOption(model);
    await rowCount(offers.filter((o) => o.chips.some((c) => c.modelId === model)).length);
    await shot(page, 'market-filters.png');

    // A chip's earnings per epoch, as the node pays them.
    const chip = chips[0]!;
    await page.goto(`${appUrl}#/chip/${chip.chipId}`);
    await page.getByTestId('chip-earnings').waitFor({ timeout: UI_WAIT });
    const paid = await rpc<{ epoch: number }[]>(dev.url, 'unc_getRewards', [chip.chipId]);
    if (paid.length > 0) {
      await page.waitForFunction(
        (n) => document.querySelectorAll('[data-testid="chip-earnings"] tbody tr').length >= n,
        paid.length,
        { timeout: UI_WAIT },
      );
    }

    // A lease's page lists its log from the node's lease index, opening included.
    const leases = await rpc<{ id: string }[]>(dev.url, 'unc_getLeases', { renter: dev1 });
    const leaseId = marketLease ?? leases[0]?.id;
    if (leaseId) {
      await page.goto(`${appUrl}#/lease/${leaseId}`);
      await page
        .locator('[data-testid="lease-log"] tr[data-event="leaseOpened"]')
        .waitFor({ timeout: UI_WAIT });
    }

    // The only validator signed every block it holds: 100 % signing uptime.
    await page.goto(`${appUrl}#/validators`);
    await page
      .getByTestId('validator-signed')
      .filter({ hasText: /^100(\.0)?\s?%/ })
      .first()
      .waitFor({ timeout: UI_WAIT });

    // Finality is instant: a transaction is "final", never "N confirmations".
    await page.goto(`${appUrl}#/tx/${tx.hash}`);
    await page.getByTestId('tx-final').waitFor({ timeout: UI_WAIT });
    assert.doesNotMatch((await page.locator('main, body').first().textContent()) ?? '', /confirmations?\b/i);
  });

  test('a renter opens a lease from the browser: keystore file and password, pre-flight, confirmation, on chain', {
    timeout: 360_000,
  }, async () => {
    interface RentOffer {
      id: string;
      provider: string;
      price: string;
      minHours: number;
      noticeMs: number;
      endpoint: string;
      available: number;
      chips: { chipId: string; available: boolean }[];
    }
    let offers = await rpc<RentOffer[]>(dev.url, 'unc_getOffers', []);
    // A chip no open offer holds (not the swtpm one, which a later test kills): dev9 offers it.
    if (!offers.some((o) => o.available > 0)) {
      const offered = new Set(offers.flatMap((o) => o.chips.map((c) => c.chipId)));
      const chip = chips.find((c) => c.profile !== 'tpm2' && !offered.has(c.chipId));
      assert.ok(chip, 'a software chip outside every offer');
      let last: RunResult | null = null;
      for (let attempt = 0; attempt < 4 && !offers.some((o) => o.available > 0); attempt++) {
        last = await runUnc(
          [
            'market',
            'offer',
            'create',
            '--home',
            home,
            '--from',
            'dev9',
            '--chips',
            chip.chipId,
            '--price',
            '1.25',
            '--min-hours',
            '1',
            '--max-hours',
            '12',
            '--notice',
            '30m',
            '--endpoint',
            'http://127.0.0.1:47002',
            '--region',
            'dev',
            '--yes',
            '--output',
            'json',
          ],
          60_000,
        );
        offers = await rpc<RentOffer[]>(dev.url, 'unc_getOffers', []);
      }
      assert.ok(
        offers.some((o) => o.available > 0),
        `no offer with a free chip: ${last?.stderr}`,
      );
    }
    const offer = offers.find((o) => o.available > 0)!;
    // A free software chip, named in the form (the swtpm chip is killed by a later test).
    const softChip = offer.chips.find(
      (c) => c.available && chips.find((x) => x.chipId === c.chipId)?.profile !== 'tpm2',
    )?.chipId;

    // The renter's key, as `unc keys export` would write it: dev3's seed in a keystore file.
    const core = await import('@unc/core');
    const { randomBytes } = await import('node:crypto');
    const mnemonic = core.mnemonicFromEntropy(core.sha256(core.utf8('UtilityNet dev accounts')).slice(0, 16));
    const seed = core.deriveEd25519(core.mnemonicToSeed(mnemonic), core.uncDerivationPath(3)).key;
    const renter = core.encodeAddress(core.addressFromPublicKey(core.ed25519PublicKey(seed)));
    const password = 'rent-from-the-browser 7f3a';
    const keystore = core.encryptKeystore(
      seed,
      password,
      { salt: randomBytes(32), iv: randomBytes(12) },
      { n: 2 ** 14, r: 8, p: 1 },
    );
    const keystoreText = JSON.stringify(keystore);
    const balanceBefore = BigInt(
      (await rpc<{ balance: string }>(dev.url, 'unc_getAccount', [renter])).balance,
    );

    // Everything the page sends while renting: neither the password nor the keystore may be in it.
    const sent: string[] = [];
    const record = (req: { postData: () => string | null; url: () => string }) =>
      sent.push(`${req.url()} ${req.postData() ?? ''}`);
    page.on('request', record);
    const frames: string[] = [];
    const watchSocket = (ws: WebSocket) => ws.on('framesent', (f) => frames.push(String(f.payload)));
    page.on('websocket', watchSocket);
    try {
      await page.goto(`${appUrl}#/market`);
      const row = page.locator(`[data-testid="offers-table"] tr[data-offer="${offer.id}"]`);
      await row.getByTestId('offer-rent').click({ timeout: UI_WAIT });
      const card = page.getByTestId('rent-card');
      await card.waitFor({ timeout: UI_WAIT });
      // A dev chain offers its dev keys too (the node says devChain).
      await page
        .locator('[data-testid="rent-source"] option[value="dev"]')
        .waitFor({ state: 'attached', timeout: UI_WAIT });

      // Pre-flight: no file yet, a wrong password, hours the offer does not take: clear errors.
      await page.getByTestId('rent-review').click();
      await page
        .getByTestId('rent-error')
        .filter({ hasText: /Load a keystore file/ })
        .waitFor({ timeout: UI_WAIT });
      await page.getByTestId('rent-keystore').setInputFiles({
        name: 'dev3.keystore.json',
        mimeType: 'application/json',
        buffer: Buffer.from(keystoreText),
      });
      await page.getByTestId('rent-password').fill('not the password');
      await page.getByTestId('rent-review').click();
      await page
        .getByTestId('rent-error')
        .filter({ hasText: /Wrong password/ })
        .waitFor({ timeout: 60_000 });
      await page.getByTestId('rent-hours').fill('100000');
      await page.getByTestId('rent-password').fill(password);
      await page.getByTestId('rent-review').click();
      await page
        .getByTestId('rent-error')
        .filter({ hasText: /rents for \d+…\d+ hours/ })
        .waitFor({ timeout: 60_000 });
      assert.equal(await page.getByTestId('rent-confirm').count(), 0, 'nothing to sign after a failed check');

      // The confirmation: chain id, the deposit (price × hours) and the fee, exactly, in UNC.
      const hours = Math.max(1, offer.minHours);
      await page.getByTestId('rent-hours').fill(String(hours));
      if (softChip) await page.getByTestId('rent-chip').selectOption(softChip);
      await page.getByTestId('rent-password').fill(password);
      await page.getByTestId('rent-review').click();
      await page.getByTestId('rent-confirm').waitFor({ timeout: 60_000 });
      const status = await rpc<{ chainId: string }>(dev.url, 'unc_status', []);
      assert.equal(await page.getByTestId('rent-chain-id').textContent(), status.chainId);
      const deposit = BigInt(offer.price) * BigInt(hours);
      const exact = (base: bigint) =>
        `${(base / 10n ** 18n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ',')}${
          base % 10n ** 18n ? `.${(base % 10n ** 18n).toString().padStart(18, '0').replace(/0+$/, '')}` : ''
        } UNC`;
      assert.equal(await page.getByTestId('rent-deposit').textContent(), exact(deposit));
      const feeText = (await page.getByTestId('rent-fee').textContent()) ?? '';
      assert.match(feeText, /^0\.\d+ UNC$/);
      // What the chain burns for the lease's record (core stateEntryBurn), shown beside the fee.
      const params = await rpc<{ minFeePerAction: string }>(dev.url, 'unc_getParams', []);
      const burn = 100n * BigInt(params.minFeePerAction);
      assert.equal(await page.getByTestId('rent-burn').textContent(), exact(burn));
      // The offer terms signed with the lease (their digest with them), as the node showed them.
      const termsText = (await page.getByTestId('rent-terms').textContent()) ?? '';
      assert.ok(termsText.includes(`notice     ${offer.noticeMs} ms`), termsText);
      assert.ok(termsText.includes(`endpoint   ${offer.endpoint}`), termsText);
      assert.match(termsText, /terms {6}[0-9a-f]{64} /);
      // Every term signed is in sight: the lines (64-hex chip ids, the digest) wrap inside the card
      // rather than run past its edge (on a phone, off the screen).
      const overrun = await page.getByTestId('rent-terms').evaluate((el) => {
        const text = document.createRange();
        text.selectNodeContents(el);
        return Math.ceil(text.getBoundingClientRect().right - el.getBoundingClientRect().right);
      });
      assert.ok(overrun <= 0, `the terms run ${overrun}px past the card`);
      await shot(page, 'rent-confirm.png');

      // Signed in the page, sent, included: the lease and a link to it.
      await page.getByTestId('rent-sign').click();
      const link = page.getByTestId('rent-lease-link');
      await link.waitFor({ timeout: 90_000 });
      const leaseId = /#\/lease\/([0-9a-f]{64})$/.exec((await link.getAttribute('href')) ?? '')?.[1];
      assert.ok(leaseId, 'a link to the lease');
      await shot(page, 'rent-done.png');

      // On chain, through RPC: dev3 rents that offer, with the deposit shown; its balance paid it + the fee.
      const lease = await rpc<{
        id: string;
        offerId: string;
        renter: string;
        deposit: string;
        status: string;
      }>(dev.url, 'unc_getLease', [leaseId]);
      assert.equal(lease.offerId, offer.id);
      assert.equal(lease.renter, renter);
      assert.equal(BigInt(lease.deposit), deposit);
      assert.equal(lease.status, 'active');
      const mine = await rpc<{ id: string }[]>(dev.url, 'unc_getLeases', { renter });
      assert.ok(mine.some((l) => l.id === leaseId));
      const balanceAfter = BigInt(
        (await rpc<{ balance: string }>(dev.url, 'unc_getAccount', [renter])).balance,
      );
      const fee = balanceBefore - balanceAfter - deposit - burn;
      assert.equal(exact(fee), feeText, 'the fee shown is the fee paid (besides the burn shown)');

      await link.click();
      await page.waitForURL(new RegExp(`#/lease/${leaseId}$`), { timeout: UI_WAIT });
      await page.getByTestId('lease-facts').filter({ hasText: renter }).waitFor({ timeout: UI_WAIT });

      // On this dev chain a dev key signs too: dev4's confirmation names dev4 (then Back: nothing sent).
      const dev4Seed = core.deriveEd25519(core.mnemonicToSeed(mnemonic), core.uncDerivationPath(4)).key;
      const dev4 = core.encodeAddress(core.addressFromPublicKey(core.ed25519PublicKey(dev4Seed)));
      await page.goto(`${appUrl}#/market`);
      await row.getByTestId('offer-rent').click({ timeout: UI_WAIT });
      await page
        .locator('[data-testid="rent-source"] option[value="dev"]')
        .waitFor({ state: 'attached', timeout: UI_WAIT });
      await page.getByTestId('rent-source').selectOption('dev');
      await page.getByTestId('rent-dev-key').selectOption('4');
      await page.getByTestId('rent-review').click();
      await page.getByTestId('rent-confirm').filter({ hasText: dev4 }).waitFor({ timeout: 60_000 });
      const dev4Nonce = (await rpc<{ nonce: number }>(dev.url, 'unc_getAccount', [dev4])).nonce;
      await page.getByTestId('rent-back').click();
      await page.getByTestId('rent-review').waitFor({ timeout: UI_WAIT });
      assert.equal((await rpc<{ nonce: number }>(dev.url, 'unc_getAccount', [dev4])).nonce, dev4Nonce);
    } finally {
      page.off('request', record);
      page.off('websocket', watchSocket);
    }
    const everything = [...sent, ...frames].join('\n');
    assert.ok(!everything.includes(password), 'the password never leaves the page');
    assert.ok(!everything.includes(keystore.crypto.ciphertext), 'the keystore never leaves the page');
    assert.ok(!everything.includes(core.toHex(seed)), 'the key never leaves the page');
  });

  test('the blocks list pages', { timeout: 60_000 }, async () => {
    await page.goto(`${appUrl}#/blocks`);
    await page.locator('[data-testid="blocks-table"] tbody tr').nth(5).waitFor({ timeout: UI_WAIT });
  });

  test('the chips page lists every chip online with its power; search, owner filter, account and validators', {
    timeout: 120_000,
  }, async () => {
    await page.goto(`${appUrl}#/chips`);
    const rows = page.locator('[data-testid="chips-table"] tbody tr');
    // Every chip listed and answering (online, none offline).
    await page.waitForFunction(
      (n) =>
        document.querySelectorAll('[data-testid="chips-table"] tbody tr').length === n &&
        document.querySelectorAll(
          '[data-testid="chips-table"] [data-state="online"], [data-testid="chips-table"] [data-state="missing"]',
        ).length === n,
      CHIPS,
      { timeout: UI_WAIT },
    );
    assert.equal(await rows.count(), CHIPS);
    const power = chips.reduce((s, c) => s + BigInt(c.power), 0n);
    await page
      .getByTestId('online-power')
      .filter({ hasText: tflopsText(power) })
      .waitFor({ timeout: UI_WAIT });
    assert.match(
      (await page.getByTestId('chips-online').textContent()) ?? '',
      new RegExp(`^${CHIPS}\\s*/\\s*${CHIPS}$`),
    );
    assert.ok(
      (await page.locator('[data-testid="power-chart"] path.step-line').count()) === 1,
      'no power chart',
    );
    if (SWTPM) assert.ok(await rows.filter({ hasText: 'tpm2' }).count(), 'no tpm2 chip listed');

    // A chip id in the search box: not a block, not a transaction, so the chip.
    await search(page, tpmChip.chipId);
    await page.waitForURL(new RegExp(`#/chip/${tpmChip.chipId}$`), { timeout: UI_WAIT });
    await page.getByTestId('chip-id').filter({ hasText: tpmChip.chipId }).waitFor({ timeout: UI_WAIT });
    await page.getByTestId('slot-cell').first().waitFor({ timeout: UI_WAIT });
    await page
      .locator('[data-testid="chip-log"] .log-entry[data-type="chipRegistered"]')
      .waitFor({ timeout: UI_WAIT });

    // The owner filter, then an owner without chips.
    await page.goto(`${appUrl}#/chips?owner=${dev9}`);
    await page.waitForFunction(
      (n) => document.querySelectorAll('[data-testid="chips-table"] tbody tr').length === n,
      CHIPS,
      { timeout: UI_WAIT },
    );
    await page.goto(`${appUrl}#/chips?owner=${dev1}`);
    await page.locator('.card-chips .empty', { hasText: 'owns no chips' }).waitFor({ timeout: UI_WAIT });

    // The owner's account page lists its chips.
    await page.goto(`${appUrl}#/account/${dev9}`);
    await page.waitForFunction(
      (n) => document.querySelectorAll('[data-testid="account-chips"] tbody tr').length === n,
      CHIPS,
      { timeout: UI_WAIT },
    );

    // The chips list, all online.
    await page.goto(`${appUrl}#/chips`);
    await page
      .locator('[data-testid="chips-table"] tbody tr')
      .nth(CHIPS - 1)
      .waitFor({ timeout: UI_WAIT });
    await shot(page, 'chips-online.png');

    // Validators: the live set from unc_getValidators — on `unc dev`, the one genesis validator
    // with all the power. Past the first epoch boundary the node says `computed` though no account
    // is bonded (the genesis set is kept); the page names it the genesis set either way.
    const set = await rpc<{
      source: string;
      validators: { publicKey: string; address: string; sharePpm: number; bonded: string }[];
      candidates: number;
    }>(dev.url, 'unc_getValidators', []);
    assert.equal(set.validators.length, 1);
    assert.equal(set.validators[0]!.sharePpm, 1_000_000);
    assert.equal(set.validators[0]!.bonded, '0');
    assert.equal(set.candidates, 0);
    await page.goto(`${appUrl}#/validators`);
    await page
      .locator('[data-testid="validators-table"] tbody tr', { hasText: 'this node' })
      .waitFor({ timeout: UI_WAIT });
    await page.getByTestId('validators-source').filter({ hasText: 'genesis' }).waitFor({ timeout: UI_WAIT });
    assert.equal(await page.locator('[data-testid="validators-table"] tbody tr').count(), 1);
    assert.equal(((await page.getByTestId('validator-count').textContent()) ?? '').trim(), '1');
    assert.equal(((await page.getByTestId('validator-share').first().textContent()) ?? '').trim(), '100%');
    await page
      .locator(
        `[data-testid="validators-table"] td.hide-sm a[href="#/account/${set.validators[0]!.address}"]`,
      )
      .waitFor({ timeout: UI_WAIT });
    await page.getByTestId('validators-quorum').waitFor({ timeout: UI_WAIT });
    await page
      .locator('[data-testid="proposers-table"] tbody tr a[href^="#/account/unc1"]')
      .first()
      .waitFor({ timeout: UI_WAIT });
    await shot(page, 'validators.png');
  });

  test('a chip whose TPM dies misses its slots (with the reason), goes OFFLINE, and the miner view says what to fix', {
    skip: SWTPM ? false : 'no swtpm on the PATH',
    timeout: 240_000,
  }, async () => {
    const pid = dev.swtpmPids[0]!;
    const short = tpmChip.chipId.slice(0, 8);
    process.kill(pid, 'SIGKILL');
    killedSwtpm.add(pid);

    // The chip page: a missed slot in the timeline and a line with its reason in the log.
    await page.goto(`${appUrl}#/chip/${tpmChip.chipId}`);
    const missLine = page
      .locator('[data-testid="chip-log"] .log-entry[data-type="slotMissed"]')
      .filter({ hasText: /Missed slot \d+ of epoch \d+ at height \d+: no answer included by height \d+/ })
      .first();
    await missLine.waitFor({ timeout: OFFLINE_WITHIN_MS });
    const missed = page.locator('[data-testid="slot-cell"][data-status="missed"]').first();
    await missed.waitFor({ timeout: UI_WAIT });
    assert.match(
      (await missed.getAttribute('title')) ?? '',
      /by block \d+: missed — no answer included by height \d+/,
    );
    await page
      .getByTestId('chip-state')
      .filter({ hasText: 'OFFLINE' })
      .waitFor({ timeout: OFFLINE_WITHIN_MS });
    await shot(page, 'chip.png');

    // The list: that chip OFFLINE, the others still online.
    await page.goto(`${appUrl}#/chips`);
    const row = page.locator(`[data-testid="chips-table"] tr[data-chip="${tpmChip.chipId}"]`);
    await row.locator('[data-state="offline"]', { hasText: 'OFFLINE' }).waitFor({ timeout: UI_WAIT });
    assert.equal(
      await page.locator('[data-testid="chips-table"] [data-state="offline"]').count(),
      1,
      'only the TPM chip is offline',
    );
    await shot(page, 'chips.png');

    // The miner view of its owner (dev9) says what to fix, for that chip.
    await page.goto(`${appUrl}#/miner?owner=${dev9}`);
    const hint = page.locator('[data-testid="miner-hints"] [data-tone="danger"]', { hasText: `${short}…` });
    await hint
      .filter({ hasText: /missed \d+( or more)? slots in a row: no answer since height \d+/ })
      .waitFor({ timeout: UI_WAIT });
    assert.match((await hint.textContent()) ?? '', /OFFLINE/);
    await page.waitForFunction(
      (n) => document.querySelectorAll('[data-testid="miner-chips"] tbody tr').length === n,
      CHIPS,
      { timeout: UI_WAIT },
    );
    await shot(page, 'miner.png');
  });

  test('on a phone-sized screen nothing scrolls sideways', { timeout: 300_000 }, async () => {
    const ctx = await browser.newContext({
      viewport: { width: 390, height: 844 },
      deviceScaleFactor: 2,
      isMobile: true,
    });
    const phone = await ctx.newPage();
    phone.on('pageerror', (err) => pageErrors.push(err.message));
    phone.on('console', (m) => {
      if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text());
    });
    try {
      for (const [path, name] of [
        ['#/', 'overview-mobile.png'],
        [`#/tx/${tx.hash}`, 'tx-mobile.png'],
        [`#/account/${dev1}`, 'account-mobile.png'],
        [`#/block/${tx.height}`, 'block-mobile.png'],
        ['#/chips', 'chips-mobile.png'],
        [`#/chip/${tpmChip.chipId}`, 'chip-mobile.png'],
        [`#/miner?owner=${dev9}`, 'miner-mobile.png'],
        ['#/validators', 'validators-mobile.png'],
        ['#/market', 'market-mobile.png'],
        ...(marketLease ? ([[`#/lease/${marketLease}`, 'lease-mobile.png']] as const) : []),
      ] as const) {
        await phone.goto(`${appUrl}${path}`);
        await phone.locator('.page h1').first().waitFor({ timeout: UI_WAIT });
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

  test('when the node goes away, a clear message replaces nothing', { timeout: 120_000 }, async () => {
    assert.deepEqual(pageErrors, [], 'uncaught errors in the page');
    assert.deepEqual(cspViolations, [], 'what the Content-Security-Policy refused the app');
    await page.goto(`${appUrl}#/`);
    await page
      .getByTestId('height')
      .filter({ hasText: /^[1-9][\d,]*$/ })
      .waitFor({ timeout: UI_WAIT });
    await stopProcess(dev.proc, 'SIGKILL');
    const banner = page.getByTestId('banner');
    await banner
      .filter({ hasText: /Cannot reach the node at http:\/\/127\.0\.0\.1:\d+ — retrying/ })
      .waitFor({
        timeout: UI_WAIT,
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
        .waitFor({ timeout: UI_WAIT });
      assert.ok(await fresh.locator('.page h1').first().isVisible());
      await shot(fresh, 'node-down-fresh.png', false);
    } finally {
      await fresh.close();
    }
  });
});
