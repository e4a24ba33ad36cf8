/**
 * LightClient.verifyChip / verifyLease against a synthetic chain (one block whose state holds chips,
 * leases and offers, signed by the genesis validator): an honest answer verifies, and what a
 * hostile node forges is refused with a coded ProofError: a reported chip key or lease status that
 * is not the proven one, a record value that does not match its proof, the proof of another id
 * than the one asked, a related record (the offer's endpoint, a revoked serial) left out or forged,
 * an absence without a proof of absence. The dev-chain tests in packages/node cover a real node.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  applyToTrie,
  type BlockHeader,
  blockHash,
  blockHeaderCodec,
  type Chip,
  ChipStatus,
  chipClass,
  chipCodec,
  chipKey,
  DEFAULT_POCI_PARAMS,
  deleteModel,
  ed25519PublicKey,
  effectiveStatus,
  emptyTrie,
  encode,
  encodeAddress,
  getMarketParams,
  getOffer,
  heartbeatOperatorCodec,
  heartbeatOperatorKey,
  type Lease,
  LeaseStatus,
  leaseCodec,
  leaseKey,
  MARKET_PARAMS_KEY,
  MemoryState,
  type MerkleTrie,
  merkleProofCodec,
  type Offer,
  OfferStatus,
  offerKey,
  putAllowlistEntry,
  putChallengeClass,
  putChip,
  putLease,
  putMarketParams,
  putModel,
  putOffer,
  putPociParams,
  StateOverlay,
  type StateReader,
  setSerialRevoked,
  signVote,
  toHex,
  trieKey,
} from '@unc/core';
import fc from 'fast-check';
import {
  type BlockJson,
  type ChipJson,
  chipLivenessJson,
  type LeaseJson,
  LightClient,
  type LightClientSource,
  ProofError,
  type ProofErrorCode,
  type ProvenKeyEntryJson,
} from '../src/index.js';

const CHAIN = 'unc-records-test';
const validator = (() => {
  const seed = new Uint8Array(32).fill(1);
  return { seed, publicKey: ed25519PublicKey(seed) };
})();
const TIME = 1_700_000_000_000n;
const HOUR = 3_600_000n;
const id = (n: number) => new Uint8Array(32).fill(n);
const addr = (n: number) => new Uint8Array(20).fill(n);

function chip(n: number, over: Partial<Chip> = {}): Chip {
  return {
    chipId: id(n),
    owner: addr(n),
    vendorId: 'acme',
    modelId: 'h100',
    profile: 'tpm2',
    power: 989_000n,
    keyMaterial: new Uint8Array(65).fill(n),
    certSerials: ['0a', '0b'],
    registeredAt: 3n,
    firstEpoch: 1n,
    status: ChipStatus.active,
    statusReason: '',
    tpmClock: null,
    creditClock: null,
    creditClockTime: 0n,
    priorCredit: null,
    epoch: 0n,
    answered: 0,
    prevAnswered: 0,
    uncredited: 0,
    prevUncredited: 0,
    lastAnsweredSlot: 0n,
    lastAnsweredAt: 0n,
    settledThrough: 0n,
    slotsAnswered: 4n,
    slotsMissed: 1n,
    rewardsEarned: 7n,
    rewardedThrough: 0n,
    prevPower: 989_000n,
    certsNotAfter: null,
    releasedAt: 0n,
    ...over,
  };
}

function offer(n: number, endpoint: string): Offer {
  return {
    id: id(n),
    provider: addr(9),
    chipIds: [id(1)],
    pricePerHour: 36n,
    minHours: 1,
    maxHours: 24,
    noticeMs: 600_000n,
    endpoint,
    attributes: { memoryMiB: 0, region: '', runtimes: [] },
    createdHeight: 1n,
    createdTime: TIME - 10n * HOUR,
    status: OfferStatus.open,
    closedTime: 0n,
    closesAt: 0n,
    leasesOpened: 1n,
    tlsFingerprints: [id(0xf0)],
  };
}

function lease(n: number, offerN: number, over: Partial<Lease> = {}): Lease {
  return {
    id: id(n),
    offerId: id(offerN),
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
    accrued: 36n,
    paid: 30n,
    refunded: 6n,
    remaining: 828n,
    settledTime: TIME - 1000n,
    slotCursor: 0n,
    slotsAnswered: 2n,
    slotsMissed: 0n,
    status: LeaseStatus.active,
    closingReason: '',
    closedHeight: 0n,
    closedTime: 0n,
    closedReason: '',
    disputes: 0,
    ...over,
  };
}

/** The state the tests read: chips 1 (active) and 2 (serial 0b revoked), leases 3 (active) and 4 (closed). */
function world(extra?: (s: StateOverlay) => void, height = 1n) {
  const mem = new MemoryState();
  const o = new StateOverlay(mem);
  putChip(o, chip(1));
  putChip(o, chip(2, { vendorId: 'acme2' }));
  // A chip's status reads its model (a removed model's chips are revoked, branch modelpower).
  putModel(o, { vendorId: 'acme', modelId: 'h100', name: 'h100', power: 989_000n });
  putModel(o, { vendorId: 'acme2', modelId: 'h100', name: 'h100', power: 989_000n });
  setSerialRevoked(o, 'acme2', '0b', true);
  putOffer(o, offer(5, 'https://gpu.example:8443/jobs'));
  putOffer(o, offer(6, 'https://other.example/jobs'));
  putLease(o, lease(3, 5));
  putLease(
    o,
    lease(4, 5, {
      status: LeaseStatus.closed,
      closedHeight: 2n,
      closedTime: TIME - 1000n,
      closedReason: 'renterClosed',
    }),
  );
  extra?.(o);
  const writes = o.changes();
  mem.apply(writes);
  const trie = applyToTrie(emptyTrie(), writes);
  const header: BlockHeader = {
    chainId: CHAIN,
    height,
    time: TIME,
    prevHash: new Uint8Array(32),
    stateRoot: trie.root,
    txRoot: new Uint8Array(32),
    proposer: validator.publicKey,
    beacon: new Uint8Array(32),
    vrfProof: new Uint8Array(0),
    lastCommitHash: new Uint8Array(32),
  };
  return { mem, trie, header };
}

