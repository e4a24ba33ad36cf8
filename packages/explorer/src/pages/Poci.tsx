/**
 * Pages that POCI fills with data: chips, validators, marketplace, miner view. Each is clearly
 * marked "coming with POCI", says what it will show, and shows what the chain already knows.
 * They are separate components so each can be replaced by its real page without touching the rest.
 */
import { type FormEvent, type ReactNode, useState } from 'react';
import { ChipIcon, PickIcon, ShieldIcon, StoreIcon } from '../components/icons';
import { AddrLink, Badge, Card, FullHash, KV, PageTitle, Row } from '../components/ui';
import { formatInt, formatPercent } from '../format';
import { useNode } from '../node/context';
import { navigate, paths } from '../router';
import { classify } from '../search';

function ComingWithPoci({
  icon,
  title,
  lead,
  features,
  preview,
  children,
}: {
  icon: ReactNode;
  title: string;
  lead: string;
  features: string[];
  preview: string[];
  children?: ReactNode;
}) {
  return (
    <div className="page">
      <PageTitle
        kicker={
          <>
            {icon} <Badge tone="poci">coming with POCI</Badge>
          </>
        }
        title={title}
      >
        <p className="lead">{lead}</p>
      </PageTitle>
      {children}
      <Card title="What this page will show" testId="poci-placeholder">
        <ul className="feature-list">
          {features.map((f) => (
            <li key={f}>{f}</li>
          ))}
        </ul>
      </Card>
      <section className="preview-grid" aria-label="Layout preview, no data yet">
        {preview.map((p) => (
          <div className="preview-tile" key={p}>
            <span className="preview-label">{p}</span>
            <svg className="preview-spark" viewBox="0 0 200 40" preserveAspectRatio="none" aria-hidden="true">
              <path d="M0 32 C 25 30, 35 18, 60 20 S 100 30, 120 16 S 165 8, 200 10" />
            </svg>
            <span className="preview-note">no data yet</span>
          </div>
        ))}
      </section>
    </div>
  );
}

export function ChipsPage() {
  return (
    <ComingWithPoci
      icon={<ChipIcon size={15} />}
      title="Chips"
      lead="AI chips that prove themselves: each one's security engine signs the chain's challenges, so the network knows which genuine chips are online."
      features={[
        'Total attested compute power and the number of chips online, over time',
        'Every registered chip: model, vendor, owner, attestation profile',
        'Each chip’s uptime timeline, slot by slot, with the reason a slot was missed',
        'Rewards earned per chip and per epoch',
      ]}
      preview={['Attested power', 'Chips online', 'Uptime timeline', 'Rewards per epoch']}
    />
  );
}

export function ValidatorsPage() {
  const node = useNode();
  const proposers = new Map<string, number>();
  for (const b of node.blocks) proposers.set(b.proposerAddress, (proposers.get(b.proposerAddress) ?? 0) + 1);
  const total = node.blocks.length;
  return (
    <ComingWithPoci
      icon={<ShieldIcon size={15} />}
      title="Validators"
      lead="The validator set is drawn from the miners with the most attested online power; blocks are final after one round of BFT votes."
      features={[
        'The validator set of each epoch with voting power and bond',
        'Proposals, votes and missed rounds per validator',
        'Slashing evidence for equivocation',
      ]}
      preview={['Voting power', 'Bonds', 'Missed rounds', 'Evidence']}
    >
      <Card
        title="Proposers of the last blocks"
        subtitle="Already real: who signed the blocks the explorer has seen"
      >
        {total === 0 ? (
          <p className="muted">Waiting for blocks…</p>
        ) : (
          <KV>
            {[...proposers.entries()].map(([addr, n]) => (
              <Row key={addr} label={<AddrLink address={addr} />}>
                {formatInt(n)} of the last {formatInt(total)} blocks ({formatPercent(n / total, 1)})
              </Row>
            ))}
          </KV>
        )}
        {node.status?.validator ? (
          <div className="subsection">
            <KV>
              <Row label="This node’s validator key">
                <FullHash value={node.status.validator} />
              </Row>
            </KV>
          </div>
        ) : null}
      </Card>
    </ComingWithPoci>
  );
}

export function MarketplacePage() {
  return (
    <ComingWithPoci
      icon={<StoreIcon size={15} />}
      title="Marketplace"
      lead="Renters lease attested chips through an escrow that pays the provider only for proven online time."
      features={[
        'Open offers: chips, price per hour, minimum and maximum duration, region, runtimes',
        'Active leases with escrow paid, refunded and remaining',
        'Job receipts signed by the chips',
      ]}
      preview={['Offers', 'Active leases', 'Escrow', 'Receipts']}
    />
  );
}

export function MinerPage() {
  const [value, setValue] = useState('');
  const [error, setError] = useState<string | null>(null);
  const onSubmit = (e: FormEvent) => {
    e.preventDefault();
    const t = classify(value);
    if (t.kind === 'address') navigate(paths.account(t.address));
    else setError('Enter an address (unc1…).');
  };
  return (
    <ComingWithPoci
      icon={<PickIcon size={15} />}
      title="Miner dashboard"
      lead="One place for a miner: chips, their uptime, why each slot was missed, and what every chip earned."
      features={[
        'Your chips at a glance: online, missed, grace budget left this epoch',
        'Earnings per chip and per epoch, with the reason behind every number',
        'Leases your chips serve and what they paid',
      ]}
      preview={['My chips', 'Earnings', 'Missed slots', 'Leases']}
    >
      <Card title="Open an account" subtitle="Already real: balances and transactions">
        <form className="inline-form" onSubmit={onSubmit}>
          <input
            className="input"
            placeholder="unc1…"
            value={value}
            onChange={(e) => {
              setValue(e.target.value);
              setError(null);
            }}
            aria-label="Miner address"
          />
          <button className="btn" type="submit">
            Open
          </button>
        </form>
        {error ? <p className="form-error">{error}</p> : null}
      </Card>
    </ComingWithPoci>
  );
}
