/** Marketplace parts shared by the market, lease, offer, chip and account pages. */
import { type ReactNode, useState } from 'react';
import { formatInt, formatPercent, formatTime, formatUnc, shortHash, visibleText } from '../format';
import {
  bestPricePerTflopsHour,
  combinedUptime,
  ESCROW_COLORS,
  escrowFractions,
  escrowSplit,
  formatSpan,
  type LeaseJson,
  type OfferJson,
  type ProviderRecordJson,
  ratingText,
  reasonText,
  statusTone,
  uptimeText,
} from '../market';
import { formatPower, modelName } from '../poci';
import { href, paths } from '../router';
import type { ModelJson } from '../sdk';
import { AddrLink, Amount, Badge, ChainText, Empty, ReasonText, StatusWord, TableWrap } from './ui';

/** The lease and offer states the chain has (views.ts): any other word a node sends is chain text. */
export const LEASE_STATUSES: readonly LeaseJson['status'][] = ['active', 'closing', 'ended', 'closed'];
export const OFFER_STATUSES: readonly OfferJson['status'][] = ['open', 'closing', 'closed'];

export function LeaseLink({ id }: { id: string }) {
  return (
    <a className="mono" href={href(paths.lease(id))} title={id}>
      {shortHash(id, 8, 4)}
    </a>
  );
}

export function OfferLink({ id }: { id: string }) {
  return (
    <a className="mono" href={href(paths.offer(id))} title={id}>
      {shortHash(id, 8, 4)}
    </a>
  );
}

export function ChipLink({ id }: { id: string }) {
  return (
    <a className="mono" href={href(paths.chip(id))} title={id}>
      {shortHash(id, 8, 4)}
    </a>
  );
}

export function LeaseStatus({
  lease,
}: {
  lease: Pick<LeaseJson, 'status' | 'closedReason' | 'closingReason'>;
}) {
  const why =
    lease.status === 'closed'
      ? lease.closedReason
      : lease.status === 'closing' || lease.status === 'ended'
        ? lease.closingReason
        : null;
  return (
    <span data-testid="lease-status" data-status={lease.status} title={reasonText(why) || undefined}>
      <Badge tone={statusTone(lease.status)}>
        <StatusWord value={lease.status} known={LEASE_STATUSES} />
      </Badge>
    </span>
  );
}

export function OfferStatus({ offer }: { offer: Pick<OfferJson, 'status'> }) {
  return (
    <span data-testid="offer-status" data-status={offer.status}>
      <Badge tone={statusTone(offer.status)}>
        <StatusWord value={offer.status} known={OFFER_STATUSES} />
      </Badge>
    </span>
  );
}

/** Escrow as one bar: paid to the provider, refunded to the renter, still in escrow. */
export function EscrowBar({
  lease,
  legend = false,
}: {
  lease: Pick<LeaseJson, 'paid' | 'refunded' | 'remaining'>;
  legend?: boolean;
}) {
  const s = escrowSplit(lease);
  const f = escrowFractions(s);
  const parts: { key: 'paid' | 'refunded' | 'remaining'; label: string; value: bigint; fraction: number }[] =
    [
      { key: 'paid', label: 'Paid', value: s.paid, fraction: f.paid },
      { key: 'refunded', label: 'Refunded', value: s.refunded, fraction: f.refunded },
      { key: 'remaining', label: 'Remaining', value: s.remaining, fraction: f.remaining },
    ];
  const title = parts.map((p) => `${p.label} ${formatUnc(p.value)} UNC`).join(' · ');
  return (
    <div className="escrow" data-testid="escrow-bar">
      <div className="escrow-track" title={title} role="img" aria-label={`Escrow: ${title}`}>
        {parts.map((p) =>
          p.fraction > 0 ? (
            <span
              key={p.key}
              className={`escrow-part escrow-${p.key}`}
              style={{ width: `${Math.max(p.fraction * 100, 1)}%`, background: ESCROW_COLORS[p.key] }}
            />
          ) : null,
        )}
      </div>
      {legend ? (
        <ul className="splitbar-legend">
          {parts.map((p) => (
            <li key={p.key} data-part={p.key}>
              <span className="swatch" style={{ background: ESCROW_COLORS[p.key] }} />
              <span className="legend-label">{p.label}</span>
              <span className="legend-value">
                <Amount value={p.value} maxFrac={6} />
              </span>
              <span className="legend-pct">{formatPercent(p.fraction)}</span>
            </li>
          ))}
        </ul>
      ) : (
        <div className="escrow-nums">
          <span>{formatUnc(s.paid, 2)} paid</span>
          <span>{formatUnc(s.remaining, 2)} left</span>
        </div>
      )}
    </div>
  );
}

