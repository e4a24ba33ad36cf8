/** Network overview: head, block production charts, supply, latest blocks and transactions. */
import type { ReactNode } from 'react';
import { type Bar, BarChart } from '../charts/BarChart';
import { Donut } from '../charts/Donut';
import { SplitBar } from '../charts/SplitBar';
import { CheckIcon, CubeIcon, FlameIcon, PulseIcon, ShieldIcon, StoreIcon } from '../components/icons';
import { EmissionCard, NetworkCard } from '../components/network';
import { BlocksTable, TxsTable } from '../components/tables';
import {
  Amount,
  Badge,
  Card,
  ChainText,
  FullHash,
  KV,
  PageTitle,
  Row,
  Skeleton,
  Stat,
} from '../components/ui';
import {
  big,
  formatDuration,
  formatInt,
  formatPercent,
  formatUncCompact,
  fraction,
  plural,
  timeAgo,
} from '../format';
import { useNode, useNow } from '../node/context';
import { signedPower, useValidatorSet } from '../node/validators';
import { href, paths } from '../router';
import type { BlockJson, SupplyJson, ValidatorSetJson } from '../sdk';

export const COLORS = {
  accent: '#5eead4',
  violet: '#818cf8',
  sky: '#38bdf8',
  burn: '#fb923c',
  slash: '#f87171',
  reserve: '#2a3754',
  genesis: '#c084fc',
};

interface Production {
  intervals: Bar[];
  txs: Bar[];
  fastestMs: number;
  slowestMs: number;
  /** Share of intervals within 1.5× the target. */
  onTarget: number;
  busyBlocks: number;
  avgIntervalMs: number;
  tps: number;
  txTotal: number;
  spanBlocks: number;
}

function production(blocks: BlockJson[], targetMs: number): Production {
  const oldestFirst = [...blocks].reverse();
  const intervals: Bar[] = [];
  const txs: Bar[] = [];
  let txTotal = 0;
  for (let i = 0; i < oldestFirst.length; i++) {
    const b = oldestFirst[i]!;
    const prev = oldestFirst[i - 1];
    txTotal += b.txCount;
    // The oldest block has no interval in the window; leave it out of both charts so they line up.
    if (!prev && oldestFirst.length > 1) continue;
    txs.push({
      key: b.height,
      value: b.txCount,
      to: paths.block(b.height),
      tip: (
        <>
          <strong>Block #{formatInt(b.height)}</strong>
          <span>
            {formatInt(b.txCount)} transaction{b.txCount === 1 ? '' : 's'}
          </span>
        </>
      ),
    });
    if (prev) {
      const ms = b.timeMs - prev.timeMs;
      intervals.push({
        key: b.height,
        value: ms,
        warn: ms > targetMs * 2,
        to: paths.block(b.height),
        tip: (
          <>
            <strong>Block #{formatInt(b.height)}</strong>
            <span>
              {formatDuration(ms)} after #{formatInt(prev.height)}
            </span>
          </>
        ),
      });
    }
  }
  const ms = intervals.map((b) => b.value);
  const newest = oldestFirst[oldestFirst.length - 1];
  const oldest = oldestFirst[0];
  const spanMs = newest && oldest ? newest.timeMs - oldest.timeMs : 0;
  const n = intervals.length;
  return {
    intervals,
    txs,
    avgIntervalMs: n > 0 ? spanMs / n : Number.NaN,
    // Transactions after the oldest block, over the time they took.
    tps: spanMs > 0 ? ((txTotal - (oldest?.txCount ?? 0)) * 1000) / spanMs : 0,
    txTotal,
    spanBlocks: oldestFirst.length,
    fastestMs: ms.length ? Math.min(...ms) : Number.NaN,
    slowestMs: ms.length ? Math.max(...ms) : Number.NaN,
    onTarget: ms.length ? ms.filter((v) => v <= targetMs * 1.5).length / ms.length : 0,
    busyBlocks: oldestFirst.filter((b) => b.txCount > 0).length,
  };
}

