/**
 * The explorer in a real browser (Chromium through playwright-core) reading from a hostile node: a
 * tiny JSON-RPC server that answers what an attacker could put on chain (memos, free-text action
 * fields) or what a node that lies would answer. The page is served by the node's own handler
 * (packages/node explorer.ts), headers included.
 *
 * What must hold: nothing it answers runs as script; text someone wrote cannot reorder or hide the
 * text around it (right-to-left overrides, zero-width characters); a page opened from a link that
 * names another node (`?rpc=`) says so where the reader looks, not only in a settings popover.
 *
 * Builds the app with Vite into a temporary folder (or uses UNC_EXPLORER_DIST). Needs Chromium at
 * /usr/bin/chromium or CHROMIUM_PATH. Both servers and the temporary folder are removed at the end.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, normalize } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { type Browser, chromium, type Page } from 'playwright-core';

const EXPLORER_DIR = fileURLToPath(new URL('../../', import.meta.url));
const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const skip = existsSync(CHROMIUM)
  ? false
  : `no Chromium at ${CHROMIUM} (install Debian's chromium or set CHROMIUM_PATH)`;
/** Bounds how long a real failure takes to report on a loaded machine; never a timing assertion. */
const UI_WAIT = 30_000;

const RLO = '\u202E';
const ZWSP = '\u200B';
const FROM = 'unc1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq0fr0m';
const TO = 'unc1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqt0';
const TX_HASH = 'ab'.repeat(32);
/** What the sender wrote: a right-to-left override, so that what follows reads backwards. */
const MEMO = `invoice 7${RLO}`;
/**
 * One of every other kind of character that draws nothing, moves the line or changes what is beside
 * it: C0 and C1 controls and DEL, the line and paragraph separators (a paragraph separator restarts
 * the bidi algorithm), variation selectors (both planes), the combining grapheme joiner, an
 * unassigned default-ignorable, a musical formatting control, the Braille blank.
 */
const HIDDEN_MORE = [
  '\u0007',
  '\u001B',
  '\u007F',
  '\u0085',
  '\u009B',
  '\u2028',
  '\u2029',
  '\uFE0F',
  '\u{E0100}',
  '\u034F',
  '\u2065',
  '\u{1D173}',
  '\u2800',
];
/** Text that looks like what the explorer once showed for a hidden character, written as is. */
const FAKE_ESCAPE = 'bob⟨U+200B⟩';
/** The same in look-alike brackets: any text form of a marker can be typed in. */
const LOOKALIKE_ESCAPE = 'eve〈U+200B〉';
/** Well-formed emoji sequences (a ZWJ sequence, a flag with U+FE0F, a skin tone): drawn as they are. */
const EMOJI = 'gm 👩\u200D💻 🏳\uFE0F\u200D🌈 👍🏽';

/** 300 emoji joined by ZWJ, and 500 Hangul leading jamo: each one grapheme cluster as written. */
const GLUED_EMOJI = Array(300).fill('👩').join('\u200D');
const GLUED_JAMO = '\u1100'.repeat(500);

/**
 * The text of `main` as a reader sees it: each hidden character the explorer marks (an element of
 * its own, .hidden-char, with an aria label) written ⟦U+XXXX⟧, which no text in these answers holds.
 */
async function shownText(page: Page, selector = 'main'): Promise<string> {
  return page.evaluate((sel) => {
    const root = document.querySelector(sel)!.cloneNode(true) as Element;
    for (const el of Array.from(root.querySelectorAll('.hidden-char'))) el.replaceWith(`⟦${el.textContent}⟧`);
    return root.textContent ?? '';
  }, selector);
}
const hex = (s: string) => Buffer.from(s, 'utf8').toString('hex');

/** A transaction as a hostile node (or a sender, for the free-text fields) can make it. */
function receipt() {
  return {
    hash: TX_HASH,
    height: 12,
    index: 0,
    blockHash: 'cd'.repeat(32),
    time: '2026-12-01T00:00:00.000Z',
    tx: {
      from: FROM,
      nonce: '1',
      fee: '1000',
      chainId: 'unc-devnet',
      actions: [
        { type: 'transfer', to: TO, amount: '1000000000000000000', memo: hex(MEMO) },
        // A free-text field ahead of a number: the override in it would print the number reversed.
        {
          type: 'noteFiled',
          label: `gpu${RLO}`,
          price: 'price 1000',
          tag: `unc1pay${ZWSP}ee`,
          markup: '<img src=x onerror="window.__pwned=1">',
          link: 'javascript:window.__pwned=2',
          hidden: `x${HIDDEN_MORE.join('x')}x`,
          lookalike: FAKE_ESCAPE,
          lookalike2: LOOKALIKE_ESCAPE,
          emoji: EMOJI,
          // Combining marks stacked on one letter paint over the lines above and below it.
          zalgo: `Z${'\u0301\u0316'.repeat(40)}end`,
          long: 'L'.repeat(100_000),
          // One grapheme cluster each, however long: a browser never breaks a line inside one.
          glued: GLUED_EMOJI,
          jamo: GLUED_JAMO,
        },
      ],
    },
    events: [
      { type: 'transfer', from: FROM, to: TO, amount: '1000000000000000000', memo: hex(MEMO) },
      { type: 'fee', payer: FROM, amount: '1000', burned: '500', toProposer: '500' },
    ],
  };
}

