/**
 * Validators: the live set from `unc_getValidators` (re-read as blocks arrive) — each validator's
 * key, address, voting power and share, bond, and the blocks it proposed among those the explorer
 * holds; the epoch, where the set comes from (genesis or computed), total and quorum power, bonded
 * candidates. A node without the method gets the genesis list, with a note. Then the proposers of
 * the latest blocks.
 */
import type { ReactNode } from 'react';
import { ShieldIcon } from '../components/icons';
import {
  AddrLink,
  Amount,
  Badge,
  BlockLink,
  Card,
  ChainText,
  CopyButton,
  Empty,
  PageTitle,
  Stat,
  TableWrap,
} from '../components/ui';
import { big, formatInt, formatPercent, plural, shortHash, timeAgo } from '../format';
import { useNode, useNow, useRpc } from '../node/context';
import { setSource, useValidatorSet } from '../node/validators';
import { formatPower } from '../poci';
import type { BlockJson, GenesisJson, ValidatorSetJson } from '../sdk';
import { LoadingCard, RpcErrorCard } from './common';

/** Latest blocks listed with their proposer. */
const LATEST = 12;

interface Proposed {
  address: string;
  count: number;
  last: BlockJson;
}

/** Voting power as the set counts it: TFLOPS for a computed set, the genesis weight otherwise. */
export function votingPower(source: ValidatorSetJson['source'], power: string | bigint): string {
  return source === 'computed' ? formatPower(big(power)) : formatInt(Number(big(power)));
}