function blockJson(h: BlockHeader): BlockJson {
  const hash = blockHash(h);
  const v = signVote(
    CHAIN,
    { type: 'precommit', height: h.height, round: 0, blockHash: hash, validator: validator.publicKey },
    validator.seed,
  );
  return {
    height: Number(h.height),
    encoded: toHex(encode(blockHeaderCodec, h)),
    hash: toHex(hash),
    commit: {
      height: Number(h.height),
      round: 0,
      blockHash: toHex(hash),
      signatures: [{ validator: toHex(v.validator), signature: toHex(v.signature) }],
    },
  } as unknown as BlockJson;
}

/** What node/src/state-proofs.ts proveRecord returns, built the same way here. */
function proven(
  w: ReturnType<typeof world>,
  key: Uint8Array,
  derive: (r: StateReader) => void = () => {},
): {
  height: number;
  stateRoot: string;
  proof: string;
  value: string | null;
  related: ProvenKeyEntryJson[];
} {
  const prove = (t: MerkleTrie, k: Uint8Array) => toHex(encode(merkleProofCodec, t.prove(trieKey(k))));
  const related: ProvenKeyEntryJson[] = [];
  derive({
    get(k) {
      const v = w.mem.get(k);
      if (toHex(k) !== toHex(key) && !related.some((e) => e.key === toHex(k)))
        related.push({ key: toHex(k), value: v ? toHex(v) : null, proof: prove(w.trie, k) });
      return v;
    },
  });
  const v = w.mem.get(key);
  return {
    height: Number(w.header.height),
    stateRoot: toHex(w.header.stateRoot),
    proof: prove(w.trie, key),
    value: v ? toHex(v) : null,
    related,
  };
}

/** The honest node's answers (the fields verifyChip / verifyLease compare). */
function honestChip(w: ReturnType<typeof world>, n: number): ChipJson {
  const c = chip(n, n === 2 ? { vendorId: 'acme2' } : {});
  const revoked = n === 2;
  return {
    chipId: toHex(c.chipId),
    owner: encodeAddress(c.owner),
    vendorId: c.vendorId,
    modelId: c.modelId,
    profile: c.profile,
    power: c.power.toString(),
    certSerials: c.certSerials,
    keyMaterial: toHex(c.keyMaterial),
    status: revoked ? 'revoked' : 'active',
    statusReason: revoked ? 'certificate 0b revoked by vendor acme2' : '',
    registeredAt: 3,
    firstEpoch: 1,
    lastAnsweredAt: 0,
    slotsAnswered: 4,
    slotsMissed: 1,
    rewardsEarned: '7',
    tpmClock: null,
    // Liveness from the status the proven state gives (a removed model's chip reads revoked too),
    // whatever status a lying node's answer built on this one claims.
    ...chipLivenessJson(w.mem, c, effectiveStatus(w.mem, c, w.header.time).status, w.header),
    // The node proves what its status and liveness read (state-proofs.ts); so does the test.
    ...proven(w, chipKey(c.chipId), (r) => chipReads(r, c, w.header)),
  };
}

/** What a chip answer derives from state: its effective status, then its liveness and operator. */
function chipReads(r: StateReader, c: Chip, head: BlockHeader): void {
  chipLivenessJson(r, c, effectiveStatus(r, c, head.time).status, head);
}

