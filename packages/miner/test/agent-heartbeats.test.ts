/**
 * How the miner agent gets a batch of answers on chain (agent/heartbeats.ts): a refused heartbeat
 * is rebuilt from the chain's view and the rest sent again at once, not on the next block's pass;
 * an answer due soon that a fee-free send did not get in goes again with the minimum fee, within
 * the operator's cap.
 *
 * The port here is a scripted stand-in for the node: a few chips with one open slot each, whose
 * `send` applies a heartbeat all or nothing the way core's applyHeartbeat does (any answer of a
 * slot answered already, of a chip no longer active, sinks the transaction) unless a test scripts
 * another outcome; heights move only when a test moves them. No wall clock.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync, sign } from 'node:crypto';
import {
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  ed25519PublicKey,
  ed25519Sign,
  fromHex,
  type HeartbeatAnswer,
  sha256,
  TPM_ALG,
  TPM_GENERATED_VALUE,
  toHex,
  utf8,
  ValidationError,
} from '@unc/core';
import type { ChipJson } from '@unc/sdk';
import fc from 'fast-check';
import { answersFor } from '../src/agent/agent.js';
import { openUrgentFeeBudget, saveUrgentFeeRecords } from '../src/agent/fee-budget-file.js';
import {
  type AnswerItem,
  checkOwnAnswer,
  deliverAnswers,
  type FeePolicy,
  type HeartbeatPort,
  MAX_SENDS_PER_PASS,
  refusalNames,
  type SendOutcome,
  stillOpen,
  UrgentFeeBudget,
} from '../src/agent/heartbeats.js';

const MIN_FEE = 300_000_000_000_000n;
const NO_FEE: FeePolicy = { maxFee: 0n, urgentBlocks: 3 };
const FEE: FeePolicy = { maxFee: 10n ** 15n, urgentBlocks: 3 };

function chipHex(i: number): string {
  return (i + 1).toString(16).padStart(2, '0').repeat(32);
}

function where(chip: string, epoch = 0, slot = 0): string {
  return `chip ${chip.slice(0, 16)}… epoch ${epoch} slot ${slot}`;
}

interface Sent {
  chips: string[];
  fee: bigint;
  waitUntil: number;
}

/** A node of `n` chips, each with slot 0 of epoch 0 open until `windowEnd`, at height `head`. */
function fakeNode(n: number, opts: { head?: number; windowEnd?: number; balance?: bigint } = {}) {
  const windowEnd = opts.windowEnd ?? 20;
  const chips = new Map<string, ChipJson>();
  for (let i = 0; i < n; i++) {
    const chipId = chipHex(i);
    chips.set(chipId, {
      chipId,
      status: 'active',
      statusReason: '',
      slots: [{ epoch: 0, slot: 0, height: windowEnd - 20, status: 'open', windowEnd }],
    } as unknown as ChipJson);
  }
  const node = {
    head: opts.head ?? 1,
    chips,
    sent: [] as Sent[],
    /** Scripted outcome of the next sends (null: apply as core would). */
    script: [] as ((answers: HeartbeatAnswer[]) => SendOutcome | null)[],
    slotOf: (id: string) => chips.get(id)!.slots[0]!,
  };
  const port: HeartbeatPort = {
    head: () => node.head,
    async send(answers, fee, waitUntil) {
      const ids = answers.map((a) => toHex(a.chipId));
      node.sent.push({ chips: ids, fee, waitUntil });
      const scripted = node.script.shift()?.(answers);
      if (scripted) return scripted;
      for (const id of ids) {
        const chip = chips.get(id)!;
        const answer = { chipId: id, epoch: 0, slot: 0 };
        if (chip.status !== 'active')
          return { ok: false, reason: `CHIP_INACTIVE: ${where(id)}: chip is ${chip.status}`, answer };
        if (node.slotOf(id).status === 'answered')
          return { ok: false, reason: `ANSWER_REPLAYED: ${where(id)}: already answered`, answer };
      }
      node.head++;
      for (const id of ids) node.slotOf(id).status = 'answered';
      return { ok: true, height: node.head };
    },
    async chips(ids) {
      return new Map(ids.map((id) => [id, structuredClone(chips.get(id) ?? null)]));
    },
    async minimumFee() {
      return MIN_FEE;
    },
    async balance() {
      return opts.balance ?? 10n ** 18n;
    },
  };
  return { node, port };
}

function items(n: number, opts: { windowEnd?: number; triedBefore?: boolean } = {}): AnswerItem[] {
  return Array.from({ length: n }, (_, i) => ({
    chipIdHex: chipHex(i),
    epoch: 0,
    slot: 0,
    windowEnd: opts.windowEnd ?? 20,
    answer: {
      chipId: fromHex(chipHex(i), 32),
      epoch: 0n,
      slot: 0,
      evidence: { type: 'dev-soft', signature: new Uint8Array(64) },
    } as HeartbeatAnswer,
    triedBefore: opts.triedBefore ?? false,
  }));
}

