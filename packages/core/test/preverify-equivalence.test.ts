/**
 * A node that pre-verified a block's signatures (node consensus/block-preverify.ts, on worker
 * threads) and a node that did not must commit exactly the same thing: the same transactions
 * accepted, the same errors, the same events and the same state writes. These tests run chains of
 * heartbeat blocks full of what an attacker would send (forged and malleated signatures, valid
 * signatures over another message or by another chip, answers repeated within a block and across
 * blocks) and execute every block twice from the same state: once checking every signature inline,
 * once with a set of remembered passes that holds everything a pre-verifier would have put there,
 * carried from block to block, plus genuine passes planted by the attacker for other messages and
 * other keys, in a set small enough to evict generations mid-run.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  type BlockContext,
  BlockExecutor,
  blockEventsCodec,
  devSoftChipId,
  type Ed25519Check,
  ed25519Sign,
  ed25519Verify,
  encode,
  type HeartbeatAnswer,
  heartbeatChallenge,
  heartbeatSignatureChecks,
  type StateWrite,
  sha256,
  type TxEnvelope,
  toHex,
  ValidationError,
  VerifiedSignatures,
} from '../src/index.js';
import {
  CHAIN,
  heartbeatTx,
  key,
  miner,
  other,
  POCI,
  registerAction,
  slotsOf,
  TestChain,
  validator,
} from './harness.js';

const CHIPS = 4;
/** Senders of heartbeat transactions (fee-free: they need no balance); one transaction each per block. */
const SENDERS = 4;
/** Blocks after the chips' first epoch begins: epochs 1 and 2 (epochBlocks 20), so epoch 1 becomes final. */
const BLOCKS = 36;

const KINDS = [
  'good',
  'forged',
  'malleated',
  'otherMessage',
  'otherChipKey',
  'otherChipAnswer',
  'duplicate',
] as const;
type Kind = (typeof KINDS)[number];

interface Op {
  chip: number;
  /** 0: the current epoch, 1: the one before. */
  back: number;
  slot: number;
  kind: Kind;
  /** Which of the block's transactions (one per sender) carries the answer. */
  tx: number;
  /** Which bit a forged signature has flipped. */
  bit: number;
}

const opArb: fc.Arbitrary<Op> = fc.record({
  chip: fc.integer({ min: 0, max: CHIPS - 1 }),
  back: fc.integer({ min: 0, max: 1 }),
  slot: fc.integer({ min: 0, max: 3 }),
  kind: fc.constantFrom(...KINDS),
  tx: fc.integer({ min: 0, max: SENDERS - 1 }),
  bit: fc.integer({ min: 0, max: 511 }),
});

/** L, the group order, little-endian: S + L is the malleated twin of a signature's S. */
const L = 2n ** 252n + 27742317777372353535851937790883648493n;
function malleate(signature: Uint8Array): Uint8Array {
  let s = 0n;
  for (let i = 63; i >= 32; i--) s = (s << 8n) | BigInt(signature[i]!);
  s += L;
  const out = Uint8Array.from(signature);
  for (let i = 32; i < 64; i++) {
    out[i] = Number(s & 0xffn);
    s >>= 8n;
  }
  return out;
}

function digestOfWrites(writes: StateWrite[]): string {
  return toHex(
    sha256(...writes.flatMap((w) => [w.key, Uint8Array.of(w.value ? 1 : 0), w.value ?? new Uint8Array(0)])),
  );
}

interface BlockOutcome {
  /** Per transaction: 'ok' or the error code. */
  verdicts: string[];
  events: string;
  writes: string;
  changes: StateWrite[];
  time: bigint;
}

function context(chain: TestChain): BlockContext {
  return {
    chainId: CHAIN,
    height: chain.height + 1n,
    time: chain.time + 1000n,
    proposer: validator.publicKey,
    prevHash: chain.hashOf(chain.height),
    prevBeacon: chain.beaconOf(chain.height),
    beacon: chain.beaconOf(chain.height + 1n),
  };
}

function execute(
  chain: TestChain,
  txs: readonly TxEnvelope[],
  isEd25519Verified?: (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array) => boolean,
): BlockOutcome {
  const ctx = context(chain);
  const ex = new BlockExecutor(chain.state, ctx, isEd25519Verified ? { isEd25519Verified } : {});
  const verdicts: string[] = [];
  const events = [...ex.blockEvents];
  for (const t of txs) {
    const r = ex.tryApply(t);
    if (r instanceof ValidationError) verdicts.push(r.code);
    else {
      verdicts.push('ok');
      events.push(...r.events);
    }
  }
  const changes = ex.finish().overlay.changes();
  return {
    verdicts,
    events: toHex(sha256(encode(blockEventsCodec, events))),
    writes: digestOfWrites(changes),
    changes,
    time: ctx.time,
  };
}

