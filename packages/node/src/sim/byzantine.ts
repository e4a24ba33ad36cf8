/**
 * Byzantine validators of the simulator: each runs the real node, and what it sends (and, for a
 * replaying one, what it heard) passes through one of the behaviours below on its way to the
 * network. Every message a behaviour makes up is counted by kind, so a sweep can show that each
 * behaviour was exercised; honest nodes' refusals are counted by the network (SimNetwork.stats).
 *
 * - equivocate-votes: every vote goes out with a conflicting twin (a different block, or a block
 *   instead of nil), which honest nodes turn into duplicate-vote evidence.
 * - equivocate-proposals: as proposer, a second valid block for the same round, signed, sent to
 *   the other half of the peers; one peer of each half also gets the other block (as a relaying
 *   peer would pass it on), sees both, and reports duplicate-proposal evidence.
 * - forge-votes: beside each real vote, a copy with a broken signature and a copy that claims to
 *   come from another validator (signed with the forger's own key): both must be refused.
 * - unknown-block-votes: votes for a block go out for a random hash nobody holds, validly signed.
 * - garbage: beside each message, random bytes on the same topic, and now and then an oversized
 *   message (a megabyte).
 * - silent: withholds its votes and proposals (transactions still flow).
 * - replay: beside each message, one it sent or heard earlier (an old round or height) again.
 * - precommit-without-prevote: each prevote goes out as a precommit for the same block instead.
 * - repropose-without-polka: as proposer of a round r ≥ 1, its fresh block goes out as a
 *   re-proposal: a proposal signed with polRound r - 1, a round in which nobody prevoted that
 *   block, so the polka it claims does not exist and never comes. Both encodings are rewritten
 *   (the node keeps sending compact proposals, which are re-signed with their id list, and whole
 *   ones for empty blocks and re-sends). Honest nodes hold the proposal until its propose timeout
 *   (Tendermint's line 28 waits for the polka), prevote nil, and count the round as a turn the
 *   proposer missed (driver.ts, `lacksPolkaOfReProposal`), so its next turns get the short wait.
 *   Its round-0 proposals are withheld: only a round ≥ 1 can claim a polka, and without faults a
 *   height rarely gets past round 0, so the made-up re-proposals would hardly ever be sent.
 *   Genuine re-proposals (polRound ≥ 0: the node holds the polka and sends it) pass unchanged.
 *   Its made-up proposals, re-sent to it by peers, are kept from the node (`heard`): it would
 *   otherwise report its own two proposals of the round as equivocation.
 */
import {
  decode,
  ed25519Sign,
  encode,
  equalBytes,
  type Proposal,
  type SimRng,
  sha256,
  signProposal,
  signVote,
  utf8,
  type Vote,
} from '@unc/core';
import { compactIdsSignBytes, signProposalIds } from '../consensus/compact-block.js';
import {
  compactProposalCodec,
  type ProposalMessage,
  proposalMessageCodec,
  voteMessageCodec,
} from '../consensus/wire.js';
import type { DevKey } from '../dev.js';
import type { NodeCore } from '../node-core.js';
import type { GossipTopic } from '../p2p/types.js';
import type { Heard, Outgoing, Send } from './sim-network.js';

/**
 * The behaviours `scenarioForSeed` draws from (`pick`): the list's length and order are part of
 * every seed's scenario, so it never grows. A behaviour added later is drawn from a stream of its
 * own (simulator.ts), and only `BYZANTINE_BEHAVIOURS` lists it.
 */
export const DRAWN_BEHAVIOURS = [
  'equivocate-votes',
  'equivocate-proposals',
  'forge-votes',
  'unknown-block-votes',
  'garbage',
  'silent',
  'replay',
  'precommit-without-prevote',
] as const;
/** Every behaviour: the drawn ones, then those with a draw of their own. */
export const BYZANTINE_BEHAVIOURS = [...DRAWN_BEHAVIOURS, 'repropose-without-polka'] as const;
export type ByzantineBehaviour = (typeof BYZANTINE_BEHAVIOURS)[number];

