/** One block: header, transactions, commit. `ref` is a height or a 64-hex block hash. */
import { transferredAmount } from '../components/actions';
import { ChevronLeftIcon, ChevronRightIcon } from '../components/icons';
import { TxsTable } from '../components/tables';
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
import { formatInt, formatPercent, formatTime, fraction, plural, timeAgo } from '../format';
import { useNode, useNow, useRpc } from '../node/context';
import { signedPower, useValidatorSet } from '../node/validators';
import { href, type PageProps, paths } from '../router';
import type { BlockJson, TxJson } from '../sdk';
import { isNotFound, LoadingCard, ProblemCard, RpcErrorCard } from './common';

export function BlockPage({ params }: PageProps) {
  const ref = params.ref ?? '';
  const isHeight = /^\d+$/.test(ref);
  const node = useNode();
  const now = useNow(1000);
  const headHeight = node.status?.height;
  const future = isHeight && headHeight !== undefined && Number(ref) > headHeight;
  const { data: block, error } = useRpc<BlockJson>(
    `block:${ref}:${future ? 'future' : ''}`,
    (c) => c.getBlock(isHeight ? Number(ref) : ref.toLowerCase(), true),
    { refreshMs: future ? 1000 : undefined },
  );
  // The set that signed it, for the signers' share of the power (one call; older sets may be gone).
  const validators = useValidatorSet(block ? block.height : null);

  if (!isHeight && !/^[0-9a-fA-F]{64}$/.test(ref)) {
    return (
      <div className="page">
        <ProblemCard title="Not a block reference">
          “<ChainText text={ref} />” is neither a block height nor a 64-hex-digit block hash.
        </ProblemCard>
      </div>
    );
  }

  if (!block) {
    return (
      <div className="page">
        <PageTitle kicker="Block" title={isHeight ? `Block #${formatInt(Number(ref))}` : 'Block'} />
        {future ? (
          <ProblemCard title={`Block #${formatInt(Number(ref))} does not exist yet`} testId="block-future">
            The chain is at #{formatInt(headHeight!)}; this page shows the block as soon as it is produced.
          </ProblemCard>
        ) : error && isNotFound(error) ? (
          <ProblemCard title="No such block" testId="block-not-found">
            The node has no block {isHeight ? `at height ${ref}` : `with hash ${ref}`}.
          </ProblemCard>
        ) : error ? (
          <RpcErrorCard error={error} what="block" />
        ) : (
          <LoadingCard lines={8} />
        )}
      </div>
    );
  }

  const txs = block.txs as TxJson[];
  const isHead = headHeight !== undefined && block.height >= headHeight;
  const fees = txs.reduce((s, t) => s + BigInt(t.fee), 0n);
  const volume = txs.reduce((s, t) => s + transferredAmount(t), 0n);
  const sigs = block.commit.signatures;
  const round = typeof block.commit.round === 'number' ? block.commit.round : null;
  const set = validators.set?.height === block.height ? validators.set : undefined;
  const signed = set
    ? signedPower(
        set,
        sigs.map((s) => s.validator),
      )
    : null;

  return (
    <div className="page">
      <PageTitle
        kicker={
          <>
            Block <Badge tone="ok">final</Badge>
          </>
        }
        title={`Block #${formatInt(block.height)}`}
        testId="block-title"
      >
        <div className="pager">
          <a
            className={`btn btn-ghost ${block.height === 0 ? 'disabled' : ''}`}
            href={block.height > 0 ? href(paths.block(block.height - 1)) : undefined}
            aria-disabled={block.height === 0}
          >
            <ChevronLeftIcon size={16} /> #{formatInt(Math.max(0, block.height - 1))}
          </a>
          <a
            className={`btn btn-ghost ${isHead ? 'disabled' : ''}`}
            href={isHead ? undefined : href(paths.block(block.height + 1))}
            aria-disabled={isHead}
          >
            #{formatInt(block.height + 1)} <ChevronRightIcon size={16} />
          </a>
        </div>
      </PageTitle>

      <div className="mini-stats">
        <div>
          <span className="mini-label">Time</span>
          <span>{timeAgo(block.timeMs, now)}</span>
        </div>
        <div>
          <span className="mini-label">Transactions</span>
          <span data-testid="block-txcount">{formatInt(block.txCount)}</span>
        </div>
        <div>
          <span className="mini-label">Volume</span>
          <Amount value={volume} />
        </div>
        <div>
          <span className="mini-label">Fees</span>
          <Amount value={fees} maxFrac={8} />
        </div>
        <div>
          <span className="mini-label">Finality</span>
          <span title="A block is final once committed: there are no forks to wait out">final</span>
        </div>
      </div>

      <Card title="Header">
        <KV>
          <Row label="Height">
            <span className="mono">{block.height}</span>
          </Row>
          <Row label="Time">
            <span>
              {formatTime(block.timeMs)} <span className="muted">({timeAgo(block.timeMs, now)})</span>
            </span>
          </Row>
          <Row label="Hash">
            <FullHash value={block.hash} />
          </Row>
          <Row label="Parent">
            {block.height > 0 ? (
              <FullHash value={block.prevHash} link={paths.block(block.height - 1)} />
            ) : (
              <span className="muted">genesis — no parent</span>
            )}
          </Row>
          <Row label="Proposer">
            <AddrLink address={block.proposerAddress} short={false} />
          </Row>
          <Row label="Proposer key">
            <FullHash value={block.proposer} />
          </Row>
          <Row label="State root">
            <FullHash value={block.stateRoot} />
          </Row>
          <Row label="Transactions root">
            <FullHash value={block.txRoot} />
          </Row>
          <Row label="Beacon">
            <FullHash value={block.beacon} />
          </Row>
          <Row label="VRF proof">
            {block.vrfProof ? (
              <FullHash value={block.vrfProof} />
            ) : (
              <span className="muted">— (arrives with the VRF beacon)</span>
            )}
          </Row>
          <Row label="Last commit">
            <FullHash value={block.lastCommitHash} />
          </Row>
          <Row label="Chain">
            <ChainText className="mono" text={block.chainId} />
          </Row>
        </KV>
      </Card>

      <Card title={`Transactions (${formatInt(block.txCount)})`} testId="block-txs">
        <TxsTable
          txs={txs.map((tx) => ({ tx, height: block.height, timeMs: block.timeMs }))}
          now={now}
          empty="This block carries no transactions."
          sub={({ tx }, i) => (
            <>
              position {i} · fee <Amount value={tx.fee} maxFrac={8} />
            </>
          )}
        />
      </Card>

      <Card
        title="Commit"
        subtitle={`Signed by ${sigs.length} validator${sigs.length === 1 ? '' : 's'}${round !== null ? `, decided in round ${round}` : ''} — the block is final`}
        testId="block-commit"
      >
        <div className="commit-facts">
          {round !== null ? (
            <span data-testid="commit-round">
              decided in round <strong>{formatInt(round)}</strong>
              {round === 0 ? ' (the first)' : ''}
            </span>
          ) : null}
          <span>
            <strong>{formatInt(sigs.length)}</strong> signature{sigs.length === 1 ? '' : 's'}
            {set ? <> of {plural(set.validators.length, 'validator')}</> : null}
          </span>
          {signed ? (
            <span data-testid="commit-power">
              signers hold <strong>{formatPercent(fraction(signed.power, signed.total), 2)}</strong> of the
              set's power{' '}
              {signed.quorum ? (
                <Badge tone="ok">quorum &gt; 2/3</Badge>
              ) : (
                <Badge tone="warn">below 2/3 of this set</Badge>
              )}
            </span>
          ) : null}
        </div>
        <KV>
          {sigs.map((sig) => (
            <Row
              key={sig.validator}
              label={
                <span className="mono" title={sig.validator}>
                  {sig.validator.slice(0, 12)}…
                </span>
              }
            >
              <FullHash value={sig.signature} />
            </Row>
          ))}
        </KV>
        {isHead ? null : (
          <p className="note">
            Next: <BlockLink height={block.height + 1} />
          </p>
        )}
      </Card>
    </div>
  );
}