interface RunStats {
  accepted: number;
  rejected: number;
  /** Answers whose signature was not the chip's over its challenge, offered in some transaction. */
  hostile: number;
}

/**
 * Runs BLOCKS blocks of answers chosen by `blocks`, executing each block inline and with remembered
 * passes (`lying`: the set also vouches for what it never checked, to show the comparison can
 * fail). Throws on the first difference; returns what was exercised.
 */
function runBoth(blocks: Op[][], capacity: number, lying = false): RunStats {
  const chain = new TestChain();
  const senders = [
    miner,
    other,
    key('preverify-equivalence sender 2'),
    key('preverify-equivalence sender 3'),
  ];
  // Each sender answers for chips of its own (only a chip's owner may answer for it): CHIPS each,
  // registered by it once funded. A 'duplicate' may copy another sender's answer (refused either way).
  const chipsOf = senders.map((_, k) =>
    Array.from({ length: CHIPS }, (_, i) => key(`preverify-equivalence chip ${k}/${i}`)),
  );
  const idsOf = chipsOf.map((chips) => chips.map((c) => devSoftChipId(c.publicKey)));
  chain.block([
    chain.tx(
      miner,
      senders
        .slice(2)
        .map((s) => ({ type: 'transfer', to: s.address, amount: 10n ** 21n, memo: new Uint8Array() })),
    ),
  ]);
  chain.block(
    senders.map((s, k) =>
      chain.tx(
        s,
        chipsOf[k]!.map((c) => registerAction(chain, c, s.address)),
      ),
    ),
  );
  chain.blocksUntil(20n);
  const nonces = senders.map((s) => chain.nonces.get(Buffer.from(s.address).toString('hex')) ?? 0n);
  const passes = new VerifiedSignatures(capacity);
  const plant = (c: Ed25519Check) => {
    if (ed25519Verify(c.publicKey, c.message, c.signature)) passes.add(c);
  };
  const earlier: HeartbeatAnswer[] = [];
  const stats: RunStats = { accepted: 0, rejected: 0, hostile: 0 };

  for (const ops of blocks.slice(0, BLOCKS)) {
    const epoch = chain.height / 20n; // the epoch of the next block (epochStart(e) = 20e + 1)
    const groups: HeartbeatAnswer[][] = senders.map(() => []);
    for (const op of ops) {
      const chips = chipsOf[op.tx]!;
      const chipIds = idsOf[op.tx]!;
      const e = epoch - BigInt(op.back);
      const chip = chips[op.chip]!;
      const chipId = chipIds[op.chip]!;
      const heights = e >= 1n ? slotsOf(chain, chip, e) : [];
      // Mostly a challenge whose window is still open (so that good answers get in), else any.
      const open = heights.flatMap((h, i) => (h + POCI.answerWindowBlocks > chain.height ? [i] : []));
      const slot =
        open.length > 0 && op.bit % 4 !== 0
          ? open[op.slot % open.length]!
          : heights.length > 0
            ? op.slot % heights.length
            : op.slot;
      const slotHash = chain.hashOf(heights[slot] ?? chain.height);
      const challenge = heartbeatChallenge(CHAIN, chipId, slotHash);
      const good = ed25519Sign(chip.seed, challenge);
      let signature = good;
      switch (op.kind) {
        case 'good':
          break;
        case 'forged':
          signature = Uint8Array.from(good);
          signature[op.bit >> 3]! ^= 1 << (op.bit & 7);
          break;
        case 'malleated':
          signature = malleate(good);
          break;
        case 'otherMessage': {
          // The chip's valid signature over the challenge of another block: a genuine pass.
          const elsewhere = heartbeatChallenge(
            CHAIN,
            chipId,
            chain.hashOf(chain.height - 1n - BigInt(op.slot)),
          );
          signature = ed25519Sign(chip.seed, elsewhere);
          plant({ publicKey: chip.publicKey, message: elsewhere, signature });
          break;
        }
        case 'otherChipKey': {
          // Another chip's valid signature over this chip's challenge: a genuine pass under its key.
          const thief = chips[(op.chip + 1) % CHIPS]!;
          signature = ed25519Sign(thief.seed, challenge);
          plant({ publicKey: thief.publicKey, message: challenge, signature });
          break;
        }
        case 'otherChipAnswer': {
          // Another chip's own valid answer to its own challenge (same slot block), offered as this
          // chip's: a genuine pass under the other chip's key and challenge.
          const other = chips[(op.chip + 1) % CHIPS]!;
          const theirs = heartbeatChallenge(CHAIN, chipIds[(op.chip + 1) % CHIPS]!, slotHash);
          signature = ed25519Sign(other.seed, theirs);
          plant({ publicKey: other.publicKey, message: theirs, signature });
          break;
        }
        case 'duplicate': {
          const again = earlier[op.bit % Math.max(1, earlier.length)];
          if (again) {
            groups[op.tx]!.push(again);
            continue;
          }
          break;
        }
      }
      if (signature !== good) stats.hostile++;
      const answer: HeartbeatAnswer = {
        chipId,
        epoch: e < 0n ? 0n : e,
        slot,
        evidence: { type: 'dev-soft', signature },
      };
      groups[op.tx]!.push(answer);
      earlier.push(answer);
    }
    const txs: TxEnvelope[] = [];
    const senderOf: number[] = [];
    groups.forEach((answers, i) => {
      if (answers.length === 0) return;
      txs.push(heartbeatTx(senders[i]!, nonces[i]!, answers, chain.height + 50n));
      senderOf.push(i);
    });
    // What a pre-verifier puts in the set: every gathered answer check that passes (at the head).
    const head = {
      height: chain.height,
      hash: chain.hashOf(chain.height),
      beacon: chain.beaconOf(chain.height),
    };
    for (const t of txs) for (const c of heartbeatSignatureChecks(chain.state, CHAIN, t, head)) plant(c);

    const inline = execute(chain, txs);
    const remembered = execute(
      chain,
      txs,
      lying
        ? () => true
        : (publicKey, message, signature) => passes.isVerified(publicKey, message, signature),
    );
    console.log(chain.height, inline.verdicts.join(','), remembered.verdicts.join(','));
    assert.deepEqual(remembered.verdicts, inline.verdicts, `verdicts at height ${chain.height + 1n}`);
    assert.equal(remembered.events, inline.events, `events at height ${chain.height + 1n}`);
    assert.equal(remembered.writes, inline.writes, `state writes at height ${chain.height + 1n}`);

    chain.state.apply(inline.changes);
    chain.height += 1n;
    chain.time = inline.time;
    inline.verdicts.forEach((v, i) => {
      if (v === 'ok') {
        stats.accepted++;
        nonces[senderOf[i]!]! += 1n;
      } else stats.rejected++;
    });
  }
  return stats;
}

