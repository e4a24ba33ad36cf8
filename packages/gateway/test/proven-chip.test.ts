/**
 * `unc gateway start --prove`: the chip key a receipt is checked against comes from the light
 * client, and only from a block recent enough (`proofMaxAgeMs`, by the gateway's clock). The node
 * picks the height it answers at: a chip deregistered and registered again holds another key, so
 * an old state would have receipts checked against the key it had before. The gateway is real; its
 * node is a small JSON-RPC server holding one signed block over a state with one chip.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import {
  applyToTrie,
  type BlockHeader,
  blockHash,
  blockHeaderCodec,
  type Chip,
  ChipStatus,
  chipKey,
  ed25519PublicKey,
  emptyTrie,
  encode,
  encodeAddress,
  MemoryState,
  merkleProofCodec,
  modelKey,
  putChip,
  putModel,
  StateOverlay,
  signVote,
  toHex,
  trieKey,
} from '@unc/core';
import { chipLivenessJson, ProofError } from '@unc/sdk';
import { classifyAttemptFailure, DEFAULT_PROOF_MAX_AGE_MS, Gateway } from '../src/gateway.js';
import { gatewayOptions, listening } from './fake-node.js';

const CHAIN = 'unc-gateway-prove-test';
const TIME = 1_700_000_000_000;
const seed = new Uint8Array(32).fill(1);
const validator = ed25519PublicKey(seed);

const chip: Chip = {
  chipId: new Uint8Array(32).fill(0x21),
  owner: new Uint8Array(20).fill(2),
  vendorId: 'acme',
  modelId: 'h100',
  profile: 'tpm2',
  power: 1000n,
  keyMaterial: new Uint8Array(65).fill(3),
  certSerials: [],
  registeredAt: 1n,
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
  slotsAnswered: 0n,
  slotsMissed: 0n,
  rewardsEarned: 0n,
  rewardedThrough: 0n,
  prevPower: 1000n,
  certsNotAfter: null,
  releasedAt: 0n,
};

/** Block 1, stamped TIME, over a state holding `chip`, signed by the one genesis validator. */
function chain() {
  const mem = new MemoryState();
  const o = new StateOverlay(mem);
  putChip(o, chip);
  // The chip's status reads its model (a removed model's chips are revoked): proven beside it.
  putModel(o, { vendorId: chip.vendorId, modelId: chip.modelId, name: chip.modelId, power: chip.power });
  const writes = o.changes();
  mem.apply(writes);
  const trie = applyToTrie(emptyTrie(), writes);
  const header: BlockHeader = {
    chainId: CHAIN,
    height: 1n,
    time: BigInt(TIME),
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
  const key = chipKey(chip.chipId);
  const answer = {
    chipId: toHex(chip.chipId),
    owner: encodeAddress(chip.owner),
    vendorId: chip.vendorId,
    modelId: chip.modelId,
    profile: chip.profile,
    power: chip.power.toString(),
    certSerials: [],
    keyMaterial: toHex(chip.keyMaterial),
    status: 'active',
    statusReason: '',
    registeredAt: 1,
    firstEpoch: 1,
    slotsAnswered: 0,
    slotsMissed: 0,
    rewardsEarned: '0',
    lastAnsweredAt: 0,
    tpmClock: null,
    // Its liveness and operator, and the records they are read from, proven too (sdk checkChip).
    ...chipLivenessJson(mem, chip, 'active', header),
    height: 1,
    stateRoot: toHex(trie.root),
    proof: toHex(encode(merkleProofCodec, trie.prove(trieKey(key)))),
    value: toHex(mem.get(key)!),
    related: (() => {
      // The status reads the chip's model (its power and whether governance removed it); the
      // liveness reads the chip's challenge records.
      const reads: Uint8Array[] = [modelKey(chip.vendorId, chip.modelId)];
      chipLivenessJson(
        {
          get: (k) => {
            if (!reads.some((r) => toHex(r) === toHex(k))) reads.push(k);
            return mem.get(k);
          },
        },
        chip,
        'active',
        header,
      );
      return reads.map((k) => ({
        key: toHex(k),
        value: mem.get(k) ? toHex(mem.get(k)!) : null,
        proof: toHex(encode(merkleProofCodec, trie.prove(trieKey(k)))),
      }));
    })(),
  };
  return { block, answer };
}

const dir = mkdtempSync(join(tmpdir(), 'unc-gateway-prove-'));
const { block, answer } = chain();
// The node answers every height with block 1 and every chip with the chip at block 1: a true state,
// as old as the test's clock makes it.
const node = createServer((req, res) => {
  let body = '';
  req.on('data', (d) => (body += d));
  req.on('end', () => {
    const { id, method } = JSON.parse(body) as { id: unknown; method: string };
    const result = method === 'unc_getBlock' ? block : method === 'unc_getChip' ? answer : null;
    const reply = result
      ? { jsonrpc: '2.0', id, result }
      : { jsonrpc: '2.0', id, error: { code: -32601, message: `no ${method} here` } };
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(reply));
  });
});
const gateways: Gateway[] = [];
after(async () => {
  for (const gw of gateways) await gw.stop();
  await new Promise<void>((r) => node.close(() => r()));
  rmSync(dir, { recursive: true, force: true });
});

function gatewayAt(url: string, nowMs: number, name: string, maxAgeMs?: number): Gateway {
  const gw = new Gateway(
    gatewayOptions(url, join(dir, name), {
      dbPath: join(dir, `${name}.db`),
      now: () => nowMs,
      trustAnchor: {
        kind: 'genesis',
        chainId: CHAIN,
        validators: [{ publicKey: validator }],
        epochBlocks: 1000n,
      },
      ...(maxAgeMs !== undefined ? { proofMaxAgeMs: maxAgeMs } : {}),
    }),
  );
  gateways.push(gw);
  return gw;
}

const receiptChip = (gw: Gateway, chipId: string) =>
  (gw as unknown as { receiptChip(id: string): Promise<Chip> }).receiptChip(chipId);

test('a chip key proven at a recent block is the one receipts are checked against', async () => {
  const url = await listening(node);
  const gw = gatewayAt(url, TIME + 60_000, 'fresh');
  const got = await receiptChip(gw, toHex(chip.chipId));
  assert.equal(toHex(got.keyMaterial), toHex(chip.keyMaterial));
});

test('a chip record read at a block older than proofMaxAgeMs is refused, as the node’s fault', async () => {
  const url = `http://127.0.0.1:${(node.address() as AddressInfo).port}`;
  const stale = gatewayAt(url, TIME + DEFAULT_PROOF_MAX_AGE_MS + 1, 'stale');
  await assert.rejects(receiptChip(stale, toHex(chip.chipId)), (err: Error) => {
    assert.ok(err instanceof ProofError, err.message);
    assert.equal(err.code, 'STALE');
    // A stale node is the gateway's problem, never a bad receipt of the provider's.
    assert.equal(classifyAttemptFailure(err), 'gateway-error');
    return true;
  });
  // A wider bound the operator chose takes the same block.
  const wide = gatewayAt(url, TIME + DEFAULT_PROOF_MAX_AGE_MS + 1, 'wide', 2 * DEFAULT_PROOF_MAX_AGE_MS);
  assert.equal(toHex((await receiptChip(wide, toHex(chip.chipId))).chipId), toHex(chip.chipId));
});
