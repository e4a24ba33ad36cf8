/**
 * The sdk in a real browser: bundled for the browser with esbuild (the `browser` conditions of
 * @unc/sdk and @unc/core; a Node built-in anywhere in the graph fails the build), loaded into
 * headless Chromium (playwright-core, Debian's /usr/bin/chromium), where it signs a transfer with
 * a seed signer, sends it, waits for inclusion over the browser's own WebSocket and verifies the
 * sender's balance proof, against a real `unc dev` node started here. Everything started is
 * stopped, by PID, at the end.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { toHex } from '@unc/core';
import { build } from 'esbuild';
import { type Browser, chromium } from 'playwright-core';
import { UncClient } from '../src/index.js';
import { type DevChain, devAccount, startDevChain } from './dev-chain.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const skip = existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM}`;
const SDK_DIR = fileURLToPath(new URL('../../', import.meta.url));

/** What the page runs: only the sdk's public API, as an app would import it. */
const PAGE_SCRIPT = `
import { UncClient, buildTransaction, encodeSigned, seedSigner, signedHash, signerAddress,
  transferAction, verifyAccountProof } from '@unc/sdk';
import { fromHex } from '@unc/core';
window.transfer = async (url, seedHex, to, amount) => {
  const client = new UncClient(url);
  const signer = seedSigner(fromHex(seedHex, 32));
  const from = signerAddress(signer);
  const before = await client.balance(from);
  const stx = await buildTransaction(client, signer, [transferAction(to, BigInt(amount))]);
  await client.sendRawTransaction(encodeSigned(stx));
  const inclusion = await client.waitForTransaction(signedHash(stx), 20000);
  const account = await client.getAccount(from, true);
  const header = await client.getHeader(account.height);
  const proven = verifyAccountProof(account, header);
  return { from, before: before.toString(), after: proven.balance.toString(), fee: stx.tx.fee.toString(),
    status: inclusion.status, hasBuffer: typeof globalThis.Buffer !== 'undefined' };
};
`;

let chain: DevChain | undefined;
let server: Server | undefined;
let browser: Browser | undefined;
let pageUrl = '';
let bundleText = '';

before(async () => {
  if (skip) return;
  const out = await build({
    stdin: { contents: PAGE_SCRIPT, resolveDir: SDK_DIR, loader: 'js' },
    bundle: true,
    platform: 'browser',
    format: 'esm',
    target: 'es2022',
    write: false,
    logLevel: 'silent',
  });
  bundleText = out.outputFiles[0]!.text;
  server = createServer((req, res) => {
    if (req.url === '/bundle.js') res.writeHead(200, { 'content-type': 'text/javascript' }).end(bundleText);
    else
      res
        .writeHead(200, { 'content-type': 'text/html' })
        .end('<!doctype html><script type="module" src="/bundle.js"></script>');
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  pageUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  chain = await startDevChain();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
});

after(async () => {
  await browser?.close();
  await chain?.stop();
  server?.close();
});

test('the browser bundle carries no Node built-in and no node:crypto', { skip }, () => {
  assert.doesNotMatch(bundleText, /from\s*["']node:/);
  assert.doesNotMatch(bundleText, /require\(["'](node:)?(crypto|buffer|https?|tls|net)["']\)/);
});

test('a transfer signed, sent and proven from headless Chromium', { skip }, async () => {
  const page = await browser!.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(pageUrl);
  await page.waitForFunction(
    () => typeof (globalThis as unknown as { transfer?: unknown }).transfer === 'function',
  );
  const sender = devAccount(5);
  const to = devAccount(6).address;
  const client = new UncClient(chain!.url);
  const toBefore = await client.balance(to);
  const result = await page.evaluate(
    ([url, seed, dest]) =>
      (globalThis as unknown as { transfer: (...a: string[]) => Promise<Record<string, unknown>> }).transfer(
        url!,
        seed!,
        dest!,
        '777',
      ),
    [chain!.url, toHex(sender.seed), to],
  );
  assert.deepEqual(errors, []);
  assert.equal(result.status, 'included');
  assert.equal(result.from, sender.address);
  assert.equal(result.hasBuffer, false, 'the page has no Buffer: the sdk did not need one');
  assert.equal(
    BigInt(result.after as string),
    BigInt(result.before as string) - 777n - BigInt(result.fee as string),
  );
  // The node agrees, read from Node.
  assert.equal(await client.balance(to), toBefore + 777n);
  assert.equal((await client.balance(sender.address)).toString(), result.after);
});