test('an answer copied out of the batch and landed first by another sender: the rest go again at once, in the same pass', async () => {
  const { node, port } = fakeNode(3);
  const copied = chipHex(1);
  // The copy lands in the block before the agent's: its heartbeat fails ANSWER_REPLAYED.
  node.script.push(() => {
    node.slotOf(copied).status = 'answered';
    return null;
  });
  const settled = await deliverAnswers(items(3), port, NO_FEE);
  assert.deepEqual(
    node.sent.map((s) => s.chips),
    [
      [chipHex(0), chipHex(1), chipHex(2)],
      [chipHex(0), chipHex(2)],
    ],
    'sent again without the credited answer, before any further pass',
  );
  assert.equal(settled.length, 3);
  assert.ok(
    settled.every((s) => s.included),
    'the copied answer counts for the chip all the same',
  );
  for (let i = 0; i < 3; i++) assert.equal(node.slotOf(chipHex(i)).status, 'answered');
});

test('a chip revoked mid-batch does not sink the others: its answer is dropped and the rest go again', async () => {
  const { node, port } = fakeNode(3);
  const revoked = chipHex(2);
  node.script.push(() => {
    node.chips.get(revoked)!.status = 'revoked';
    return null;
  });
  const settled = await deliverAnswers(items(3), port, NO_FEE);
  assert.deepEqual(node.sent[1]!.chips, [chipHex(0), chipHex(1)]);
  const byChip = new Map(settled.map((s) => [s.item.chipIdHex, s]));
  assert.equal(byChip.get(revoked)!.included, false);
  assert.match(byChip.get(revoked)!.result, /revoked/);
  assert.equal(byChip.get(chipHex(0))!.included, true);
  assert.equal(byChip.get(chipHex(1))!.included, true);
});

test('chips sold mid-pass (several at once): every chip the view gives another owner is dropped at the first refusal, not one per send until the pass runs out of sends', async () => {
  const { node, port } = fakeNode(6);
  const me = 'unc1me';
  port.owner = me;
  for (const chip of node.chips.values()) (chip as { owner: string }).owner = me;
  const sold = [0, 1, 2, 3].map(chipHex);
  // As core: the first answer of a chip not the sender's sinks the heartbeat, named (NOT_CHIP_OWNER).
  const asCore = (answers: HeartbeatAnswer[]): SendOutcome | null => {
    const id = answers
      .map((a) => toHex(a.chipId))
      .find((c) => (node.chips.get(c) as { owner: string }).owner !== me);
    return id === undefined
      ? null
      : {
          ok: false,
          reason: `NOT_CHIP_OWNER: ${where(id)}: not the owner`,
          answer: { chipId: id, epoch: 0, slot: 0 },
        };
  };
  node.script.push((answers) => {
    for (const id of sold) (node.chips.get(id) as { owner: string }).owner = 'unc1buyer';
    return asCore(answers);
  });
  for (let i = 1; i < MAX_SENDS_PER_PASS; i++) node.script.push(asCore);
  const settled = await deliverAnswers(items(6), port, NO_FEE);
  assert.equal(node.sent.length, 2, 'one resend');
  assert.deepEqual(node.sent[1]!.chips, [chipHex(4), chipHex(5)]);
  const byChip = new Map(settled.map((s) => [s.item.chipIdHex, s]));
  for (const id of sold) {
    assert.equal(byChip.get(id)!.included, false);
    assert.match(byChip.get(id)!.result, /owned by unc1buyer|NOT_CHIP_OWNER/);
  }
  assert.equal(byChip.get(chipHex(4))!.included, true);
  assert.equal(byChip.get(chipHex(5))!.included, true);
});

test("an agent on the owner's heartbeat operator key (unc miner start --operator-for): a refusal drops only the chips whose owner no longer names it, the owner's other chips go again from the operator", async () => {
  const { node, port } = fakeNode(6);
  const hot = 'unc1hot';
  port.owner = hot;
  const view = (id: string) => node.chips.get(id) as { owner: string; heartbeatOperator?: string | null };
  for (const id of node.chips.keys()) Object.assign(view(id), { owner: 'unc1owner', heartbeatOperator: hot });
  assert.ok(answersFor(view(chipHex(0)) as Parameters<typeof answersFor>[0], hot));
  const removed = [0, 1].map(chipHex);
  // As core: the first answer of a chip neither the sender's nor its owner's operator's sinks it.
  const asCore = (answers: HeartbeatAnswer[]): SendOutcome | null => {
    const id = answers.map((a) => toHex(a.chipId)).find((c) => view(c).heartbeatOperator !== hot);
    return id === undefined
      ? null
      : {
          ok: false,
          reason: `NOT_CHIP_OWNER: ${where(id)}: not the owner`,
          answer: { chipId: id, epoch: 0, slot: 0 },
        };
  };
  node.script.push((answers) => {
    // Those two chips' owner named another operator meanwhile (say, after a key rotation).
    for (const id of removed) view(id).heartbeatOperator = 'unc1other';
    return asCore(answers);
  });
  for (let i = 1; i < MAX_SENDS_PER_PASS; i++) node.script.push(asCore);
  const settled = await deliverAnswers(items(6), port, NO_FEE);
  assert.equal(node.sent.length, 2, 'one resend');
  assert.deepEqual(node.sent[1]!.chips, [2, 3, 4, 5].map(chipHex));
  const byChip = new Map(settled.map((s) => [s.item.chipIdHex, s]));
  for (const id of removed) assert.match(byChip.get(id)!.result, /heartbeat operator is unc1other/);
  assert.equal(settled.filter((s) => s.included).length, 4);
  assert.equal(answersFor({ owner: 'unc1owner', heartbeatOperator: null }, hot), false);
  assert.equal(answersFor({ owner: hot }, hot), true);
});

