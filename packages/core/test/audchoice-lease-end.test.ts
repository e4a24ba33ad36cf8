/**
 * AUDIT (branch audchoice): the last settlement period of a lease is judged by challenges drawn
 * after the lease ended.
 *
 * market/settle.ts settleLease charges the cost through min(now, leaseEndsAt) but judges it by the
 * chip's challenges with heights up to `ctx.height − W − 1` of the settling block. A lease that ends
 * (end time, escrow exhausted, a provider's notice) is settled only when something touches it: the
 * next epoch start at the latest (up to an epoch later), or earlier when its renter closes it (any
 * time it likes) or someone opens a new lease on the chip. Every challenge of the chip between the
 * end and that moment decides how its last period is paid, though the lease no longer ran:
 * - a provider that powers its chip down when the lease is over has the renter refunded for time the
 *   chip answered every challenge of (the renter may even pick the moment: close right after a
 *   post-lease miss is decided);
 * - a provider whose chip missed challenges at the end of the lease gets them diluted by the answers
 *   its chip gives after the end.
 *
 * These tests state the intended rule (only challenges drawn while the lease ran are its business)
 * and FAILED on the code before the fix (branch leaseend): a lease is now settled and closed in the
 * first block at or after its end. Their precondition (challenges after the end that the old
 * settlement at the next epoch start decided) is counted up to that epoch start, whenever the
 * lease closes.
 * Run: npx tsc -b && node scripts/run-tests.mjs packages/core/dist/test/audchoice-lease-end.test.js
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  type Action,
  devSoftChipId,
  epochOf,
  epochStart,
  getChip,
  getLease,
  getOffer,
  getPociParams,
  type HeartbeatAnswer,
  hasProvenOnline,
  type Lease,
  LeaseStatus,
  leaseTermsDigest,
  leaseTermsOf,
  sha256,
  type TxEnvelope,
  type TxEvent,
  utf8,
} from '../src/index.js';
import {
  answer,
  genesis,
  heartbeatTx,
  key,
  miner,
  other,
  registerAction,
  slotsOf,
  TestChain,
} from './harness.js';

const UNC = 10n ** 18n;
const MINUTE = 60_000n;
const provider = miner;
const renter = other;
const chip = key('audchoice-lease-chip');
const chipId = devSoftChipId(chip.publicKey);

/** A chain whose chip answers every challenge of its class in the next block, unless `skip` says not. */
class LeaseChain extends TestChain {
  answered = new Set<string>();
  skip: (slotHeight: bigint) => boolean = () => false;

  override block(txs: TxEnvelope[] = []): TxEvent[] {
    const next = this.height + 1n;
    const p = getPociParams(this.state);
    const rec = getChip(this.state, chipId);
    const answers: HeartbeatAnswer[] = [];
    if (rec) {
      const e = epochOf(next, p);
      for (const epoch of [e - 1n, e]) {
        if (epoch < rec.firstEpoch) continue;
        slotsOf(this, chip, epoch).forEach((h, slot) => {
          const id = `${epoch}:${slot}`;
          if (h >= next || next > h + p.answerWindowBlocks || this.answered.has(id)) return;
          this.answered.add(id);
          if (!this.skip(h)) answers.push(answer(this, chip, epoch, slot));
        });
      }
    }
    if (answers.length === 0) return super.block(txs);
    const own = txs.filter((t) => Buffer.from(t.sender).equals(Buffer.from(provider.address))).length;
    const nonce = (this.nonces.get(Buffer.from(provider.address).toString('hex')) ?? 0n) + BigInt(own);
    return super.block([...txs, heartbeatTx(provider, nonce, answers, next + 50n)]);
  }
}

function offerAction(): Action {
  return {
    type: 'createOffer',
    chipIds: [chipId],
    pricePerHour: UNC,
    minHours: 1,
    maxHours: 10,
    noticeMs: 30n * MINUTE,
    endpoint: 'https://provider.example/api',
    attributes: { memoryMiB: 81_920, region: 'eu-west', runtimes: ['onnx'] },
    tlsFingerprints: [sha256(utf8('tls'))],
  } as Action;
}

interface Scenario {
  lease: Lease;
  /** The chip's challenges while the lease ran (heights in [start, end)), and of those answered. */
  inLease: number;
  inLeaseAnswered: number;
  /** Challenges after the end decided by the next epoch start (where the lease was settled before). */
  afterEndDecided: number;
}

/**
 * Opens a one-hour lease (60 blocks of a minute, 3 epochs of 20) that starts `offset` blocks after
 * an epoch start, so that it ends mid-epoch; `skip(h, endHeight)` says which challenges go
 * unanswered; runs until the lease is settled and closed by the chain itself (the epoch start).
 */
