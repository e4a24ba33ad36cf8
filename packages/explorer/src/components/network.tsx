/**
 * The overview's POCI cards: emission (the current epoch's budget so far, progress through the
 * epoch, the budgets of the last epochs, mined vs the reserve, burned fees) and the network's
 * attested online power and chips over time (the watcher's rolling samples).
 */
import { type Bar, BarChart } from '../charts/BarChart';
import { SeriesChart } from '../charts/SeriesChart';
import { SplitBar } from '../charts/SplitBar';
import { big, formatDuration, formatInt, formatUnc, formatUncCompact, fraction, plural } from '../format';
import { useRpc } from '../node/context';
import type { NetworkSample } from '../node/watcher';
import { formatPower, tflops } from '../poci';
import type { EpochJson, SupplyJson } from '../sdk';
import { Amount, Badge, Card, KV, Row, Skeleton } from './ui';

const ONE_UNC = 10n ** 18n;
/** Epochs shown in the budget chart (the current one included). */
const EPOCHS_SHOWN = 12;

const COLORS = {
  mined: 'var(--violet)',
  owed: 'var(--accent)',
  unallotted: '#5b6b8c',
  reserve: '#2a3754',
  burn: 'var(--burn)',
};

/**
 * The emission rate now, from E(t): halving period k mints reserve / 2^(k+1) over the period, and
 * E(t) tells which period the chain is in. Base units per hour.
 */
export function emissionPerHour(supply: SupplyJson): bigint {
  const reserve = big(supply.miningReserve);
  const emitted = big(supply.emittedAllowance);
  const period = BigInt(supply.halvingPeriodMs);
  if (period <= 0n) return 0n;
  let k = 0n;
  let done = 0n;
  for (; k < 256n; k++) {
    const part = reserve >> (k + 1n);
    if (part === 0n || done + part > emitted) break;
    done += part;
  }
  return ((reserve >> (k + 1n)) * 3_600_000n) / period;
}

/**
 * The mining reserve's parts, in base units, for the "Mining reserve" bar: mined; allotted to final
 * epochs and not paid yet (owed to their chips); emitted by the schedule and not allotted (the open
 * epochs' spans so far, and time no epoch with weight spans, which is never minted: the time before
 * block 1 and epochs nobody earned in, docs/security-audit-time.md T2); not emitted yet.
 */
export function reserveSplit(supply: SupplyJson): {
  reserve: bigint;
  minted: bigint;
  owed: bigint;
  unallotted: bigint;
  unemitted: bigint;
} {
  const reserve = big(supply.miningReserve);
  const emitted = big(supply.emittedAllowance);
  const allocated = big(supply.allocatedToEpochs);
  const minted = big(supply.minted);
  const owed = allocated > minted ? allocated - minted : 0n;
  const allotted = allocated > minted ? allocated : minted;
  const unallotted = emitted > allotted ? emitted - allotted : 0n;
  const unemitted = reserve > emitted ? reserve - emitted : 0n;
  return { reserve, minted, owed, unallotted, unemitted };
}

/**
 * What becomes of an epoch's budget when nobody has earned in it: an epoch with no weight when it is
 * final is allotted nothing and its span of the schedule is never minted (docs/security-audit-time.md
 * T2), so an open one's "budget so far" is paid only if a chip earns in it before then.
 */
export function epochBudgetNote(e: Pick<EpochJson, 'final' | 'totalWeight'>): string | null {
  if (big(e.totalWeight) !== 0n) return null;
  return e.final ? 'nobody earned: not minted' : 'nobody earned yet: not minted unless a chip earns in it';
}

/** UNC as a JS number, for chart axes. */
function uncNumber(v: bigint): number {
  return Number(v / ONE_UNC) + Number(v % ONE_UNC) / 1e18;
}

function axisUnc(v: number): string {
  if (v >= 1e6) return `${Number((v / 1e6).toFixed(2))}M`;
  if (v >= 1e3) return `${Number((v / 1e3).toFixed(2))}k`;
  return String(Number(v.toPrecision(3)));
}

