/**
 * MinerAgent's registrations (agent.ts register), driven through a scripted node client: a chip
 * the chain refuses to register (its certificate expired, then deregistered by anyone once silent,
 * core C3) neither keeps the agent's other chips unregistered (one transaction of all of them sank
 * with it) nor is sent again on every block (each refusal logged); it waits, longer each time, and
 * its status says until when. Heights move only when the test delivers a block; no wall clock.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  addressFromPublicKey,
  decode,
  ed25519PublicKey,
  encodeAddress,
  equalBytes,
  signedTransactionCodec,
  toHex,
} from '@unc/core';
import { createLogger } from '@unc/node';
import { type BlockJson, type ChipJson, RpcClientError, type Subscription } from '@unc/sdk';
import {
  MinerAgent,
  type MinerClient,
  REGISTER_RETRY_BLOCKS,
  REGISTER_RETRY_MAX_BLOCKS,
  registerBackoff,
} from '../src/agent/agent.js';
import { DevSoftSigner } from '../src/agent/signers.js';

const CHAIN = 'unc-registration-test';
const ownerSeed = new Uint8Array(32).fill(3);
const ownerAddress = encodeAddress(addressFromPublicKey(ed25519PublicKey(ownerSeed)));
const goodSeed = new Uint8Array(32).fill(9);
const badSeed = new Uint8Array(32).fill(7);
const HASH = 'cd'.repeat(32);

/** A node on which `refusedKey`'s chip is refused registration (CERT_EXPIRED), any other registered. */
function scriptedNode(refusedKey: Uint8Array) {
  const state = {
    head: 10,
    registered: new Set<string>(),
    /** Chips the node reports revoked (their certificate expired at block time). */
    revoked: new Set<string>(),
    sends: 0,
    /** Per registration sent: how many chips it named, and whether the refused one was among them. */
    registrations: [] as { chips: number; refused: boolean; height: number }[],
    onBlock: null as ((b: BlockJson) => void) | null,
  };
  const client: MinerClient = {
    url: 'scripted://node',
    status: async () => ({ chainId: CHAIN, height: state.head, timeMs: 1_000_000, time: '' }) as never,
    subscribe: (async (_name: string, _params: unknown, onEvent: (b: BlockJson) => void) => {
      state.onBlock = onEvent;
      const sub: Subscription = { id: '1', close: () => {}, onClose: () => {} };
      return sub;
    }) as MinerClient['subscribe'],
    call: (async (method: string, params: unknown[]) => {
      if (method === 'unc_getChip') {
        const chipId = params[0] as string;
        if (!state.registered.has(chipId)) throw new RpcClientError(-32004, 'no such chip', 'NOT_FOUND');
        return {
          chipId,
          owner: ownerAddress,
          status: state.revoked.has(chipId) ? 'revoked' : 'active',
          statusReason: state.revoked.has(chipId) ? 'its AK certificate expired' : '',
          online: true,
          slots: [],
        } as unknown as ChipJson;
      }
      throw new RpcClientError(-32601, `no ${method} here`);
    }) as MinerClient['call'],
    getHeader: (async () => ({ height: state.head, hash: HASH }) as never) as MinerClient['getHeader'],
    getAccount: (async () => ({
      address: '',
      balance: (10n ** 18n).toString(),
      nonce: 4,
      height: state.head,
      stateRoot: '',
    })) as MinerClient['getAccount'],
    nextNonce: (async () => 4n) as MinerClient['nextNonce'],
    getParams: (async () =>
      ({ minFeePerByte: '1000', minFeePerAction: '100000' }) as never) as MinerClient['getParams'],
    sendRawTransaction: async (hex: string) => {
      state.sends++;
      const stx = decode(signedTransactionCodec, Buffer.from(hex, 'hex'));
      const keys = stx.tx.actions.map((a) => {
        assert.equal(a.type, 'registerChip');
        return (a as Extract<typeof a, { type: 'registerChip' }>).evidence as { publicKey: Uint8Array };
      });
      const refused = keys.some((e) => equalBytes(e.publicKey, refusedKey));
      state.registrations.push({ chips: keys.length, refused, height: state.head });
      if (refused) throw new RpcClientError(-32000, 'the chip certificate expired', 'CERT_EXPIRED' as never);
      for (const a of stx.tx.actions) {
        const e = (a as Extract<typeof a, { type: 'registerChip' }>).evidence as { publicKey: Uint8Array };
        const signer = new DevSoftSigner(equalBytes(e.publicKey, refusedKey) ? badSeed : goodSeed, 'm', '');
        state.registered.add(toHex(await signer.chipId()));
      }
      return { hash: '00'.repeat(32) } as never;
    },
    waitForTransaction: (async () => ({
      hash: '',
      status: 'included',
      height: state.head + 1,
      index: 0,
      blockHash: HASH,
    })) as MinerClient['waitForTransaction'],
    getOffers: (async () => []) as MinerClient['getOffers'],
  };
  return { state, client };
}

