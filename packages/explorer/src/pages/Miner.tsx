/**
 * The miner view (`#/miner?owner=unc1…`, or `?owner=` in the page address): one owner's chips, what
 * they answered and missed, and "what to fix" hints built from the chips' own data. Without an
 * owner it asks for one and lists the owners that have chips.
 */
import { ChipsTable, HintList } from '../components/chips';
import { PickIcon } from '../components/icons';
import { Amount, Card, CopyButton, Empty, PageTitle, Stat, TableWrap } from '../components/ui';
import { formatInt } from '../format';
import { useRpc } from '../node/context';
import { CHIPS_REFRESH_MS, useChips, useRegistries } from '../node/poci';
import { formatPower, formatTflops, minerHints, powerOf, slotCounts, totalMissed } from '../poci';
import { href, type PageProps, paths } from '../router';
import type { AccountJson, ChipJson, EpochJson } from '../sdk';
import { classify } from '../search';
import { OwnerFilter } from './Chips';
import { LoadingCard, RpcErrorCard } from './common';

interface MinerData {
  chips: ChipJson[];
  epoch: EpochJson;
  account: AccountJson;
}

function ownerFrom(query: PageProps['query']): string | undefined {
  const raw = query.owner ?? new URLSearchParams(window.location.search).get('owner') ?? '';
  const t = classify(raw);
  return t.kind === 'address' ? t.address : undefined;
}

function Owners() {
  const all = useChips();
  if (!all.data)
    return all.error ? <RpcErrorCard error={all.error} what="chips" /> : <LoadingCard lines={3} />;
  const owners = new Map<string, ChipJson[]>();
  for (const c of all.data.chips) owners.set(c.owner, [...(owners.get(c.owner) ?? []), c]);
  return (
    <Card title="Owners with chips" subtitle="Open one to see its chips and what to fix">
      {owners.size === 0 ? (
        <Empty>No chips are registered on this chain yet.</Empty>
      ) : (
        <TableWrap>
          <table className="table" data-testid="owners-table">
            <thead>
              <tr>
                <th>Owner</th>
                <th className="num">Chips online</th>
                <th className="num">Online power</th>
              </tr>
            </thead>
            <tbody>
              {[...owners.entries()].map(([owner, chips]) => {
                const online = chips.filter((c) => c.status === 'active' && c.online);
                return (
                  <tr key={owner}>
                    <td>
                      <a className="mono" href={href(paths.miner(owner))} title={owner}>
                        {owner}
                      </a>
                    </td>
                    <td className="num">
                      {formatInt(online.length)} / {formatInt(chips.length)}
                    </td>
                    <td className="num nowrap">{formatPower(online.reduce((s, c) => s + powerOf(c), 0n))}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </TableWrap>
      )}
    </Card>
  );
}

function MinerDashboard({ owner }: { owner: string }) {
  const { models, vendors } = useRegistries();
  const res = useRpc<MinerData>(
    `miner:${owner}`,
    async (c) => {
      const [chips, epoch, account] = await Promise.all([
        c.call<ChipJson[]>('unc_getChips', [owner]),
        c.call<EpochJson>('unc_getEpoch', []),
        c.getAccount(owner),
      ]);
      return { chips, epoch, account };
    },
    { refreshMs: CHIPS_REFRESH_MS },
  );
  const data = res.data;
  if (!data)
    return res.error ? <RpcErrorCard error={res.error} what="miner's chips" /> : <LoadingCard lines={6} />;

  const { chips, epoch } = data;
  const active = chips.filter((c) => c.status === 'active');
  const online = active.filter((c) => c.online);
  const counts = slotCounts(chips);
  const missedAll = chips.reduce((s, c) => s + totalMissed(c, epoch).total, 0);
  const missedMore = chips.some((c) => totalMissed(c, epoch).atLeast);
  const answeredAll = chips.reduce((s, c) => s + c.slotsAnswered, 0);
  const rewards = chips.reduce((s, c) => s + BigInt(c.rewardsEarned || '0'), 0n);
  const hints = minerHints(chips, epoch);

  return (
    <>
      <div className="stats">
        <Stat
          accent
          label="Chips online"
          testId="miner-online"
          value={
            <>
              {formatInt(online.length)}
              <span className="unit"> / {formatInt(chips.length)}</span>
            </>
          }
          hint={`${formatTflops(online.reduce((s, c) => s + powerOf(c), 0n))} of ${formatPower(active.reduce((s, c) => s + powerOf(c), 0n))} online`}
        />
        <Stat
          label="Last two epochs"
          testId="miner-slots"
          value={
            <>
              <span className="ok-text">{formatInt(counts.answered)}</span>
              <span className="unit"> / </span>
              <span className={counts.missed > 0 ? 'danger-text' : ''}>{formatInt(counts.missed)}</span>
            </>
          }
          hint={`answered / missed · ${formatInt(counts.open)} open`}
        />
        <Stat
          label="All time"
          value={
            <>
              {formatInt(answeredAll)}
              <span className="unit"> / </span>
              {formatInt(missedAll)}
              {missedMore ? '+' : ''}
            </>
          }
          hint="answered / missed, since each chip registered"
        />
        <Stat
          label="Balance"
          value={<Amount value={data.account.balance} maxFrac={2} />}
          hint={
            <>
              rewards earned <Amount value={rewards} maxFrac={4} />
            </>
          }
        />
      </div>

      <Card title="What to fix" subtitle="From the chips’ own slots, worst first" testId="hints-card">
        <HintList hints={hints} />
      </Card>

      <Card
        title="Chips"
        actions={<OwnerFilter to={paths.miner} placeholder="Another owner unc1…" button="Open" />}
        className="card-chips"
        subtitle={
          <>
            Slots answered and missed per chip · <a href={href(paths.chips(owner))}>on the chips page</a>
          </>
        }
      >
        <ChipsTable
          chips={chips}
          models={models}
          vendors={vendors}
          params={epoch}
          showOwner={false}
          testId="miner-chips"
          empty="This address owns no chips."
        />
      </Card>
    </>
  );
}

export function MinerPage({ query }: PageProps) {
  const owner = ownerFrom(query);
  return (
    <div className="page">
      <PageTitle
        kicker={
          <>
            <PickIcon size={15} /> Miner view
          </>
        }
        title={
          owner ? (
            <span className="title-with-copy">
              <span className="mono break" data-testid="miner-owner">
                {owner}
              </span>
              <CopyButton text={owner} />
            </span>
          ) : (
            'Miner view'
          )
        }
      >
        {owner ? (
          <a className="small" href={href(paths.account(owner))}>
            account page
          </a>
        ) : (
          <p className="lead">
            One owner’s chips: which are online, what they missed and why, and what to fix.
          </p>
        )}
      </PageTitle>
      {owner ? null : (
        <Card title="Open a miner">
          <OwnerFilter to={paths.miner} button="Open" />
        </Card>
      )}
      {owner ? <MinerDashboard owner={owner} /> : <Owners />}
    </div>
  );
}
