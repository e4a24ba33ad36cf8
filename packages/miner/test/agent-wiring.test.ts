/**
 * MinerAgent's wiring (agent.ts), driven through a scripted node client: it refuses to start on a
 * node naming another chain than the key was unlocked for (nothing signed), answers an open slot
 * in one heartbeat signed for the node's chain with the header it priced, passes again on each new
 * block, and after stop() asks nothing more. Heights move only when the test delivers a block; no
 * wall clock, no network.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  addressFromPublicKey,
  decode,
  ed25519PublicKey,
  encodeAddress,
  fromHex,
  heartbeatChallenge,
  signedTransactionCodec,
  toHex,
  verifyHeartbeat,
} from '@unc/core';
import { createLogger } from '@unc/node';
import { type BlockJson, type ChipJson, feeFor, RpcClientError, type Subscription } from '@unc/sdk';
import { MinerAgent, type MinerAgentOptions, type MinerClient } from '../src/agent/agent.js';
import { DevSoftSigner } from '../src/agent/signers.js';

const CHAIN = 'unc-wiring-test';
const ownerSeed = new Uint8Array(32).fill(3);
const ownerAddress = encodeAddress(addressFromPublicKey(ed25519PublicKey(ownerSeed)));
const chipSeed = new Uint8Array(32).fill(9);
const SLOT_HEIGHT = 8;
const HASH = 'cd'.repeat(32);

function scriptedNode(
  opts: {
    chainId?: string;
    head?: number;
    owner?: string;
    slotStatus?: 'open' | 'answered';
    /** The next free nonce counting the key's pending transactions (`unc_getAccount` with `pending`). */
    pendingNonce?: number;
  } = {},
) {
  const state = {
    head: opts.head ?? 10,
    /** Calls by method, in order. */
    calls: [] as string[],
    /** Raw transactions sent (hex). */
    sent: [] as string[],
    slotStatus: (opts.slotStatus ?? 'open') as 'open' | 'answered',
    onBlock: null as ((b: BlockJson) => void) | null,
    closed: false,
  };
  const chipView = (chipId: string): ChipJson =>
    ({
      chipId,
      owner: opts.owner ?? ownerAddress,
      status: 'active',
      statusReason: '',
      online: true,
      slots: [
        {
          epoch: 0,
          slot: 0,
          height: SLOT_HEIGHT,
          status: state.slotStatus,
          windowEnd: SLOT_HEIGHT + 20,
        },
      ],
      slotsAnswered: state.slotStatus === 'answered' ? 1 : 0,
      slotsMissed: 0,
      rewardsEarned: '0',
      lastAnsweredAt: 0,
    }) as unknown as ChipJson;
  const client: MinerClient = {
    url: 'scripted://node',
    status: async () => {
      state.calls.push('status');
      return { chainId: opts.chainId ?? CHAIN, height: state.head, timeMs: 1_000_000, time: '' } as never;
    },
    subscribe: (async (_name: string, _params: unknown, onEvent: (b: BlockJson) => void) => {
      state.calls.push('subscribe');
      state.onBlock = onEvent;
      const sub: Subscription = {
        id: '1',
        close: () => {
          state.closed = true;
        },
        onClose: () => {},
      };
      return sub;
    }) as MinerClient['subscribe'],
    call: (async (method: string, params: unknown[]) => {
      state.calls.push(method);
      if (method === 'unc_getChip') return chipView(params[0] as string);
      if (method === 'unc_getEpoch') return { epoch: 0 };
      throw new RpcClientError(-32601, `no ${method} here`);
    }) as MinerClient['call'],
    getHeader: (async (height: number) => {
      state.calls.push('getHeader');
      return { height, hash: HASH } as never;
    }) as MinerClient['getHeader'],
    getAccount: (async () => {
      state.calls.push('getAccount');
      return { address: '', balance: (10n ** 18n).toString(), nonce: 4, height: state.head, stateRoot: '' };
    }) as MinerClient['getAccount'],
    nextNonce: (async () => {
      state.calls.push('nextNonce');
      return BigInt(opts.pendingNonce ?? 4);
    }) as MinerClient['nextNonce'],
    getParams: (async () => {
      state.calls.push('getParams');
      return { minFeePerByte: '1000', minFeePerAction: '100000' } as never;
    }) as MinerClient['getParams'],
    sendRawTransaction: async (hex: string) => {
      state.calls.push('sendRawTransaction');
      state.sent.push(hex);
      return { hash: `${state.sent.length}`.padStart(64, '0') } as never;
    },
    waitForTransaction: (async () => {
      state.calls.push('waitForTransaction');
      state.slotStatus = 'answered';
      return { hash: '', status: 'included', height: state.head + 1, index: 0, blockHash: HASH };
    }) as MinerClient['waitForTransaction'],
    getOffers: (async () => {
      state.calls.push('getOffers');
      return [];
    }) as MinerClient['getOffers'],
  };
  return { state, client };
}