function honestLease(w: ReturnType<typeof world>, n: number): LeaseJson {
  const closed = n === 4;
  const l = lease(n, 5);
  return {
    id: toHex(id(n)),
    offerId: toHex(id(5)),
    chipId: toHex(id(1)),
    provider: encodeAddress(addr(9)),
    renter: encodeAddress(addr(8)),
    renterPublicKey: toHex(id(0x77)),
    endpoint: 'https://gpu.example:8443/jobs',
    tlsFingerprints: [toHex(id(0xf0))],
    pricePerHour: '36',
    hours: 24,
    deposit: '864',
    paid: '30',
    refunded: '6',
    remaining: '828',
    unsettled: closed ? '0' : '0',
    escrowUntil: Number(closed ? TIME - 1000n : l.startTime + 24n * HOUR),
    status: closed ? 'closed' : 'active',
    startHeight: 1,
    startTime: Number(l.startTime),
    endTime: Number(l.endTime),
    settledTime: Number(l.settledTime),
    slotsAnswered: 2,
    slotsMissed: 0,
    closingReason: null,
    disputes: 0,
    closedHeight: closed ? 2 : null,
    closedTime: closed ? Number(TIME - 1000n) : null,
    closedReason: closed ? 'renterClosed' : null,
    ...proven(w, leaseKey(id(n)), (r) => leaseReads(r, id(5))),
  };
}

/** What a lease answer derives from state (node market-api.ts): its offer, the market parameters. */
function leaseReads(r: StateReader, offerId: Uint8Array): void {
  getOffer(r, offerId);
  getMarketParams(r);
}

type Answers = { chip?: (id: string) => ChipJson | Error; lease?: (id: string) => LeaseJson | Error };

function node(w: ReturnType<typeof world>, answers: Answers) {
  const source: LightClientSource = {
    getBlock: async () => blockJson(w.header),
    getValidatorSetProof: async () => {
      throw new Error('not needed');
    },
  };
  return {
    ...source,
    getChip: async (chipId: string) => {
      const a = answers.chip!(chipId);
      if (a instanceof Error) throw a;
      return a;
    },
    getLease: async (leaseId: string) => {
      const a = answers.lease!(leaseId);
      if (a instanceof Error) throw a;
      return a;
    },
  };
}

async function refused(p: Promise<unknown>, code: ProofErrorCode, why: RegExp): Promise<void> {
  await assert.rejects(p, (err: Error) => {
    assert.ok(err instanceof ProofError, `${err.name}: ${err.message}`);
    assert.equal(err.code, code, err.message);
    assert.match(err.message, why);
    return true;
  });
}

/** A LightClient whose source is the test's node (verifyHeight fetches from it). */
function client(w: ReturnType<typeof world>, answers: Answers) {
  const n = node(w, answers);
  const l = new LightClient(n, {
    kind: 'genesis',
    chainId: CHAIN,
    validators: [{ publicKey: validator.publicKey }],
    epochBlocks: 1000n,
  });
  return { l, n };
}

function notFound(data: unknown): Error {
  return Object.assign(new Error('not found'), { reason: 'NOT_FOUND', data });
}

test('an honest chip answer verifies: its key from the proven record, its status from proven state', async () => {
  const w = world();
  const { l, n } = client(w, { chip: (c) => honestChip(w, c === toHex(id(1)) ? 1 : 2) });
  const r = await l.verifyChip(n, toHex(id(1)));
  assert.ok(r.chip);
  assert.equal(toHex(r.chip.keyMaterial), toHex(new Uint8Array(65).fill(1)));
  assert.equal(r.status, 'active');
  // Chip 2's serial 0b is revoked: core's effectiveStatus over the proven revocation record says so.
  const r2 = await l.verifyChip(n, toHex(id(2)));
  assert.ok(r2.chip);
  assert.equal(r2.status, 'revoked');
  assert.match(r2.statusReason, /certificate 0b revoked/);
});

test('a chip whose model governance removed is revoked in proven state: a node calling it active is refused', async () => {
  const w = world((o) => deleteModel(o, 'acme', 'h100'));
  const liar = client(w, { chip: () => honestChip(w, 1) });
  await refused(liar.l.verifyChip(liar.n, toHex(id(1))), 'MISMATCH', /revoked/);
  const honest = client(w, {
    chip: () => ({
      ...honestChip(w, 1),
      status: 'revoked',
      statusReason: 'model acme/h100 removed by governance',
    }),
  });
  const r = await honest.l.verifyChip(honest.n, toHex(id(1)));
  assert.ok(r.chip);
  assert.equal(r.status, 'revoked');
  assert.match(r.statusReason, /model acme\/h100 removed by governance/);
});

