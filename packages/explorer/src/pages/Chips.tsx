/**
 * The chips of the network: online power (now, over the last two epochs, and by model), the epoch's
 * liveness parameters, and every registered chip, optionally only one owner's (`#/chips?owner=`).
 */
import { type FormEvent, useState } from 'react';
import { SplitBar } from '../charts/SplitBar';
import { StepChart } from '../charts/StepChart';
import { ChipsTable, SLOT_TEXT } from '../components/chips';
import { ChipIcon, PulseIcon } from '../components/icons';
import { AddrLink, Card, KV, PageTitle, Row, Skeleton, Stat } from '../components/ui';
import { formatInt, formatPercent, fraction } from '../format';
import { useNode, useRpc } from '../node/context';
import { CHIPS_REFRESH_MS, useChips, useNetworkStats, useRegistries } from '../node/poci';
import {
  formatPower,
  formatTflops,
  onlinePowerHistory,
  powerByModel,
  powerOf,
  slotCounts,
  tflops,
} from '../poci';
import { href, navigate, type PageProps, paths } from '../router';
import type { ChipJson, EpochJson } from '../sdk';
import { classify } from '../search';
import { LoadingCard, RpcErrorCard } from './common';

const MODEL_COLORS = [
  'var(--accent)',
  'var(--violet)',
  'var(--sky)',
  'var(--poci)',
  'var(--warn)',
  'var(--ok)',
];

/** Axis ticks: 1250 → "1.25k". */
function axisTflops(v: number): string {
  if (v >= 1000) return `${Number((v / 1000).toFixed(2))}k`;
  return String(Number(v.toFixed(1)));
}

export function OwnerFilter({
  owner,
  to,
  placeholder = 'Owner address unc1…',
  button = 'Filter',
}: {
  owner?: string;
  to: (owner?: string) => string;
  placeholder?: string;
  button?: string;
}) {
  const [value, setValue] = useState(owner ?? '');
  const [error, setError] = useState<string | null>(null);
  const onSubmit = (e: FormEvent) => {
    e.preventDefault();
    if (value.trim() === '') {
      navigate(to());
      return;
    }
    const t = classify(value);
    if (t.kind === 'address') navigate(to(t.address));
    else setError('An owner is an address (unc1…).');
  };
  return (
    <form className="inline-form owner-filter" onSubmit={onSubmit}>
      <input
        className="input mono"
        placeholder={placeholder}
        value={value}
        onChange={(e) => {
          setValue(e.target.value);
          setError(null);
        }}
        aria-label="Owner address"
        data-testid="owner-input"
        spellCheck={false}
      />
      <button className="btn" type="submit">
        {owner && value.trim() === '' ? 'Show all' : button}
      </button>
      {error ? <p className="form-error">{error}</p> : null}
    </form>
  );
}