export function ValidatorsPage() {
  const node = useNode();
  const now = useNow(1000);
  const genesis = useRpc<GenesisJson>('genesis', (c) => c.call<GenesisJson>('unc_getGenesis', []));
  const live = useValidatorSet('next');
  const set = live.set;
  const blocks = node.blocks;
  const byKey = new Map<string, Proposed>();
  for (const b of blocks) {
    const entry = byKey.get(b.proposer);
    if (entry) {
      entry.count++;
      if (b.height > entry.last.height) entry.last = b;
    } else byKey.set(b.proposer, { address: b.proposerAddress, count: 1, last: b });
  }
  // Signing uptime: in how many of the held blocks' commits each key's precommit is.
  const signedBy = new Map<string, number>();
  for (const b of blocks)
    for (const sig of b.commit?.signatures ?? [])
      signedBy.set(sig.validator, (signedBy.get(sig.validator) ?? 0) + 1);
  const genesisValidators = genesis.data?.validators ?? [];
  const names = new Map(genesisValidators.map((v) => [v.publicKey, v.name]));
  const inSet = new Set(set?.validators.map((v) => v.publicKey));
  const total = blocks.length;
  const origin = set ? setSource(set, genesis.data ? new Set(names.keys()) : null) : null;
  const source = origin?.source ?? 'genesis';
  const self = node.status?.validator ?? null;

  const nameCell = (publicKey: string, fallback: ReactNode) => (
    <>
      <div className="cell-main">
        {names.has(publicKey) ? (
          <strong>
            <ChainText text={names.get(publicKey) || 'unnamed'} />
          </strong>
        ) : (
          fallback
        )}
        {self === publicKey ? <Badge tone="accent">this node</Badge> : null}
      </div>
      <div className="cell-sub show-sm mono" title={publicKey}>
        {shortHash(publicKey, 10, 8)}
      </div>
    </>
  );
  const keyCell = (publicKey: string) => (
    <td className="hide-sm">
      <span className="cell-main">
        <span className="mono" title={publicKey}>
          {shortHash(publicKey, 10, 8)}
        </span>
        <CopyButton text={publicKey} />
      </span>
    </td>
  );
  const blocksCells = (seen: Proposed | undefined, hideSm = false) => (
    <>
      <td className={`num nowrap ${hideSm ? 'hide-sm' : ''}`}>
        {formatInt(seen?.count ?? 0)}
        {total > 0 ? <span className="faint"> · {formatPercent((seen?.count ?? 0) / total, 1)}</span> : null}
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
    </>
  );

  const sourceText =
    source === 'computed'
      ? 'Computed at the epoch’s start from the accounts with at least the minimum bond and a consensus key, each weighted by its chips’ attested online power (TFLOPS), counted only up to what its bond backs.'
      : origin?.kept
        ? 'The genesis set, kept: no bonded account had attested online power at the last epoch boundary, so the validators named in the genesis still sign, with their genesis weights.'
        : 'The genesis set: no epoch boundary has computed a set from bonds and attested online power yet, so the validators named in the genesis sign, with their genesis weights.';

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
          The validators that propose and sign blocks, each under a consensus key of its own. Each epoch’s set
          is computed from the bonded accounts, weighted by their chips’ attested online power up to what
          their bond backs; a block is final once validators holding more than two thirds of the set’s power
          have signed it.
        </p>
      </PageTitle>
      <div className="stats">
        <Stat
          accent
          label="Validators"
          testId="validator-count"
          value={
            set
              ? formatInt(set.validators.length)
              : live.unsupported && genesis.data
                ? formatInt(genesisValidators.length)
                : '…'
          }
          hint={
            set
              ? source === 'computed'
                ? `computed for epoch ${formatInt(set.epoch)}`
                : 'the genesis set'
              : live.unsupported
                ? 'in the genesis set'
                : ' '
          }
        />
        {set ? (
          <>
            <Stat
              label="Epoch"
              testId="validators-epoch"
              value={formatInt(set.epoch)}
              hint={`set for block #${formatInt(set.height)}`}
            />
            <Stat
              label="Total power"
              testId="validators-total-power"
              value={votingPower(source, set.totalPower)}
              hint={source === 'computed' ? 'attested online power' : 'genesis weights'}
            />
            <Stat
              label="Quorum"
              testId="validators-quorum"
              value={votingPower(source, set.quorumPower)}
              hint="> 2/3 of the total"
            />
            <Stat
              label="Bonded candidates"
              testId="validators-candidates"
              value={formatInt(set.candidates)}
              hint="for the next sets"
            />
          </>
        ) : null}
        <Stat
          label="Blocks seen"
          value={formatInt(total)}
          hint={
            total > 0
              ? `#${formatInt(blocks[blocks.length - 1]!.height)}–#${formatInt(blocks[0]!.height)}`
              : 'waiting…'
          }
        />
      </div>

      {live.unsupported ? (
        <Card
          title="Genesis validators"
          subtitle={`Blocks proposed out of the last ${formatInt(total)} the explorer holds`}
        >
          <p className="note validators-source-note" data-testid="validators-fallback">
            This node does not serve <code>unc_getValidators</code> (an older node): the list is the genesis
            set, without power or bonds.
          </p>
          {genesis.error && !genesis.data ? (
            <RpcErrorCard error={genesis.error} what="genesis" />
          ) : !genesis.data ? (
            <LoadingCard lines={2} />
          ) : genesisValidators.length === 0 ? (
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
                  {genesisValidators.map((v) => {
                    const seen = byKey.get(v.publicKey);
                    return (
                      <tr key={v.publicKey}>
                        <td>{nameCell(v.publicKey, null)}</td>
                        {keyCell(v.publicKey)}
                        <td className="hide-sm">
                          {seen ? (
                            <AddrLink address={seen.address} />
                          ) : (
                            <span className="faint">not in the last blocks</span>
                          )}
                        </td>
                        {blocksCells(seen)}
                      </tr>
                    );
                  })}
                </tbody>
              </table>
            </TableWrap>
          )}
        </Card>
      ) : (
        <Card
          title={
            <>
              Validator set{' '}
              {set ? (
                <Badge tone={source === 'computed' ? 'poci' : 'neutral'}>
                  <span data-testid="validators-source">{source}</span>
                </Badge>
              ) : null}
            </>
          }
          subtitle={
            set
              ? `Signs block #${formatInt(set.height)} · live · blocks signed (in their commits) and proposed out of the last ${formatInt(total)} the explorer holds`
              : undefined
          }
          testId="validator-set"
        >
          {live.error && !set ? (
            <RpcErrorCard error={live.error} what="validator set" />
          ) : !set ? (
            <LoadingCard lines={2} />
          ) : set.validators.length === 0 ? (
            <Empty>The set is empty.</Empty>
          ) : (
            <>
              <p className="note validators-source-note" data-testid="validators-source-note">
                {sourceText}
              </p>
              <TableWrap>
                <table className="table" data-testid="validators-table">
                  <thead>
                    <tr>
                      <th>Validator</th>
                      <th className="hide-sm">Public key</th>
                      <th className="hide-sm">Address</th>
                      <th>Voting power</th>
                      <th className="num hide-sm">Bond</th>
                      <th
                        className="num"
                        title="Blocks whose commit holds this validator's precommit, of the latest ones the explorer holds"
                      >
                        Signed
                      </th>
                      <th className="num hide-sm">Blocks</th>
                      <th className="hide-sm">Last proposed</th>
                    </tr>
                  </thead>
                  <tbody>
                    {set.validators.map((v) => {
                      const seen = byKey.get(v.publicKey);
                      const share = v.sharePpm / 1_000_000;
                      return (
                        <tr key={v.publicKey} data-key={v.publicKey}>
                          <td>
                            {nameCell(
                              v.publicKey,
                              <span className="mono" title={v.publicKey}>
                                {shortHash(v.publicKey, 8, 6)}
                              </span>,
                            )}
                            <div className="cell-sub show-sm">
                              <AddrLink address={v.address} /> · {plural(seen?.count ?? 0, 'block')}
                            </div>
                          </td>
                          {keyCell(v.publicKey)}
                          <td className="hide-sm">
                            <AddrLink address={v.address} />
                          </td>
                          <td className="power-cell">
                            <div className="nowrap">
                              <span data-testid="validator-power">{votingPower(source, v.power)}</span>{' '}
                              <span className="muted" data-testid="validator-share">
                                {formatPercent(share, 2)}
                              </span>
                            </div>
                            <div
                              className="progress"
                              role="progressbar"
                              aria-label="share of the set's power"
                              aria-valuemin={0}
                              aria-valuemax={1000000}
                              aria-valuenow={v.sharePpm}
                              title={`${formatPercent(share, 4)} of the set's power`}
                            >
                              <span style={{ width: `${Math.min(100, share * 100)}%` }} />
                            </div>
                          </td>
                          <td className="num nowrap hide-sm">
                            {big(v.bonded) > 0n ? (
                              <Amount value={v.bonded} maxFrac={2} />
                            ) : (
                              <span className="faint">none</span>
                            )}
                          </td>
                          <td className="num nowrap" data-testid="validator-signed">
                            {total > 0 ? formatPercent((signedBy.get(v.publicKey) ?? 0) / total, 1) : '—'}
                            <div className="cell-sub">
                              {formatInt(signedBy.get(v.publicKey) ?? 0)} of {formatInt(total)}
                            </div>
                          </td>
                          {blocksCells(seen, true)}
                        </tr>
                      );
                    })}
                  </tbody>
                </table>
              </TableWrap>
            </>
          )}
        </Card>
      )}

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
                      {names.has(b.proposer) ? (
                        <ChainText text={names.get(b.proposer) ?? ''} />
                      ) : inSet.has(b.proposer) ? (
                        <span className="muted">in the current set</span>
                      ) : (
                        <span className="faint">
                          {set ? 'not in the current set' : 'not a genesis validator'}
                        </span>
                      )}
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