test('an answer the refusal names (a bad signature the state cannot show, a copy still pending) is dropped, the rest go again', async () => {
  const { node, port } = fakeNode(3);
  const bad = chipHex(0);
  node.script.push(() => ({
    ok: false,
    reason: `ALREADY_PENDING: heartbeat of ${where(bad)} is already in a pending transaction`,
    answer: { chipId: bad, epoch: 0, slot: 0 },
  }));
  const settled = await deliverAnswers(items(3), port, NO_FEE);
  assert.deepEqual(node.sent[1]!.chips, [chipHex(1), chipHex(2)]);
  assert.equal(settled.find((s) => s.item.chipIdHex === bad)!.included, false);
  assert.equal(settled.filter((s) => s.included).length, 2);
});

// The answer a refusal names is read from its structured `answer` (the node's error.data.answer),
// not from the message's words: before, a message worded otherwise than core's did then silently
// named nothing, and the whole batch failed (the other answers waited for the next pass).
test('the answer a refusal names is told by its structured answer, whatever the message says', async () => {
  const { node, port } = fakeNode(3);
  const bad = chipHex(0);
  node.script.push(() => ({
    ok: false,
    reason: 'ALREADY_PENDING: this answer is in another pending transaction (worded anew)',
    answer: { chipId: bad, epoch: 0, slot: 0 },
  }));
  const settled = await deliverAnswers(items(3), port, NO_FEE);
  assert.deepEqual(node.sent[1]!.chips, [chipHex(1), chipHex(2)]);
  assert.equal(settled.find((s) => s.item.chipIdHex === bad)!.included, false);
  assert.equal(settled.filter((s) => s.included).length, 2);
  // A message that names an answer in words but carries no structured one names nothing.
  const again = fakeNode(2);
  again.node.script.push(() => ({
    ok: false,
    reason: `ALREADY_PENDING: heartbeat of ${where(chipHex(0))} is already in a pending transaction`,
  }));
  const failed = await deliverAnswers(items(2), again.port, NO_FEE);
  assert.equal(again.node.sent.length, 1, 'nothing settled: the same batch would fare the same');
  assert.ok(failed.every((s) => !s.included));
});

test('a refusal naming a chip’s slot 12 does not drop its answer to slot 1 (the name is the whole slot number)', () => {
  const chip = chipHex(0);
  const answer = (slot: number): AnswerItem => ({ ...items(1)[0]!, slot });
  const reason = `ALREADY_PENDING: heartbeat of ${where(chip, 0, 12)} is already in a pending transaction`;
  const named = (slot: number) => ({ chipId: chip, epoch: 0, slot });
  assert.equal(refusalNames(named(12), answer(12)), true);
  assert.equal(refusalNames(named(12), answer(1)), false);
  assert.equal(refusalNames(named(1), answer(1)), true);
  assert.equal(refusalNames({ chipId: chip, epoch: 1, slot: 1 }, answer(1)), false);
  assert.equal(refusalNames(undefined, answer(1)), false);
  // Both open on chain: only the named one is settled, the other goes again.
  const view = {
    chipId: chip,
    status: 'active',
    statusReason: '',
    slots: [1, 12].map((slot) => ({ epoch: 0, slot, height: 0, status: 'open', windowEnd: 20 })),
  } as unknown as ChipJson;
  const { keep, done } = stillOpen([answer(1), answer(12)], new Map([[chip, view]]), {
    reason,
    answer: named(12),
  });
  assert.deepEqual(
    keep.map((i) => i.slot),
    [1],
  );
  assert.deepEqual(
    done.map((s) => s.item.slot),
    [12],
  );
});

test('an answer whose window closed by the head (the pass took blocks to sign) is left out: it would sink the whole heartbeat', async () => {
  const { node, port } = fakeNode(3, { head: 12 });
  const its = items(3);
  its[1]!.windowEnd = 12; // listed open at the pass's start, closed now: the next block is 13
  const settled = await deliverAnswers(its, port, NO_FEE);
  assert.deepEqual(
    node.sent.map((s) => s.chips),
    [[chipHex(0), chipHex(2)]],
  );
  const late = settled.find((s) => s.item.chipIdHex === chipHex(1))!;
  assert.equal(late.included, false);
  assert.match(late.result, /window closed at height 12/);
  assert.equal(settled.filter((s) => s.included).length, 2);
  // Nothing left open: nothing sent.
  const alone = fakeNode(1, { head: 30 });
  const [one] = await deliverAnswers(items(1), alone.port, FEE);
  assert.equal(alone.node.sent.length, 0);
  assert.equal(one!.included, false);
});

test('a refusal that settles nothing and leaves no fee to add is not resent at once: the next pass tries again', async () => {
  const { node, port } = fakeNode(2);
  node.script.push(() => ({ ok: false, reason: 'BUSY: the node is behind its peers' }));
  const its = items(2);
  const settled = await deliverAnswers(its, port, NO_FEE);
  assert.equal(node.sent.length, 1);
  assert.ok(settled.every((s) => !s.included && s.result.startsWith('BUSY')));
  assert.ok(
    its.every((i) => i.triedBefore),
    'marked tried: the next pass may pay for them',
  );
});