/** An agent of `ownerSeed` on CHAIN over `client`, with one dev chip unless `more` says otherwise. */
function agentOver(client: MinerClient, more: Partial<MinerAgentOptions> = {}): MinerAgent {
  return new MinerAgent({
    nodeUrl: 'http://unused',
    client,
    ownerSeed,
    chainId: CHAIN,
    chips: [new DevSoftSigner(chipSeed, 'm', 'chip-0')],
    ...more,
  });
}

test('the agent refuses to start on a node naming another chain (CHAIN_CHANGED): nothing asked past its status, nothing signed', async () => {
  const { state, client } = scriptedNode({ chainId: 'unc-mainnet' });
  const agent = agentOver(client);
  await assert.rejects(agent.start(), (err: unknown) => (err as { code?: string }).code === 'CHAIN_CHANGED');
  assert.deepEqual(state.calls, ['status']);
  assert.equal(state.sent.length, 0);
  await agent.stop();
});

test('started, the agent answers the open slot in one heartbeat signed as priced, passes on each block, and asks nothing after stop', async () => {
  const { state, client } = scriptedNode();
  const signer = new DevSoftSigner(chipSeed, 'm', 'chip-0');
  const chipId = await signer.chipId();
  const agent = agentOver(client, { chips: [signer] });
  await agent.start();
  // The first pass (in start): one heartbeat with the chip's answer to slot 0.
  assert.equal(state.sent.length, 1);
  const stx = decode(signedTransactionCodec, fromHex(state.sent[0]!));
  assert.equal(stx.tx.chainId, CHAIN);
  assert.deepEqual(stx.tx.signer, ed25519PublicKey(ownerSeed));
  assert.equal(stx.tx.nonce, 4n, "the account's nonce");
  const action = stx.tx.actions[0]!;
  assert.equal(action.type, 'heartbeat');
  const answer = (action as Extract<typeof action, { type: 'heartbeat' }>).answers[0]!;
  assert.deepEqual(answer.chipId, chipId);
  // The answer verifies against the chip's key for the slot block's hash on this chain.
  verifyHeartbeat(
    {
      profile: 'dev-soft',
      keyMaterial: ed25519PublicKey(chipSeed),
    },
    answer.evidence,
    heartbeatChallenge(CHAIN, chipId, fromHex(HASH, 32)),
  );
  // Not urgent: fee-free. The header signed is the one the agent priced (one place builds it).
  assert.equal(stx.tx.fee, 0n);
  const { fee: _fee, ...header } = stx.tx;
  assert.equal(
    await (agent as unknown as { minimumFee(a: typeof stx.tx.actions): Promise<bigint> }).minimumFee(
      stx.tx.actions,
    ),
    feeFor(header, { minFeePerByte: 1000n, minFeePerAction: 100000n }),
  );
  const status = agent.status();
  assert.equal(status.chips[0]!.chipId, toHex(chipId));
  assert.match(status.chips[0]!.recent.at(-1)!.result, /^included at 11$/);
  // A new block: another pass reads the chip again and finds nothing open to answer.
  const before = state.calls.length;
  state.head = 11;
  state.onBlock!({ height: 11, hash: HASH } as BlockJson);
  await new Promise((r) => setImmediate(r));
  assert.ok(state.calls.slice(before).includes('unc_getChip'), 'the block started a pass');
  assert.equal(state.sent.length, 1, 'the answered slot is not answered again');
  await agent.stop();
  assert.equal(state.closed, true, 'the block subscription is closed');
  const after = state.calls.length;
  state.onBlock!({ height: 12, hash: HASH } as BlockJson);
  await new Promise((r) => setImmediate(r));
  assert.equal(state.calls.length, after, 'nothing asked of the node after stop');
});