function rpcAnswer(method: string): {
  result?: unknown;
  error?: { code: number; message: string; data?: unknown };
} {
  if (method === 'unc_getTransaction') return { result: receipt() };
  if (method === 'unc_getGenesis')
    return {
      result: {
        chainId: 'unc-devnet',
        genesisTime: '2026-12-01T00:00:00.000Z',
        validators: [{ publicKey: 'ee'.repeat(32), name: `validator${RLO}` }],
      },
    };
  // The reason code a node gives is its own text too.
  return { error: { code: -32601, message: `<b>no</b> ${RLO}method`, data: { reason: `NOPE${RLO}` } } };
}

/** A JSON-RPC node that answers what it likes, from any origin (as the real one allows). */
function startHostileNode(): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    res.setHeader('access-control-allow-origin', '*');
    res.setHeader('access-control-allow-headers', 'content-type');
    if (req.method !== 'POST') {
      res.writeHead(req.method === 'OPTIONS' ? 204 : 404).end();
      return;
    }
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      let parsed: unknown;
      try {
        parsed = JSON.parse(body);
      } catch {
        res.writeHead(400).end();
        return;
      }
      const one = (r: { id?: unknown; method?: string }) => ({
        jsonrpc: '2.0',
        id: r.id,
        ...rpcAnswer(r.method ?? ''),
      });
      const out = Array.isArray(parsed) ? parsed.map(one) : one(parsed as { id?: unknown; method?: string });
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(out));
    });
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({ server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }),
    ),
  );
}

type Handler = (req: IncomingMessage, res: ServerResponse) => boolean;

/** Serves `dir` with the node's own explorer handler, as `unc dev` does. */
async function serveLikeTheNode(dir: string): Promise<{ server: Server; base: string }> {
  const mod = (await import(pathToFileURL(join(ROOT, 'packages/node/dist/src/explorer.js')).href)) as {
    explorerHandler: (dir: string) => Handler;
  };
  const handle = mod.explorerHandler(dir);
  const server = createServer((req, res) => {
    if (!handle(req, res)) res.writeHead(404).end();
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({ server, base: `http://127.0.0.1:${(server.address() as AddressInfo).port}/explorer/` }),
    ),
  );
}

async function buildExplorer(outDir: string): Promise<void> {
  const { build } = await import('vite');
  await build({
    configFile: join(EXPLORER_DIR, 'vite.config.ts'),
    root: EXPLORER_DIR,
    logLevel: 'warn',
    build: { outDir, emptyOutDir: true },
  });
}