test('a forged chip key, a forged status, another chip proof or a missing revocation proof is refused', async () => {
  const w = world();
  const asked = toHex(id(1));
  // The node reports another key beside the honest proof.
  const forgedKey = client(w, { chip: () => ({ ...honestChip(w, 1), keyMaterial: 'ab'.repeat(65) }) });
  await refused(forgedKey.l.verifyChip(forgedKey.n, asked), 'MISMATCH', /keyMaterial/);
  // The node forges the record itself (another key inside): it no longer matches its proof.
  const forgedValue = client(w, {
    chip: () => {
      const j = honestChip(w, 1);
      const fake = encode(chipCodec, chip(1, { keyMaterial: new Uint8Array(65).fill(0xee) }));
      return { ...j, keyMaterial: toHex(new Uint8Array(65).fill(0xee)), value: toHex(fake) };
    },
  });
  await refused(forgedValue.l.verifyChip(forgedValue.n, asked), 'BAD_PROOF', /Merkle proof does not match/);
  // Chip 2's genuine record and proof, served for chip 1 (the proof is under another key).
  const otherKey = client(w, {
    chip: () => ({ ...honestChip(w, 2), chipId: asked }),
  });
  await refused(otherKey.l.verifyChip(otherKey.n, asked), 'BAD_PROOF', /Merkle proof does not match/);
  // …and named as chip 2: the node answered for another chip.
  const otherId = client(w, { chip: () => honestChip(w, 2) });
  await refused(otherId.l.verifyChip(otherId.n, asked), 'BAD_PROOF', /Merkle proof does not match/);
  // A revoked chip reported active, its revocation proof left out or replaced by a false absence.
  const hidden = client(w, {
    chip: () => ({ ...honestChip(w, 2), status: 'active', statusReason: '', related: [] }),
  });
  await refused(hidden.l.verifyChip(hidden.n, toHex(id(2))), 'MISSING_PROOF', /no proof of state key/);
  const falseAbsence = client(w, {
    chip: () => {
      const j = honestChip(w, 2);
      return {
        ...j,
        status: 'active',
        statusReason: '',
        related: j.related!.map((e) => ({ ...e, value: null })),
      };
    },
  });
  await refused(
    falseAbsence.l.verifyChip(falseAbsence.n, toHex(id(2))),
    'BAD_PROOF',
    /Merkle proof does not match/,
  );
  // The revocation honestly proven, the status still reported active.
  const lying = client(w, { chip: () => ({ ...honestChip(w, 2), status: 'active', statusReason: '' }) });
  await refused(lying.l.verifyChip(lying.n, toHex(id(2))), 'MISMATCH', /status/);
});

test('an absent chip is proven absent; an absence without proof, or of a chip that exists, is refused', async () => {
  const w = world();
  const absent = toHex(id(0x42));
  const honest = client(w, {
    chip: () => notFound({ reason: 'NOT_FOUND', absence: proven(w, chipKey(id(0x42))) }),
  });
  const r = await honest.l.verifyChip(honest.n, absent);
  assert.equal(r.chip, null);
  const bare = client(w, { chip: () => notFound({ reason: 'NOT_FOUND' }) });
  await refused(bare.l.verifyChip(bare.n, absent), 'NOT_PROVEN', /no proof of absence/);
  // Chip 1 exists: a node hiding it serves chip 0x42's absence proof, or claims value null.
  const hiding = client(w, {
    chip: () => notFound({ reason: 'NOT_FOUND', absence: proven(w, chipKey(id(0x42))) }),
  });
  await refused(hiding.l.verifyChip(hiding.n, toHex(id(1))), 'BAD_PROOF', /Merkle proof does not match/);
  const nulled = client(w, {
    chip: () => notFound({ reason: 'NOT_FOUND', absence: { ...proven(w, chipKey(id(1))), value: null } }),
  });
  await refused(nulled.l.verifyChip(nulled.n, toHex(id(1))), 'BAD_PROOF', /Merkle proof does not match/);
});

test('an honest lease verifies with its offer endpoint; a closed lease shown open is refused', async () => {
  const w = world();
  const { l, n } = client(w, { lease: (x) => honestLease(w, x === toHex(id(3)) ? 3 : 4) });
  const r = await l.verifyLease(n, toHex(id(3)));
  assert.ok(r.lease);
  assert.equal(r.status, 'active');
  assert.equal(r.endpoint, 'https://gpu.example:8443/jobs');
  assert.deepEqual(r.tlsFingerprints, [toHex(id(0xf0))]);
  const closed = await l.verifyLease(n, toHex(id(4)));
  assert.ok(closed.lease);
  assert.equal(closed.status, 'closed');

  const asked = toHex(id(4));
  // Closed, reported active.
  const shownOpen = client(w, {
    lease: () => ({
      ...honestLease(w, 4),
      status: 'active',
      closedHeight: null,
      closedTime: null,
      closedReason: null,
    }),
  });
  await refused(shownOpen.l.verifyLease(shownOpen.n, asked), 'MISMATCH', /status/);
  // The record re-encoded as active beside the real proof.
  const reencoded = client(w, {
    lease: () => ({
      ...honestLease(w, 3),
      id: asked,
      value: toHex(encode(leaseCodec, lease(4, 5))),
      proof: honestLease(w, 4).proof,
    }),
  });
  await refused(reencoded.l.verifyLease(reencoded.n, asked), 'BAD_PROOF', /Merkle proof does not match/);
  // Lease 3's genuine (active) record and proof served for lease 4.
  const otherKey = client(w, { lease: () => ({ ...honestLease(w, 3), id: asked }) });
  await refused(otherKey.l.verifyLease(otherKey.n, asked), 'BAD_PROOF', /Merkle proof does not match/);
});