/** Lets the pass a block started run to its end (scripted calls only: no timers). */
async function settle(): Promise<void> {
  for (let i = 0; i < 50; i++) await new Promise((r) => setImmediate(r));
}

test('a chip the chain refuses to register keeps neither the others unregistered nor its registration sent every block', async () => {
  const { state, client } = scriptedNode(ed25519PublicKey(badSeed));
  const good = new DevSoftSigner(goodSeed, 'm', 'chip-good');
  const bad = new DevSoftSigner(badSeed, 'm', 'chip-bad');
  const warnings: string[] = [];
  const logger = {
    ...createLogger('miner-test', { level: 'error' }),
    warn: (message: string) => {
      warnings.push(message);
    },
  };
  const agent = new MinerAgent({
    nodeUrl: 'http://unused',
    client,
    ownerSeed,
    chainId: CHAIN,
    chips: [good, bad],
    logger,
  });
  try {
    await agent.start();
    await settle();
    for (let h = 11; h <= 40; h++) {
      state.head = h;
      state.onBlock!({ height: h, hash: HASH } as BlockJson);
      await settle();
      if (h === 11)
        assert.ok(
          state.registered.has(toHex(await good.chipId())),
          'the chip the chain takes is registered alone in the next pass, though first sent with one it refuses',
        );
    }
    assert.deepEqual(
      state.registrations.map((r) => [r.height, r.chips]),
      [
        [10, 2],
        [11, 1],
        [12, 1],
        [22, 1],
      ],
      'together, then each alone a pass apart; the refused one again after a wait that doubles, not every block',
    );
    const tries = state.registrations.filter((r) => r.refused).map((r) => r.height);
    assert.deepEqual(tries, [10, 12, 22]);
    const badId = toHex(await bad.chipId());
    const refused = agent.status().chips.find((c) => c.chipId === badId);
    assert.match(String(refused?.lastError), /CERT_EXPIRED.*tried again at block 42/);
    assert.ok(
      warnings.filter((w) => /registration failed/.test(w)).length <= 5,
      'a warning per try, not per block',
    );
  } finally {
    await agent.stop();
  }
});

test('the wait after refused registrations doubles from REGISTER_RETRY_BLOCKS up to REGISTER_RETRY_MAX_BLOCKS', () => {
  assert.equal(registerBackoff(1), REGISTER_RETRY_BLOCKS);
  assert.equal(registerBackoff(2), 2 * REGISTER_RETRY_BLOCKS);
  assert.equal(registerBackoff(3), 4 * REGISTER_RETRY_BLOCKS);
  assert.equal(registerBackoff(1000), REGISTER_RETRY_MAX_BLOCKS);
  for (let n = 1; n < 100; n++) assert.ok(registerBackoff(n + 1) >= registerBackoff(n));
});

test('a chip that turns revoked is said once in the log, not answered, and nothing is sent for it', async () => {
  const { state, client } = scriptedNode(ed25519PublicKey(badSeed));
  const good = new DevSoftSigner(goodSeed, 'm', 'chip-good');
  const id = toHex(await good.chipId());
  state.registered.add(id);
  const warnings: string[] = [];
  const logger = {
    ...createLogger('miner-test', { level: 'error' }),
    warn: (message: string) => {
      warnings.push(message);
    },
  };
  const agent = new MinerAgent({
    nodeUrl: 'http://unused',
    client,
    ownerSeed,
    chainId: CHAIN,
    chips: [good],
    logger,
  });
  try {
    await agent.start();
    await settle();
    state.revoked.add(id);
    for (let h = 11; h <= 15; h++) {
      state.head = h;
      state.onBlock!({ height: h, hash: HASH } as BlockJson);
      await settle();
    }
    assert.equal(warnings.filter((w) => /not active/.test(w)).length, 1, 'said once, when it turned revoked');
    assert.equal(state.sends, 0);
    assert.match(String(agent.status().chips[0]!.lastError), /revoked: its AK certificate expired/);
  } finally {
    await agent.stop();
  }
});