function EpochBudgets({ epoch }: { epoch: EpochJson }) {
  // Re-read when the epoch changes, and while the last ones are not final yet.
  const from = Math.max(0, epoch.epoch - EPOCHS_SHOWN + 1);
  const past = useRpc<EpochJson[]>(
    `epoch-budgets:${epoch.epoch}`,
    async (c) => {
      const list: EpochJson[] = [];
      for (let e = from; e < epoch.epoch; e++) list.push(await c.call<EpochJson>('unc_getEpoch', [e]));
      return list;
    },
    { refreshMs: 5000 },
  );
  const epochs = [...(past.data ?? []), epoch];
  const bars: Bar[] = epochs.map((e) => ({
    key: e.epoch,
    value: uncNumber(big(e.budget)),
    warn: !e.final,
    tip: (
      <>
        <strong>Epoch {formatInt(e.epoch)}</strong>
        <span>
          {formatUnc(e.budget, 4)} UNC {e.final ? 'budget' : 'so far (not final)'}
        </span>
        <span>
          blocks #{formatInt(e.startHeight)}–#{formatInt(e.endHeight)}
        </span>
        {epochBudgetNote(e) ? <span>{epochBudgetNote(e)}</span> : null}
      </>
    ),
  }));
  return (
    <>
      <div className="chart-label">
        <span>Budget per epoch</span>
        <span className="legend-inline">
          <span className="swatch" style={{ background: 'var(--accent)' }} /> final
          <span className="swatch" style={{ background: 'var(--burn)' }} /> accruing
        </span>
      </div>
      {past.data || epoch.epoch === 0 ? (
        <BarChart
          testId="epoch-budget-chart"
          label="Budget of the last epochs"
          bars={bars}
          height={130}
          format={axisUnc}
          xLabel={(k) => `e${k}`}
        />
      ) : (
        <Skeleton height={130} />
      )}
    </>
  );
}

export function EmissionCard({
  supply,
  epoch,
  head,
}: {
  supply: SupplyJson | null;
  epoch: EpochJson | null;
  head: number;
}) {
  if (!supply || !epoch) {
    return (
      <Card title="Emission" testId="emission">
        <Skeleton height={260} />
      </Card>
    );
  }
  const { reserve, minted, owed, unallotted, unemitted } = reserveSplit(supply);
  const rate = emissionPerHour(supply);
  const done = Math.min(epoch.epochBlocks, Math.max(0, head - epoch.startHeight + 1));
  const left = epoch.epochBlocks - done;
  const years = supply.halvingPeriodMs / (365.25 * 86_400_000);
  return (
    <Card
      title="Emission"
      subtitle={`By chain time: the rate halves every ${years >= 1 ? `${Number(years.toFixed(2))} years` : formatDuration(supply.halvingPeriodMs)}; each epoch's budget is split among chips by power × uptime`}
      testId="emission"
    >
      <div className="emission-head">
        <div>
          <div className="mini-label">
            Epoch <span data-testid="emission-epoch">{formatInt(epoch.epoch)}</span> budget so far
          </div>
          <div className="emission-budget" data-testid="epoch-budget">
            <Amount value={epoch.budget} maxFrac={4} />
          </div>
          <div className="muted small">
            {epoch.final ? (
              <Badge tone="ok">final</Badge>
            ) : (
              <>
                <Badge tone="accent">accruing</Badge> ≈ {formatUncCompact(rate)} UNC per hour
                {epochBudgetNote(epoch) ? <div>{epochBudgetNote(epoch)}</div> : null}
              </>
            )}
          </div>
        </div>
        <div className="emission-progress" data-testid="epoch-progress">
          <div className="mini-label">Progress</div>
          <div>
            block <strong>#{formatInt(Math.min(head, epoch.endHeight))}</strong> of #
            {formatInt(epoch.startHeight)}–#{formatInt(epoch.endHeight)}
          </div>
          <div
            className="progress"
            role="progressbar"
            aria-valuemin={0}
            aria-valuemax={epoch.epochBlocks}
            aria-valuenow={done}
            title={`${done} of ${epoch.epochBlocks} blocks`}
          >
            <span style={{ width: `${(done / Math.max(1, epoch.epochBlocks)) * 100}%` }} />
          </div>
          <div className="muted small">
            {left > 0 ? `${plural(left, 'block')} to go` : 'ends with this block'} · split by weight{' '}
            {formatInt(Number(big(epoch.totalWeight) / 1000n))} (TFLOPS × slots)
          </div>
        </div>
      </div>

      <EpochBudgets epoch={epoch} />

      <div className="subsection">
        <div className="subsection-title">Mining reserve</div>
        <SplitBar
          parts={[
            {
              label: 'Mined (paid to chip owners)',
              fraction: fraction(minted, reserve),
              color: COLORS.mined,
              value: <Amount value={minted} maxFrac={2} unit={false} />,
            },
            {
              label: 'Allotted to final epochs, not paid yet',
              fraction: fraction(owed, reserve),
              color: COLORS.owed,
              value: <Amount value={owed} maxFrac={2} unit={false} />,
            },
            {
              label: 'Emitted, not allotted (open epochs; never minted where nobody earned)',
              fraction: fraction(unallotted, reserve),
              color: COLORS.unallotted,
              value: <Amount value={unallotted} maxFrac={2} unit={false} />,
            },
            {
              label: 'Reserve not emitted yet',
              fraction: fraction(unemitted, reserve),
              color: COLORS.reserve,
              value: formatUncCompact(unemitted),
            },
          ]}
        />
      </div>
      <div className="emission-kv">
        <KV>
          <Row label="Emitted E(t)">
            <Amount value={supply.emittedAllowance} maxFrac={4} />
          </Row>
          <Row label="Allotted to final epochs">
            <Amount value={supply.allocatedToEpochs} maxFrac={4} />
          </Row>
          <Row label="Burned fees">
            <span data-testid="emission-burned">
              <Amount value={supply.burned} maxFrac={6} />
            </span>
          </Row>
          {big(supply.slashed) > 0n ? (
            <Row label="Slashed">
              <Amount value={supply.slashed} maxFrac={6} />
            </Row>
          ) : null}
        </KV>
      </div>
    </Card>
  );
}