test("a lease's endpoint is the proven offer's: forged, left out or another offer's is refused", async () => {
  const w = world();
  const asked = toHex(id(3));
  const forged = client(w, {
    lease: () => ({ ...honestLease(w, 3), endpoint: 'https://evil.example/jobs' }),
  });
  await refused(forged.l.verifyLease(forged.n, asked), 'MISMATCH', /endpoint/);
  const missing = client(w, { lease: () => ({ ...honestLease(w, 3), related: [] }) });
  await refused(missing.l.verifyLease(missing.n, asked), 'MISSING_PROOF', /no proof of state key/);
  // Offer 6's genuine entry relabelled as offer 5's key: checked under the key the client derived.
  const other = proven(w, offerKey(id(6)));
  const relabelled = client(w, {
    lease: () => ({
      ...honestLease(w, 3),
      endpoint: 'https://other.example/jobs',
      related: [{ key: toHex(offerKey(id(5))), value: other.value, proof: other.proof }],
    }),
  });
  await refused(relabelled.l.verifyLease(relabelled.n, asked), 'BAD_PROOF', /Merkle proof does not match/);
  // A stateRoot that is not the verified header's.
  const root = client(w, { lease: () => ({ ...honestLease(w, 3), stateRoot: '00'.repeat(32) }) });
  await refused(root.l.verifyLease(root.n, asked), 'MISMATCH', /not the verified header's/);
  // No proof at all (an old node, or one that ignores the flag).
  const bare = client(w, { lease: () => ({ ...honestLease(w, 3), proof: undefined }) });
  await refused(bare.l.verifyLease(bare.n, asked), 'MISSING_PROOF', /without a proof/);
});

test('property: any lease record verifies when honest, and no byte of it can be changed', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.record({
        status: fc.constantFrom(LeaseStatus.active, LeaseStatus.closing, LeaseStatus.closed),
        paid: fc.bigInt({ min: 0n, max: 10n ** 30n }),
        hours: fc.integer({ min: 1, max: 10_000 }),
        endpoint: fc
          .webUrl({ withQueryParameters: false, withFragments: false })
          .filter((u) => u.length < 200),
        flip: fc.nat(),
      }),
      async ({ status, paid, hours, endpoint, flip }) => {
        const rec = lease(0x30, 0x31, {
          status,
          paid,
          hours,
          closedReason: status === LeaseStatus.closed ? 'x' : '',
        });
        const w = world((o) => {
          putLease(o, rec);
          putOffer(o, offer(0x31, endpoint));
        });
        const asked = toHex(id(0x30));
        const p = proven(w, leaseKey(id(0x30)), (r) => leaseReads(r, id(0x31)));
        const ok = client(w, { lease: () => ({ id: asked, ...p }) as unknown as LeaseJson });
        // Only the record is checked here (the reported fields are tested above): go through verifyRecord.
        const { verifyRecord } = await import('../src/verified-records.js');
        const got = await verifyRecord((h) => ok.l.verifyHeight(h), p, leaseKey(id(0x30)), 'lease');
        assert.equal(got.value && toHex(got.value), toHex(encode(leaseCodec, rec)));
        const bytes = encode(leaseCodec, rec);
        bytes[flip % bytes.length]! ^= 1 << (flip % 8);
        await refused(
          verifyRecord(
            (h) => ok.l.verifyHeight(h),
            { ...p, value: toHex(bytes) },
            leaseKey(id(0x30)),
            'lease',
          ),
          'BAD_PROOF',
          /Merkle proof does not match/,
        );
      },
    ),
    { numRuns: 40 },
  );
});

