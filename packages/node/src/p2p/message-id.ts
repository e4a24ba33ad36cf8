/**
 * How gossip tells messages apart (its seen-cache and relay de-duplication): by what the message's
 * signer vouches for, not by its envelope. Consensus messages (votes, proposals, compact
 * proposals) end with the sender's clock (`sentAt`, a u64, consensus/wire.ts), which nobody signs:
 * keyed on every byte, a genuine vote re-wrapped with another `sentAt` was a new message, checked,
 * accepted and relayed to the whole network again, as often as anyone cared to re-wrap it.
 * Transactions and evidence carry no such field: their id covers every byte.
 */
import { sha256, utf8 } from '@unc/core';
import type { GossipTopic } from './types.js';

/** Bytes at the end of a message that no signature covers (`sentAt`), by topic. */
export const UNSIGNED_TRAILER_BYTES: Readonly<Record<GossipTopic, number>> = {
  tx: 0,
  evidence: 0,
  vote: 8,
  proposal: 8,
  'compact-proposal': 8,
  'validator-peer': 0,
};

/**
 * The gossip id of a message: `sha256(wire topic ‖ 0 ‖ the message without its unsigned
 * trailer)`. `topic` is the message's topic if it is one of ours (an unknown topic is hashed
 * whole: it is rejected anyway).
 */
export function gossipMessageId(
  wireTopic: string,
  topic: GossipTopic | undefined,
  data: Uint8Array,
): Uint8Array {
  const trailer = topic === undefined ? 0 : UNSIGNED_TRAILER_BYTES[topic];
  const signed = data.byteLength > trailer ? data.subarray(0, data.byteLength - trailer) : data;
  return sha256(utf8(wireTopic), new Uint8Array([0]), signed);
}
