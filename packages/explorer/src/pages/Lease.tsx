/** One lease (`#/lease/:id`) and one offer (`#/offer/:id`), re-read every few seconds. */
import type { ReactNode } from 'react';
import { StoreIcon } from '../components/icons';
import { LeaseLog } from '../components/lease-log';
import {
  ChipLink,
  EscrowBar,
  LEASE_STATUSES,
  LeaseLink,
  LeaseStatus,
  LeasesTable,
  OfferLink,
  OfferStatus,
} from '../components/market';
import {
  AddrLink,
  Amount,
  BlockLink,
  Card,
  ChainText,
  CopyButton,
  FullHash,
  KV,
  PageTitle,
  ReasonText,
  Row,
  Stat,
  StatusWord,
} from '../components/ui';
import { big, formatInt, formatTime, timeAgo } from '../format';
import {
  combinedUptime,
  costFor,
  escrowSplit,
  formatSpan,
  type LeaseJson,
  type OfferJson,
  ratingText,
  uptimeText,
} from '../market';
import { useNow, useRpc } from '../node/context';
import { MARKET_REFRESH_MS, useAccountMarket, useChipLeases } from '../node/market';
import { useRegistries } from '../node/poci';
import { formatPower, modelName } from '../poci';
import type { PageProps } from '../router';
import { isNotFound, LoadingCard, ProblemCard } from './common';
import { isMissingMethod, MarketUnavailable } from './Poci';

function normId(raw: string | undefined): { id: string; valid: boolean } {
  const id = (raw ?? '').trim().toLowerCase().replace(/^0x/, '');
  return { id, valid: /^[0-9a-f]{64}$/.test(id) };
}

function IdTitle({ id, testId }: { id: string; testId: string }) {
  return (
    <span className="title-with-copy">
      <span className="mono break" data-testid={testId}>
        {id}
      </span>
      <CopyButton text={id} />
    </span>
  );
}

function Frame({ kicker, title, children }: { kicker: ReactNode; title: ReactNode; children: ReactNode }) {
  return (
    <div className="page">
      <PageTitle kicker={kicker} title={title} />
      {children}
    </div>
  );
}