test('a true but old state is refused as STALE past the oldest block time the caller accepts', async () => {
  // The node picks the height: the lease, its offer's TLS pins and the chip's status at an old
  // block verify like fresh ones. Before `notBefore`, nothing bounded how old (a closed lease shown
  // active, TLS pins rotated away since a key leaked, a chip revoked since).
  const w = world();
  const { l, n } = client(w, {
    lease: () => honestLease(w, 3),
    chip: (c) =>
      c === toHex(id(1))
        ? honestChip(w, 1)
        : notFound({ reason: 'NOT_FOUND', absence: proven(w, chipKey(id(0x42))) }),
  });
  // Read at block 1, stamped TIME: accepted from TIME on, refused when the caller wants later.
  const fresh = await l.verifyLease(n, toHex(id(3)), { notBefore: TIME });
  assert.ok(fresh.lease);
  assert.equal(fresh.status, 'active');
  await refused(
    l.verifyLease(n, toHex(id(3)), { notBefore: TIME + 1n }),
    'STALE',
    /older than the oldest accepted/,
  );
  await refused(l.verifyChip(n, toHex(id(1)), { notBefore: TIME + 60_000n }), 'STALE', /block 1 of/);
  // The bound is the caller's clock: a clock set ahead refuses fresh states, and the message says so.
  await refused(
    l.verifyChip(n, toHex(id(1)), { notBefore: TIME + 60_000n }),
    'STALE',
    /this machine's clock may be ahead/,
  );
  // An absence at an old block (before the chip was registered) is stale too.
  await refused(l.verifyChip(n, toHex(id(0x42)), { notBefore: TIME + 1n }), 'STALE', /older/);
  assert.equal((await l.verifyChip(n, toHex(id(0x42)), { notBefore: TIME - 1n })).chip, null);
});

test('property: a chip status verifies only with every record it reads; leaving out or nulling any one is refused', async () => {
  // The client runs core's effectiveStatus over proven state, so the keys a status depends on are
  // the client's, not the node's list: whatever the profile, allow-list entry, revocations and
  // parameters, each record the honest answer carries is needed, and none can be hidden.
  await fc.assert(
    fc.asyncProperty(
      fc.record({
        profile: fc.constantFrom('tpm2', 'rsa2048-allowlist', 'dev-soft'),
        serials: fc.uniqueArray(fc.constantFrom('01', '02', '03', '04', '05', '06', '07', '08'), {
          maxLength: 8,
        }),
        revoked: fc.uniqueArray(fc.constantFrom('01', '02', '03', '04', '05', '06', '07', '08', '09'), {
          maxLength: 4,
        }),
        allowlist: fc.constantFrom('none', 'allowed'),
        params: fc.constantFrom('absent', 'devSoftOn', 'devSoftOff'),
        status: fc.constantFrom(ChipStatus.active, ChipStatus.revoked, ChipStatus.deregistered),
      }),
      async ({ profile, serials, revoked, allowlist, params, status }) => {
        const c = chip(0x50, {
          profile,
          certSerials: serials,
          vendorId: 'v',
          status,
          statusReason: status === ChipStatus.active ? '' : 'gone',
        });
        const w = world((o) => {
          putChip(o, c);
          for (const r of revoked) setSerialRevoked(o, 'v', r, true);
          if (allowlist === 'allowed')
            putAllowlistEntry(o, { vendorId: 'v', publicKey: c.keyMaterial, modelId: 'h100', allowed: true });
          if (params !== 'absent')
            putPociParams(o, { ...DEFAULT_POCI_PARAMS, devSoftEnabled: params === 'devSoftOn' });
        });
        const expected = effectiveStatus(w.mem, c, w.header.time);
        const honest: ChipJson = {
          ...honestChip(w, 1),
          chipId: toHex(c.chipId),
          owner: encodeAddress(c.owner),
          vendorId: 'v',
          profile,
          certSerials: serials,
          keyMaterial: toHex(c.keyMaterial),
          status: expected.status,
          statusReason: expected.reason,
          ...chipLivenessJson(w.mem, c, expected.status, w.header),
          ...proven(w, chipKey(c.chipId), (r) => chipReads(r, c, w.header)),
        };
        const asked = toHex(c.chipId);
        const ok = client(w, { chip: () => honest });
        const r = await ok.l.verifyChip(ok.n, asked);
        assert.ok(r.chip);
        assert.equal(r.status, expected.status);
        assert.equal(r.statusReason, expected.reason);
        for (let i = 0; i < honest.related!.length; i++) {
          const left = honest.related!.filter((_, j) => j !== i);
          const omitted = client(w, { chip: () => ({ ...honest, related: left }) });
          await refused(omitted.l.verifyChip(omitted.n, asked), 'MISSING_PROOF', /no proof of state key/);
          if (honest.related![i]!.value === null) continue;
          const nulled = honest.related!.map((e, j) => (j === i ? { ...e, value: null } : e));
          const hidden = client(w, { chip: () => ({ ...honest, related: nulled }) });
          await refused(hidden.l.verifyChip(hidden.n, asked), 'BAD_PROOF', /Merkle proof does not match/);
        }
      },
    ),
    { numRuns: 60 },
  );
});