function SupplyCard({ supply }: { supply: SupplyJson | null }) {
  if (!supply) {
    return (
      <Card title="Supply" className="supply-card">
        <Skeleton height={188} />
      </Card>
    );
  }
  const max = big(supply.maxSupply);
  const genesis = big(supply.genesisAllocation);
  const reserve = big(supply.miningReserve);
  const minted = big(supply.minted);
  const burned = big(supply.burned);
  const slashed = big(supply.slashed);
  const circulating = big(supply.circulating);
  const unminted = reserve - minted;
  return (
    <Card
      title="Supply"
      subtitle={`${formatUncCompact(max)} UNC maximum · 3% at genesis, 97% minted for miners`}
      className="supply-card"
      testId="supply"
    >
      <Donut
        label="Where the maximum supply is"
        center={{ value: formatUncCompact(circulating), label: 'circulating UNC' }}
        segments={[
          {
            label: 'Circulating',
            fraction: fraction(circulating, max),
            color: COLORS.accent,
            value: <Amount value={circulating} maxFrac={2} unit={false} />,
            hint: 'genesis + mined − burned − slashed',
          },
          {
            label: 'Mining reserve (not yet mined)',
            fraction: fraction(unminted, max),
            color: COLORS.reserve,
            value: <Amount value={unminted} maxFrac={0} unit={false} />,
          },
          {
            label: 'Burned fees',
            fraction: fraction(burned, max),
            color: COLORS.burn,
            value: <Amount value={burned} maxFrac={6} unit={false} />,
          },
          {
            label: 'Slashed',
            fraction: fraction(slashed, max),
            color: COLORS.slash,
            value: <Amount value={slashed} maxFrac={6} unit={false} />,
          },
        ]}
      />
      <div className="subsection">
        <div className="subsection-title">Where UNC comes from</div>
        <SplitBar
          parts={[
            {
              label: 'Genesis allocation',
              fraction: fraction(genesis, max),
              color: COLORS.genesis,
              value: formatUncCompact(genesis),
            },
            {
              label: 'Mined',
              fraction: fraction(minted, max),
              color: COLORS.violet,
              value: formatUncCompact(minted),
            },
            {
              label: 'Mining reserve left',
              fraction: fraction(unminted, max),
              color: COLORS.reserve,
              value: formatUncCompact(unminted),
            },
          ]}
        />
        <p className="note">
          Mined so far: <strong>{formatPercent(fraction(minted, reserve), 4)}</strong> of the{' '}
          {formatUncCompact(reserve)} UNC mining reserve.
        </p>
      </div>
    </Card>
  );
}