export interface ByzantineNode {
  node: number;
  behaviour: ByzantineBehaviour;
}

/** What a behaviour may use: the node's key, the live node (to build a second block), a counter. */
export interface ByzantineContext {
  chainId: string;
  key: DevKey;
  /** Other validators' public keys (for impersonation). */
  others: Uint8Array[];
  rng: SimRng;
  core: () => NodeCore | null;
  now: () => number;
  /** Counts a made-up message of `kind` (summed per behaviour over a sweep). */
  count: (kind: string) => void;
}

export interface ByzantineWiring {
  outgoing: Outgoing;
  /**
   * Sees what the node hears (a replaying node keeps some); `false` keeps it from the node (one
   * that re-proposes without a polka does not take its made-up proposals back).
   */
  heard?: Heard;
}

const OVERSIZED = new Uint8Array(1 << 20).fill(0xff);
const REPLAY_KEEP = 64;

/**
 * How many rewrites a Byzantine node remembers (per node): the driver re-sends a stalled height's
 * messages to every peer, and each re-send of the same message goes out with the same made-up
 * companions, as a real node that made them up once would send them again.
 */
const REWRITES_KEPT = 4_096;

/**
 * `rewrite` memoized by the outgoing message's bytes. Without it a behaviour minted fresh
 * signatures for every re-send of the same vote (a new twin, a new broken signature, a new
 * impersonation), and every honest receiver checked each anew: a stalled round of 100 validators
 * re-sends thousands of votes to 99 peers, and the simulator spent most of its time signing and
 * checking those copies (seed 580 ran for minutes instead of half a minute). The protocol's cost
 * is what honest nodes do with a message; that a Byzantine node can sign new junk is modelled by
 * the first rewrite of each message, the same as before.
 */
function remembered(rewrite: (topic: GossipTopic, data: Uint8Array) => Uint8Array[]) {
  const kept = new Map<string, Uint8Array[]>();
  return (topic: GossipTopic, data: Uint8Array): Uint8Array[] => {
    const key = `${topic}/${Buffer.from(data).toString('base64')}`;
    let out = kept.get(key);
    if (!out) {
      out = rewrite(topic, data);
      if (kept.size >= REWRITES_KEPT) kept.clear();
      kept.set(key, out);
    }
    return out;
  };
}