describe('explorer reading from a hostile node', { skip }, () => {
  const built = mkdtempSync(join(tmpdir(), 'unc-explorer-hostile-'));
  let hostile: { server: Server; url: string };
  let site: { server: Server; base: string };
  let browser: Browser;
  let page: Page;
  const pageErrors: string[] = [];

  before(async () => {
    const dist = process.env.UNC_EXPLORER_DIST;
    if (!dist) await buildExplorer(built);
    hostile = await startHostileNode();
    site = await serveLikeTheNode(dist ? normalize(join(process.cwd(), dist)) : built);
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on('pageerror', (err) => pageErrors.push(err.message));
    await page.goto(`${site.base}?rpc=${encodeURIComponent(hostile.url)}#/tx/${TX_HASH}`);
    await page.getByTestId('tx-title').waitFor({ timeout: UI_WAIT });
  });

  after(async () => {
    await browser?.close();
    for (const s of [hostile?.server, site?.server])
      if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
    rmSync(built, { recursive: true, force: true });
  });

  test('nothing the node answers runs as script or becomes a javascript: link', async () => {
    await page.getByText('<img src=x onerror="window.__pwned=1">').first().waitFor({ timeout: UI_WAIT });
    const state = await page.evaluate(() => ({
      pwned: (window as unknown as { __pwned?: number }).__pwned,
      scriptLinks: document.querySelectorAll('a[href^="javascript:" i]').length,
      images: document.querySelectorAll('main img').length,
    }));
    assert.deepEqual(state, { pwned: undefined, scriptLinks: 0, images: 0 });
    assert.deepEqual(pageErrors, []);
  });

  test('a right-to-left override or a zero-width character on chain is shown, not obeyed', async () => {
    const text = await shownText(page);
    // The override would reverse what follows it on screen; the zero-width space would make
    // one address read as another. Both are shown as their code points instead.
    for (const hidden of [RLO, ZWSP])
      assert.ok(
        !text.includes(hidden),
        `U+${hidden.codePointAt(0)!.toString(16).toUpperCase()} reached the page as is`,
      );
    assert.match(text, /invoice 7⟦U\+202E⟧/);
    assert.match(text, /unc1pay⟦U\+200B⟧ee/);
    // And each piece of chain text is isolated: even a right-to-left letter in it cannot pull the
    // amount or address beside it into its own direction.
    const isolated = await page.evaluate(() => {
      const walker = document.createTreeWalker(document.querySelector('main')!, NodeFilter.SHOW_TEXT);
      const owners: Element[] = [];
      for (let n = walker.nextNode(); n; n = walker.nextNode())
        if (/^(“?invoice 7|gpu)/.test(n.textContent ?? '') && n.parentElement) owners.push(n.parentElement);
      const isolatedUpTo = (el: Element) => {
        for (let e: Element | null = el; e && !e.classList.contains('event-body'); e = e.parentElement)
          if (['isolate', 'isolate-override', 'plaintext'].includes(getComputedStyle(e).unicodeBidi))
            return true;
        return false;
      };
      return owners.length >= 3 && owners.every(isolatedUpTo);
    });
    assert.equal(isolated, true, 'chain text is not bidi-isolated');
  });

  test('every other invisible or line-moving character, stacked marks, look-alike escapes and huge text are shown bounded', async () => {
    // The emoji sequence's own U+FE0F is drawn, as it should be (its own test): not counted here.
    const text = (await shownText(page)).replaceAll(EMOJI, '');
    for (const hidden of HIDDEN_MORE)
      assert.ok(
        !text.includes(hidden),
        `U+${hidden.codePointAt(0)!.toString(16).toUpperCase()} reached the page as is`,
      );
    assert.match(text, /x⟦U\+0007⟧x⟦U\+001B⟧x/);
    assert.match(text, /x⟦U\+E0100⟧x/);
    assert.match(text, /x⟦U\+FE0F⟧x/);
    assert.doesNotMatch(text, /\p{M}{5}/u, 'more than four combining marks stacked on one letter');
    assert.match(text, /Z\u0301\u0316\u0301\u0316⟦U\+0301⟧/);
    // 100 000 characters of one field: shown up to about 2 000, cut with a visible "…".
    assert.match(text, /L{1000}…/);
    assert.doesNotMatch(text, /L{2100}/);
  });

  test('text glued into one long grapheme cluster still wraps within the page', async () => {
    const widths = await page.evaluate(
      (glued) => {
        const main = document.querySelector('main')!;
        const boxes = Array.from(main.querySelectorAll('bdi')).filter((b) =>
          glued.some((g) => b.textContent?.includes(g)),
        );
        return {
          found: boxes.length,
          widest: Math.max(0, ...boxes.map((b) => b.getBoundingClientRect().width)),
          main: main.clientWidth,
          page: document.documentElement.scrollWidth,
          view: window.innerWidth,
        };
      },
      [GLUED_EMOJI.slice(0, 20), GLUED_JAMO.slice(0, 20)],
    );
    assert.equal(widths.found, 2, 'the glued fields are not on the page');
    assert.ok(
      widths.widest <= widths.main,
      `a field ${widths.widest} px wide in a main of ${widths.main} px`,
    );
    assert.ok(
      widths.page <= widths.view,
      `the page scrolls sideways: ${widths.page} px in ${widths.view} px`,
    );
  });

  test('a marker is an element typed text cannot draw, labelled for screen readers; emoji sequences are drawn', async () => {
    const text = await shownText(page);
    // What the explorer's markers once read as, typed in ("⟨", or look-alike brackets): plain text,
    // next to a real marker that is a boxed element of its own.
    assert.ok(text.includes(FAKE_ESCAPE), 'a typed-in "⟨U+200B⟩" is shown as typed');
    assert.ok(text.includes(LOOKALIKE_ESCAPE), 'a typed-in "〈U+200B〉" is shown as typed');
    const marker = await page.evaluate(() => {
      const el = Array.from(document.querySelectorAll('main .hidden-char')).find(
        (e) => e.textContent === 'U+202E',
      );
      if (!el) return null;
      const style = getComputedStyle(el);
      return {
        label: el.getAttribute('aria-label'),
        role: el.getAttribute('role'),
        border: style.borderTopStyle,
      };
    });
    assert.deepEqual(marker, { label: 'hidden character U+202E', role: 'img', border: 'dashed' });
    const forged = await page.evaluate(
      (typed) =>
        Array.from(document.querySelectorAll('main bdi'))
          .filter((b) => b.textContent?.includes(typed))
          .map((b) => b.querySelectorAll('.hidden-char').length),
      LOOKALIKE_ESCAPE,
    );
    assert.deepEqual(forged, [0], 'typed look-alike brackets became a marker');
    assert.ok(text.includes(EMOJI), 'a well-formed emoji sequence is not drawn as it is');
  });

  test('an invalid ?rpc= address from a link is echoed with its hidden characters visible', async () => {
    const probe = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    try {
      await probe.goto(`${site.base}?rpc=${encodeURIComponent(`refund${RLO}`)}#/`);
      const banner = probe.getByTestId('banner');
      await banner.getByText('refund', { exact: false }).waitFor({ timeout: UI_WAIT });
      const text = await shownText(probe, '[data-testid="banner"]');
      assert.ok(!text.includes(RLO), 'the override in the ?rpc= value reached the page as is');
      assert.match(text, /refund⟦U\+202E⟧/);
    } finally {
      await probe.close();
    }
  });

  test('?rpc= naming this site with another path is another node; naming the site itself is not', async () => {
    const origin = new URL(site.base).origin;
    const probe = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    try {
      await probe.goto(`${site.base}?rpc=${encodeURIComponent(`${origin}/elsewhere/rpc`)}#/`);
      const banner = probe.getByTestId('foreign-node');
      await banner.waitFor({ timeout: UI_WAIT });
      assert.match((await banner.textContent()) ?? '', /\/elsewhere\/rpc/);
      await probe.goto(`${site.base}?rpc=${encodeURIComponent(origin.toUpperCase())}#/`);
      await probe.getByTestId('banner').waitFor({ timeout: UI_WAIT });
      assert.equal(await probe.getByTestId('foreign-node').count(), 0);
    } finally {
      await probe.close();
    }
  });

  test("a node's error reason and the genesis validators' names are shown with their hidden characters visible", async () => {
    const probe = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    try {
      for (const [route, written] of [
        ['block/5', 'NOPE'],
        ['validators', 'validator'],
      ] as const) {
        await probe.goto(`${site.base}?rpc=${encodeURIComponent(hostile.url)}#/${route}`);
        // Waits for the node's text itself: the validators page's own heading holds "Validator", so
        // waiting for the word alone passed before the node answered (a loaded CI machine saw it).
        const shown = new RegExp(`${written}⟦U\\+202E⟧`);
        const deadline = Date.now() + UI_WAIT;
        let text = await shownText(probe);
        while (!shown.test(text) && !text.includes(RLO) && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 100));
          text = await shownText(probe);
        }
        assert.ok(!text.includes(RLO), `#/${route}: the override reached the page as is`);
        assert.match(text, shown);
      }
    } finally {
      await probe.close();
    }
  });

  test('what a link puts in the page address (the hash route) is shown with its hidden characters visible', async () => {
    const probe = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    try {
      for (const route of ['chip', 'lease', 'offer', 'account', 'block', 'tx']) {
        await probe.goto(
          `${site.base}?rpc=${encodeURIComponent(hostile.url)}#/${route}/${encodeURIComponent(`refund${RLO}`)}`,
        );
        const main = probe.locator('main');
        await main.getByText('refund', { exact: false }).first().waitFor({ timeout: UI_WAIT });
        const text = await shownText(probe);
        assert.ok(!text.includes(RLO), `#/${route}/: the override reached the page as is`);
        assert.match(text, /refund⟦U\+202E⟧/);
      }
    } finally {
      await probe.close();
    }
  });

  test('a page opened with ?rpc= naming another node says so on the page itself', async () => {
    const banner = page.getByTestId('foreign-node');
    await banner.waitFor({ timeout: UI_WAIT });
    assert.match(
      (await banner.textContent()) ?? '',
      new RegExp(new URL(hostile.url).host.replace(/\./g, '\\.')),
    );
  });

  test('the node serves the page with headers that forbid framing and sniffing', async () => {
    const res = await fetch(site.base);
    assert.equal(res.headers.get('x-frame-options'), 'DENY');
    assert.match(res.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/);
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
    assert.equal((await fetch(`${site.base}..%2f..%2fpackage.json`)).status, 404);
    assert.equal((await fetch(`${site.base}%2e%2e/%2e%2e/package.json`)).status, 404);
  });
});
