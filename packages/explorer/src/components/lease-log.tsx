/**
 * A lease's jobs and its log, from the node's lease index (unc_getLeaseEvents): every job receipt
 * the chain holds (a job's id and the renter's rating), the epoch-end settlements that paid the
 * provider or refunded the renter, disputes, top-ups and the close. Pages by cursor.
 */
import { useEffect, useState } from 'react';
import { useRpc, useWatcher } from '../node/context';
import type { LeaseEventsPage, TxEventJson } from '../sdk';
import { Amount, BlockLink, Card, ChainText, Empty, ReasonText, TableWrap } from './ui';

type LeaseEvent = LeaseEventsPage['events'][number];

function detail(e: TxEventJson) {
  switch (e.type) {
    case 'receiptPosted':
      return (
        <>
          job <span className="mono">{e.jobId.slice(0, 16)}…</span> · rated {e.rating}
        </>
      );
    case 'disputeRecorded':
      return (
        <>
          request {e.requestHash.slice(0, 16)}… · <ChainText text={e.reason} />
        </>
      );
    case 'leaseSettled':
      return (
        <>
          paid <Amount value={e.paid} maxFrac={4} /> · refunded <Amount value={e.refunded} maxFrac={4} /> ·{' '}
          {e.answered} slots answered, {e.missed} missed
        </>
      );
    case 'leaseToppedUp':
      return (
        <>
          + <Amount value={e.amount} maxFrac={4} />
        </>
      );
    case 'leaseOpened':
      return (
        <>
          deposit <Amount value={e.deposit} maxFrac={4} />
        </>
      );
    case 'leaseClosing':
      return <ReasonText reason={e.reason} />;
    case 'leaseClosed':
      return (
        <>
          <ReasonText reason={e.reason} /> · returned <Amount value={e.returned} maxFrac={4} />
        </>
      );
    default:
      return null;
  }
}

const LABEL: Record<string, string> = {
  receiptPosted: 'Job receipt',
  disputeRecorded: 'Dispute',
  leaseSettled: 'Settlement',
  leaseToppedUp: 'Top-up',
  leaseOpened: 'Opened',
  leaseClosing: 'Closing',
  leaseClosed: 'Closed',
};

export function LeaseLog({ leaseId }: { leaseId: string }) {
  const { client } = useWatcher();
  const first = useRpc<LeaseEventsPage>(
    `lease-events:${leaseId}`,
    (c) => c.call('unc_getLeaseEvents', { leaseId, limit: 50 }),
    { refreshMs: 5000 },
  );
  const [older, setOlder] = useState<LeaseEvent[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [loading, setLoading] = useState(false);
  useEffect(() => {
    if (first.data && older.length === 0) setCursor(first.data.nextCursor);
  }, [first.data, older.length]);
  const events = [...(first.data?.events ?? []), ...older];
  const jobs = events.filter((e) => e.event.type === 'receiptPosted').length;
  const loadOlder = async () => {
    if (!client || !cursor) return;
    setLoading(true);
    try {
      const page = await client.call('unc_getLeaseEvents', { leaseId, cursor, limit: 50 });
      setOlder((prev) => [...prev, ...page.events]);
      setCursor(page.nextCursor);
    } finally {
      setLoading(false);
    }
  };
  return (
    <Card
      title="Jobs and log"
      subtitle={
        first.data
          ? `${jobs} job ${jobs === 1 ? 'receipt' : 'receipts'} on chain${cursor ? ' (more below)' : ''}; settlements, top-ups, disputes and the close, newest first`
          : 'Job receipts, settlements and disputes of this lease'
      }
      testId="lease-log"
    >
      {events.length === 0 ? (
        <Empty>{first.data ? 'Nothing recorded yet.' : 'Loading…'}</Empty>
      ) : (
        <TableWrap>
          <table className="table">
            <thead>
              <tr>
                <th>Block</th>
                <th>Event</th>
                <th>Details</th>
              </tr>
            </thead>
            <tbody>
              {events.map((e) => (
                <tr
                  key={`${e.height}:${e.txIndex}:${e.event.type}:${'jobId' in e.event ? e.event.jobId : ''}`}
                  data-event={e.event.type}
                >
                  <td>
                    <BlockLink height={e.height} />
                  </td>
                  <td className="nowrap">{LABEL[e.event.type] ?? e.event.type}</td>
                  <td>{detail(e.event)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableWrap>
      )}
      {cursor ? (
        <div className="load-more">
          <button type="button" className="btn btn-ghost" disabled={loading} onClick={() => void loadOlder()}>
            {loading ? 'Loading…' : 'Older events'}
          </button>
        </div>
      ) : null}
    </Card>
  );
}