/** Model names of an offer's chips ("Simulated H100 SXM ×2"). */
export function offerModels(offer: Pick<OfferJson, 'chips'>, models: ModelJson[]): string {
  const count = new Map<string, number>();
  for (const c of offer.chips) {
    const name = visibleText(modelName(c, models));
    count.set(name, (count.get(name) ?? 0) + 1);
  }
  return [...count].map(([name, n]) => (n > 1 ? `${name} ×${n}` : name)).join(', ');
}

export function OffersTable({
  offers,
  models,
  testId,
  empty,
  onRent,
}: {
  offers: OfferJson[];
  models: ModelJson[];
  testId?: string;
  empty: ReactNode;
  /** Given: open offers get a "Rent" button that calls it (the marketplace's rent form). */
  onRent?: (offer: OfferJson) => void;
}) {
  if (offers.length === 0) return <Empty>{empty}</Empty>;
  return (
    <TableWrap>
      <table className="table" data-testid={testId}>
        <thead>
          <tr>
            <th>Offer</th>
            <th>Chips</th>
            <th className="num">Price / h</th>
            <th className="hide-sm">Model · power</th>
            <th className="num hide-sm">Uptime 24 h</th>
            <th className="hide-md">Notice</th>
            <th className="hide-md">Endpoint</th>
            <th>Provider</th>
            {onRent ? <th aria-label="Rent" /> : null}
          </tr>
        </thead>
        <tbody>
          {offers.map((o) => {
            const up = uptimeText(combinedUptime(o.chips));
            return (
              <tr key={o.id} data-offer={o.id} className="row-in">
                <td>
                  <OfferLink id={o.id} /> <OfferStatus offer={o} />
                </td>
                <td>
                  <span className="chip-links">
                    {o.chips.slice(0, 3).map((c) => (
                      <span key={c.chipId} className={c.available ? '' : 'chip-busy'}>
                        <ChipLink id={c.chipId} />
                      </span>
                    ))}
                    {o.chips.length > 3 ? <span className="muted">+{o.chips.length - 3}</span> : null}
                  </span>
                  <div className="kv-sub">
                    {formatInt(o.available)} of {formatInt(o.chips.length)} free
                  </div>
                </td>
                <td className="num nowrap" data-testid="offer-price">
                  <Amount value={o.price} maxFrac={4} />
                  {bestPricePerTflopsHour(o) !== null ? (
                    <div className="kv-sub" data-testid="offer-price-tflops">
                      <Amount value={bestPricePerTflopsHour(o)!} maxFrac={6} /> / TFLOPS-h
                    </div>
                  ) : null}
                </td>
                <td className="hide-sm">
                  {offerModels(o, models) || <span className="faint">—</span>}
                  <div className="kv-sub">{formatPower(o.power)}</div>
                </td>
                <td className="num hide-sm" title={up.title}>
                  {up.text}
                </td>
                <td className="hide-md nowrap">{formatSpan(o.noticeMs)}</td>
                <td className="hide-md">
                  <span className="mono endpoint" title={visibleText(o.endpoint)}>
                    <ChainText text={o.endpoint} />
                  </span>
                </td>
                <td>
                  <AddrLink address={o.provider} />
                </td>
                {onRent ? (
                  <td>
                    {o.status === 'open' ? (
                      <button
                        type="button"
                        className="btn btn-small"
                        data-testid="offer-rent"
                        onClick={() => onRent(o)}
                      >
                        Rent
                      </button>
                    ) : null}
                  </td>
                ) : null}
              </tr>
            );
          })}
        </tbody>
      </table>
    </TableWrap>
  );
}

const LEASES_SHOWN = 100;