export function byzantineWiring(behaviour: ByzantineBehaviour, ctx: ByzantineContext): ByzantineWiring {
  const all = (data: Uint8Array): Send => ({ data });
  const signed = (vote: Omit<Vote, 'signature'>) => signVote(ctx.chainId, vote, ctx.key.seed);
  const voteOut = (vote: Vote, sentAt: bigint) => encode(voteMessageCodec, { vote, sentAt });
  switch (behaviour) {
    case 'equivocate-votes': {
      const twinOf = remembered((_topic, data) => {
        const { vote, sentAt } = decode(voteMessageCodec, data);
        const other = vote.blockHash ? null : sha256(utf8('UNC/sim/equivocation'), vote.validator);
        ctx.count('conflicting vote');
        return [data, voteOut(signed({ ...vote, blockHash: other }), sentAt)];
      });
      return {
        outgoing: (topic, data) => {
          if (topic !== 'vote') return [all(data)];
          return twinOf(topic, data).map(all);
        },
      };
    }
    case 'equivocate-proposals':
      return {
        outgoing: (topic, data, peers) => {
          if (topic !== 'proposal') return [all(data)];
          const twin = secondProposal(ctx, decode(proposalMessageCodec, data));
          if (!twin) return [all(data)];
          ctx.count('conflicting proposal');
          // Each half gets its own block; one peer of each half also gets the other one, as
          // relaying peers would pass it on (the simulated network does not relay), so some
          // honest node sees both and the protocol's duplicate-proposal evidence can follow.
          const half = Math.ceil(peers.length / 2);
          const [first, second] = [peers.slice(0, half), peers.slice(half)];
          return [
            { data, to: [...first, ...second.slice(0, 1)] },
            { data: encode(proposalMessageCodec, twin), to: [...second, ...first.slice(0, 1)] },
          ];
        },
      };
    case 'forge-votes': {
      const forgeriesOf = remembered((_topic, data) => {
        const { vote, sentAt } = decode(voteMessageCodec, data);
        const broken = vote.signature.slice();
        broken[ctx.rng.int(broken.length)]! ^= 1 << ctx.rng.int(8);
        const victim = ctx.others[ctx.rng.int(ctx.others.length)]!;
        ctx.count('vote with a broken signature');
        ctx.count('vote impersonating another validator');
        return [
          voteOut({ ...vote, signature: broken }, sentAt),
          voteOut(signed({ ...vote, validator: victim }), sentAt),
          data,
        ];
      });
      return {
        outgoing: (topic, data) => {
          if (topic !== 'vote') return [all(data)];
          return forgeriesOf(topic, data).map(all);
        },
      };
    }
    case 'unknown-block-votes': {
      const unknownOf = remembered((_topic, data) => {
        const { vote, sentAt } = decode(voteMessageCodec, data);
        if (!vote.blockHash) return [data];
        ctx.count('vote for an unknown block');
        const unknown = sha256(utf8('UNC/sim/unknown-block'), vote.blockHash);
        return [voteOut(signed({ ...vote, blockHash: unknown }), sentAt)];
      });
      return {
        outgoing: (topic, data) => {
          if (topic !== 'vote') return [all(data)];
          return unknownOf(topic, data).map(all);
        },
      };
    }
    case 'garbage':
      return {
        outgoing: (_topic, data) => {
          const junk = new Uint8Array(1 + ctx.rng.int(2_000));
          for (let i = 0; i < junk.length; i++) junk[i] = ctx.rng.int(256);
          ctx.count('random bytes');
          const out = [all(junk), all(data)];
          if (ctx.rng.chance(0.1)) {
            ctx.count('oversized message');
            out.push(all(OVERSIZED));
          }
          return out;
        },
      };
    case 'silent':
      return {
        outgoing: (topic, data) => {
          if (topic !== 'vote' && topic !== 'proposal') return [all(data)];
          ctx.count(`withheld ${topic}`);
          return [];
        },
      };
    case 'replay': {
      const kept: { topic: GossipTopic; data: Uint8Array; at: number }[] = [];
      const keep = (topic: GossipTopic, data: Uint8Array) => {
        if (topic !== 'vote' && topic !== 'proposal') return;
        if (kept.length >= REPLAY_KEEP) kept.splice(ctx.rng.int(kept.length), 1);
        kept.push({ topic, data, at: ctx.now() });
      };
      return {
        heard: (topic, data) => {
          keep(topic, data);
          return true;
        },
        outgoing: (topic, data) => {
          const out: Send[] = [all(data)];
          // Only messages at least a second old: an earlier round or height by now.
          const old = kept.filter((k) => k.topic === topic && k.at <= ctx.now() - 1_000);
          if (old.length > 0) {
            ctx.count(`replayed ${topic}`);
            out.push(all(old[ctx.rng.int(old.length)]!.data));
          }
          keep(topic, data);
          return out;
        },
      };
    }
    case 'precommit-without-prevote': {
      const precommitOf = remembered((_topic, data) => {
        const { vote, sentAt } = decode(voteMessageCodec, data);
        if (vote.type !== 'prevote') return [data];
        ctx.count('precommit without a prevote');
        return [voteOut(signed({ ...vote, type: 'precommit' }), sentAt)];
      });
      return {
        outgoing: (topic, data) => {
          if (topic !== 'vote') return [all(data)];
          return precommitOf(topic, data).map(all);
        },
      };
    }
    case 'repropose-without-polka': {
      const own = (p: Proposal) => equalBytes(p.proposer, ctx.key.publicKey);
      // The claim: the round before. A proposal with polRound -1 carries a block built for its
      // own round (driver.ts, `buildValue`: this round's time and proposer), so no polka for it
      // can exist in an earlier round.
      const claimed = (p: Proposal) => {
        const { signature: _, ...unsigned } = p;
        const claim = signProposal(ctx.chainId, { ...unsigned, polRound: p.round - 1 }, ctx.key.seed);
        madeUp.add(Buffer.from(claim.signature).toString('base64'));
        return claim;
      };
      /**
       * The signatures of the made-up proposals. Honest peers re-send a round's proposal (the
       * catch-up of a stalled height), and taken back, one would meet the node's own proposal of
       * that round (polRound -1) and be reported as its proposer's equivocation: by itself. An
       * attacker does not report itself, so those are kept from the node.
       */
      const madeUp = new Set<string>();
      // Null: a proposal this behaviour leaves alone (others' ones, relayed or re-sent, and
      // genuine re-proposals), else what goes out instead of it.
      const claim = (p: Proposal, sign: (claim: Proposal) => Uint8Array, form: string) => {
        if (!own(p) || p.polRound >= 0) return null;
        if (p.round === 0) {
          ctx.count('withheld round-0 proposal');
          return [];
        }
        ctx.count(`re-proposal without its polka (${form})`);
        return [sign(claimed(p))];
      };
      const rewrite = remembered((topic, data) => {
        if (topic === 'proposal') {
          const msg = decode(proposalMessageCodec, data);
          const out = claim(
            msg.proposal,
            (proposal) =>
              encode(proposalMessageCodec, {
                ...msg,
                proposal,
                idsSignature: signProposalIds(ctx.chainId, proposal, msg.block, ctx.key.seed),
              }),
            'whole',
          );
          return out ?? [data];
        }
        const msg = decode(compactProposalCodec, data);
        const out = claim(
          msg.proposal,
          (proposal) =>
            encode(compactProposalCodec, {
              ...msg,
              proposal,
              idsSignature: ed25519Sign(
                ctx.key.seed,
                compactIdsSignBytes(ctx.chainId, proposal.signature, msg.txIds),
              ),
            }),
          'compact',
        );
        return out ?? [data];
      });
      return {
        outgoing: (topic, data) => {
          if (topic !== 'proposal' && topic !== 'compact-proposal') return [all(data)];
          return rewrite(topic, data).map(all);
        },
        heard: (topic, data) => {
          if (madeUp.size === 0 || (topic !== 'proposal' && topic !== 'compact-proposal')) return true;
          try {
            const { proposal } =
              topic === 'proposal' ? decode(proposalMessageCodec, data) : decode(compactProposalCodec, data);
            return !madeUp.has(Buffer.from(proposal.signature).toString('base64'));
          } catch {
            return true; // Not a proposal: the node refuses it itself.
          }
        },
      };
    }
  }
}

