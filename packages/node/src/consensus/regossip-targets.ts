/**
 * Which peers a stalled height's re-send goes to (`ConsensusDriver.regossip`): at most
 * `REGOSSIP_FANOUT` a round, the next ones in turn. Pure: the driver passes its own peer id, the
 * connected peers and the cursor the previous round returned.
 */
import { sha256, toHex, utf8 } from '@unc/core';

/** How many peers one stall re-send goes to. */
export const REGOSSIP_FANOUT = 16;

/**
 * A peer's place in this node's re-send order. A hash of both ids, so that:
 * - each node walks its peers in an order of its own: with one shared order (the connection list,
 *   the same on every node of the simulator) every stalled node re-sent to the same 16 peers in
 *   the same round, those got the height from every node and the rest from none, and a message
 *   only one node held reached the others 16 a round, never faster;
 * - a peer's place does not move when others connect or leave: an index into the connection list
 *   did, so churn could keep a peer out of every round's window.
 */
export function regossipKey(self: string, peer: string): string {
  return toHex(sha256(utf8('UNC/regossip-order'), utf8(self), utf8('/'), utf8(peer)));
}

/**
 * The peers of this round's re-send and the cursor for the next: the `fanout` peers whose keys
 * follow `after` (wrapping round), so each peer connected throughout is reached within
 * ⌈peers / fanout⌉ rounds whoever comes and goes meanwhile. Every peer when there are no more
 * than `fanout`. The cursor is one key (bounded); it is not reset per height: it only says where
 * the walk goes on.
 */
export function regossipTargets(
  self: string,
  peers: readonly string[],
  after: string | null,
  fanout = REGOSSIP_FANOUT,
): { targets: string[]; cursor: string | null } {
  if (peers.length <= fanout) return { targets: [...peers], cursor: after };
  const ordered = peers
    .map((id) => ({ id, key: regossipKey(self, id) }))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const next = after === null ? 0 : ordered.findIndex((p) => p.key > after);
  const first = next < 0 ? 0 : next;
  const chosen = Array.from({ length: fanout }, (_, i) => ordered[(first + i) % ordered.length]!);
  return { targets: chosen.map((p) => p.id), cursor: chosen[chosen.length - 1]!.key };
}