export function LeasesTable({
  leases,
  self,
  testId,
  empty,
  now,
}: {
  leases: LeaseJson[];
  self?: string;
  testId?: string;
  empty: ReactNode;
  now: number;
}) {
  // Anyone can open leases by the thousand (one per block, a few UNC of escrow each): the page
  // renders the first LEASES_SHOWN in the order it was given (newest first) and more on request.
  const [shown, setShown] = useState(LEASES_SHOWN);
  if (leases.length === 0) return <Empty>{empty}</Empty>;
  const rest = leases.length - shown;
  return (
    <TableWrap>
      <table className="table" data-testid={testId}>
        <thead>
          <tr>
            <th>Lease</th>
            <th>Status</th>
            <th className="escrow-col">Escrow</th>
            <th className="hide-sm">Chip</th>
            <th className="hide-md">Renter</th>
            <th className="hide-md">Provider</th>
            <th className="hide-sm">Ends</th>
          </tr>
        </thead>
        <tbody>
          {leases.slice(0, shown).map((l) => (
            <tr key={l.id} data-lease={l.id} className="row-in">
              <td>
                <LeaseLink id={l.id} />
                <div className="kv-sub">
                  <Amount value={l.pricePerHour} maxFrac={4} /> / h
                </div>
              </td>
              <td>
                <LeaseStatus lease={l} />
              </td>
              <td className="escrow-col">
                <EscrowBar lease={l} />
              </td>
              <td className="hide-sm">
                <ChipLink id={l.chipId} />
              </td>
              <td className="hide-md">
                <AddrLink address={l.renter} self={self} />
              </td>
              <td className="hide-md">
                <AddrLink address={l.provider} self={self} />
              </td>
              <td className="hide-sm nowrap muted" title={l.endTime ? formatTime(l.endTime) : undefined}>
                {l.status === 'closed' ? (
                  <>
                    closed
                    {l.closedReason ? (
                      <>
                        : <ReasonText reason={l.closedReason} />
                      </>
                    ) : null}
                  </>
                ) : l.endTime ? (
                  l.endTime > now ? (
                    `in ${formatSpan(l.endTime - now)}`
                  ) : (
                    'due'
                  )
                ) : (
                  '—'
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {rest > 0 ? (
        <button
          type="button"
          className="btn btn-small"
          data-testid={testId ? `${testId}-more` : undefined}
          onClick={() => setShown(shown + LEASES_SHOWN)}
        >
          Show {formatInt(Math.min(rest, LEASES_SHOWN))} more of {formatInt(rest)}
        </button>
      ) : null}
    </TableWrap>
  );
}

export interface ProviderRowView {
  provider: string;
  record: ProviderRecordJson | null;
  offers: number;
}

export function ProvidersTable({ rows, testId }: { rows: ProviderRowView[]; testId?: string }) {
  if (rows.length === 0) return <Empty>No providers yet.</Empty>;
  return (
    <TableWrap>
      <table className="table" data-testid={testId}>
        <thead>
          <tr>
            <th>Provider</th>
            <th className="num">Jobs receipted</th>
            <th>Ratings</th>
            <th className="num">Disputes</th>
            <th className="num">Earnings</th>
            <th className="num hide-sm">Leases</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => (
            <tr key={r.provider} className="row-in">
              <td>
                <AddrLink address={r.provider} />
                <div className="kv-sub">
                  {formatInt(r.offers)} open {r.offers === 1 ? 'offer' : 'offers'}
                </div>
              </td>
              <td className="num">{r.record ? formatInt(Number(r.record.jobsReceipted)) : '—'}</td>
              <td className="nowrap">{r.record ? ratingText(r.record) : '—'}</td>
              <td className="num">
                {r.record ? (
                  Number(r.record.disputes) > 0 ? (
                    <Badge tone="warn">{formatInt(Number(r.record.disputes))}</Badge>
                  ) : (
                    '0'
                  )
                ) : (
                  '—'
                )}
              </td>
              <td className="num nowrap">
                {r.record ? <Amount value={r.record.earnings} maxFrac={4} /> : '—'}
              </td>
              <td className="num hide-sm">{r.record ? formatInt(Number(r.record.leases)) : '—'}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </TableWrap>
  );
}