export function Overview() {
  const node = useNode();
  const now = useNow(1000);
  const { status, params, blocks, supply } = node;
  const target = params?.blockTimeMs ?? 1000;
  const prod = production(blocks, target);
  const head = blocks[0];
  const loading = !status;
  const validators = useValidatorSet(head ? head.height : null);
  const finality = finalityOf(head, validators.set, validators.unsupported);

  return (
    <div className="page">
      <PageTitle
        kicker={
          <>
            {status ? <Badge tone="accent">{status.chainId}</Badge> : null}
            <LiveTag live={node.live} conn={node.conn} why={node.liveWhy} />
          </>
        }
        title="Network overview"
      />

      <div className="stats">
        <Stat
          accent
          icon={<CubeIcon size={15} />}
          label="Block height"
          testId="height"
          value={status ? formatInt(status.height) : <Skeleton width={120} height={30} />}
          hint={head ? `last block ${timeAgo(head.timeMs, now)}` : ' '}
        />
        <Stat
          icon={<PulseIcon size={15} />}
          label="Block interval"
          value={loading ? <Skeleton width={90} height={30} /> : formatDuration(prod.avgIntervalMs)}
          hint={
            loading ? ' ' : `mean of ${Math.max(0, prod.spanBlocks - 1)} · target ${formatDuration(target)}`
          }
        />
        <Stat
          icon={<ShieldIcon size={15} />}
          label="Throughput"
          value={
            loading ? <Skeleton width={90} height={30} /> : `${prod.tps.toFixed(prod.tps < 10 ? 2 : 1)} tx/s`
          }
          hint={loading ? ' ' : `${plural(prod.txTotal, 'tx')} in ${plural(prod.spanBlocks, 'block')}`}
        />
        <Stat
          icon={<StoreIcon size={15} />}
          label="Mempool"
          value={status ? formatInt(status.mempool.size) : <Skeleton width={60} height={30} />}
          hint={status ? `${formatInt(status.mempool.bytes)} bytes waiting` : ' '}
        />
        <Stat
          icon={<FlameIcon size={15} />}
          label="Circulating"
          value={supply ? `${formatUncCompact(supply.circulating)}` : <Skeleton width={90} height={30} />}
          hint={supply ? `UNC of ${formatUncCompact(supply.maxSupply)} max` : ' '}
        />
        <Stat
          icon={<CheckIcon size={15} />}
          label="Finality"
          testId="finality"
          value={finality ? finality.value : <Skeleton width={90} height={30} />}
          hint={finality ? finality.hint : ' '}
        />
      </div>

      <div className="grid-main grid-stretch">
        <Card
          title="Block production"
          subtitle={`${prod.spanBlocks > 0 ? `Last ${prod.spanBlocks} blocks` : 'Recent blocks'} · point at a bar for details, click to open the block`}
          className="production-card"
        >
          <div className="chart-label">
            <span>Block interval</span>
            <span className="legend-inline">
              <span className="swatch" style={{ background: COLORS.accent }} /> on time
              <span className="swatch" style={{ background: COLORS.burn }} /> &gt; 2× target
            </span>
          </div>
          {loading ? (
            <Skeleton height={210} />
          ) : (
            <BarChart
              testId="interval-chart"
              label="Block intervals of the last blocks"
              bars={prod.intervals}
              height={210}
              format={(v) => formatDuration(v)}
              xLabel={(k) => `#${k}`}
              target={{ value: target, label: `target ${formatDuration(target)}` }}
            />
          )}
          <div className="chart-label">
            <span>Transactions per block</span>
          </div>
          {loading ? (
            <Skeleton height={170} />
          ) : (
            <BarChart
              testId="tx-chart"
              label="Transactions per block of the last blocks"
              bars={prod.txs}
              height={170}
              tone="violet"
              integer
              format={(v) => (v >= 1000 ? trimK(v) : String(v))}
              xLabel={(k) => `#${k}`}
            />
          )}
          <div className="mini-stats mini-stats-flat">
            <div>
              <span className="mini-label">Fastest</span>
              <span>{formatDuration(prod.fastestMs)}</span>
            </div>
            <div>
              <span className="mini-label">Slowest</span>
              <span>{formatDuration(prod.slowestMs)}</span>
            </div>
            <div>
              <span className="mini-label">Within 1.5× target</span>
              <span>{formatPercent(prod.onTarget, 0)}</span>
            </div>
            <div>
              <span className="mini-label">Blocks with txs</span>
              <span>{formatInt(prod.busyBlocks)}</span>
            </div>
          </div>
        </Card>
        <SupplyCard supply={supply} />
      </div>

      <div className="grid-2 grid-poci">
        <EmissionCard supply={supply} epoch={node.currentEpoch} head={status?.height ?? 0} />
        <NetworkCard network={node.network} epoch={node.currentEpoch} />
      </div>

      <div className="grid-2">
        <Card
          title="Latest blocks"
          actions={
            <a className="btn btn-ghost" href={href(paths.blocks())}>
              All blocks
            </a>
          }
        >
          {loading ? (
            <Skeleton height={300} />
          ) : (
            <BlocksTable blocks={blocks.slice(0, 10)} now={now} testId="latest-blocks" />
          )}
        </Card>
        <Card title="Latest transactions" subtitle="The most recent, live as blocks arrive">
          {loading ? (
            <Skeleton height={300} />
          ) : (
            <TxsTable
              txs={node.recentTxs.slice(0, 10)}
              now={now}
              testId="latest-txs"
              empty={
                <>
                  No transactions in the last blocks. Send one with <code>unc tx transfer</code>.
                </>
              }
            />
          )}
        </Card>
      </div>

      <Card title="Chain">
        {status ? (
          <KV>
            <Row label="Chain id">
              <span className="mono">{status.chainId}</span>
            </Row>
            <Row label="Genesis hash">
              <FullHash value={status.genesisHash} link={paths.block(0)} />
            </Row>
            <Row label="Head">
              <FullHash value={status.hash} link={paths.block(status.height)} />
            </Row>
            <Row label="State root">
              <FullHash value={status.stateRoot} />
            </Row>
            <Row label="Validator">
              {status.validator ? <FullHash value={status.validator} /> : <span className="muted">none</span>}
            </Row>
            <Row label="Parameters">
              {params ? (
                <span className="params">
                  <span>block time {formatDuration(params.blockTimeMs)}</span>
                  <span>≤ {formatInt(params.maxBlockTxs)} txs/block</span>
                  <span>≤ {formatInt(params.maxTxBytes)} bytes/tx</span>
                  <span>tx lifetime {formatInt(params.maxTxLifetimeBlocks)} blocks</span>
                </span>
              ) : (
                '—'
              )}
            </Row>
            <Row label="Node version">
              <ChainText className="mono" text={status.version} />
            </Row>
          </KV>
        ) : (
          <Skeleton height={160} />
        )}
      </Card>
    </div>
  );
}

