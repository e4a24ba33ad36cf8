import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type Action,
  type Block,
  blockChallengeClass,
  certificateFromVotes,
  chipClass,
  compareBytes,
  computeValidatorSet,
  consensusKeyMessage,
  DEV_SOFT_VENDOR,
  decode,
  devSoftChipId,
  ed25519PublicKey,
  ed25519Sign,
  encode,
  envelopeFromSigned,
  epochOf,
  fromHex,
  getEpochRecord,
  getPociParams,
  heartbeatChallenge,
  minimumFee,
  registrationMessage,
  StateSpace,
  signedTransactionCodec,
  signTransaction,
  signVote,
  struct,
  type TxEnvelope,
  taggedHash,
  toHex,
  u64,
  validatorListCodec,
} from '@unc/core';
import { Chain } from '../src/chain.js';
import { devChipKey, devGenesisJson, devKey, devValidator } from '../src/dev.js';
import { silentLogger } from '../src/log.js';
import { ChainDb, MemoryKv } from '../src/storage/db.js';

const EPOCH = 24n;
const genesis = devGenesisJson({ time: new Date('2026-03-01T00:00:00Z'), epochBlocks: Number(EPOCH) });

/** The stored set of `epoch` in the order it was ranked (the ring entry's bytes, not ValidatorSet's key order). */
function storedRanking(chain: Chain, epoch: bigint): string[] {
  const raw = chain.tipState.get(Uint8Array.of(StateSpace.validatorSets, 0x01, Number(epoch % 4n)));
  assert.ok(raw, `a stored set for epoch ${epoch}`);
  const stored = decode(struct('EpochValidators', { epoch: u64, validators: validatorListCodec }), raw);
  assert.equal(stored.epoch, epoch);
  return stored.validators.map((v) => toHex(v.publicKey));
}

