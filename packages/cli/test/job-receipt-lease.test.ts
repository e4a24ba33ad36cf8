/**
 * `unc job verify --prove` (checkReceiptLease): the chip key proven on chain says only that some
 * chip signed the receipt; the receipt's lease is proven too, and its chip must be the one that
 * signed (RECEIPT_WRONG_CHIP, the check `unc job run` makes). Before it, a provider's receipt signed
 * by its other, cheaper chip verified as "proven" for a job on the leased one. A lease the chain
 * proves absent is NO_LEASE; a node reporting the lease on the receipt's chip is refused by the
 * proof. The node here holds one signed block over a state with an offer and a lease on chip 1.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  applyToTrie,
  type BlockHeader,
  blockHash,
  blockHeaderCodec,
  ed25519PublicKey,
  emptyTrie,
  encode,
  encodeAddress,
  getMarketParams,
  getOffer,
  type Lease,
  LeaseStatus,
  leaseKey,
  MemoryState,
  merkleProofCodec,
  OfferStatus,
  putLease,
  putOffer,
  StateOverlay,
  type StateReader,
  signVote,
  toHex,
  trieKey,
  UncError,
} from '@unc/core';
import { LightClient, ProofError } from '@unc/sdk';
import { checkReceiptLease, type Prover } from '../src/commands/job.js';

const CHAIN = 'unc-receipt-lease-test';
const TIME = 1_700_000_000_000n;
const HOUR = 3_600_000n;
const seed = new Uint8Array(32).fill(1);
const validator = ed25519PublicKey(seed);
const id = (n: number) => new Uint8Array(32).fill(n);
const addr = (n: number) => new Uint8Array(20).fill(n);

const lease: Lease = {
  id: id(3),
  offerId: id(5),
  chipId: id(1),
  provider: addr(9),
  renter: addr(8),
  renterPublicKey: id(0x77),
  pricePerHour: 36n,
  hours: 24,
  startHeight: 1n,
  startTime: TIME - HOUR,
  endTime: TIME + 23n * HOUR,
  deposited: 864n,
  accrued: 0n,
  paid: 0n,
  refunded: 0n,
  remaining: 864n,
  settledTime: TIME - HOUR,
  slotCursor: 0n,
  slotsAnswered: 0n,
  slotsMissed: 0n,
  status: LeaseStatus.active,
  closingReason: '',
  closedHeight: 0n,
  closedTime: 0n,
  closedReason: '',
  disputes: 0,
};

const mem = new MemoryState();
const o = new StateOverlay(mem);
putOffer(o, {
  id: id(5),
  provider: addr(9),
  chipIds: [id(1), id(2)],
  pricePerHour: 36n,
  minHours: 1,
  maxHours: 24,
  noticeMs: 600_000n,
  endpoint: 'https://gpu.example/jobs',
  attributes: { memoryMiB: 0, region: '', runtimes: [] },
  createdHeight: 1n,
  createdTime: TIME - 10n * HOUR,
  status: OfferStatus.open,
  closedTime: 0n,
  closesAt: 0n,
  leasesOpened: 1n,
  tlsFingerprints: [],
});
putLease(o, lease);
const writes = o.changes();
mem.apply(writes);
const trie = applyToTrie(emptyTrie(), writes);
const header: BlockHeader = {
  chainId: CHAIN,
  height: 1n,
  time: TIME,
  prevHash: new Uint8Array(32),
  stateRoot: trie.root,
  txRoot: new Uint8Array(32),
  proposer: validator,
  beacon: new Uint8Array(32),
  vrfProof: new Uint8Array(0),
  lastCommitHash: new Uint8Array(32),
};
const hash = blockHash(header);
const vote = signVote(CHAIN, { type: 'precommit', height: 1n, round: 0, blockHash: hash, validator }, seed);
const block = {
  height: 1,
  encoded: toHex(encode(blockHeaderCodec, header)),
  hash: toHex(hash),
  commit: {
    height: 1,
    round: 0,
    blockHash: toHex(hash),
    signatures: [{ validator: toHex(validator), signature: toHex(vote.signature) }],
  },
};

/** The record under `key` and every key `derive` reads, proven (node state-proofs.ts). */
function proven(key: Uint8Array, derive: (r: StateReader) => void = () => {}) {
  const prove = (k: Uint8Array) => toHex(encode(merkleProofCodec, trie.prove(trieKey(k))));
  const related: { key: string; value: string | null; proof: string }[] = [];
  derive({
    get(k) {
      const v = mem.get(k);
      if (!related.some((e) => e.key === toHex(k)))
        related.push({ key: toHex(k), value: v ? toHex(v) : null, proof: prove(k) });
      return v;
    },
  });
  const v = mem.get(key);
  return { height: 1, stateRoot: toHex(trie.root), proof: prove(key), value: v ? toHex(v) : null, related };
}