/** "1 / 1": the head block's signers of its set's validators, and their share of the power. */
function finalityOf(
  head: BlockJson | undefined,
  set: ValidatorSetJson | undefined,
  unsupported: boolean,
): { value: string; hint: ReactNode } | null {
  if (!head) return null;
  const n = head.commit.signatures.length;
  const round = typeof head.commit.round === 'number' ? `, decided in round ${head.commit.round}` : '';
  const at = `#${formatInt(head.height)}`;
  if (unsupported)
    return {
      value: formatInt(n),
      hint: <span title={`${plural(n, 'signature')} on ${at}${round}`}>signatures on {at}</span>,
    };
  if (!set) return null;
  const signed = signedPower(
    set,
    head.commit.signatures.map((s) => s.validator),
  );
  const share = formatPercent(fraction(signed.power, signed.total), 0);
  return {
    value: `${formatInt(n)} / ${formatInt(set.validators.length)}`,
    hint: (
      <span
        title={`The last block, ${at}, signed by ${formatInt(n)} of ${plural(set.validators.length, 'validator')} holding ${share} of the power${round}`}
      >
        signed {at} · {share} of power
      </span>
    ),
  };
}

function trimK(v: number): string {
  return `${(v / 1000).toFixed(1).replace(/\.0$/, '')}K`;
}

export function LiveTag({
  live,
  conn,
  why,
}: {
  live: 'ws' | 'poll' | 'off';
  conn: string;
  why?: string | null;
}) {
  if (conn === 'down' || conn === 'invalid') return <Badge tone="danger">offline</Badge>;
  if (live === 'ws')
    return (
      <span className="live" data-live="ws" title="New blocks arrive over the WebSocket subscription">
        <span className="live-dot" /> live
      </span>
    );
  if (live === 'poll')
    return (
      <span
        className="live live-poll"
        data-live="poll"
        title={why ?? 'WebSocket unavailable: polling the node'}
      >
        <span className="live-dot" /> polling
      </span>
    );
  return <Badge>connecting</Badge>;
}