test('a chip another account owns (transferred away) is not answered: only its owner may send its heartbeat (NOT_CHIP_OWNER), and in the batch it would sink the rest', async () => {
  const other = encodeAddress(addressFromPublicKey(ed25519PublicKey(new Uint8Array(32).fill(4))));
  const { state, client } = scriptedNode({ owner: other });
  const agent = agentOver(client);
  await agent.start();
  assert.equal(state.sent.length, 0, 'no heartbeat sent for a chip of another owner');
  assert.match(agent.status().chips[0]!.lastError ?? '', /owned by/);
  await agent.stop();
});

test('a chip another account owns is not put on the market either: an offer naming it is refused (createOffer), sent again every pass', async () => {
  const other = encodeAddress(addressFromPublicKey(ed25519PublicKey(new Uint8Array(32).fill(4))));
  const offer = { pricePerHour: 1n, minHours: 1, maxHours: 2, noticeMs: 0n };
  for (const [owner, offered] of [
    [other, false],
    [ownerAddress, true],
  ] as const) {
    const { state, client } = scriptedNode({ owner, slotStatus: 'answered' });
    const agent = agentOver(client, { offer });
    agent.providerUrl = 'http://127.0.0.1:1';
    await agent.start();
    assert.equal(state.sent.length, offered ? 1 : 0, offered ? 'its own chip is offered' : 'nothing sent');
    await agent.stop();
  }
});

test('with two transactions of its key pending, the agent queues its offer behind them (pending nonce) and keeps heartbeats at the committed nonce', async () => {
  const offer = { pricePerHour: 1n, minHours: 1, maxHours: 2, noticeMs: 0n };
  // Committed nonce 4, the key's transactions at 4 and 5 pending (sent by the operator's CLI).
  {
    const { state, client } = scriptedNode({ slotStatus: 'answered', pendingNonce: 6 });
    const agent = agentOver(client, { offer });
    agent.providerUrl = 'http://127.0.0.1:1';
    await agent.start();
    assert.equal(state.sent.length, 1);
    const stx = decode(signedTransactionCodec, fromHex(state.sent[0]!));
    assert.equal(stx.tx.actions[0]!.type, 'createOffer');
    // At the committed nonce 4 it collided with the pending one there (refused, or replacing it).
    assert.equal(stx.tx.nonce, 6n, 'the offer is signed at the pending nonce');
    await agent.stop();
  }
  // A heartbeat is fee-free: the node admits one only at the committed nonce (NONCE_GAP past it),
  // and a paying resend must replace the agent's own pending heartbeat there.
  {
    const { state, client } = scriptedNode({ pendingNonce: 6 });
    const agent = agentOver(client);
    await agent.start();
    assert.equal(state.sent.length, 1);
    const stx = decode(signedTransactionCodec, fromHex(state.sent[0]!));
    assert.equal(stx.tx.actions[0]!.type, 'heartbeat');
    assert.equal(stx.tx.nonce, 4n, 'the heartbeat is signed at the committed nonce');
    assert.ok(!state.calls.includes('nextNonce'), 'the pending nonce is not asked for a heartbeat');
    await agent.stop();
  }
});