const honestLease = {
  id: toHex(id(3)),
  offerId: toHex(id(5)),
  chipId: toHex(id(1)),
  provider: encodeAddress(addr(9)),
  renter: encodeAddress(addr(8)),
  renterPublicKey: toHex(id(0x77)),
  endpoint: 'https://gpu.example/jobs',
  tlsFingerprints: [],
  pricePerHour: '36',
  hours: 24,
  deposit: '864',
  paid: '0',
  refunded: '0',
  remaining: '864',
  unsettled: '36',
  escrowUntil: Number(TIME + 23n * HOUR),
  status: 'active',
  startHeight: 1,
  startTime: Number(TIME - HOUR),
  endTime: Number(TIME + 23n * HOUR),
  settledTime: Number(TIME - HOUR),
  slotsAnswered: 0,
  slotsMissed: 0,
  closingReason: null,
  disputes: 0,
  closedHeight: null,
  closedTime: null,
  closedReason: null,
  ...proven(leaseKey(id(3)), (r) => {
    getOffer(r, id(5));
    getMarketParams(r);
  }),
};

function prover(answer: (leaseId: string) => unknown): Prover {
  const client = {
    getBlock: async () => block,
    getValidatorSetProof: async () => {
      throw new Error('not needed');
    },
    getLease: async (leaseId: string) => {
      const a = answer(leaseId);
      if (a instanceof Error) throw a;
      return a;
    },
    getChip: async () => {
      throw new Error('not needed');
    },
  } as unknown as Prover['client'];
  const lc = new LightClient(client, {
    kind: 'genesis',
    chainId: CHAIN,
    validators: [{ publicKey: validator }],
    epochBlocks: 1000n,
  });
  // The block is stamped TIME: accepted however old (the freshness bound is tested elsewhere).
  return { lc, client, maxAge: String(10 * 365 * 86_400) };
}

const coded = (code: string, why: RegExp) => (err: Error) => {
  assert.ok(err instanceof UncError, `${err.name}: ${err.message}`);
  assert.equal(err.code, code);
  assert.match(err.message, why);
  return true;
};

test("a receipt of the leased chip passes; one of the provider's other chip is RECEIPT_WRONG_CHIP", async () => {
  const p = prover(() => honestLease);
  const ok = await checkReceiptLease(p, { leaseId: id(3), chipId: id(1) });
  assert.equal(ok.chipId, toHex(id(1)));
  // Chip 2 is in the same offer (same provider, its key registered): its signature verifies, its
  // lease is not this one's.
  await assert.rejects(
    checkReceiptLease(p, { leaseId: id(3), chipId: id(2) }),
    coded('RECEIPT_WRONG_CHIP', /signed by chip 0202.*not the leased chip 0101/),
  );
});

test("a node reporting the lease on the receipt's chip is refused by the proof; an absent lease is NO_LEASE", async () => {
  const lying = prover(() => ({ ...honestLease, chipId: toHex(id(2)) }));
  await assert.rejects(checkReceiptLease(lying, { leaseId: id(3), chipId: id(2) }), (err: Error) => {
    assert.ok(err instanceof ProofError, err.message);
    assert.equal(err.code, 'MISMATCH');
    return true;
  });
  const absent = prover(() =>
    Object.assign(new Error('not found'), {
      reason: 'NOT_FOUND',
      data: { reason: 'NOT_FOUND', absence: proven(leaseKey(id(0x42))) },
    }),
  );
  await assert.rejects(
    checkReceiptLease(absent, { leaseId: id(0x42), chipId: id(1) }),
    coded('NO_LEASE', /proven absent/),
  );
});
