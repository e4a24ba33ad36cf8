/**
 * A node for `--prove` gateway tests: signed blocks (one genesis validator) over one state, and
 * answers with Merkle proofs built as the node's state-proofs.ts builds them, which a test may
 * forge. The gateway under test is real; only its node is this small JSON-RPC server.
 */
import { createServer, type Server } from 'node:http';
import {
  applyToTrie,
  type BlockHeader,
  blockHash,
  blockHeaderCodec,
  type Chip,
  chipKey,
  ed25519PublicKey,
  effectiveStatus,
  emptyTrie,
  encode,
  encodeAddress,
  escrowUntil,
  getMarketParams,
  getOffer,
  type Lease,
  LeaseStatus,
  leaseCostThrough,
  leaseEndsAt,
  leaseKey,
  MemoryState,
  merkleProofCodec,
  StateOverlay as Overlay,
  type StateOverlay,
  type StateReader,
  signVote,
  toHex,
  trieKey,
} from '@unc/core';
import { chipLivenessJson, type LeaseJson, type ProvenKeyEntryJson } from '@unc/sdk';

const validatorSeed = new Uint8Array(32).fill(1);
export const validatorKey = ed25519PublicKey(validatorSeed);

export function provenWorld(chainId: string, build: (o: StateOverlay) => void) {
  const mem = new MemoryState();
  const o = new Overlay(mem);
  build(o);
  const writes = o.changes();
  mem.apply(writes);
  const trie = applyToTrie(emptyTrie(), writes);
  /** Block `height` stamped `timeMs` over this state, signed by the validator. */
  const block = (height: number, timeMs: number) => {
    const header: BlockHeader = {
      chainId,
      height: BigInt(height),
      time: BigInt(timeMs),
      prevHash: new Uint8Array(32),
      stateRoot: trie.root,
      txRoot: new Uint8Array(32),
      proposer: validatorKey,
      beacon: new Uint8Array(32),
      vrfProof: new Uint8Array(0),
      lastCommitHash: new Uint8Array(32),
    };
    const hash = blockHash(header);
    const vote = signVote(
      chainId,
      { type: 'precommit', height: header.height, round: 0, blockHash: hash, validator: validatorKey },
      validatorSeed,
    );
    return {
      header,
      json: {
        height,
        encoded: toHex(encode(blockHeaderCodec, header)),
        hash: toHex(hash),
        commit: {
          height,
          round: 0,
          blockHash: toHex(hash),
          signatures: [{ validator: toHex(validatorKey), signature: toHex(vote.signature) }],
        },
      },
    };
  };
  /** The record under `key` and every key `derive` reads, proven at `height`. */
  const prove = (key: Uint8Array, height: number, derive: (r: StateReader) => void = () => {}) => {
    const proof = (k: Uint8Array) => toHex(encode(merkleProofCodec, trie.prove(trieKey(k))));
    const related: ProvenKeyEntryJson[] = [];
    derive({
      get(k) {
        const v = mem.get(k);
        if (toHex(k) !== toHex(key) && !related.some((e) => e.key === toHex(k)))
          related.push({ key: toHex(k), value: v ? toHex(v) : null, proof: proof(k) });
        return v;
      },
    });
    const v = mem.get(key);
    return { height, stateRoot: toHex(trie.root), proof: proof(key), value: v ? toHex(v) : null, related };
  };
  /** unc_getLease's honest answer with proof at block `height` of `timeMs` (market-api.ts leaseJson). */
  const leaseAnswer = (l: Lease, height: number, timeMs: number): LeaseJson => {
    const time = BigInt(timeMs);
    const offer = getOffer(mem, l.offerId);
    const closed = l.status === LeaseStatus.closed;
    let unsettled = closed ? 0n : leaseCostThrough(l, time) - l.accrued;
    if (unsettled > l.remaining) unsettled = l.remaining;
    if (unsettled < 0n) unsettled = 0n;
    const ended = !closed && time >= leaseEndsAt(l);
    return {
      id: toHex(l.id),
      offerId: toHex(l.offerId),
      chipId: toHex(l.chipId),
      provider: encodeAddress(l.provider),
      renter: encodeAddress(l.renter),
      renterPublicKey: toHex(l.renterPublicKey),
      endpoint: offer?.endpoint ?? '',
      tlsFingerprints: offer?.tlsFingerprints.map(toHex) ?? [],
      pricePerHour: l.pricePerHour.toString(),
      hours: l.hours,
      deposit: l.deposited.toString(),
      paid: l.paid.toString(),
      refunded: l.refunded.toString(),
      remaining: l.remaining.toString(),
      unsettled: unsettled.toString(),
      escrowUntil: Number(leaseEndsAt(l)),
      status: closed ? 'closed' : ended ? 'ended' : 'active',
      startHeight: Number(l.startHeight),
      startTime: Number(l.startTime),
      endTime: Number(l.endTime),
      settledTime: Number(l.settledTime),
      slotsAnswered: Number(l.slotsAnswered),
      slotsMissed: Number(l.slotsMissed),
      closingReason: ended
        ? escrowUntil(l) < l.endTime
          ? 'escrowExhausted'
          : l.closingReason || 'ended'
        : l.closingReason || null,
      disputes: l.disputes,
      closedHeight: closed ? Number(l.closedHeight) : null,
      closedTime: closed ? Number(l.closedTime) : null,
      closedReason: closed ? l.closedReason : null,
      ...prove(leaseKey(l.id), height, (r) => {
        getOffer(r, l.offerId);
        getMarketParams(r);
      }),
    } as LeaseJson;
  };
  /** unc_getChip's proof fields and liveness at `header` (what state-proofs.ts proves). */
  const chipProof = (c: Chip, header: BlockHeader) => ({
    ...chipLivenessJson(mem, c, effectiveStatus(mem, c, header.time).status, header),
    ...prove(chipKey(c.chipId), Number(header.height), (r) =>
      chipLivenessJson(r, c, effectiveStatus(r, c, header.time).status, header),
    ),
  });
  return { mem, trie, block, prove, leaseAnswer, chipProof };
}

/** A JSON-RPC server answering each method with `answers[method](params)`; an Error is sent as an error. */
export function rpcNode(answers: Record<string, (params: unknown[]) => unknown>): Server {
  return createServer((req, res) => {
    let body = '';
    req.on('data', (d) => {
      body += d;
    });
    req.on('end', () => {
      // Not a JSON-RPC call (a subscription's upgrade or poll): not served here.
      if (body === '') {
        res.writeHead(400).end();
        return;
      }
      const { id, method, params } = JSON.parse(body) as { id: unknown; method: string; params: unknown[] };
      const answer = answers[method];
      let reply: unknown;
      try {
        reply = answer
          ? { jsonrpc: '2.0', id, result: answer(params) }
          : { jsonrpc: '2.0', id, error: { code: -32601, message: `no ${method} here` } };
      } catch (err) {
        reply = { jsonrpc: '2.0', id, error: { code: -32000, message: (err as Error).message } };
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(reply));
    });
  });
}
