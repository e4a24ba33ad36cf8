/**
 * An account: balance and nonce (unc_getAccount), and its recent transactions. The node has no
 * address index yet, so those are found by scanning recent blocks (summaries 100 at a time, then
 * the full blocks that carry transactions), bounded per scan; "scan older" extends the window.
 */
import { useEffect, useRef, useState } from 'react';
import { involves } from '../components/actions';
import { ChipsTable } from '../components/chips';
import { ChipIcon, CubeIcon, UserIcon } from '../components/icons';
import { TxsTable } from '../components/tables';
import { Amount, BlockLink, Card, CopyButton, PageTitle, Skeleton, Stat } from '../components/ui';
import { formatInt } from '../format';
import { useNode, useNow, useRpc, useWatcher } from '../node/context';
import { CHIPS_REFRESH_MS, useRegistries } from '../node/poci';
import type { RecentTx } from '../node/watcher';
import { formatPower, powerOf } from '../poci';
import { href, type PageProps, paths } from '../router';
import type { AccountJson, ChipJson, EpochJson, TxJson, UncClient } from '../sdk';
import { LoadingCard, ProblemCard, RpcErrorCard } from './common';
import { AccountLeases } from './Lease';

/** Blocks looked at per scan. */
export const SCAN_BLOCKS = 1000;
/** Full blocks fetched per scan at most (blocks with transactions). */
export const SCAN_MAX_FULL_BLOCKS = 200;
const PARALLEL = 6;

interface ScanResult {
  txs: RecentTx[];
  /** The lowest height looked at. */
  lowest: number;
}

async function scanBlocks(
  client: UncClient,
  address: string,
  from: number,
  onProgress: (lowest: number) => void,
  cancelled: () => boolean,
): Promise<ScanResult> {
  const stop = Math.max(0, from - SCAN_BLOCKS + 1);
  const out: RecentTx[] = [];
  let fullFetched = 0;
  let h = from;
  while (h >= stop && !cancelled()) {
    const count = Math.min(100, h - stop + 1);
    const summaries = await client.getBlocks(h, count);
    const withTxs = summaries.filter((b) => b.txCount > 0);
    for (let i = 0; i < withTxs.length; i += PARALLEL) {
      if (fullFetched >= SCAN_MAX_FULL_BLOCKS) return { txs: out, lowest: withTxs[i]!.height + 1 };
      const group = withTxs.slice(i, i + PARALLEL);
      fullFetched += group.length;
      const full = await Promise.all(group.map((b) => client.getBlock(b.height, true)));
      for (const b of full) {
        const txs = b.txs as TxJson[];
        for (let j = txs.length - 1; j >= 0; j--) {
          const tx = txs[j]!;
          if (involves(tx, address)) out.push({ tx, height: b.height, timeMs: b.timeMs });
        }
      }
      if (cancelled()) break;
    }
    h -= count;
    onProgress(h + 1);
  }
  return { txs: out, lowest: Math.max(stop, h + 1) };
}

function useActivity(address: string, client: UncClient | null, head: number | undefined, epoch: number) {
  const [txs, setTxs] = useState<RecentTx[]>([]);
  const [range, setRange] = useState<{ top: number; lowest: number } | null>(null);
  const [progress, setProgress] = useState<number | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [request, setRequest] = useState<{ from: number; reset: boolean } | null>(null);
  const started = useRef<string | null>(null);

  // The first scan starts from the head once it is known; again after the node comes back.
  useEffect(() => {
    const key = `${address}:${epoch}`;
    if (head === undefined || started.current === key) return;
    started.current = key;
    setRequest({ from: head, reset: true });
  }, [address, head, epoch]);

  useEffect(() => {
    if (!request || !client) return;
    let cancelled = false;
    setError(null);
    setProgress(request.from);
    if (request.reset) {
      setTxs([]);
      setRange(null);
    }
    scanBlocks(
      client,
      address,
      request.from,
      (p) => !cancelled && setProgress(p),
      () => cancelled,
    ).then(
      (res) => {
        if (cancelled) return;
        setTxs((prev) => (request.reset ? res.txs : [...prev, ...res.txs]));
        setRange((prev) => ({ top: request.reset || !prev ? request.from : prev.top, lowest: res.lowest }));
        setProgress(null);
      },
      (err: unknown) => {
        if (cancelled) return;
        setError(err);
        setProgress(null);
      },
    );
    return () => {
      cancelled = true;
    };
  }, [request, client, address]);

  return {
    txs,
    range,
    scanning: progress !== null,
    progress,
    error,
    scanOlder: () => range && range.lowest > 0 && setRequest({ from: range.lowest - 1, reset: false }),
  };
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
  const activity = useActivity(address, client, head, node.epoch);
  const [shown, setShown] = useState<AccountJson | undefined>(undefined);
  useEffect(() => {
    if (account.data) setShown(account.data);
  }, [account.data]);
  // The window's transactions heard live since the scan started.
  const live = node.recentTxs.filter(
    (r) => activity.range && r.height > activity.range.top && involves(r.tx, address),
  );
  const txs = [...live, ...activity.txs];
  let received = 0n;
  let sent = 0n;
  for (const { tx } of txs) {
    for (const a of tx.actions) {
      if (a.type !== 'transfer') continue;
      if (a.to === address) received += BigInt(a.amount);
      if (tx.from === address) sent += BigInt(a.amount);
    }
    if (tx.from === address) sent += BigInt(tx.fee);
  }

  if (!/^unc1[0-9a-z]{6,}$/.test(address)) {
    return (
      <div className="page">
        <ProblemCard title="Not an address">
          “{params.address}” is not an UtilityNet address (they look like <span className="mono">unc1…</span>
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
        <Stat
          label="Received"
          value={<Amount value={received} maxFrac={2} />}
          hint={
            activity.range
              ? `in blocks #${formatInt(activity.range.lowest)}–#${formatInt(activity.range.top)}`
              : 'scanning…'
          }
        />
        <Stat
          label="Sent (with fees)"
          value={<Amount value={sent} maxFrac={2} />}
          hint={
            activity.range
              ? `in blocks #${formatInt(activity.range.lowest)}–#${formatInt(activity.range.top)}`
              : 'scanning…'
          }
        />
      </div>

      <Card
        title="Recent transactions"
        subtitle={
          activity.range ? (
            <>
              Found by scanning blocks <BlockLink height={activity.range.lowest} />–
              <BlockLink height={activity.range.top} /> (the node has no address index yet)
            </>
          ) : activity.progress !== null ? (
            `Scanning recent blocks… at #${formatInt(activity.progress)}`
          ) : (
            'Scanning recent blocks…'
          )
        }
        testId="account-txs"
        actions={
          activity.range && activity.range.lowest > 0 ? (
            <button
              type="button"
              className="btn btn-ghost"
              disabled={activity.scanning}
              onClick={() => activity.scanOlder()}
            >
              {activity.scanning
                ? `Scanning… #${formatInt(activity.progress ?? 0)}`
                : `Scan ${formatInt(Math.min(SCAN_BLOCKS, activity.range.lowest))} older blocks`}
            </button>
          ) : null
        }
      >
        {activity.error ? (
          <RpcErrorCard error={activity.error} what="account's transactions" />
        ) : !activity.range && activity.scanning ? (
          <LoadingCard lines={4} />
        ) : (
          <TxsTable
            txs={txs}
            now={now}
            self={address}
            empty="No transactions for this account in the scanned blocks."
          />
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
