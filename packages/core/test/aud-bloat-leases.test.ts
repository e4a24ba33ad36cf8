import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  type Action,
  DEFAULT_PARAMS,
  devSoftChipId,
  ed25519Sign,
  effectiveStatus,
  epochOf,
  getAccount,
  getChip,
  getLease,
  getOffer,
  getPociParams,
  type HeartbeatAnswer,
  hasProvenOnline,
  type JobReceipt,
  leaseTermsDigest,
  leaseTermsOf,
  receiptDigest,
  sha256,
  type TxEvent,
  utf8,
} from '../src/index.js';
import { answer, CHAIN, key, miner, other, registerAction, slotsOf, TestChain } from './harness.js';

// The attacker is both sides: `miner` provides one chip, `other` rents it. What it pays for a
// record that stays in every node's memory is what both accounts lose together (the rent goes
// from one to the other; heartbeats are free; rewards wait for a claim).
const chip = key('aud-bloat-lease-chip');
const chipId = devSoftChipId(chip.publicKey);
const ENTRY_FLOOR = 100n * DEFAULT_PARAMS.minFeePerAction;

const both = (c: TestChain) =>
  getAccount(c.state, miner.address).balance + getAccount(c.state, other.address).balance;

/** Commits `txs`, then the chip's due answers in blocks of their own (the owner's nonces move). */
function step(c: TestChain, answered: Set<string>, txs: ReturnType<TestChain['tx']>[] = []): TxEvent[] {
  const events = c.block(txs);
  const p = getPociParams(c.state);
  const next = c.height + 1n;
  const due: HeartbeatAnswer[] = [];
  const rec = getChip(c.state, chipId);
  if (rec && effectiveStatus(c.state, rec, null).status === 'active') {
    const now = epochOf(next, p);
    for (const e of [now - 1n, now]) {
      if (e < rec.firstEpoch) continue;
      slotsOf(c, chip, e).forEach((h, slot) => {
        const id = `${e}:${slot}`;
        if (h >= next || next > h + p.answerWindowBlocks || answered.has(id)) return;
        answered.add(id);
        due.push(answer(c, chip, e, slot));
      });
    }
  }
  if (due.length > 0) c.block(c.heartbeats(due));
  return events;
}

function setup(): { c: TestChain; answered: Set<string>; offerId: Uint8Array } {
  const c = new TestChain();
  const answered = new Set<string>();
  c.blocksUntil(2n);
  step(c, answered, [c.tx(miner, [registerAction(c, chip, miner.address)])]);
  for (let i = 0; i < 400 && !hasProvenOnline(getChip(c.state, chipId)!); i++) step(c, answered);
  assert.ok(hasProvenOnline(getChip(c.state, chipId)!));
  const created = step(c, answered, [
    c.tx(miner, [
      {
        type: 'createOffer',
        chipIds: [chipId],
        pricePerHour: 1n,
        minHours: 1,
        maxHours: 10,
        noticeMs: 0n,
        endpoint: 'http://provider.example/api',
        attributes: { memoryMiB: 1, region: 'eu-west', runtimes: ['onnx'] },
        tlsFingerprints: [],
      } as Action,
    ]),
  ]);
  const e = created.find((x) => x.type === 'offerCreated') as Extract<TxEvent, { type: 'offerCreated' }>;
  return { c, answered, offerId: e.offerId };
}

function openLease(c: TestChain, answered: Set<string>, offerId: Uint8Array): Uint8Array {
  const offer = getOffer(c.state, offerId)!;
  const events = step(c, answered, [
    c.tx(other, [
      {
        type: 'openLease',
        offerId,
        chipId: null,
        hours: 1,
        deposit: 0n,
        maxPricePerHour: 1n,
        termsDigest: leaseTermsDigest(leaseTermsOf(c.state, offer)),
      },
    ]),
  ]);
  return (events.find((x) => x.type === 'leaseOpened') as Extract<TxEvent, { type: 'leaseOpened' }>).leaseId;
}

describe('aud-bloat: leases and receipts kept for good', () => {
  // Open and close a lease at one base unit an hour, again and again on one chip: each round left
  // a lease record and two list links in the state for good, for two actions' minimum fee.
  test('a lease record that stays costs its makers at least 100 per-action fees', () => {
    const { c, answered, offerId } = setup();
    const before = both(c);
    const leases: Uint8Array[] = [];
    for (let i = 0; i < 3; i++) {
      const id = openLease(c, answered, offerId);
      leases.push(id);
      step(c, answered, [c.tx(other, [{ type: 'closeLease', leaseId: id }])]);
    }
    const kept = leases.filter((id) => getLease(c.state, id) !== null).length;
    if (kept === 0) return;
    const perLease = (before - both(c)) / BigInt(kept);
    assert.ok(perLease >= ENTRY_FLOOR, `a kept lease cost ${perLease} base units, under ${ENTRY_FLOOR}`);
  });

  // One lease, many jobs: each receipt leaves a replay mark (0x0C 0x02) for good, for one
  // action's fee; the chip signs whatever its owner asks.
  test('a receipt mark that stays costs its makers at least 100 per-action fees', () => {
    const { c, answered, offerId } = setup();
    const leaseId = openLease(c, answered, offerId);
    const start = getLease(c.state, leaseId)!.startTime;
    const actions: Action[] = Array.from({ length: 16 }, (_, n) => {
      const receipt: JobReceipt = {
        chainId: CHAIN,
        leaseId,
        chipId,
        jobId: sha256(utf8(`aud-bloat job ${n}`)),
        modelHash: sha256(utf8('model')),
        inputHash: sha256(utf8(`in ${n}`)),
        outputHash: sha256(utf8(`out ${n}`)),
        startMs: start + 1n,
        durationMs: 1n,
      };
      const evidence = {
        type: 'dev-soft' as const,
        signature: ed25519Sign(chip.seed, receiptDigest(receipt)),
      };
      return { type: 'postReceipt', signed: { receipt, evidence }, rating: 5 } as Action;
    });
    const before = both(c);
    const events = step(c, answered, [c.tx(other, actions)]);
    const posted = events.filter((e) => e.type === 'receiptPosted').length;
    assert.equal(posted, 16);
    const perReceipt = (before - both(c)) / BigInt(posted);
    assert.ok(
      perReceipt >= ENTRY_FLOOR,
      `a receipt mark cost ${perReceipt} base units, under ${ENTRY_FLOOR}`,
    );
  });
});