test('an agent whose urgent-fee record is unreadable warns, saves every chip’s budget as spent by its own clock (not the node’s epoch), and still answers', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'unc-miner-wiring-'));
  const file = join(dir, 'urgent-fees.json');
  writeFileSync(file, 'not json');
  const { state, client } = scriptedNode();
  const signer = new DevSoftSigner(chipSeed, 'm', 'chip-0');
  const warnings: string[] = [];
  const logger = {
    ...createLogger('miner-test', { level: 'error' }),
    warn: (message: string) => {
      warnings.push(message);
    },
  };
  const agent = agentOver(client, { chips: [signer], urgentFeeFile: file, logger });
  try {
    await agent.start();
    assert.ok(warnings.some((w) => /unreadable/.test(w)));
    assert.ok(!state.calls.includes('unc_getEpoch'), 'nothing asked of the node for it');
    assert.equal(state.sent.length, 1, 'the answer still goes (fee-free)');
    const saved = JSON.parse(readFileSync(file, 'utf8'));
    assert.equal(saved.chainId, CHAIN);
    assert.deepEqual(saved.spent, {});
    assert.ok(
      Number.isSafeInteger(saved.allSpentAt),
      'every chip’s budget counted spent at a time of the agent’s clock',
    );
  } finally {
    await agent.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

// Two agents on one home each read the urgent-fee record at their start and then wrote their own
// spending over the other's: each chip had up to twice its budget in the hour.
test('a second agent on the same urgent-fee record refuses to start (MINER_RUNNING); once the first stops, one starts', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'unc-miner-wiring-'));
  const file = join(dir, 'urgent-fees.json');
  const quiet = createLogger('miner-test', { level: 'error' });
  const first = agentOver(scriptedNode().client, { urgentFeeFile: file, logger: quiet });
  const third = agentOver(scriptedNode().client, { urgentFeeFile: file, logger: quiet });
  try {
    await first.start();
    const { state, client } = scriptedNode();
    const refused = agentOver(client, { urgentFeeFile: file, logger: quiet });
    await assert.rejects(refused.start(), { code: 'MINER_RUNNING' });
    assert.equal(state.sent.length, 0, 'nothing sent by the refused agent');
    await refused.stop();
    const again = agentOver(scriptedNode().client, { urgentFeeFile: file, logger: quiet });
    await assert.rejects(again.start(), { code: 'MINER_RUNNING' }, 'the refused one’s stop kept the lock');
    await again.stop();
    await first.stop();
    await third.start();
  } finally {
    await first.stop();
    await third.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

// A start that failed past the urgent-fee lock (here the provider API, refused on a scripted
// client; a taken status port or a refused subscription the same) kept the lock for the life of
// the process: every later agent on the home was refused with MINER_RUNNING.
test('an agent whose start fails after taking the urgent-fee lock gives it back', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'unc-miner-wiring-'));
  const file = join(dir, 'urgent-fees.json');
  const quiet = createLogger('miner-test', { level: 'error' });
  const failing = agentOver(scriptedNode().client, {
    urgentFeeFile: file,
    logger: quiet,
    provider: {} as NonNullable<MinerAgentOptions['provider']>,
  });
  const next = agentOver(scriptedNode().client, { urgentFeeFile: file, logger: quiet });
  try {
    await assert.rejects(failing.start(), /needs a node client/);
    await next.start();
  } finally {
    await failing.stop();
    await next.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

// `unc start` starts its agent without awaiting it and, since its signal handlers come before its
// summary, a SIGTERM the moment the summary is read calls stop() while start() is under way: stop()
// found nothing, start() went on and took the urgent-fee lock, and the process exited holding it.
test('an agent stopped while it is starting takes no lock and starts nothing', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'unc-miner-wiring-'));
  const file = join(dir, 'urgent-fees.json');
  const quiet = createLogger('miner-test', { level: 'error' });
  const { state, client } = scriptedNode();
  const stopped = agentOver(client, { urgentFeeFile: file, logger: quiet });
  const next = agentOver(scriptedNode().client, { urgentFeeFile: file, logger: quiet });
  try {
    const starting = stopped.start();
    await stopped.stop();
    await assert.rejects(starting, /stopped while it was starting/);
    assert.equal(state.sent.length, 0, 'nothing sent');
    await next.start();
  } finally {
    await stopped.stop();
    await next.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