/** Every kind of answer in every block, the good one alone in its transaction. */
function fixedHostileBlocks(): Op[][] {
  return Array.from({ length: BLOCKS }, (_, b) =>
    KINDS.map((kind, i) => ({
      chip: (b + i) % CHIPS,
      back: (b + i) % 2,
      slot: i % 4,
      kind,
      // The good answer alone in its transaction (one bad answer refuses the whole of one).
      tx: kind === 'good' ? 0 : 1 + (i % (SENDERS - 1)),
      bit: b * 7 + i,
    })),
  );
}

describe('execution with and without pre-verified signatures', () => {
  test('property: the same verdicts, events and state writes, whatever the answers and the set of passes', () => {
    fc.assert(
      fc.property(
        fc.array(fc.array(opArb, { maxLength: 8 }), { minLength: BLOCKS, maxLength: BLOCKS }),
        fc.integer({ min: 2, max: 24 }),
        (blocks, capacity) => {
          runBoth(blocks, capacity);
        },
      ),
      { numRuns: 12 },
    );
  });

  test('a fixed hostile run exercises what the property claims (accepted, refused and hostile answers)', () => {
    const blocks = fixedHostileBlocks();
    const stats = runBoth(blocks, 6);
    assert.ok(stats.accepted > 5, `accepted ${stats.accepted}`);
    assert.ok(stats.rejected > 5, `rejected ${stats.rejected}`);
    assert.ok(stats.hostile > 50, `hostile ${stats.hostile}`);
  });

  test('the comparison can fail: a set that vouches for everything lets a forged answer in', () => {
    assert.throws(() => runBoth(fixedHostileBlocks(), 6, true), /verdicts at height/);
  });
});