function PowerCard({
  chips,
  epoch,
  head,
  total,
}: {
  chips: ChipJson[];
  epoch: EpochJson;
  head: number;
  /** Chips on chain (unc_getNetworkStats); more than listed when the list stopped at 1,000. */
  total: number | undefined;
}) {
  const { models, vendors } = useRegistries();
  const node = useNode();
  // A list that stopped at 1,000 chips cannot rebuild the network's power: then the chart shows the
  // node's own figures over every chip (its epoch records and the live samples).
  const partial = total !== undefined && total > chips.length;
  const history = partial
    ? node.network.map((s) => ({ height: s.height, power: s.power, chips: s.online }))
    : onlinePowerHistory(chips, epoch, head);
  const shares = powerByModel(chips, models, vendors);
  const registered = chips.filter((c) => c.status === 'active').reduce((s, c) => s + powerOf(c), 0n);
  const online = shares.reduce((s, m) => s + m.power, 0n);
  const offline = registered - online;
  return (
    <Card
      title={
        <>
          <PulseIcon size={16} /> Online power
        </>
      }
      subtitle={
        partial
          ? `TFLOPS (dense FP16) of the chips online, summed by the node over all ${formatInt(total)} chips; the split by model is of the ${formatInt(chips.length)} listed`
          : 'TFLOPS (dense FP16) of the chips online at each block of the last two epochs, rebuilt from their slots'
      }
      testId="power-card"
    >
      <StepChart
        testId="power-chart"
        label="Online power per block"
        points={history.map((p) => ({
          x: p.height,
          value: tflops(p.power),
          tip: (
            <>
              <strong>{formatPower(p.power)}</strong>
              <span>
                block #{formatInt(p.height)} · {formatInt(p.chips)} {p.chips === 1 ? 'chip' : 'chips'} online
              </span>
            </>
          ),
        }))}
        markers={[{ x: epoch.startHeight, label: `epoch ${formatInt(epoch.epoch)}` }]}
        format={axisTflops}
        xLabel={(x) => `#${formatInt(x)}`}
      />
      <div className="chart-label">
        <span>By model</span>
      </div>
      {registered === 0n ? (
        <p className="muted">No active chips.</p>
      ) : (
        <div className="model-split">
          <SplitBar
            parts={[
              ...shares.map((m, i) => ({
                label: m.label,
                fraction: fraction(m.power, registered),
                color: MODEL_COLORS[i % MODEL_COLORS.length]!,
                value: `${formatTflops(m.power)} TFLOPS · ${m.chips} ${m.chips === 1 ? 'chip' : 'chips'}`,
              })),
              ...(offline > 0n
                ? [
                    {
                      label: 'Offline',
                      fraction: fraction(offline, registered),
                      color: 'var(--faint)',
                      value: `${formatTflops(offline)} TFLOPS`,
                    },
                  ]
                : []),
            ]}
          />
        </div>
      )}
    </Card>
  );
}

