/**
 * Pages still to come: the marketplace. It is clearly marked "coming with POCI" and says what it
 * will show. (Chips, validators and the miner view have their own pages now.)
 */
import type { ReactNode } from 'react';
import { StoreIcon } from '../components/icons';
import { Badge, Card, PageTitle } from '../components/ui';

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