test('a pass sends at most MAX_SENDS_PER_PASS times, each answer settled once', async () => {
  const { node, port } = fakeNode(8);
  // Every send sees another answer copied first.
  let next = 0;
  for (let i = 0; i < 8; i++)
    node.script.push(() => {
      node.slotOf(chipHex(next++)).status = 'answered';
      return null;
    });
  const settled = await deliverAnswers(items(8), port, NO_FEE);
  assert.equal(node.sent.length, MAX_SENDS_PER_PASS);
  assert.equal(new Set(settled.map((s) => s.item.chipIdHex)).size, 8);
  assert.equal(settled.length, 8);
});

test('fee-free first; an answer due within urgentBlocks that the fee-free send did not get in goes with the minimum fee, replacing it', async () => {
  // Window closes at 20; head 5. The fee-free send waits until the answers turn urgent (17).
  const { node, port } = fakeNode(2, { head: 5 });
  node.script.push(() => {
    node.head = 17; // blocks went by without it (the fee-free reserve outcompeted)
    return { ok: false, reason: 'NOT_INCLUDED: not included by height 17' };
  });
  const settled = await deliverAnswers(items(2), port, FEE);
  assert.deepEqual(
    node.sent.map((s) => [s.fee, s.waitUntil]),
    [
      [0n, 17],
      [MIN_FEE, 20],
    ],
  );
  assert.ok(settled.every((s) => s.included));
});

test('an answer tried before and due soon pays from the first send of the pass', async () => {
  const { node, port } = fakeNode(1, { head: 18 });
  await deliverAnswers(items(1, { triedBefore: true }), port, FEE);
  assert.equal(node.sent[0]!.fee, MIN_FEE);
});

test('no fee beyond the cap, without the balance, with the cap at 0, or for answers not yet tried or not due soon', async () => {
  const cases: { policy: FeePolicy; balance?: bigint; head: number; tried: boolean }[] = [
    { policy: NO_FEE, head: 18, tried: true },
    { policy: { maxFee: MIN_FEE - 1n, urgentBlocks: 3 }, head: 18, tried: true },
    { policy: FEE, balance: MIN_FEE - 1n, head: 18, tried: true },
    { policy: FEE, head: 18, tried: false },
    { policy: FEE, head: 10, tried: true },
  ];
  for (const c of cases) {
    const { node, port } = fakeNode(1, {
      head: c.head,
      ...(c.balance === undefined ? {} : { balance: c.balance }),
    });
    await deliverAnswers(items(1, { triedBefore: c.tried }), port, c.policy);
    assert.equal(
      node.sent[0]!.fee,
      0n,
      JSON.stringify({ ...c, policy: String(c.policy.maxFee) }, (_, v) =>
        typeof v === 'bigint' ? String(v) : v,
      ),
    );
  }
});

test('property: whatever lands first, each answer is settled exactly once, never paying over the cap, within the send bound', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 8 }),
      fc.array(fc.record({ copy: fc.nat(7), revoke: fc.boolean(), busy: fc.boolean() }), { maxLength: 6 }),
      fc.integer({ min: 1, max: 20 }),
      fc.bigInt({ min: 0n, max: 2n * MIN_FEE }),
      async (n, events, head, maxFee) => {
        const { node, port } = fakeNode(n, { head });
        for (const e of events)
          node.script.push(() => {
            const id = chipHex(e.copy % n);
            if (e.revoke) node.chips.get(id)!.status = 'revoked';
            else node.slotOf(id).status = 'answered';
            return e.busy ? { ok: false, reason: 'BUSY: retry' } : null;
          });
        const settled = await deliverAnswers(items(n, { triedBefore: head % 2 === 0 }), port, {
          maxFee,
          urgentBlocks: 3,
        });
        assert.equal(settled.length, n);
        assert.equal(new Set(settled.map((s) => s.item.chipIdHex)).size, n);
        assert.ok(node.sent.length <= MAX_SENDS_PER_PASS);
        for (const s of node.sent) assert.ok(s.fee <= maxFee);
        // An answer reported included is credited on chain.
        for (const s of settled)
          if (s.included) assert.equal(node.slotOf(s.item.chipIdHex).status, 'answered');
      },
    ),
    { seed: 20261206, numRuns: 200 },
  );
});

