/**
 * An account's transactions from the node's index (unc_getAccountTransactions): pages by cursor,
 * newest first, and their CSV export. Pure helpers; the page component holds the state.
 */
import { actionRecipient } from './components/actions';
import { big } from './format';
import type { AccountTransactionsPage, AccountTxJson, UncClient } from './sdk';

export const ACCOUNT_PAGE_SIZE = 25;
/** Rows an "export all" reads at most (100-row pages): beyond that, export by pages. */
export const EXPORT_MAX_ROWS = 20_000;

export function fetchAccountPage(
  client: UncClient,
  address: string,
  opts: { cursor?: string | null; heartbeats: boolean; limit?: number },
): Promise<AccountTransactionsPage> {
  // The wire (JSON) form, typed by the schema: the rows render with the tables' TxJson components.
  return client.call('unc_getAccountTransactions', {
    address,
    limit: opts.limit ?? ACCOUNT_PAGE_SIZE,
    heartbeats: opts.heartbeats,
    ...(opts.cursor ? { cursor: opts.cursor } : {}),
  });
}

/** Newest first, each transaction once: `fresh` (a re-read first page) ahead of what was loaded. */
export function mergeNewest(fresh: AccountTxJson[], loaded: AccountTxJson[]): AccountTxJson[] {
  const seen = new Set(loaded.map((t) => t.hash));
  return [...fresh.filter((t) => !seen.has(t.hash)), ...loaded];
}

/** The action types of a transaction, joined ("heartbeat", "transfer+bond"). */
export function txKinds(t: AccountTxJson): string {
  return [...new Set(t.tx.actions.map((a) => a.type))].join('+');
}

/**
 * A field a spreadsheet would read as a formula (= + - @, or a tab or CR ahead of one) gets a
 * leading ' : every field here is the node's word, and a node can answer "=HYPERLINK(…)" as a hash
 * or an action type. Plain integers stay numbers.
 */
function csvField(v: string | number): string {
  let s = String(v);
  if (/^[=+\-@\t\r]/.test(s) && !/^-?\d+$/.test(s)) s = `'${s}`;
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export const CSV_HEADER = [
  'hash',
  'height',
  'index',
  'time',
  'direction',
  'from',
  'to',
  'types',
  'amount_base_units',
  'fee_base_units',
  'nonce',
];

/**
 * One row per transaction. Amounts are base units (1 UNC = 10^18), exact: the sum of the transfers'
 * amounts, the ones that name `self` as recipient when the account received them.
 */
export function accountCsv(self: string, rows: AccountTxJson[]): string {
  const lines = [CSV_HEADER.join(',')];
  for (const t of rows) {
    const out = t.tx.from === self;
    let amount = 0n;
    for (const a of t.tx.actions) {
      if (a.type !== 'transfer') continue;
      if (out || a.to === self) amount += big(a.amount);
    }
    const to = t.tx.actions.map(actionRecipient).find((x) => x !== undefined) ?? '';
    lines.push(
      [
        t.hash,
        t.height,
        t.index,
        t.time,
        out ? 'out' : 'in',
        t.tx.from,
        to,
        txKinds(t),
        amount.toString(),
        t.tx.fee,
        t.tx.nonce,
      ]
        .map(csvField)
        .join(','),
    );
  }
  return `${lines.join('\n')}\n`;
}

/**
 * `read()`, waited for and tried again while the node answers RATE_LIMITED with a retryAfterMs (a
 * 100-row page costs 100 work units, so a long export spends a public node's per-client rate):
 * the export goes at the pace the node allows instead of failing half-way.
 */
async function afterRateLimits<T>(read: () => Promise<T>): Promise<T> {
  for (let waits = 0; ; waits++) {
    try {
      return await read();
    } catch (err) {
      const e = err as { reason?: unknown; retryAfterMs?: unknown };
      if (waits >= 20 || e.reason !== 'RATE_LIMITED' || typeof e.retryAfterMs !== 'number') throw err;
      const ms = Math.min(Math.max(e.retryAfterMs, 100), 30_000);
      await new Promise((resolve) => setTimeout(resolve, ms));
    }
  }
}

/** Every transaction of the account (up to EXPORT_MAX_ROWS), following the cursors. */
export async function fetchAllAccountTxs(
  client: UncClient,
  address: string,
  heartbeats: boolean,
  onProgress: (rows: number) => void,
): Promise<{ rows: AccountTxJson[]; complete: boolean }> {
  const rows: AccountTxJson[] = [];
  let cursor: string | null = null;
  do {
    const page: AccountTransactionsPage = await afterRateLimits(() =>
      fetchAccountPage(client, address, { cursor, heartbeats, limit: 100 }),
    );
    rows.push(...page.transactions);
    cursor = page.nextCursor;
    onProgress(rows.length);
  } while (cursor && rows.length < EXPORT_MAX_ROWS);
  return { rows, complete: cursor === null };
}

/** Hands `text` to the browser as a file download. */
export function downloadText(name: string, text: string, type = 'text/csv'): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