/** A world whose PoCI parameters make short epochs, with the chip's class challenged in each. */
function livenessWorld(opts: {
  height: bigint;
  /** Challenge heights of the chip's class, by epoch. */
  challenges: Map<bigint, bigint[]>;
  operator?: { previous: Uint8Array | null; operator: Uint8Array | null; from: bigint };
  lastAnsweredSlot?: bigint;
}) {
  const params = { ...DEFAULT_POCI_PARAMS, epochBlocks: 10n, slotsPerEpoch: 4, answerWindowBlocks: 2n };
  const c = chip(0x60, {
    registeredAt: 3n,
    firstEpoch: 0n,
    lastAnsweredSlot: opts.lastAnsweredSlot ?? 0n,
  });
  const cls = chipClass(c.chipId, params);
  const w = world((o) => {
    putPociParams(o, params);
    putChip(o, c);
    for (const [epoch, heights] of opts.challenges)
      putChallengeClass(o, epoch, cls, { heights, powerByAnswered: [], weight: 0n });
    if (opts.operator) o.set(heartbeatOperatorKey(c.owner), encode(heartbeatOperatorCodec, opts.operator));
  }, opts.height);
  const honest: ChipJson = {
    ...honestChip(w, 1),
    chipId: toHex(c.chipId),
    owner: encodeAddress(c.owner),
    keyMaterial: toHex(c.keyMaterial),
    firstEpoch: 0,
    ...chipLivenessJson(w.mem, c, 'active', w.header),
    ...proven(w, chipKey(c.chipId), (r) => chipReads(r, c, w.header)),
  };
  return { w, c, honest, asked: toHex(c.chipId) };
}

test("a chip's liveness and heartbeat operator are proven: forged, left out or hidden is refused", async () => {
  // Challenged at heights 12, 22, 32 and 42, none answered, windows closed by 45: three misses in a
  // row, offline (offlineAfterMisses 3). Its owner named an operator from height 10. A node serving
  // the chip's record honestly could, before these checks, still call it online, or name its own
  // operator (the hot key a renter or watcher takes as the chip's), or say it has none.
  const operator = addr(0x66);
  const { w, honest, asked } = livenessWorld({
    height: 45n,
    challenges: new Map([
      [1n, [12n]],
      [2n, [22n]],
      [3n, [32n]],
      [4n, [42n]],
    ]),
    operator: { previous: null, operator, from: 10n },
  });
  const ok = client(w, { chip: () => honest });
  const r = await ok.l.verifyChip(ok.n, asked);
  assert.ok(r.chip);
  assert.equal(r.online, false);
  assert.equal(r.consecutiveMisses, 3);
  assert.equal(r.heartbeatOperator, encodeAddress(operator));

  const shownOnline = client(w, { chip: () => ({ ...honest, online: true, consecutiveMisses: 0 }) });
  await refused(shownOnline.l.verifyChip(shownOnline.n, asked), 'MISMATCH', /online/);
  const fewerMisses = client(w, { chip: () => ({ ...honest, consecutiveMisses: 1 }) });
  await refused(fewerMisses.l.verifyChip(fewerMisses.n, asked), 'MISMATCH', /consecutiveMisses/);
  const otherOperator = client(w, {
    chip: () => ({ ...honest, heartbeatOperator: encodeAddress(addr(0x67)) }),
  });
  await refused(otherOperator.l.verifyChip(otherOperator.n, asked), 'MISMATCH', /heartbeatOperator/);
  const noOperator = client(w, { chip: () => ({ ...honest, heartbeatOperator: null }) });
  await refused(noOperator.l.verifyChip(noOperator.n, asked), 'MISMATCH', /heartbeatOperator/);
  const answeredSlots = client(w, {
    chip: () => ({ ...honest, slots: honest.slots.map((s) => ({ ...s, status: 'answered' as const })) }),
  });
  await refused(answeredSlots.l.verifyChip(answeredSlots.n, asked), 'MISMATCH', /slots/);

  // The records they are read from cannot be left out, claimed absent, or taken from another key.
  const opKey = toHex(heartbeatOperatorKey(addr(0x60)));
  assert.ok(honest.related!.some((e) => e.key === opKey));
  const opLeftOut = client(w, {
    chip: () => ({
      ...honest,
      heartbeatOperator: null,
      related: honest.related!.filter((e) => e.key !== opKey),
    }),
  });
  await refused(opLeftOut.l.verifyChip(opLeftOut.n, asked), 'MISSING_PROOF', /no proof of state key/);
  const opAbsent = client(w, {
    chip: () => ({
      ...honest,
      heartbeatOperator: null,
      related: honest.related!.map((e) => (e.key === opKey ? { ...e, value: null } : e)),
    }),
  });
  await refused(opAbsent.l.verifyChip(opAbsent.n, asked), 'BAD_PROOF', /Merkle proof does not match/);
  // Chip 1's owner has no operator: that (true) absence proof relabelled under this owner's key.
  const elsewhere = proven(w, heartbeatOperatorKey(addr(1)));
  const opOtherKey = client(w, {
    chip: () => ({
      ...honest,
      heartbeatOperator: null,
      related: honest.related!.map((e) =>
        e.key === opKey ? { key: opKey, value: elsewhere.value, proof: elsewhere.proof } : e,
      ),
    }),
  });
  await refused(opOtherKey.l.verifyChip(opOtherKey.n, asked), 'BAD_PROOF', /Merkle proof does not match/);
});