export function LeasePage({ params }: PageProps) {
  const { id, valid } = normId(params.id);
  const now = useNow(1000);
  const res = useRpc<{ lease: LeaseJson; offer: OfferJson | null }>(
    `lease:${id}`,
    async (c) => {
      const lease = await c.getLease(id);
      const offer = await c.getOffer(lease.offerId).catch(() => null);
      return { lease, offer };
    },
    { refreshMs: MARKET_REFRESH_MS },
  );
  const kicker = (extra?: ReactNode) => (
    <>
      <StoreIcon size={15} /> Lease {extra}
    </>
  );
  if (!valid)
    return (
      <Frame kicker={kicker()} title="Lease">
        <ProblemCard title="Not a lease id">
          “<ChainText text={params.id ?? ''} />” is not a lease id (64 hex digits).
        </ProblemCard>
      </Frame>
    );
  const data = res.data;
  if (!data)
    return (
      <Frame kicker={kicker()} title={<IdTitle id={id} testId="lease-id" />}>
        {res.error ? (
          isNotFound(res.error) ? (
            <ProblemCard title="No such lease" testId="lease-none">
              No lease with this id exists on this chain.
            </ProblemCard>
          ) : (
            <MarketUnavailable error={res.error} what="lease" />
          )
        ) : (
          <LoadingCard lines={6} />
        )}
      </Frame>
    );

  const { lease, offer } = data;
  const s = escrowSplit(lease);
  const deposit = big(lease.deposit ?? '0');
  const topUps = s.total > deposit ? s.total - deposit : 0n;
  const hoursLeft =
    big(lease.pricePerHour) > 0n ? Number((s.remaining * 100n) / big(lease.pricePerHour)) / 100 : 0;
  const ends =
    lease.status === 'closed'
      ? lease.closedTime
        ? `closed ${timeAgo(lease.closedTime, now)}`
        : 'closed'
      : lease.endTime
        ? lease.endTime > now
          ? `ends in ${formatSpan(lease.endTime - now)}`
          : 'end due'
        : '—';
  return (
    <Frame kicker={kicker(<LeaseStatus lease={lease} />)} title={<IdTitle id={id} testId="lease-id" />}>
      <div className="stats">
        <Stat
          accent
          label="Status"
          value={
            <span data-testid="lease-state">
              <StatusWord value={lease.status} known={LEASE_STATUSES} />
            </span>
          }
          hint={
            lease.status === 'closed'
              ? (lease.closedReason && <ReasonText reason={lease.closedReason} />) || 'closed'
              : lease.status === 'closing' || lease.status === 'ended'
                ? (lease.closingReason && <ReasonText reason={lease.closingReason} />) ||
                  'closing at its end time'
                : ends
          }
        />
        <Stat
          label="Price"
          value={<Amount value={lease.pricePerHour} maxFrac={4} />}
          hint="per hour online"
        />
        <Stat
          label="Remaining"
          value={<Amount value={s.remaining} maxFrac={4} />}
          hint={
            lease.status === 'closed'
              ? s.remaining > 0n
                ? 'held: its last period, split once its last challenges are decided'
                : 'returned at close'
              : `≈ ${hoursLeft} h of escrow left`
          }
        />
        <Stat label="Paid" value={<Amount value={s.paid} maxFrac={4} />} hint="to the provider" />
      </div>

      <Card
        title="Escrow"
        subtitle="Deposit and top-ups = paid + refunded + remaining; missed slots are refunded, not paid"
        testId="lease-escrow"
      >
        <EscrowBar lease={lease} legend />
        <KV>
          <Row label="Deposited">
            <Amount value={s.total} maxFrac={6} />
            {topUps > 0n ? (
              <span className="muted">
                {' '}
                (deposit <Amount value={deposit} maxFrac={6} /> + top-ups{' '}
                <Amount value={topUps} maxFrac={6} />)
              </span>
            ) : null}
          </Row>
          {big(lease.unsettled) > 0n ? (
            <Row label="Accrued, not settled yet">
              <Amount value={lease.unsettled} maxFrac={6} />
              <div className="kv-sub">still in “remaining”; moved at the epoch end or at close</div>
            </Row>
          ) : null}
          <Row label="Chip's slots during the lease">
            {formatInt(lease.slotsAnswered)} answered · {formatInt(lease.slotsMissed)} missed
            {lease.slotsMissed > 0 ? <div className="kv-sub">missed slots are refunded, not paid</div> : null}
          </Row>
        </KV>
      </Card>

      <Card title="Lease" testId="lease-facts">
        <KV>
          <Row label="Chip">
            <ChipLink id={lease.chipId} />
          </Row>
          <Row label="Offer">
            <OfferLink id={lease.offerId} />
            {offer ? <span className="muted"> · notice {formatSpan(Number(offer.noticeMs))}</span> : null}
          </Row>
          <Row label="Provider">
            <AddrLink address={lease.provider} short={false} />
          </Row>
          <Row label="Renter">
            <AddrLink address={lease.renter} short={false} />
          </Row>
          <Row label="Renter key">
            <FullHash value={lease.renterPublicKey} />
            <div className="kv-sub">the provider's agent authenticates job requests by this key</div>
          </Row>
          <Row label="Endpoint">
            <ChainText className="mono break" text={lease.endpoint || offer?.endpoint || '—'} />
          </Row>
          <Row label="Started">
            {lease.startTime ? formatTime(lease.startTime) : '—'}
            {lease.startHeight ? (
              <>
                {' '}
                at block <BlockLink height={lease.startHeight} />
              </>
            ) : null}
          </Row>
          <Row label="Ends">
            {lease.endTime ? formatTime(lease.endTime) : '—'}
            {lease.hours ? <span className="muted"> · {formatInt(lease.hours)} h booked</span> : null}
          </Row>
          {lease.status === 'closed' ? (
            <Row label="Closed">
              {lease.closedTime ? formatTime(lease.closedTime) : ''}
              {lease.closedHeight ? (
                <>
                  {' '}
                  at block <BlockLink height={lease.closedHeight} />
                </>
              ) : null}
              {lease.closedReason ? (
                <div className="kv-sub">
                  <ReasonText reason={lease.closedReason} />
                </div>
              ) : null}
            </Row>
          ) : null}
        </KV>
      </Card>
      <LeaseLog leaseId={lease.id} />
    </Frame>
  );
}

