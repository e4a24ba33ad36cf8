/**
 * The marketplace (PROTOCOL.md §8): open offers (chips, price per hour, model, power, uptime,
 * notice period, endpoint), leases with their escrow split (paid / refunded / remaining), and the
 * providers' records (jobs receipted, ratings, disputes, earnings). Re-read every few seconds.
 */
import { useState } from 'react';
import { StoreIcon } from '../components/icons';
import { LeasesTable, OffersTable, ProvidersTable } from '../components/market';
import { RentCard } from '../components/rent';
import { Amount, Card, ChainText, PageTitle, Skeleton, Stat } from '../components/ui';
import { big, formatInt, plural } from '../format';
import { filterOffers, type OfferFilter, parseUncInput } from '../market';
import { useNow } from '../node/context';
import { useMarket } from '../node/market';
import { useRegistries } from '../node/poci';
import { type OfferJson, RpcClientError } from '../sdk';
import { ProblemCard, RpcErrorCard } from './common';

/** The node answers "method not found" when it has no marketplace (an older node). */
export function isMissingMethod(err: unknown): boolean {
  return err instanceof RpcClientError && (err.rpcCode === -32601 || /method not found/i.test(err.message));
}

export function MarketUnavailable({ error, what }: { error: unknown; what: string }) {
  if (isMissingMethod(error))
    return (
      <ProblemCard title="This node has no marketplace" testId="market-unavailable">
        It does not answer the market methods (unc_getOffers, unc_getLeases, …): it runs a version without
        compute rental. Point the explorer at a newer node.
      </ProblemCard>
    );
  return <RpcErrorCard error={error} what={what} />;
}