/** Epoch starts inside [x0, x1], the last few only, as chart markers. */
function epochMarkers(epoch: EpochJson | null, x0: number, x1: number): { x: number; label: string }[] {
  if (!epoch || epoch.epochBlocks <= 0) return [];
  const out: { x: number; label: string }[] = [];
  for (let e = epoch.epoch; e >= 0 && out.length < 4; e--) {
    const x = e * epoch.epochBlocks + 1;
    if (x <= x0) break;
    if (x <= x1) out.push({ x, label: `epoch ${formatInt(e)}` });
  }
  return out;
}

export function NetworkCard({ network, epoch }: { network: NetworkSample[]; epoch: EpochJson | null }) {
  const last = network[network.length - 1];
  const x0 = network[0]?.height ?? 0;
  const x1 = last?.height ?? 0;
  const markers = epochMarkers(epoch, x0, x1);
  const rebuiltTo = network.filter((s) => s.rebuilt).pop()?.height;
  const tip = (s: NetworkSample) => (
    <>
      <strong>{formatPower(s.power)}</strong>
      <span>
        block #{formatInt(s.height)} · {formatInt(s.online)} of {formatInt(s.active)}{' '}
        {s.active === 1 ? 'chip' : 'chips'} online
      </span>
      {s.rebuilt ? <span className="muted">the node's record of this epoch's first block</span> : null}
    </>
  );
  return (
    <Card
      title="Attested power"
      subtitle={
        <>
          Online power and chips over every chip on chain, sampled live
          {rebuiltTo !== undefined
            ? ` (up to #${formatInt(rebuiltTo)}: the node's record of each epoch start)`
            : ''}
          ; the dashed line is every active chip
        </>
      }
      testId="network"
    >
      {last ? (
        <>
          <div className="chart-label">
            <span>
              Online power <strong data-testid="network-power">{formatPower(last.power)}</strong>
            </span>
            <span className="muted">of {formatPower(last.activePower)}</span>
          </div>
          <SeriesChart
            testId="power-history"
            label="Attested online power over time"
            points={network.map((s) => ({
              x: s.height,
              value: tflops(s.power),
              ref: tflops(s.activePower),
              tip: tip(s),
            }))}
            markers={markers}
            format={(v) => (v >= 1000 ? `${Number((v / 1000).toFixed(2))}k` : String(Number(v.toFixed(1))))}
            xLabel={(x) => `#${formatInt(x)}`}
          />
          <div className="chart-label">
            <span>
              Chips online <strong data-testid="network-chips">{formatInt(last.online)}</strong>
            </span>
            <span className="muted">of {formatInt(last.active)} active</span>
          </div>
          <SeriesChart
            testId="chips-history"
            label="Chips online over time"
            tone="violet"
            integer
            height={120}
            points={network.map((s) => ({ x: s.height, value: s.online, ref: s.active, tip: tip(s) }))}
            markers={markers}
            format={(v) => formatInt(v)}
            xLabel={(x) => `#${formatInt(x)}`}
          />
        </>
      ) : (
        <Skeleton height={300} />
      )}
    </Card>
  );
}