function EpochCard({ chips, epoch, head }: { chips: ChipJson[]; epoch: EpochJson; head: number }) {
  const counts = slotCounts(chips);
  const done = Math.min(epoch.epochBlocks, Math.max(0, head - epoch.startHeight + 1));
  return (
    <Card
      title="Challenge slots"
      subtitle="Every active chip answers S slots per epoch at heights nobody knows in advance"
    >
      <KV>
        <Row label="Epoch">
          <span data-testid="epoch">{formatInt(epoch.epoch)}</span>{' '}
          <span className="muted">
            blocks #{formatInt(epoch.startHeight)}–#{formatInt(epoch.endHeight)}
          </span>
          <div className="progress" title={`${done} of ${epoch.epochBlocks} blocks`}>
            <span style={{ width: `${(done / epoch.epochBlocks) * 100}%` }} />
          </div>
        </Row>
        <Row label="Challenges per chip">
          {formatInt(epoch.slotsPerEpoch)} per epoch in expectation (each block challenges 1 of{' '}
          {formatInt(epoch.challengeClasses)} classes, drawn from its beacon)
        </Row>
        <Row label="Answer window">
          {formatInt(epoch.answerWindowBlocks)} blocks after the challenging block
        </Row>
        <Row label="Offline after">{formatInt(epoch.offlineAfterMisses)} missed challenges in a row</Row>
        <Row label="Last two epochs">
          <ul className="slot-counts">
            {(['answered', 'missed', 'open'] as const).map((s) => (
              <li key={s}>
                <span className={`slot-dot slot-${s}`} /> {formatInt(counts[s])}{' '}
                {SLOT_TEXT[s].replace(/ \(.*/, '')}
              </li>
            ))}
          </ul>
        </Row>
      </KV>
    </Card>
  );
}

export function ChipsPage({ query }: PageProps) {
  const owner =
    classify(query.owner ?? '').kind === 'address' ? query.owner!.trim().toLowerCase() : undefined;
  const all = useChips();
  const mine = useRpc<ChipJson[] | null>(
    `owner-chips:${owner ?? ''}`,
    async (c) => (owner ? c.call<ChipJson[]>('unc_getChips', [owner]) : null),
    { refreshMs: CHIPS_REFRESH_MS },
  );
  const { models, vendors } = useRegistries();
  const data = all.data;
  // Counts and sums come from the node, over every chip: the list below stops at 1,000.
  const net = useNetworkStats().data;
  const onlinePower = net ? net.onlinePower : 0n;
  const registeredPower = net ? net.activePower : 0n;
  const counts = data ? slotCounts(data.chips) : null;
  const closed = counts ? counts.answered + counts.missed : 0;
  const listed = owner ? (mine.data ?? undefined) : data?.chips;

  return (
    <div className="page">
      <PageTitle
        kicker={
          <>
            <ChipIcon size={15} /> Proof of chip identity
          </>
        }
        title="Chips"
      >
        <p className="lead">
          AI chips that prove themselves: each chip’s security engine signs the chain’s challenge slots, so
          the network knows which genuine chips are online and how much compute they bring.
        </p>
      </PageTitle>

      {!data && all.error ? <RpcErrorCard error={all.error} what="chips" /> : null}

      <div className="stats">
        <Stat
          accent
          label="Online power"
          testId="online-power"
          value={
            net ? (
              <>
                {formatTflops(onlinePower)}
                <span className="unit"> TFLOPS</span>
              </>
            ) : (
              <Skeleton width={160} height={30} />
            )
          }
          hint={net ? `of ${formatPower(registeredPower)} registered` : ' '}
        />
        <Stat
          label="Chips online"
          testId="chips-online"
          value={
            net ? (
              <>
                {formatInt(net.onlineChips)}
                <span className="unit"> / {formatInt(net.chips)}</span>
              </>
            ) : (
              <Skeleton width={80} height={30} />
            )
          }
          hint={
            net
              ? net.activeChips - net.onlineChips > 0
                ? `${formatInt(net.activeChips - net.onlineChips)} offline`
                : net.chips > 0
                  ? 'every active chip answering'
                  : 'none registered yet'
              : ' '
          }
        />
        <Stat
          label="Epoch"
          value={data ? formatInt(data.epoch.epoch) : <Skeleton width={60} height={30} />}
          hint={data ? `${data.epoch.epochBlocks} blocks · ${data.epoch.slotsPerEpoch} slots per chip` : ' '}
        />
        <Stat
          label="Slot uptime"
          value={
            counts ? (
              closed > 0 ? (
                formatPercent(counts.answered / closed, 1)
              ) : (
                '—'
              )
            ) : (
              <Skeleton width={70} height={30} />
            )
          }
          hint="of closed slots, last two epochs"
        />
      </div>

      {data ? (
        <div className="grid-main">
          <PowerCard chips={data.chips} epoch={data.epoch} head={data.head} total={net?.chips} />
          <EpochCard chips={data.chips} epoch={data.epoch} head={data.head} />
        </div>
      ) : all.error ? null : (
        <LoadingCard lines={6} />
      )}

      <Card
        title={owner ? 'Chips of one owner' : 'Registered chips'}
        subtitle={
          owner ? (
            <>
              Owner <AddrLink address={owner} /> · <a href={href(paths.miner(owner))}>miner view</a> ·{' '}
              <a href={href(paths.chips())}>all chips</a>
            </>
          ) : (
            'Every chip on chain, with its slots of the last two epochs'
          )
        }
        actions={<OwnerFilter owner={owner} to={paths.chips} />}
        className="card-chips"
      >
        {listed ? (
          <ChipsTable
            chips={listed}
            models={models}
            vendors={vendors}
            params={
              data?.epoch ?? {
                epochBlocks: 1,
                slotsPerEpoch: 0,
                answerWindowBlocks: 0,
                offlineAfterMisses: 0,
              }
            }
            testId="chips-table"
            empty={owner ? 'This address owns no chips.' : 'No chips registered yet.'}
          />
        ) : mine.error ? (
          <RpcErrorCard error={mine.error} what="owner's chips" />
        ) : (
          <LoadingCard lines={3} />
        )}
      </Card>
    </div>
  );
}
