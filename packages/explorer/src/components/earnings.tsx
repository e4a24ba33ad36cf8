/** A chip's earnings per epoch (unc_getRewards [chipId]): what it was paid, and why. */
import { formatInt, formatPercent } from '../format';
import { useRpc } from '../node/context';
import { formatPower } from '../poci';
import type { RewardJson } from '../sdk';
import { Amount, BlockLink, Card, Empty, TableWrap } from './ui';

export function ChipEarnings({ chipId }: { chipId: string }) {
  const res = useRpc<RewardJson[]>(
    `rewards:${chipId}`,
    (c) => c.call<RewardJson[]>('unc_getRewards', [chipId]),
    {
      refreshMs: 10_000,
    },
  );
  const rows = res.data ?? [];
  const total = rows.reduce((s, r) => s + BigInt(r.amount), 0n);
  return (
    <Card
      title="Earnings"
      subtitle={
        res.data ? (
          <>
            <Amount value={total} /> over {formatInt(rows.length)} paid{' '}
            {rows.length === 1 ? 'epoch' : 'epochs'}: the epoch's budget × the chip's weight (power × slots
            credited) ÷ the network's weight
          </>
        ) : (
          'Rewards per epoch'
        )
      }
      testId="chip-earnings"
    >
      {rows.length === 0 ? (
        <Empty>{res.data ? 'Nothing paid yet: an epoch is paid once it is final.' : 'Loading…'}</Empty>
      ) : (
        <TableWrap>
          <table className="table">
            <thead>
              <tr>
                <th>Epoch</th>
                <th className="num">Slots answered</th>
                <th className="num hide-sm">Share of network</th>
                <th className="num hide-sm">Power</th>
                <th>Paid at</th>
                <th className="num">Amount</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((r) => {
                const net = BigInt(r.networkWeight);
                const share = net > 0n ? Number((BigInt(r.weight) * 1_000_000n) / net) / 1_000_000 : 0;
                return (
                  <tr key={`${r.epoch}`} data-epoch={r.epoch}>
                    <td>{formatInt(r.epoch)}</td>
                    <td className="num">
                      {formatInt(r.slotsAnswered)} / {formatInt(r.slotsChallenged)}
                      {r.graceUsed > 0 ? <span className="faint"> (+{r.graceUsed} grace)</span> : null}
                    </td>
                    <td className="num hide-sm">{formatPercent(share, 2)}</td>
                    <td className="num hide-sm">{formatPower(r.power)}</td>
                    <td>
                      <BlockLink height={r.paidAt} />
                    </td>
                    <td className="num nowrap" data-testid="earning-amount">
                      <Amount value={r.amount} maxFrac={6} />
                    </td>
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
