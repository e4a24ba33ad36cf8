/**
 * Resolves a 64-hex string: a block hash first, then a transaction hash, a chip id, a lease id and
 * an offer id. Other shapes route directly.
 */
import { useEffect } from 'react';
import { PageTitle } from '../components/ui';
import { useRpc } from '../node/context';
import { navigate, type PageProps, paths } from '../router';
import { RpcClientError } from '../sdk';
import { classify } from '../search';
import { isNotFound, LoadingCard, ProblemCard, RpcErrorCard } from './common';
import { isMissingMethod } from './Poci';

type Found = { to: string } | { none: true };

export function SearchPage({ params }: PageProps) {
  const q = params.q ?? '';
  const target = classify(q);
  const result = useRpc<Found>(`search:${q}`, async (c) => {
    if (target.kind === 'height') return { to: paths.block(target.height) };
    if (target.kind === 'address') return { to: paths.account(target.address) };
    if (target.kind !== 'hash') return { none: true };
    try {
      const block = await c.getBlock(target.hash);
      return { to: paths.block(block.height) };
    } catch (err) {
      if (!isNotFound(err) && !(err instanceof RpcClientError && err.rpcCode === -32602)) throw err;
    }
    try {
      await c.getTransaction(target.hash);
      return { to: paths.tx(target.hash) };
    } catch (err) {
      if (err instanceof RpcClientError && err.reason === 'PENDING') return { to: paths.tx(target.hash) };
      if (!isNotFound(err)) throw err;
    }
    try {
      await c.call('unc_getChip', [target.hash]);
      return { to: paths.chip(target.hash) };
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    // A node without the marketplace has no leases or offers to find.
    try {
      await c.getLease(target.hash);
      return { to: paths.lease(target.hash) };
    } catch (err) {
      if (isMissingMethod(err)) return { none: true };
      if (!isNotFound(err)) throw err;
    }
    try {
      await c.getOffer(target.hash);
      return { to: paths.offer(target.hash) };
    } catch (err) {
      if (isNotFound(err) || isMissingMethod(err)) return { none: true };
      throw err;
    }
  });

  const found = result.data;
  useEffect(() => {
    if (found && 'to' in found) navigate(found.to, { replace: true });
  }, [found]);

  return (
    <div className="page">
      <PageTitle kicker="Search" title={<span className="mono break">{q}</span>} />
      {target.kind === 'invalid' ? (
        <ProblemCard title="Nothing to look up" testId="search-invalid">
          {target.reason}
        </ProblemCard>
      ) : found && 'none' in found ? (
        <ProblemCard title="Nothing found" testId="search-none">
          No block, transaction, chip, lease or offer has the id <span className="mono break">{q}</span>.
        </ProblemCard>
      ) : result.error ? (
        <RpcErrorCard error={result.error} what="search" />
      ) : (
        <LoadingCard lines={3} />
      )}
    </div>
  );
}
