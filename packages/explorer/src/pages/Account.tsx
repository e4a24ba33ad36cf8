/**
 * An account: balance and nonce (unc_getAccount), and its transactions from the node's account
 * index (unc_getAccountTransactions): pages by cursor, heartbeats hidden unless asked for, a filter
 * by transaction type, and a CSV export of the loaded rows or of the whole history.
 */
import { useEffect, useRef, useState } from 'react';
import {
  accountCsv,
  downloadText,
  EXPORT_MAX_ROWS,
  fetchAccountPage,
  fetchAllAccountTxs,
  mergeNewest,
  txKinds,
} from '../account-history';
import { ChipsTable } from '../components/chips';
import { ChipIcon, CubeIcon, UserIcon } from '../components/icons';
import { TxsTable } from '../components/tables';
import { Amount, BlockLink, Card, ChainText, CopyButton, PageTitle, Skeleton, Stat } from '../components/ui';
import { formatInt, timeAgo } from '../format';
import { useNode, useNow, useRpc, useWatcher } from '../node/context';
import { CHIPS_REFRESH_MS, useRegistries } from '../node/poci';
import { formatPower, powerOf } from '../poci';
import { href, type PageProps, paths } from '../router';
import type { AccountJson, AccountTxJson, ChipJson, EpochJson, UncClient } from '../sdk';
import { LoadingCard, ProblemCard, RpcErrorCard } from './common';
import { AccountLeases } from './Lease';