test('the agent checks its own answers before batching them: one the chain would refuse (wrong key, another profile) is caught, a good one passes', () => {
  // Core names no chip when an answer's signature fails: in a batch it would sink every answer
  // with no way to tell which to leave out. The agent leaves that chip out of the pass instead.
  const seed = sha256(utf8('chip key'));
  const view = {
    chipId: chipHex(0),
    profile: 'dev-soft',
    keyMaterial: toHex(ed25519PublicKey(seed)),
    tpmClock: null,
  } as unknown as ChipJson;
  const challenge = sha256(utf8('challenge'));
  checkOwnAnswer(view, challenge, { type: 'dev-soft', signature: ed25519Sign(seed, challenge) });
  const refused = (fn: () => void, code: string) =>
    assert.throws(fn, (err) => err instanceof ValidationError && err.code === code);
  // Signed by a key other than the registered one (a chip swapped, a signer misconfigured).
  refused(
    () =>
      checkOwnAnswer(view, challenge, {
        type: 'dev-soft',
        signature: ed25519Sign(sha256(utf8('another key')), challenge),
      }),
    'ATTEST_BAD_SIGNATURE',
  );
  // Over another challenge.
  refused(
    () =>
      checkOwnAnswer(view, challenge, {
        type: 'dev-soft',
        signature: ed25519Sign(seed, sha256(utf8('another challenge'))),
      }),
    'ATTEST_BAD_SIGNATURE',
  );
  refused(
    () =>
      checkOwnAnswer({ ...view, profile: 'tpm2' }, challenge, {
        type: 'dev-soft',
        signature: ed25519Sign(seed, challenge),
      }),
    'ATTEST_WRONG_PROFILE',
  );
  // A view without the key (an older node) checks nothing.
  const { keyMaterial: _, ...withoutKey } = view;
  checkOwnAnswer(withoutKey as ChipJson, challenge, { type: 'dev-soft', signature: new Uint8Array(64) });
});

test('the agent’s own check refuses a TPM answer whose clock is behind the one on chain, as core does, and lets through what core takes (same clock, a later reset)', () => {
  // A TPMS_ATTEST of type TPM_ST_ATTEST_TIME over `challenge` with the given clock, signed by a
  // P-256 AK, as a TPM makes it (the shape core's own TPM clock test builds).
  const ak = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const challenge = sha256(utf8('challenge'));
  const answerAt = (clock: bigint, resetCount: number, restartCount = 0) => {
    const b = Buffer.alloc(4 + 2 + 2 + 2 + challenge.length + 17 + 8 + 8 + 17 + 8);
    let o = b.writeUInt32BE(TPM_GENERATED_VALUE, 0);
    o = b.writeUInt16BE(0x8019, o);
    o = b.writeUInt16BE(0, o);
    o = b.writeUInt16BE(challenge.length, o);
    b.set(challenge, o);
    o += challenge.length;
    for (let k = 0; k < 2; k++) {
      if (k === 1) o = b.writeBigUInt64BE(123456n, o);
      o = b.writeBigUInt64BE(clock, o);
      o = b.writeUInt32BE(resetCount, o);
      o = b.writeUInt32BE(restartCount, o);
      o = b.writeUInt8(1, o);
      o = b.writeBigUInt64BE(0x2019102300163636n, o);
    }
    const attest = new Uint8Array(b);
    const raw = new Uint8Array(sign('sha256', attest, { key: ak.privateKey, dsaEncoding: 'ieee-p1363' }));
    const sig = Buffer.alloc(4 + 2 + 32 + 2 + 32);
    o = sig.writeUInt16BE(TPM_ALG.ECDSA, 0);
    o = sig.writeUInt16BE(TPM_ALG.SHA256, o);
    o = sig.writeUInt16BE(32, o);
    sig.set(raw.subarray(0, 32), o);
    o = sig.writeUInt16BE(32, o + 32);
    sig.set(raw.subarray(32), o);
    return { type: 'tpm2' as const, attest, signature: new Uint8Array(sig) };
  };
  // The chip's last heartbeat on chain read clock 1000 in its second reset (JSON: clock a string).
  const view = {
    chipId: chipHex(0),
    profile: 'tpm2',
    keyMaterial: toHex(new Uint8Array(ak.publicKey.export({ type: 'spki', format: 'der' }))),
    tpmClock: { clock: '1000', resetCount: 2, restartCount: 0 },
  } as unknown as ChipJson;
  const backwards = (clock: bigint, resetCount: number) =>
    assert.throws(
      () => checkOwnAnswer(view, challenge, answerAt(clock, resetCount)),
      (err) => err instanceof ValidationError && err.code === 'TPM_CLOCK_BACKWARDS',
      `clock ${clock} reset ${resetCount}`,
    );
  backwards(999n, 2);
  backwards(5000n, 1);
  checkOwnAnswer(view, challenge, answerAt(1000n, 2));
  checkOwnAnswer(view, challenge, answerAt(1500n, 2));
  checkOwnAnswer(view, challenge, answerAt(10n, 3));
  // No clock on chain yet: any clock goes.
  checkOwnAnswer({ ...view, tpmClock: null }, challenge, answerAt(1n, 0));
  // Within one reset the restartCount never goes back either (core checkTpmClockMonotonic): a TPM
  // restored to an earlier state. Before, the agent's own copy of the rule let it through, and the
  // chain refused the whole batch it was in.
  const restarted = {
    ...view,
    tpmClock: { clock: '1000', resetCount: 2, restartCount: 3 },
  } as unknown as ChipJson;
  assert.throws(
    () => checkOwnAnswer(restarted, challenge, answerAt(1500n, 2, 2)),
    (err) => err instanceof ValidationError && err.code === 'TPM_CLOCK_BACKWARDS',
  );
  checkOwnAnswer(restarted, challenge, answerAt(1500n, 2, 3));
  checkOwnAnswer(restarted, challenge, answerAt(1500n, 2, 4));
  checkOwnAnswer(restarted, challenge, answerAt(10n, 3, 0));
});

/** The agent's clock in these tests: set by hand, never the wall clock. */
const HOUR = 3_600_000;
function clock(start = 1_800_000_000_000) {
  const c = { t: start, now: () => c.t };
  return c;
}

