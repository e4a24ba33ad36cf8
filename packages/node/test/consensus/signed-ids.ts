/** Test helper: a proposal message with its proposer's signature over its transaction ids. */
import { signProposalIds } from '../../src/consensus/compact-block.js';
import type { ProposalMessage } from '../../src/consensus/wire.js';

/** `msg` with `idsSignature` signed by `proposerSeed` (the key of `msg.proposal.proposer`). */
export function withIds(
  msg: Omit<ProposalMessage, 'idsSignature'>,
  proposerSeed: Uint8Array,
  chainId = 'unc-dev-1',
): ProposalMessage {
  return {
    ...msg,
    idsSignature: signProposalIds(chainId, msg.proposal, msg.block, proposerSeed),
  };
}