/** The account's transactions from the node's index: the first page follows the head, older pages load on demand. */
function useAccountHistory(
  address: string,
  client: UncClient | null,
  head: number | undefined,
  epoch: number,
  heartbeats: boolean,
) {
  const [rows, setRows] = useState<AccountTxJson[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [loaded, setLoaded] = useState(false);
  const [loadingOlder, setLoadingOlder] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const key = `${address}:${heartbeats}:${epoch}`;
  const current = useRef(key);
  current.current = key;

  // A new account, filter or reconnection starts over.
  // biome-ignore lint/correctness/useExhaustiveDependencies: key is the re-run trigger.
  useEffect(() => {
    setRows([]);
    setCursor(null);
    setLoaded(false);
    setError(null);
  }, [key]);

  // The first page again at every new block: new transactions go on top. Only the first read of a
  // key sets the cursor: a later one must not move it back over the older pages already loaded.
  const loadedKey = useRef<string | null>(null);
  useEffect(() => {
    if (!client || head === undefined) return;
    let cancelled = false;
    fetchAccountPage(client, address, { heartbeats }).then(
      (page) => {
        if (cancelled || current.current !== key) return;
        setRows((prev) => mergeNewest(page.transactions, prev));
        if (loadedKey.current !== key) setCursor(page.nextCursor);
        loadedKey.current = key;
        setLoaded(true);
        setError(null);
      },
      (err: unknown) => !cancelled && setError(err),
    );
    return () => {
      cancelled = true;
    };
  }, [client, address, heartbeats, head, key]);

  const loadOlder = async () => {
    if (!client || !cursor || loadingOlder) return;
    setLoadingOlder(true);
    try {
      const page = await fetchAccountPage(client, address, { cursor, heartbeats });
      if (current.current !== key) return;
      setRows((prev) => [...prev, ...page.transactions.filter((t) => !prev.some((p) => p.hash === t.hash))]);
      setCursor(page.nextCursor);
    } catch (err) {
      setError(err);
    } finally {
      setLoadingOlder(false);
    }
  };

  return { rows, loaded, more: cursor !== null, loadingOlder, error, loadOlder };
}

/** The chips this account owns (unc_getChips [owner]), re-read while the page is open. */
function AccountChips({ address }: { address: string }) {
  const { models, vendors } = useRegistries();
  const res = useRpc<{ chips: ChipJson[]; epoch: EpochJson }>(
    `account-chips:${address}`,
    async (c) => {
      const [chips, epoch] = await Promise.all([
        c.call<ChipJson[]>('unc_getChips', [address]),
        c.call<EpochJson>('unc_getEpoch', []),
      ]);
      return { chips, epoch };
    },
    { refreshMs: CHIPS_REFRESH_MS },
  );
  const chips = res.data?.chips;
  const online = chips?.filter((c) => c.status === 'active' && c.online) ?? [];
  return (
    <Card
      title={
        <>
          <ChipIcon size={16} /> Chips
        </>
      }
      subtitle={
        chips && chips.length > 0 ? (
          <>
            {formatInt(online.length)} of {formatInt(chips.length)} online,{' '}
            {formatPower(online.reduce((s, c) => s + powerOf(c), 0n))} ·{' '}
            <a href={href(paths.miner(address))}>miner view: what to fix</a>
          </>
        ) : (
          'Chips registered by this account'
        )
      }
      testId="account-chips"
    >
      {res.data ? (
        <ChipsTable
          chips={res.data.chips}
          models={models}
          vendors={vendors}
          params={res.data.epoch}
          showOwner={false}
          empty="This account owns no chips."
        />
      ) : res.error ? (
        <RpcErrorCard error={res.error} what="account's chips" />
      ) : (
        <LoadingCard lines={2} />
      )}
    </Card>
  );
}

export function AccountPage({ params }: PageProps) {
  const address = (params.address ?? '').trim().toLowerCase();
  const node = useNode();
  const now = useNow(1000);
  const { client } = useWatcher();
  const head = node.status?.height;
  // Re-read the balance when a new block lands.
  const account = useRpc<AccountJson>(`account:${address}:${head ?? -1}`, (c) => c.getAccount(address));
  const [heartbeats, setHeartbeats] = useState(false);
  const [kind, setKind] = useState('');
  const [exporting, setExporting] = useState<string | null>(null);
  const history = useAccountHistory(address, client, head, node.epoch, heartbeats);
  const [shown, setShown] = useState<AccountJson | undefined>(undefined);
  useEffect(() => {
    if (account.data) setShown(account.data);
  }, [account.data]);
  const kinds = [...new Set(history.rows.flatMap((t) => t.tx.actions.map((a) => a.type)))].sort();
  const visible = kind ? history.rows.filter((t) => t.tx.actions.some((a) => a.type === kind)) : history.rows;
  const txs = visible.map((t) => ({ tx: t.tx, height: t.height, timeMs: t.timeMs }));
  let received = 0n;
  let sent = 0n;
  for (const { tx } of history.rows) {
    for (const a of tx.actions) {
      if (a.type !== 'transfer') continue;
      if (a.to === address) received += BigInt(a.amount);
      if (tx.from === address) sent += BigInt(a.amount);
    }
    if (tx.from === address) sent += BigInt(tx.fee);
  }
  const loadedHint = history.loaded
    ? `in the ${formatInt(history.rows.length)} transactions loaded${history.more ? '' : ' (all)'}`
    : 'loading…';
  const exportAll = async () => {
    if (!client) return;
    setExporting('0');
    try {
      const all = await fetchAllAccountTxs(client, address, heartbeats, (n) => setExporting(formatInt(n)));
      downloadText(
        `${address}${all.complete ? '' : `-newest-${EXPORT_MAX_ROWS}`}.csv`,
        accountCsv(address, all.rows),
      );
    } finally {
      setExporting(null);
    }
  };

  if (!/^unc1[0-9a-z]{6,}$/.test(address)) {
    return (
      <div className="page">
        <ProblemCard title="Not an address">
          “<ChainText text={params.address ?? ''} />” is not an UtilityNet address (they look like{' '}
          <span className="mono">unc1…</span>
          ).
        </ProblemCard>
      </div>
    );
  }

  const acc = shown?.address === address ? shown : undefined;
  if (!acc && account.error) {
    return (
      <div className="page">
        <PageTitle kicker="Account" title={<span className="mono break">{address}</span>} />
        <RpcErrorCard error={account.error} what="account" />
      </div>
    );
  }

  return (
    <div className="page">
      <PageTitle
        kicker={
          <>
            <UserIcon size={15} /> Account
          </>
        }
        title={
          <span className="title-with-copy">
            <span className="mono break" data-testid="account-address">
              {address}
            </span>
            <CopyButton text={address} />
          </span>
        }
      />
      <div className="stats">
        <Stat
          accent
          label="Balance"
          testId="account-balance"
          value={acc ? <Amount value={acc.balance} /> : <Skeleton width={180} height={30} />}
          hint={acc ? <>at block #{formatInt(acc.height)}</> : ' '}
        />
        <Stat
          label="Nonce"
          value={acc ? formatInt(acc.nonce) : <Skeleton width={50} height={30} />}
          hint="transactions sent, all time"
        />
        <Stat label="Received" value={<Amount value={received} maxFrac={2} />} hint={loadedHint} />
        <Stat label="Sent (with fees)" value={<Amount value={sent} maxFrac={2} />} hint={loadedHint} />
      </div>

      <Card
        title="Transactions"
        subtitle="Sent by this account or naming it (received transfers, chips, leases), newest first, from the node's account index"
        testId="account-txs"
        actions={
          <div className="history-actions">
            <label className="check">
              <input
                type="checkbox"
                data-testid="account-heartbeats"
                checked={heartbeats}
                onChange={(e) => setHeartbeats(e.target.checked)}
              />{' '}
              Show heartbeats
            </label>
            <select
              className="select"
              aria-label="Transaction type"
              data-testid="account-type-filter"
              value={kind}
              onChange={(e) => setKind(e.target.value)}
            >
              <option value="">All types</option>
              {kinds.map((k) => (
                <option key={k} value={k}>
                  {k}
                </option>
              ))}
            </select>
            <button
              type="button"
              className="btn btn-ghost"
              data-testid="account-csv"
              disabled={history.rows.length === 0}
              onClick={() => downloadText(`${address}-page.csv`, accountCsv(address, visible))}
            >
              CSV (shown)
            </button>
            <button
              type="button"
              className="btn btn-ghost"
              data-testid="account-csv-all"
              disabled={!client || exporting !== null}
              onClick={() => void exportAll()}
            >
              {exporting !== null ? `Exporting… ${exporting}` : 'CSV (all)'}
            </button>
          </div>
        }
      >
        {history.error && history.rows.length === 0 ? (
          <RpcErrorCard error={history.error} what="account's transactions" />
        ) : !history.loaded ? (
          <LoadingCard lines={4} />
        ) : (
          <>
            <TxsTable
              txs={txs}
              now={now}
              self={address}
              sub={(row, i) => (
                <>
                  <BlockLink height={row.height} /> · {timeAgo(row.timeMs, now)} ·{' '}
                  <span className="faint">{txKinds(visible[i]!)}</span>
                </>
              )}
              empty={
                heartbeats
                  ? 'No transactions for this account.'
                  : 'No transactions for this account (heartbeats hidden).'
              }
            />
            {history.more ? (
              <div className="load-more">
                <button
                  type="button"
                  className="btn btn-ghost"
                  data-testid="account-older"
                  disabled={history.loadingOlder}
                  onClick={() => void history.loadOlder()}
                >
                  {history.loadingOlder ? 'Loading…' : 'Load older transactions'}
                </button>
              </div>
            ) : null}
          </>
        )}
      </Card>

      <AccountChips address={address} />
      <AccountLeases address={address} />
      {node.status ? null : (
        <p className="note">
          <CubeIcon size={14} /> Waiting for the node…
        </p>
      )}
    </div>
  );
}