function scenario(offset: bigint, skip: (h: bigint, start: bigint, end: bigint) => boolean): Scenario {
  const chain = new LeaseChain(genesis());
  chain.step = () => MINUTE;
  const p = getPociParams(chain.state);
  chain.blocksUntil(2n);
  chain.block([chain.tx(provider, [registerAction(chain, chip, provider.address)])]);
  for (let i = 0; i < 400 && !hasProvenOnline(getChip(chain.state, chipId)!); i++) chain.block();
  const created = chain.block([chain.tx(provider, [offerAction()])]);
  const offerId = (created.find((x) => x.type === 'offerCreated') as { offerId: Uint8Array }).offerId;
  // The lease opens in a block `offset` after an epoch start.
  while ((chain.height + 1n - 1n) % p.epochBlocks !== offset) chain.block();
  const offer = getOffer(chain.state, offerId)!;
  const open = chain.tx(renter, [
    {
      type: 'openLease',
      offerId,
      chipId,
      hours: 1,
      deposit: 0n,
      maxPricePerHour: UNC,
      termsDigest: leaseTermsDigest(leaseTermsOf(chain.state, offer)),
    },
  ]);
  const opened = chain.block([open]).find((x) => x.type === 'leaseOpened') as { leaseId: Uint8Array };
  const leaseId = opened.leaseId;
  const start = chain.height;
  // Blocks are a minute apart: the block 60 after the opening is the first at or past the end time.
  const end = start + 60n;
  chain.skip = (h) => skip(h, start, end);
  // Before the fix the chain settled an ended lease at the next epoch start at the latest: run past
  // it, so that the challenges that settlement decided after the end exist whenever it closes now.
  const oldSettle = epochStart(epochOf(end, p) + 1n, p);
  let settledAt = 0n;
  for (let i = 0; i < 200 && (settledAt === 0n || chain.height < oldSettle); i++) {
    chain.block();
    if (settledAt === 0n && getLease(chain.state, leaseId)!.status === LeaseStatus.closed)
      settledAt = chain.height;
  }
  assert.ok(settledAt > 0n, 'the lease was closed by the chain');
  const lease = getLease(chain.state, leaseId)!;
  assert.equal(lease.endTime, lease.startTime + 60n * MINUTE);
  let inLease = 0;
  let inLeaseAnswered = 0;
  let afterEndDecided = 0;
  for (let e = epochOf(start, p); e <= epochOf(oldSettle, p); e++) {
    for (const h of slotsOf(chain, chip, e)) {
      if (h >= start && h < end) {
        inLease++;
        if (!skip(h, start, end)) inLeaseAnswered++;
      } else if (h >= end && h <= oldSettle - p.answerWindowBlocks - 1n) afterEndDecided++;
    }
  }
  return { lease, inLease, inLeaseAnswered, afterEndDecided };
}

/** The first offset (blocks after an epoch start) whose draws give `want` its precondition. */
function find(skip: Parameters<typeof scenario>[1], want: (s: Scenario) => boolean): Scenario {
  for (let offset = 1n; offset < 20n; offset++) {
    const s = scenario(offset, skip);
    if (want(s)) return s;
  }
  throw new Error('no offset gives the precondition');
}

describe('AUDIT: a lease’s last period is judged by challenges after its end', () => {
  test('a chip that answered every challenge of its lease, then powered down at the end: the renter is refunded', () => {
    // Honest provider: answers everything while leased, off once the lease is over.
    const s = find(
      (h, _start, end) => h >= end,
      (x) => x.afterEndDecided > 0 && x.inLease > 0,
    );
    console.log(
      `in lease: ${s.inLeaseAnswered}/${s.inLease} answered; decided after the end: ${s.afterEndDecided}; ` +
        `lease paid ${s.lease.paid}, refunded ${s.lease.refunded}, slots ${s.lease.slotsAnswered}/${s.lease.slotsMissed} (answered/missed)`,
    );
    assert.equal(s.inLeaseAnswered, s.inLease, 'precondition: every challenge of the lease answered');
    assert.equal(s.lease.slotsMissed, 0n, 'no challenge of the lease was missed');
    assert.equal(
      s.lease.refunded,
      0n,
      'the chip answered every challenge while leased: the provider is paid in full',
    );
  });

  test('a chip that missed challenges at the end of its lease has them diluted by answers given after it', () => {
    // The chip misses every challenge of the lease's last 15 blocks, and answers again after the end.
    const s = find(
      (h, _start, end) => h >= end - 15n && h < end,
      (x) => x.afterEndDecided > 0 && x.inLeaseAnswered < x.inLease,
    );
    console.log(
      `in lease: ${s.inLeaseAnswered}/${s.inLease} answered; decided after the end: ${s.afterEndDecided}; ` +
        `lease slots ${s.lease.slotsAnswered}/${s.lease.slotsMissed} (answered/missed), paid ${s.lease.paid}, refunded ${s.lease.refunded}`,
    );
    assert.equal(
      s.lease.slotsAnswered,
      BigInt(s.inLeaseAnswered),
      'only the challenges drawn while the lease ran are counted for it',
    );
  });
});