// maxFee bounds one heartbeat only. A relay that lands a copy of each answer first, every slot,
// makes every answer go unincluded fee-free, turn urgent and go again paying: before, up to
// maxFee for each of a chip's answers, all day. The budget caps what a chip's urgent fees cost per
// hour of the agent's clock; past it the answers still go, fee-free.
test('urgent fees stop at the chip’s budget for the hour, however often an attacker forces them; an hour later it is back', async () => {
  const c = clock();
  const budget = new UrgentFeeBudget(2n * MIN_FEE, { now: c.now });
  const policy: FeePolicy = { ...FEE, budget };
  const fees: bigint[] = [];
  // Four slots, each urgent on its pass (tried before, two blocks to its window's end), ten
  // minutes apart; the relay makes every send fail, so each pass would pay if it may.
  for (let slot = 0; slot < 4; slot++) {
    const { node, port } = fakeNode(1, { head: 18 });
    node.script.push(() => ({ ok: false, reason: 'NOT_INCLUDED: not included by height 20' }));
    const its = items(1, { triedBefore: true }).map((i) => ({ ...i, slot }));
    await deliverAnswers(its, port, policy);
    fees.push(...node.sent.map((s) => s.fee));
    c.t += HOUR / 6;
  }
  assert.deepEqual(fees, [MIN_FEE, MIN_FEE, 0n, 0n], 'two fees in the hour, then fee-free');
  assert.equal(budget.left(chipHex(0)), 0n);
  // The first fee is an hour old now, the second not yet.
  c.t = clock().t + HOUR;
  assert.equal(budget.left(chipHex(0)), MIN_FEE);
  c.t += HOUR / 6;
  assert.equal(budget.left(chipHex(0)), 2n * MIN_FEE, 'an hour after the last fee, the whole budget');
});

test('a chip out of budget does not stop the fee another urgent chip of the batch may pay', async () => {
  const c = clock();
  const budget = new UrgentFeeBudget(MIN_FEE, { now: c.now });
  budget.charge(chipHex(0), MIN_FEE);
  const { node, port } = fakeNode(2, { head: 18 });
  await deliverAnswers(items(2, { triedBefore: true }), port, { ...FEE, budget });
  assert.equal(node.sent[0]!.fee, MIN_FEE);
  assert.equal(budget.left(chipHex(1)), 0n, 'charged to the chip it was paid for');
  assert.equal(budget.left(chipHex(0)), 0n);
});

// A hostile node showed a made-up slot at a far epoch (1e9) beside the chip's real urgent one:
// both were sent paying, charged at epoch E then F (F's charge pruned E's), the chain refused the
// batch naming the made-up answer, and the real one went again paying, E looking unspent: some 4×
// the budget an epoch. Spending is now counted by the agent's own clock, whatever epochs the node
// names, and once per chip for a transaction however many of its answers it carries.
test('a made-up slot at a far epoch beside the real urgent one does not let a chip pay past its budget', async () => {
  const budget = new UrgentFeeBudget(MIN_FEE, { now: clock().now });
  const policy: FeePolicy = { ...FEE, budget };
  const FAR = 1_000_000_000;
  const fees: bigint[] = [];
  for (let pass = 0; pass < 4; pass++) {
    const { node, port } = fakeNode(1, { head: 18 });
    const view = node.chips.get(chipHex(0))!;
    view.slots.push({
      epoch: FAR,
      slot: 0,
      height: 0,
      status: 'open',
      windowEnd: 20,
    } as (typeof view.slots)[0]);
    // The batch with the made-up answer is refused naming it; the real one alone is kept out.
    const refuse = (answers: HeartbeatAnswer[]): SendOutcome =>
      answers.some((a) => a.epoch === BigInt(FAR))
        ? {
            ok: false,
            reason: 'SLOT_NOT_OPEN: no such slot',
            answer: { chipId: chipHex(0), epoch: FAR, slot: 0 },
          }
        : { ok: false, reason: 'NOT_INCLUDED: not included by height 20' };
    node.script.push(refuse, refuse, refuse, refuse);
    const real = items(1, { triedBefore: true })[0]!;
    const fake: AnswerItem = { ...real, epoch: FAR, answer: { ...real.answer, epoch: BigInt(FAR) } };
    await deliverAnswers(
      [{ ...real, slot: pass, answer: { ...real.answer, slot: pass } }, fake],
      port,
      policy,
    );
    fees.push(...node.sent.map((s) => s.fee));
  }
  assert.equal(
    fees.reduce((a, b) => a + b, 0n),
    MIN_FEE,
    'one fee over four passes: the budget, not a multiple of it',
  );
  assert.equal(budget.left(chipHex(0)), 0n, 'the one fee charged once, not once per answer');
});

