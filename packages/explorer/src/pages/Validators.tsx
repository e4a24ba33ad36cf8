/**
 * Validators: the genesis validator set (name, public key) with the address each one proposes
 * under and its share of the blocks the explorer holds, and the proposers of the latest blocks.
 */
import { ShieldIcon } from '../components/icons';
import {
  AddrLink,
  Badge,
  BlockLink,
  Card,
  CopyButton,
  Empty,
  PageTitle,
  Stat,
  TableWrap,
} from '../components/ui';
import { formatInt, formatPercent, shortHash, timeAgo } from '../format';
import { useNode, useNow, useRpc } from '../node/context';
import type { BlockJson, GenesisJson } from '../sdk';
import { LoadingCard, RpcErrorCard } from './common';

/** Latest blocks listed with their proposer. */
const LATEST = 12;

export function ValidatorsPage() {
  const node = useNode();
  const now = useNow(1000);
  const genesis = useRpc<GenesisJson>('genesis', (c) => c.call<GenesisJson>('unc_getGenesis', []));
  const blocks = node.blocks;
  const byKey = new Map<string, { address: string; count: number; last: BlockJson }>();
  for (const b of blocks) {
    const entry = byKey.get(b.proposer);
    if (entry) {
      entry.count++;
      if (b.height > entry.last.height) entry.last = b;
    } else byKey.set(b.proposer, { address: b.proposerAddress, count: 1, last: b });
  }
  const validators = genesis.data?.validators ?? [];
  const names = new Map(validators.map((v) => [v.publicKey, v.name]));
  const total = blocks.length;

  return (
    <div className="page">
      <PageTitle
        kicker={
          <>
            <ShieldIcon size={15} /> Consensus
          </>
        }
        title="Validators"
      >
        <p className="lead">
          The validators that propose and sign blocks. This chain’s set is fixed in its genesis; a block is
          final once its validators have signed it.
        </p>
      </PageTitle>
      <div className="stats">
        <Stat
          accent
          label="Validators"
          testId="validator-count"
          value={genesis.data ? formatInt(validators.length) : '…'}
          hint="in the genesis set"
        />
        <Stat
          label="Blocks seen"
          value={formatInt(total)}
          hint={
            total > 0
              ? `#${formatInt(blocks[blocks.length - 1]!.height)}–#${formatInt(blocks[0]!.height)}`
              : 'waiting…'
          }
        />
        <Stat label="Proposers" value={formatInt(byKey.size)} hint="distinct, in those blocks" />
      </div>

      <Card
        title="Genesis validators"
        subtitle={`Blocks proposed out of the last ${formatInt(total)} the explorer holds`}
      >
        {genesis.error && !genesis.data ? (
          <RpcErrorCard error={genesis.error} what="genesis" />
        ) : !genesis.data ? (
          <LoadingCard lines={2} />
        ) : validators.length === 0 ? (
          <Empty>The genesis names no validators.</Empty>
        ) : (
          <TableWrap>
            <table className="table" data-testid="validators-table">
              <thead>
                <tr>
                  <th>Name</th>
                  <th className="hide-sm">Public key</th>
                  <th className="hide-sm">Proposer address</th>
                  <th className="num">Blocks</th>
                  <th className="hide-sm">Last proposed</th>
                </tr>
              </thead>
              <tbody>
                {validators.map((v) => {
                  const seen = byKey.get(v.publicKey);
                  return (
                    <tr key={v.publicKey}>
                      <td>
                        <div className="cell-main">
                          <strong>{v.name || 'unnamed'}</strong>
                          {node.status?.validator === v.publicKey ? (
                            <Badge tone="accent">this node</Badge>
                          ) : null}
                        </div>
                        <div className="cell-sub show-sm mono" title={v.publicKey}>
                          {shortHash(v.publicKey, 10, 8)}
                        </div>
                      </td>
                      <td className="hide-sm">
                        <span className="cell-main">
                          <span className="mono" title={v.publicKey}>
                            {shortHash(v.publicKey, 10, 8)}
                          </span>
                          <CopyButton text={v.publicKey} />
                        </span>
                      </td>
                      <td className="hide-sm">
                        {seen ? (
                          <AddrLink address={seen.address} />
                        ) : (
                          <span className="faint">not in the last blocks</span>
                        )}
                      </td>
                      <td className="num nowrap">
                        {formatInt(seen?.count ?? 0)}
                        {total > 0 ? (
                          <span className="faint"> · {formatPercent((seen?.count ?? 0) / total, 1)}</span>
                        ) : null}
                      </td>
                      <td className="hide-sm">
                        {seen ? (
                          <>
                            <BlockLink height={seen.last.height} />{' '}
                            <span className="muted">{timeAgo(seen.last.timeMs, now)}</span>
                          </>
                        ) : (
                          <span className="faint">—</span>
                        )}
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </TableWrap>
        )}
      </Card>

      <Card title="Latest blocks and their proposers" subtitle="Live">
        {blocks.length === 0 ? (
          <Empty>Waiting for blocks…</Empty>
        ) : (
          <TableWrap>
            <table className="table" data-testid="proposers-table">
              <thead>
                <tr>
                  <th>Block</th>
                  <th>Age</th>
                  <th>Proposer</th>
                  <th className="hide-sm">Validator</th>
                </tr>
              </thead>
              <tbody>
                {blocks.slice(0, LATEST).map((b) => (
                  <tr key={b.height} className="row-in">
                    <td>
                      <BlockLink height={b.height} />
                    </td>
                    <td className="muted nowrap">{timeAgo(b.timeMs, now)}</td>
                    <td>
                      <AddrLink address={b.proposerAddress} />
                    </td>
                    <td className="hide-sm">
                      {names.get(b.proposer) ?? <span className="faint">not a genesis validator</span>}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </TableWrap>
        )}
      </Card>
    </div>
  );
}
