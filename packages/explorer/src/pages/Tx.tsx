/** One transaction: what it did (actions), what happened (events), and where its fee went. */
import { useEffect, useState } from 'react';
import { SplitBar } from '../charts/SplitBar';
import {
  ActionItem,
  ActionsSummary,
  actionRecipient,
  EventItem,
  transferredAmount,
} from '../components/actions';
import { ArrowRightIcon, FlameIcon } from '../components/icons';
import {
  AddrLink,
  Amount,
  Badge,
  BlockLink,
  Card,
  ChainText,
  FullHash,
  KV,
  PageTitle,
  Row,
} from '../components/ui';
import { big, formatInt, formatTime, formatUncExact, fraction, shortHash, timeAgo } from '../format';
import { useNow, useRpc } from '../node/context';
import type { PageProps } from '../router';
import { RpcClientError, type TxEventJson, type TxReceiptJson, type TxStatusJson } from '../sdk';
import { isNotFound, LoadingCard, ProblemCard, RpcErrorCard } from './common';
import { COLORS } from './Overview';

export function TxPage({ params }: PageProps) {
  const hash = (params.hash ?? '').toLowerCase();
  const valid = /^[0-9a-f]{64}$/.test(hash);
  const now = useNow(1000);
  const [poll, setPoll] = useState(false);
  const first = useRpc<TxReceiptJson>(`tx:${hash}`, (c) => c.getTransaction(hash), {
    refreshMs: poll ? 1000 : undefined,
  });
  // While it waits in the mempool, look again every second.
  const pending = first.error instanceof RpcClientError && first.error.reason === 'PENDING';
  useEffect(() => setPoll(pending), [pending]);
  const receipt = first.data;
  // Left the mempool without being included: the node says why and at what height.
  const droppedError = first.error instanceof RpcClientError && first.error.reason === 'DROPPED';
  const status = useRpc<TxStatusJson | null>(`tx-status:${hash}:${droppedError}`, (c) =>
    droppedError ? c.getTransactionStatus(hash) : Promise.resolve(null),
  );
  const dropped = status.data?.status === 'dropped' ? status.data : null;

  if (!valid) {
    return (
      <div className="page">
        <ProblemCard title="Not a transaction hash">
          “<ChainText text={params.hash ?? ''} />” is not 64 hex digits.
        </ProblemCard>
      </div>
    );
  }

  if (!receipt) {
    return (
      <div className="page">
        <PageTitle kicker="Transaction" title={<span className="mono">{shortHash(hash, 12, 10)}</span>} />
        {pending ? (
          <ProblemCard title="Waiting in the mempool" testId="tx-pending">
            The node has accepted this transaction; it will be in the next block. This page updates by itself.
          </ProblemCard>
        ) : dropped ? (
          <ProblemCard title="Dropped" testId="tx-dropped">
            <span className="mono">
              dropped: <ChainText text={dropped.code} /> at height {formatInt(dropped.height)}
            </span>
            <br />
            <ChainText text={dropped.reason} />. The transaction left the mempool without being included; send
            it again (with a new nonce or fee) if it should still happen.
          </ProblemCard>
        ) : droppedError && first.error ? (
          <RpcErrorCard error={first.error} what="transaction" />
        ) : first.error && isNotFound(first.error) ? (
          <ProblemCard title="No such transaction" testId="tx-not-found">
            The node knows no transaction with hash <span className="mono">{hash}</span>.
          </ProblemCard>
        ) : first.error ? (
          <RpcErrorCard error={first.error} what="transaction" />
        ) : (
          <LoadingCard lines={8} />
        )}
      </div>
    );
  }

  const { tx, events } = receipt;
  const fee = events.find((e): e is Extract<TxEventJson, { type: 'fee' }> => e.type === 'fee');
  const total = transferredAmount(tx);
  const recipients = [
    ...new Set(tx.actions.map(actionRecipient).filter((x): x is string => x !== undefined)),
  ];
  const blockTime = Date.parse(receipt.time);

  return (
    <div className="page">
      <PageTitle
        kicker={
          <>
            Transaction <Badge tone="ok">included</Badge>
          </>
        }
        title={
          <span className="mono" title={hash}>
            {shortHash(hash, 12, 10)}
          </span>
        }
        testId="tx-title"
      />

      <Card className="transfer-hero">
        <div className="transfer">
          <div className="party">
            <span className="mini-label">From</span>
            <AddrLink address={tx.from} />
          </div>
          <div className="transfer-arrow">
            <span className="transfer-amount" data-testid="tx-amount">
              {tx.actions.some((a) => a.type === 'transfer') ? (
                <Amount value={total} maxFrac={18} />
              ) : (
                <ActionsSummary tx={tx} />
              )}
            </span>
            <span className="arrow-line">
              <ArrowRightIcon size={20} />
            </span>
            <span className="muted small">
              {tx.actions.length} action{tx.actions.length === 1 ? '' : 's'}
            </span>
          </div>
          <div className="party">
            <span className="mini-label">To</span>
            {recipients.length === 1 ? (
              <AddrLink address={recipients[0]!} />
            ) : recipients.length === 0 ? (
              <span className="muted">the chain</span>
            ) : (
              <span>{recipients.length} recipients</span>
            )}
          </div>
        </div>
      </Card>

      <div className="grid-main">
        <Card title="Details">
          <KV>
            <Row label="Hash">
              <FullHash value={tx.hash} />
            </Row>
            <Row label="Status">
              <span>
                Included in <BlockLink height={receipt.height} /> at position {receipt.index}
                <span className="muted" data-testid="tx-final">
                  {' '}
                  · final: a committed block is never taken back
                </span>
              </span>
            </Row>
            <Row label="Time">
              <span>
                {formatTime(blockTime)} <span className="muted">({timeAgo(blockTime, now)})</span>
              </span>
            </Row>
            <Row label="From">
              <AddrLink address={tx.from} short={false} />
            </Row>
            <Row label="Nonce">
              <span className="mono">{tx.nonce}</span>
            </Row>
            <Row label="Fee">
              <span className="mono">{formatUncExact(tx.fee)} UNC</span>
            </Row>
            <Row label="Size">{`${formatInt(tx.size)} bytes`}</Row>
            <Row label="Valid until">
              <span>block #{formatInt(tx.expiresAt)}</span>
            </Row>
            <Row label="Chain">
              <span className="mono">{tx.chainId}</span>
            </Row>
            <Row label="Signer key">
              <FullHash value={tx.signer} />
            </Row>
            <Row label="Signature">
              <FullHash value={tx.signature} />
            </Row>
          </KV>
        </Card>
        <Card
          title="Fee"
          subtitle="Half is burned, half goes to the block's proposer; what a record kept for good costs (a new account, a lease, a receipt, a dispute) is burned whole"
          testId="fee-split"
        >
          {fee ? (
            <>
              <div className="fee-total">
                <FlameIcon size={18} />
                <Amount value={fee.amount} maxFrac={18} />
              </div>
              <SplitBar
                height={14}
                parts={[
                  {
                    label: 'Burned',
                    fraction: fraction(big(fee.burned), big(fee.amount)),
                    color: COLORS.burn,
                    value: <Amount value={fee.burned} maxFrac={18} unit={false} />,
                  },
                  {
                    label: 'To proposer',
                    fraction: fraction(big(fee.toProposer), big(fee.amount)),
                    color: COLORS.sky,
                    value: <Amount value={fee.toProposer} maxFrac={18} unit={false} />,
                  },
                ]}
              />
            </>
          ) : (
            <p className="muted">No fee event.</p>
          )}
        </Card>
      </div>

      <Card title={`Actions (${tx.actions.length})`} subtitle="What the sender asked for, in order">
        <ul className="events">
          {tx.actions.map((a, i) => (
            // biome-ignore lint/suspicious/noArrayIndexKey: actions are ordered and fixed
            <ActionItem key={i} action={a} index={i} />
          ))}
        </ul>
      </Card>

      <Card title={`Events (${events.length})`} subtitle="What executing the transaction did to the state">
        <ul className="events">
          {events.map((e, i) => (
            // biome-ignore lint/suspicious/noArrayIndexKey: events are ordered and fixed
            <EventItem key={i} event={e} />
          ))}
        </ul>
      </Card>
    </div>
  );
}