// The wall clock is the operator's to set, and it may be set back (by hand, NTP, a bad RTC).
// Spending recorded "in the future" is not forgotten: it counts as spent at the time the clock
// reads now, for a whole hour from then, so setting the clock back never renews the budget early.
test('a clock set back does not give the budget back: spending in the future counts for an hour from now', async () => {
  await withHome(async (path) => {
    const c = clock();
    const warnings: string[] = [];
    const budget = openUrgentFeeBudget(path, 'unc-test', MIN_FEE, (m) => warnings.push(m), c.now);
    assert.deepEqual(await urgentPass(budget, 0), [MIN_FEE]);
    const spentAt = c.t;
    c.t = spentAt - 2 * HOUR;
    assert.equal(budget.left(chipHex(0)), 0n, 'set back two hours: still spent');
    assert.deepEqual(await urgentPass(budget, 1), [0n]);
    // A restart with the clock still behind reads the record as spent too.
    const again = openUrgentFeeBudget(path, 'unc-test', MIN_FEE, (m) => warnings.push(m), c.now);
    c.t += HOUR - 1;
    assert.equal(again.left(chipHex(0)), 0n, 'within the hour from the clock’s new reading');
    assert.equal(budget.left(chipHex(0)), 0n);
    c.t += 1;
    assert.equal(again.left(chipHex(0)), MIN_FEE, 'an hour of the clock as it runs now, then back');
    assert.equal(warnings.length, 0);
  });
});

// Charges are the agent's and only the agent's clock moves them: whatever the order of charges,
// with a clock that only goes forward no hour ever holds more charges than the budget.
test('property: with a clock that goes forward, no hour holds more urgent fees than the budget', () => {
  fc.assert(
    fc.property(
      fc.array(fc.record({ dt: fc.integer({ min: 0, max: HOUR / 2 }), chip: fc.nat(2), fee: fc.nat(5) }), {
        maxLength: 60,
      }),
      (steps) => {
        const c = clock(0);
        const budget = new UrgentFeeBudget(10n, { now: c.now });
        const paid: { t: number; chip: number; fee: bigint }[] = [];
        for (const s of steps) {
          c.t += s.dt;
          const fee = BigInt(s.fee + 1);
          if (budget.left(chipHex(s.chip)) >= fee) {
            budget.charge(chipHex(s.chip), fee);
            paid.push({ t: c.t, chip: s.chip, fee });
          }
        }
        for (const p of paid)
          for (let chip = 0; chip < 3; chip++) {
            const inHour = paid
              .filter((q) => q.chip === chip && q.t >= p.t && q.t < p.t + HOUR)
              .reduce((a, q) => a + q.fee, 0n);
            assert.ok(inHour <= 10n, `chip ${chip} paid ${inHour} in the hour from ${p.t}`);
          }
      },
    ),
  );
});

/** A scratch home for one test's urgent-fee record, removed after it. */
function withHome(run: (path: string, dir: string) => Promise<void> | void): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'unc-miner-fees-'));
  return Promise.resolve()
    .then(() => run(join(dir, 'urgent-fees.json'), dir))
    .finally(() => rmSync(dir, { recursive: true, force: true }));
}

/** One pass whose answer (chip 0, epoch 0) is urgent and whose sends all fail: it pays if it may. */
async function urgentPass(budget: UrgentFeeBudget, slot: number): Promise<bigint[]> {
  const { node, port } = fakeNode(1, { head: 18 });
  node.script.push(() => ({ ok: false, reason: 'NOT_INCLUDED: not included by height 20' }));
  const its = items(1, { triedBefore: true }).map((i) => ({ ...i, slot }));
  await deliverAnswers(its, port, { ...FEE, budget });
  return node.sent.map((s) => s.fee);
}

// Kept in memory only, the budget came back whole on each start: an agent crash-looping (or
// restarted by whoever can make it crash) paid a chip's budget again every time.
test('restarts within the hour do not give a chip its urgent-fee budget again; an hour later it is back', async () => {
  await withHome(async (path, dir) => {
    const c = clock();
    const warnings: string[] = [];
    const fees: bigint[] = [];
    for (let start = 0; start < 4; start++) {
      const budget = openUrgentFeeBudget(path, 'unc-test', 2n * MIN_FEE, (m) => warnings.push(m), c.now);
      fees.push(...(await urgentPass(budget, start)));
      c.t += HOUR / 10;
    }
    assert.deepEqual(fees, [MIN_FEE, MIN_FEE, 0n, 0n], 'two fees in the hour over four starts');
    assert.equal(warnings.length, 0);
    assert.equal(statSync(path).mode & 0o777, 0o600, 'readable by its owner only');
    assert.deepEqual(readdirSync(dir), ['urgent-fees.json'], 'no temporary file left');
    // Another chain's record is not this chain's spending.
    const other = openUrgentFeeBudget(path, 'unc-other', 2n * MIN_FEE, (m) => warnings.push(m), c.now);
    assert.equal(other.left(chipHex(0)), 2n * MIN_FEE);
    // An hour after the second fee, a start has the whole budget again.
    c.t = clock().t + HOUR / 10 + HOUR;
    const later = openUrgentFeeBudget(path, 'unc-test', 2n * MIN_FEE, (m) => warnings.push(m), c.now);
    assert.equal(later.left(chipHex(0)), 2n * MIN_FEE);
    assert.deepEqual(await urgentPass(later, 9), [MIN_FEE]);
    assert.equal(
      JSON.parse(readFileSync(path, 'utf8')).spent[chipHex(0)].length,
      1,
      'spending older than the hour is pruned from the record',
    );
  });
});