test('property: chip liveness verifies only with every record it reads; leaving out or nulling any one is refused', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.record({
        height: fc.bigInt({ min: 5n, max: 90n }),
        perEpoch: fc.array(fc.array(fc.nat({ max: 9 }), { maxLength: 3 }), { minLength: 10, maxLength: 10 }),
        answeredThrough: fc.bigInt({ min: 0n, max: 60n }),
        operator: fc.option(
          fc.record({
            previous: fc.option(fc.constant(addr(0x70)), { nil: null }),
            operator: fc.option(fc.constant(addr(0x71)), { nil: null }),
            from: fc.bigInt({ min: 1n, max: 100n }),
          }),
          { nil: undefined },
        ),
      }),
      async ({ height, perEpoch, answeredThrough, operator }) => {
        const challenges = new Map<bigint, bigint[]>();
        perEpoch.forEach((offsets, e) => {
          const hs = [...new Set(offsets)].sort((a, b) => a - b).map((o) => BigInt(e * 10 + o));
          const below = hs.filter((h) => h >= 1n && h <= height);
          if (below.length > 0) challenges.set(BigInt(e), below);
        });
        const { w, c, honest, asked } = livenessWorld({
          height,
          challenges,
          ...(operator ? { operator } : {}),
          lastAnsweredSlot: answeredThrough < height ? answeredThrough : 0n,
        });
        const ok = client(w, { chip: () => honest });
        const r = await ok.l.verifyChip(ok.n, asked);
        assert.ok(r.chip);
        assert.equal(r.online, honest.online);
        assert.equal(r.consecutiveMisses, honest.consecutiveMisses);
        const op = operator ? (height + 1n >= operator.from ? operator.operator : operator.previous) : null;
        assert.equal(r.heartbeatOperator, op ? encodeAddress(op) : null);
        assert.ok(honest.related!.some((e) => e.key === toHex(heartbeatOperatorKey(c.owner))));
        for (let i = 0; i < honest.related!.length; i++) {
          const left = honest.related!.filter((_, j) => j !== i);
          const omitted = client(w, { chip: () => ({ ...honest, related: left }) });
          await refused(omitted.l.verifyChip(omitted.n, asked), 'MISSING_PROOF', /no proof of state key/);
          if (honest.related![i]!.value === null) continue;
          const nulled = honest.related!.map((e, j) => (j === i ? { ...e, value: null } : e));
          const hidden = client(w, { chip: () => ({ ...honest, related: nulled }) });
          await refused(hidden.l.verifyChip(hidden.n, asked), 'BAD_PROOF', /Merkle proof does not match/);
        }
      },
    ),
    { numRuns: 40 },
  );
});

test('the market parameters a renter times disputes by are proven with the lease; left out is refused', async () => {
  // A node naming a shorter dispute wait than the chain's had a renter (the gateway) send disputes
  // the chain refuses, their fees lost; a longer one had it keep a lease open, and paid, past it.
  const w = world((o) => putMarketParams(o, { disputeWaitMs: 123_000n, receiptWindowMs: 456_000n }));
  const asked = toHex(id(3));
  const ok = client(w, { lease: () => honestLease(w, 3) });
  const r = await ok.l.verifyLease(ok.n, asked);
  assert.ok(r.lease);
  assert.equal(r.market.disputeWaitMs, 123_000n);
  assert.equal(r.market.receiptWindowMs, 456_000n);
  const key = toHex(MARKET_PARAMS_KEY);
  const honest = honestLease(w, 3);
  assert.ok(honest.related!.some((e) => e.key === key));
  const leftOut = client(w, {
    lease: () => ({ ...honest, related: honest.related!.filter((e) => e.key !== key) }),
  });
  await refused(leftOut.l.verifyLease(leftOut.n, asked), 'MISSING_PROOF', /no proof of state key/);
  // Claimed absent (the defaults, 300 s, would then apply): the proof says otherwise.
  const absent = client(w, {
    lease: () => ({
      ...honest,
      related: honest.related!.map((e) => (e.key === key ? { ...e, value: null } : e)),
    }),
  });
  await refused(absent.l.verifyLease(absent.n, asked), 'BAD_PROOF', /Merkle proof does not match/);
});