/**
 * A second valid block for the proposal's height and round (no transactions, a millisecond
 * later), under a proposal the Byzantine proposer signs itself; null when the node cannot build
 * one (it moved on, or it is down).
 */
function secondProposal(ctx: ByzantineContext, msg: ProposalMessage): ProposalMessage | null {
  const core = ctx.core();
  const { proposal, block } = msg;
  if (!core || core.chain.tipHeight + 1n !== proposal.height) return null;
  const { pending } = core.chain.buildProposal(
    [],
    block.header.time + 1n,
    { seed: ctx.key.seed, publicKey: ctx.key.publicKey },
    () => false,
  );
  const { signature: _, ...unsigned } = proposal;
  const twin = signProposal(ctx.chainId, { ...unsigned, blockHash: pending.hash }, ctx.key.seed);
  return {
    proposal: twin,
    block: pending.block,
    lastCommit: pending.lastCommit,
    idsSignature: signProposalIds(ctx.chainId, twin, pending.block, ctx.key.seed),
    sentAt: msg.sentAt,
  };
}

/** The behaviours of a seed's Byzantine validators (at most f of n), drawn from its scenario rng. */
export function drawByzantine(rng: SimRng, validators: number, share: number): ByzantineNode[] {
  const f = Math.floor((validators - 1) / 3);
  if (f === 0 || !rng.chance(share)) return [];
  const count = 1 + rng.int(f);
  const nodes = rng.shuffle([...Array(validators).keys()]).slice(0, count);
  return nodes.map((node) => ({ node, behaviour: rng.pick(DRAWN_BEHAVIOURS) }));
}