// The chain id is the node's word where the home pins none. A record of one chain only, a node
// naming another chain at one start had it rewritten for that chain, and at the next start, on the
// real chain again, every chip had its whole budget back: once per two restarts.
test('a start on another chain keeps the real chain’s record: back on it, the chips have spent what they had', async () => {
  await withHome(async (path) => {
    const c = clock();
    const warnings: string[] = [];
    const open = (chain: string, budget = 2n * MIN_FEE) =>
      openUrgentFeeBudget(path, chain, budget, (m) => warnings.push(m), c.now);
    const real = open('unc-test');
    await urgentPass(real, 0);
    await urgentPass(real, 1);
    assert.equal(real.left(chipHex(0)), 0n);
    // A start where the node names another chain, and a fee charged (and saved) there.
    const other = open('unc-other');
    assert.equal(other.left(chipHex(0)), 2n * MIN_FEE, 'another chain’s spending is its own');
    other.charge(chipHex(0), MIN_FEE);
    assert.equal(other.save(), true);
    const back = open('unc-test');
    assert.equal(back.left(chipHex(0)), 0n, 'the real chain’s spending is still there');
    assert.deepEqual(await urgentPass(back, 2), [0n], 'no fee past the budget');
    const again = open('unc-other');
    assert.equal(again.left(chipHex(0)), MIN_FEE, 'and the other chain’s, kept beside it');
    assert.equal(warnings.length, 0);
    // Another chain's record of bad values is that chain's unreadable record (counted spent there),
    // not a crash, and not this chain's (fee-budget-file.test.ts).
    writeFileSync(
      path,
      JSON.stringify({
        version: 2,
        chainId: 'unc-test',
        spent: {},
        others: { x: { spent: { [chipHex(0)]: [[c.t, 5]] } } },
      }),
    );
    assert.equal(open('unc-test', 1n).left(chipHex(1)), 1n);
    assert.equal(open('x', 1n).left(chipHex(1)), 0n);
    assert.equal(warnings.length, 1);
  });
});

// The temporary name was the record's name and the pid: known in advance, and written through
// whatever was there (a link to another of the owner's files was truncated and overwritten).
test('the record is saved through a fresh temporary name, never through a link planted beside it', async () => {
  await withHome((path, dir) => {
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'precious');
    symlinkSync(victim, `${path}.tmp-${process.pid}`);
    saveUrgentFeeRecords(path, 'unc-test', { records: [{ chipId: chipHex(0), at: 5, spent: 1n }] });
    assert.equal(readFileSync(victim, 'utf8'), 'precious', 'the linked file is untouched');
    assert.deepEqual(JSON.parse(readFileSync(path, 'utf8')).spent[chipHex(0)], [[5, '1']]);
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.deepEqual(
      readdirSync(dir).sort(),
      ['urgent-fees.json', `urgent-fees.json.tmp-${process.pid}`, 'victim'].sort(),
      'no temporary file left',
    );
  });
});

// Recovery read the chain's epoch from the node to know what to count spent: the node's word again.
// Now a lost record counts as every chip's whole budget spent now, by the agent's clock, for the
// next hour, and is saved so at once: a restart within the hour does not end it.
test('an unreadable record warns and counts every chip’s budget spent for the next hour, by the agent’s clock alone', async () => {
  await withHome(async (path) => {
    const c = clock();
    writeFileSync(path, '{"version":2,"chainId":"unc-test","spent":{"');
    const warnings: string[] = [];
    const open = () => openUrgentFeeBudget(path, 'unc-test', 2n * MIN_FEE, (m) => warnings.push(m), c.now);
    const budget = open();
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /unreadable.*spent for the next hour/);
    assert.deepEqual(await urgentPass(budget, 0), [0n], 'fee-free');
    assert.equal(budget.left(chipHex(1)), 0n, 'every chip, known or not');
    assert.equal(JSON.parse(readFileSync(path, 'utf8')).allSpentAt, c.t, 'saved at once');
    c.t += HOUR - 1;
    const again = open();
    assert.equal(warnings.length, 1, 'the record is whole again');
    assert.equal(again.left(chipHex(0)), 0n, 'a restart within the hour does not end it');
    c.t += 1;
    assert.equal(again.left(chipHex(0)), 2n * MIN_FEE, 'the next hour has its budget');
    // A record of bad values is unreadable too, not a crash; so is one by epochs (version 1).
    writeFileSync(
      path,
      JSON.stringify({ version: 2, chainId: 'unc-test', spent: { [chipHex(0)]: [[c.t, '-5']] } }),
    );
    assert.equal(open().left(chipHex(0)), 0n);
    writeFileSync(path, JSON.stringify({ version: 1, chainId: 'unc-test', spent: {} }));
    assert.equal(open().left(chipHex(0)), 0n);
    assert.equal(warnings.length, 3);
  });
});

test('a record that cannot be saved pays no urgent fee (the send goes fee-free) until a save succeeds', async () => {
  await withHome(async (_path, dir) => {
    const warnings: string[] = [];
    const budget = openUrgentFeeBudget(
      join(dir, 'gone', 'urgent-fees.json'),
      'unc-test',
      2n * MIN_FEE,
      (m) => warnings.push(m),
      clock().now,
    );
    assert.deepEqual(await urgentPass(budget, 0), [0n]);
    assert.equal(budget.unsaved, true);
    assert.match(warnings[0]!, /not saved/);
    assert.equal(budget.left(chipHex(1)), 0n);
  });
});