export function OfferPage({ params }: PageProps) {
  const { id, valid } = normId(params.id);
  const now = useNow(5000);
  const { models } = useRegistries();
  const res = useRpc<{ offer: OfferJson; leases: LeaseJson[] }>(
    `offer:${id}`,
    async (c) => {
      const offer = await c.getOffer(id);
      const leases = await c.getLeases({ provider: offer.provider });
      return {
        offer,
        leases: leases.filter((l) => l.offerId === id).sort((a, b) => b.startTime - a.startTime),
      };
    },
    { refreshMs: MARKET_REFRESH_MS },
  );
  const kicker = (extra?: ReactNode) => (
    <>
      <StoreIcon size={15} /> Offer {extra}
    </>
  );
  if (!valid)
    return (
      <Frame kicker={kicker()} title="Offer">
        <ProblemCard title="Not an offer id">
          “<ChainText text={params.id ?? ''} />” is not an offer id (64 hex digits).
        </ProblemCard>
      </Frame>
    );
  const data = res.data;
  if (!data)
    return (
      <Frame kicker={kicker()} title={<IdTitle id={id} testId="offer-id" />}>
        {res.error ? (
          isNotFound(res.error) ? (
            <ProblemCard title="No such offer" testId="offer-none">
              No offer with this id is on this chain now: none was made, or it was closed before any lease
              opened on it (such an offer is removed; its provider's history keeps its events).
            </ProblemCard>
          ) : (
            <MarketUnavailable error={res.error} what="offer" />
          )
        ) : (
          <LoadingCard lines={6} />
        )}
      </Frame>
    );
  const { offer, leases } = data;
  const up = uptimeText(combinedUptime(offer.chips));
  return (
    <Frame kicker={kicker(<OfferStatus offer={offer} />)} title={<IdTitle id={id} testId="offer-id" />}>
      <div className="stats">
        <Stat
          accent
          label="Price"
          value={<Amount value={offer.price} maxFrac={4} />}
          hint="per hour online"
        />
        <Stat
          label="Chips"
          value={formatInt(offer.chips.length)}
          hint={`${formatPower(offer.power)} · ${formatInt(offer.available)} free now`}
        />
        <Stat label="Uptime" value={up.text} hint={up.title} />
        <Stat
          label="Leases"
          value={formatInt(leases.filter((l) => l.status !== 'closed').length)}
          hint={`open · ${formatInt(leases.length)} in all`}
        />
      </div>
      <Card title="Offer" testId="offer-facts">
        <KV>
          <Row label="Provider">
            <AddrLink address={offer.provider} short={false} />
          </Row>
          <Row label="Chips">
            <span className="chip-links">
              {offer.chips.map((chip) => (
                <span key={chip.chipId} data-chip={chip.chipId}>
                  <ChipLink id={chip.chipId} />
                  <span className="muted">
                    {' '}
                    <ChainText text={modelName(chip, models)} /> · {formatPower(chip.power)}
                    {chip.online ? '' : ' · OFFLINE'}
                    {chip.leaseId ? (
                      <>
                        {' '}
                        · leased (<LeaseLink id={chip.leaseId} />)
                      </>
                    ) : chip.available ? (
                      ' · free'
                    ) : (
                      ''
                    )}
                    {' · uptime '}
                    {uptimeText(chip.uptime).text}
                  </span>
                </span>
              ))}
            </span>
          </Row>
          <Row label="Duration">
            {formatInt(offer.minHours)}–{formatInt(offer.maxHours)} h · minimum escrow{' '}
            <Amount value={costFor(offer.price, offer.minHours)} maxFrac={4} />
          </Row>
          <Row label="Notice period">{formatSpan(Number(offer.noticeMs))}</Row>
          <Row label="Endpoint">
            <ChainText className="mono break" text={offer.endpoint} />
          </Row>
          {offer.attributes ? (
            <Row label="Attributes">
              <span className="params">
                {offer.attributes.memoryMiB ? <span>{formatInt(offer.attributes.memoryMiB)} MiB</span> : null}
                {offer.attributes.region ? <ChainText text={offer.attributes.region} /> : null}
                {offer.attributes.runtimes.map((r) => (
                  <ChainText key={r} text={r} />
                ))}
              </span>
            </Row>
          ) : null}
          {offer.createdHeight ? (
            <Row label="Created">
              block <BlockLink height={offer.createdHeight} />
              {offer.createdTime ? <span className="muted"> · {formatTime(offer.createdTime)}</span> : null}
            </Row>
          ) : null}
          {offer.status !== 'open' && offer.closesAt ? (
            <Row label="Notice ends">{formatTime(offer.closesAt)}</Row>
          ) : null}
        </KV>
      </Card>
      <Card title="Leases of this offer" testId="offer-leases">
        <LeasesTable
          leases={leases}
          now={now}
          testId="offer-leases-table"
          empty="No leases of this offer yet."
        />
      </Card>
    </Frame>
  );
}

/** The chip page's leases (hidden on a node without the marketplace). */
export function ChipLeases({ chipId, owner }: { chipId: string; owner: string }) {
  const now = useNow(5000);
  const res = useChipLeases(chipId, owner);
  if (res.error && isMissingMethod(res.error)) return null;
  return (
    <Card title="Leases" subtitle="Renters of this chip, with their escrow" testId="chip-leases-card">
      {res.data ? (
        <LeasesTable
          leases={res.data}
          now={now}
          testId="chip-leases"
          empty="This chip has not been leased."
        />
      ) : res.error ? (
        <MarketUnavailable error={res.error} what="chip's leases" />
      ) : (
        <LoadingCard lines={2} />
      )}
    </Card>
  );
}

/** The account page's marketplace: its provider record, its leases as renter and as provider. */
export function AccountLeases({ address }: { address: string }) {
  const now = useNow(5000);
  const res = useAccountMarket(address);
  if (res.error && isMissingMethod(res.error)) return null;
  const d = res.data;
  const r = d?.record;
  const isProvider = !!r && (Number(r.offers) > 0 || Number(r.leases) > 0 || (d?.asProvider.length ?? 0) > 0);
  return (
    <Card
      title="Marketplace"
      subtitle="Leases this account rents, and leases of its chips"
      testId="account-market"
    >
      {!d ? (
        res.error ? (
          <MarketUnavailable error={res.error} what="account's leases" />
        ) : (
          <LoadingCard lines={2} />
        )
      ) : (
        <>
          {isProvider && r ? (
            <div className="mini-stats mini-stats-flat provider-stats" data-testid="provider-record">
              <div>
                <span className="mini-label">Jobs receipted</span>
                <span>{formatInt(Number(r.jobsReceipted))}</span>
              </div>
              <div>
                <span className="mini-label">Ratings</span>
                <span>{ratingText(r)}</span>
              </div>
              <div>
                <span className="mini-label">Disputes</span>
                <span>{formatInt(Number(r.disputes))}</span>
              </div>
              <div>
                <span className="mini-label">Earnings</span>
                <span>
                  <Amount value={r.earnings} maxFrac={4} />
                </span>
              </div>
            </div>
          ) : null}
          <div className="subsection-title">As renter</div>
          <LeasesTable
            leases={d.asRenter}
            self={address}
            now={now}
            testId="account-leases-renter"
            empty="No leases rented by this account."
          />
          <div className="subsection-title">As provider</div>
          <LeasesTable
            leases={d.asProvider}
            self={address}
            now={now}
            testId="account-leases-provider"
            empty="No leases of this account's chips."
          />
        </>
      )}
    </Card>
  );
}