test('the proposer and every validator break a boundary’s validator ties with the boundary block’s own beacon', async () => {
  // Two accounts with one A100 each, both answering every challenge, tie exactly. The set that the
  // epoch's last block computes ranks them by taggedHash('UNC/validator-tie', beacon ‖ key), the
  // beacon being that block's own VRF output: the proposer knows it from its VRF, a validator from
  // the header it verified. Were the two executions to use different values, their stored sets
  // (ranked lists) and state roots would differ and the follower would refuse the block.
  const open = () => Chain.open(ChainDb.over(new MemoryKv()), genesis, silentLogger);
  const proposer = await open();
  const follower = await open();
  const v = devValidator();
  const { chainId } = proposer.genesis;
  const p = getPociParams(proposer.tipState);
  const owners = [devKey(1), devKey(2)];
  const chips = [devChipKey(21), devChipKey(22)];
  const consensus = [devChipKey(31), devChipKey(32)];
  const nonces = owners.map(() => 0n);
  const tx = (i: number, actions: Action[], fee = true): TxEnvelope => {
    const base = {
      chainId,
      signer: owners[i]!.publicKey,
      nonce: nonces[i]!,
      expiresAt: proposer.height + 50n,
      actions,
      fee: 0n,
    };
    nonces[i]!++;
    const size = encode(signedTransactionCodec, { tx: base, signature: new Uint8Array(64) }).length;
    const f = fee ? minimumFee(proposer.params, size, actions.length) : 0n;
    return envelopeFromSigned(signTransaction({ ...base, fee: f }, owners[i]!.seed));
  };
  const blocks: Block[] = [];
  // Every block is decided by the whole set in force (the dev validator, then the two seated keys).
  const seeds = new Map([v, ...consensus].map((k) => [toHex(ed25519PublicKey(k.seed)), k.seed]));
  const step = async (txs: TxEnvelope[]) => {
    const set = proposer.validatorSet().validators.map((x) => seeds.get(toHex(x.publicKey))!);
    const lead = { seed: set[0]!, publicKey: ed25519PublicKey(set[0]!) };
    const time = proposer.nextBlockTime(proposer.genesis.genesisTime + (proposer.height + 1n) * 1000n);
    const { pending, rejected } = proposer.buildProposal(txs, time, lead, () => false);
    assert.deepEqual(
      rejected.map((r) => r.error.message),
      [],
    );
    const height = pending.block.header.height;
    const votes = set.map((seed) =>
      signVote(
        chainId,
        { type: 'precommit', height, round: 0, blockHash: pending.hash, validator: ed25519PublicKey(seed) },
        seed,
      ),
    );
    const committed = await proposer.commitDecided(pending, certificateFromVotes(votes));
    await follower.verifyAndCommit(committed.block);
    assert.equal(toHex(follower.tip.hash), toHex(proposer.tip.hash));
    blocks.push(committed.block);
  };

  await step([]);
  const anchor = proposer.tip;
  await step(
    owners.map((o, i) =>
      tx(i, [
        {
          type: 'registerChip',
          anchorHeight: anchor.header.height,
          evidence: {
            type: 'dev-soft',
            vendorId: DEV_SOFT_VENDOR,
            publicKey: chips[i]!.publicKey,
            modelId: 'sim-a100',
            signature: ed25519Sign(chips[i]!.seed, registrationMessage(chainId, o.address, anchor.hash)),
          },
        },
        {
          type: 'setConsensusKey',
          publicKey: consensus[i]!.publicKey,
          signature: ed25519Sign(consensus[i]!.seed, consensusKeyMessage(chainId, o.address)),
        },
        { type: 'bond', amount: 1_000n * 10n ** 18n },
      ]),
    ),
  );

  // Every chip answers each of its challenges in the block after it. At every boundary that seats
  // both, the stored ranking on both nodes is the one drawn from that block's beacon. Run until the
  // rankings seen tell that draw apart from the seeds a slip would use instead (the previous
  // block's beacon, the seed recorded for the ending epoch, no seed at all) and from key order.
  const ids = chips.map((c) => devSoftChipId(c.publicKey));
  const keys = consensus.map((c) => toHex(c.publicKey));
  const rankBy = (seed: Uint8Array | null) =>
    [...keys].sort((a, b) =>
      seed === null
        ? compareBytes(fromHex(a, 32), fromHex(b, 32))
        : compareBytes(
            taggedHash('UNC/validator-tie', seed, fromHex(a, 32)),
            taggedHash('UNC/validator-tie', seed, fromHex(b, 32)),
          ),
    );
  const toldApart = new Set<string>();
  let tiedBoundaries = 0;
  while (toldApart.size < 4 && proposer.height < 12n * EPOCH) {
    const head = blocks.at(-1)!.header;
    const epoch = epochOf(head.height, p);
    const heartbeats: TxEnvelope[] = [];
    ids.forEach((chipId, i) => {
      const cls = chipClass(chipId, p);
      // Chips registered in epoch 0 are challenged from epoch 1 on.
      if (epoch < 1n || blockChallengeClass(head.beacon, p) !== cls) return;
      const slot = blocks.filter(
        (b) => epochOf(b.header.height, p) === epoch && blockChallengeClass(b.header.beacon, p) === cls,
      ).length;
      const signature = ed25519Sign(chips[i]!.seed, heartbeatChallenge(chainId, chipId, proposer.tip.hash));
      const answers = [{ chipId, epoch, slot: slot - 1, evidence: { type: 'dev-soft' as const, signature } }];
      heartbeats.push(tx(i, [{ type: 'heartbeat', answers }], false));
    });
    await step(heartbeats);
    const boundary = blocks.at(-1)!.header;
    const h = boundary.height;
    if (h % EPOCH !== 0n) continue;
    const set = computeValidatorSet(proposer.tipState, h + 1n, boundary.beacon);
    if (set.length !== 2 || set[0]!.power !== set[1]!.power) continue;
    tiedBoundaries++;
    const expected = rankBy(boundary.beacon);
    const next = epochOf(h + 1n, p);
    assert.deepEqual(storedRanking(proposer, next), expected, `boundary ${h}`);
    assert.deepEqual(storedRanking(follower, next), expected, `boundary ${h}`);
    const slips = {
      previousBeacon: blocks.at(-2)!.header.beacon,
      epochRecordSeed: getEpochRecord(proposer.tipState, epochOf(h, p))!.seed,
      zeros: new Uint8Array(32),
      keyOrder: null,
    };
    for (const [name, seed] of Object.entries(slips))
      if (rankBy(seed).join() !== expected.join()) toldApart.add(name);
  }
  assert.equal(toldApart.size, 4, `${tiedBoundaries} tied boundaries told apart only ${[...toldApart]}`);
});
