import type { ReactNode } from 'react';
/** The block and transaction tables used on several pages. */
import { formatInt, plural, shortHash, timeAgo } from '../format';
import type { RecentTx } from '../node/watcher';
import { href, paths } from '../router';
import type { BlockJson } from '../sdk';
import { ActionsSummary, actionRecipient } from './actions';
import { AddrLink, BlockLink, Empty, TableWrap, TxLink } from './ui';

export function BlocksTable({
  blocks,
  now,
  showTime = false,
  testId,
}: {
  blocks: BlockJson[];
  now: number;
  showTime?: boolean;
  testId?: string;
}) {
  if (blocks.length === 0) return <Empty>No blocks yet.</Empty>;
  return (
    <TableWrap>
      <table className="table" data-testid={testId}>
        <thead>
          <tr>
            <th>Block</th>
            <th>Age</th>
            <th className="num">Txs</th>
            <th className="hide-sm">Proposer</th>
            <th className={showTime ? '' : 'hide-md'}>Hash</th>
          </tr>
        </thead>
        <tbody>
          {blocks.map((b) => (
            <tr key={b.height} className="row-in">
              <td>
                <BlockLink height={b.height} />
              </td>
              <td className="muted nowrap" title={b.time}>
                {timeAgo(b.timeMs, now)}
              </td>
              <td className="num">
                {b.txCount > 0 ? (
                  <span className="pill-count">{formatInt(b.txCount)}</span>
                ) : (
                  <span className="faint">0</span>
                )}
              </td>
              <td className="hide-sm">
                <AddrLink address={b.proposerAddress} />
              </td>
              <td className={showTime ? '' : 'hide-md'}>
                <a className="mono faint-link" href={href(paths.block(b.height))} title={b.hash}>
                  {shortHash(b.hash)}
                </a>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </TableWrap>
  );
}

export function TxsTable({
  txs,
  now,
  self,
  testId,
  empty = 'No transactions yet.',
  sub,
}: {
  txs: RecentTx[];
  now: number;
  /** The line under each hash; by default its block and age. */
  sub?: (row: RecentTx, index: number) => ReactNode;
  /** On an account page: that account; the table then shows the other side and the direction. */
  self?: string;
  testId?: string;
  empty?: ReactNode;
}) {
  if (txs.length === 0) return <Empty>{empty}</Empty>;
  return (
    <TableWrap>
      <table className="table table-txs" data-testid={testId}>
        <thead>
          <tr>
            <th>Transaction</th>
            <th>{self !== undefined ? 'Counterparty' : 'From / To'}</th>
            <th className="num">Amount</th>
          </tr>
        </thead>
        <tbody>
          {txs.map((row, rowIndex) => {
            const { tx, height, timeMs } = row;
            const to = tx.actions.map(actionRecipient).find((x) => x !== undefined);
            const more =
              tx.actions.length > 1 ? <span className="faint"> +{tx.actions.length - 1}</span> : null;
            const incoming = self !== undefined && tx.from !== self;
            return (
              <tr key={tx.hash} className="row-in">
                <td>
                  <div className="cell-main">
                    <TxLink hash={tx.hash} />
                  </div>
                  <div className="cell-sub">
                    {sub ? (
                      sub(row, rowIndex)
                    ) : (
                      <>
                        <BlockLink height={height} /> · {timeAgo(timeMs, now)}
                      </>
                    )}
                  </div>
                </td>
                <td>
                  {self !== undefined ? (
                    <div className="cell-main">
                      <span className={`dir dir-${incoming ? 'in' : 'out'}`}>{incoming ? 'IN' : 'OUT'}</span>
                      {incoming ? (
                        <AddrLink address={tx.from} />
                      ) : to ? (
                        <AddrLink address={to} self={self} />
                      ) : (
                        <span className="faint">—</span>
                      )}
                      {more}
                    </div>
                  ) : (
                    <>
                      <div className="cell-main">
                        <span className="cell-label">from</span>
                        <AddrLink address={tx.from} />
                      </div>
                      <div className="cell-main">
                        <span className="cell-label">to</span>
                        {to ? (
                          <>
                            <AddrLink address={to} />
                            {more}
                          </>
                        ) : (
                          <span className="faint">{plural(tx.actions.length, 'action')}</span>
                        )}
                      </div>
                    </>
                  )}
                </td>
                <td className="num nowrap">
                  <ActionsSummary tx={tx} />
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </TableWrap>
  );
}