export function MarketplacePage() {
  const market = useMarket();
  const { models } = useRegistries();
  const now = useNow(5000);
  const data = market.data;
  // Nothing to wait for when the node cannot answer: a dash, not a placeholder that never resolves.
  const pending = (width: number) => (market.error ? '—' : <Skeleton width={width} height={30} />);
  const open = data?.offers.filter((o) => o.status === 'open') ?? [];
  const live = data?.leases.filter((l) => l.status !== 'closed') ?? [];
  // A closed lease's remaining is its last period held for its last challenges (0 once decided).
  const held = data?.leases.reduce((s, l) => s + big(l.remaining), 0n) ?? 0n;
  const paid = data?.leases.reduce((s, l) => s + big(l.paid), 0n) ?? 0n;
  const chipsOffered = new Set(open.flatMap((o) => o.chips.map((c) => c.chipId))).size;
  const chipsFree = open.reduce((n, o) => n + o.available, 0);
  const [model, setModel] = useState('');
  const [maxPrice, setMaxPrice] = useState('');
  const [availability, setAvailability] = useState<OfferFilter['availability']>('all');
  const [renting, setRenting] = useState<OfferJson | null>(null);
  const maxPriceUnits = maxPrice.trim() === '' ? null : parseUncInput(maxPrice);
  const offeredModels = [
    ...new Set((data?.offers ?? []).flatMap((o) => o.chips.map((c) => c.modelId))),
  ].sort();
  const shownOffers = data
    ? filterOffers(data.offers, { model, maxPricePerTflopsHour: maxPriceUnits, availability })
    : [];
  const leases = data
    ? [...data.leases].sort((a, b) => Number(a.status === 'closed') - Number(b.status === 'closed'))
    : [];

  return (
    <div className="page">
      <PageTitle
        kicker={
          <>
            <StoreIcon size={15} /> Compute rental
          </>
        }
        title="Marketplace"
      >
        <p className="lead">
          Renters lease attested chips through an escrow that pays the provider only for proven online time:
          slots a chip missed are refunded. Jobs run off chain, and every job gets a receipt signed by the
          chip.
        </p>
      </PageTitle>

      {!data && market.error ? <MarketUnavailable error={market.error} what="marketplace" /> : null}

      <div className="stats">
        <Stat
          accent
          label="Open offers"
          testId="offers-open"
          value={data ? formatInt(open.length) : pending(60)}
          hint={data ? `${plural(chipsOffered, 'chip')} offered, ${formatInt(chipsFree)} free now` : ' '}
        />
        <Stat
          label="Active leases"
          testId="leases-active"
          value={data ? formatInt(live.length) : pending(60)}
          hint={data ? `${plural(data.leases.length, 'lease')} in all` : ' '}
        />
        <Stat
          label="In escrow"
          value={data ? <Amount value={held} maxFrac={2} /> : pending(120)}
          hint="remaining in the leases, not paid out yet"
        />
        <Stat
          label="Paid to providers"
          value={data ? <Amount value={paid} maxFrac={2} /> : pending(120)}
          hint="for proven online time"
        />
      </div>

      <Card
        title="Offers"
        subtitle="Chips for rent: price per hour (and per TFLOPS-hour), the chips' model and power, their uptime, the notice a provider must give"
        testId="offers-card"
        actions={
          <div className="history-actions">
            <select
              className="select"
              aria-label="Chip model"
              data-testid="offers-model"
              value={model}
              onChange={(e) => setModel(e.target.value)}
            >
              <option value="">Every model</option>
              {offeredModels.map((m) => (
                <option key={m} value={m}>
                  <ChainText text={models.find((x) => x.modelId === m)?.name ?? m} />
                </option>
              ))}
            </select>
            <input
              className="input input-small"
              aria-label="Most UNC per TFLOPS-hour"
              placeholder="max UNC / TFLOPS-h"
              data-testid="offers-max-price"
              value={maxPrice}
              onChange={(e) => setMaxPrice(e.target.value)}
            />
            <select
              className="select"
              aria-label="Availability"
              data-testid="offers-availability"
              value={availability}
              onChange={(e) => setAvailability(e.target.value as OfferFilter['availability'])}
            >
              <option value="all">Free or leased</option>
              <option value="free">Free now</option>
              <option value="leased">Leased</option>
            </select>
          </div>
        }
      >
        {maxPrice.trim() !== '' && maxPriceUnits === null ? (
          <p className="form-error">“{maxPrice}” is not an amount of UNC (e.g. 0.002).</p>
        ) : null}
        {data ? (
          <OffersTable
            offers={shownOffers}
            models={models}
            testId="offers-table"
            onRent={(o) => {
              setRenting(o);
              requestAnimationFrame(() =>
                document.querySelector('[data-testid="rent-card"]')?.scrollIntoView({ behavior: 'smooth' }),
              );
            }}
            empty={
              data.offers.length > 0 ? (
                'No offer matches these filters.'
              ) : (
                <>
                  No offers yet. Providers create them with <code>unc market …</code>.
                </>
              )
            }
          />
        ) : market.error ? null : (
          <Skeleton height={120} />
        )}
      </Card>

      {renting ? <RentCard key={renting.id} offer={renting} onClose={() => setRenting(null)} /> : null}

      <Card
        title="Leases"
        subtitle="Escrow split: paid to the provider, refunded to the renter, remaining — settled at every epoch end and at close"
        testId="leases-card"
      >
        {data ? (
          <LeasesTable
            leases={leases}
            now={now}
            testId="leases-table"
            empty={<>No leases yet. A renter opens one by accepting an offer.</>}
          />
        ) : market.error ? null : (
          <Skeleton height={120} />
        )}
      </Card>

      <Card title="Providers" subtitle="From their on-chain records" testId="providers-card">
        {data ? (
          <ProvidersTable
            testId="providers-table"
            rows={data.providers.map((p) => ({
              provider: p.provider,
              record: p.record,
              offers: p.offers.filter((o) => o.status === 'open').length,
            }))}
          />
        ) : market.error ? null : (
          <Skeleton height={80} />
        )}
      </Card>
    </div>
  );
}
