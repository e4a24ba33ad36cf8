/**
 * `unc market lease` signs the deposit and the price it shows. The price it confirms comes from the
 * node; a transaction with deposit 0 ("price × hours") would let the chain's price of the offer decide
 * what leaves the balance, and a deposit without the price would be spent at the chain's price (a
 * hostile node shows a quarter of it: the escrow runs out in a quarter of the time confirmed).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  addressFromPublicKey,
  applyOpenLease,
  decode,
  encodeAddress,
  fromHex,
  MemoryState,
  type Offer,
  OfferStatus,
  ONE_UNC,
  type OpenLeaseAction,
  putOffer,
  StateOverlay,
  signedTransactionCodec,
  ValidationError,
} from '@unc/core';
import { devKey } from '@unc/node';
import { type OfferJson, offerTermsDigest } from '@unc/sdk';
import { type JsonRpcNode, type RpcAnswers, startJsonRpcNode } from '@unc/test-utils';
import { Keyring } from '../src/keyring.js';
import { keepSent, runUnc, tempHome } from './helpers.js';

const CHAIN = 'unc-dev-lease-deposit';
const OFFER_ID = 'ab'.repeat(32);
const CHIP_ID = 'cd'.repeat(32);

/**
 * What a node answers to `market lease` (the offer at 1 UNC/h, which a test may change) and the
 * offer it shows.
 */
function hostileNode(): { answers: RpcAnswers; offer: OfferJson } {
  const provider = encodeAddress(addressFromPublicKey(devKey(4).publicKey));
  const offer: OfferJson = {
    id: OFFER_ID,
    provider,
    price: ONE_UNC.toString(),
    minHours: 1,
    maxHours: 10,
    noticeMs: 60_000,
    endpoint: 'https://provider.invalid',
    tlsFingerprints: ['00'.repeat(32)],
    attributes: { memoryMiB: 0, region: '', runtimes: [] },
    status: 'open',
    createdHeight: 1,
    createdTime: 0,
    closesAt: null,
    leasesOpened: 0,
    chips: [
      {
        chipId: CHIP_ID,
        // As the node shows a chip without a record: the chain's digest reads the same ('' and 0).
        vendorId: '',
        modelId: '',
        power: '0',
        available: true,
        online: true,
      } as OfferJson['chips'][number],
    ],
    power: '1',
    available: 1,
  };
  const answers: Record<string, (params: unknown[]) => unknown> = {
    unc_status: () => ({ chainId: CHAIN, height: 10, timeMs: 0 }),
    unc_getParams: () => ({ minFeePerByte: '1', minFeePerAction: '1', devChain: true }),
    unc_getAccount: (p) => ({ address: p[0], balance: (1000n * ONE_UNC).toString(), nonce: 0, height: 10 }),
    unc_getOffer: () => offer,
  };
  return { answers, offer };
}

/**
 * The chain's record of offer OFFER_ID (chip CHIP_ID, provider dev key 4): 1 UNC/h, 1 to 10 hours,
 * a 60 s notice, unless `over` says otherwise.
 */
function chainOffer(over: Partial<Offer> = {}): Offer {
  return {
    id: fromHex(OFFER_ID, 32),
    provider: addressFromPublicKey(devKey(4).publicKey),
    chipIds: [fromHex(CHIP_ID, 32)],
    pricePerHour: ONE_UNC,
    minHours: 1,
    maxHours: 10,
    noticeMs: 60_000n,
    endpoint: 'https://provider.invalid',
    attributes: { memoryMiB: 0, region: '', runtimes: [] },
    createdHeight: 1n,
    createdTime: 0n,
    status: OfferStatus.open,
    closedTime: 0n,
    closesAt: 0n,
    leasesOpened: 0n,
    tlsFingerprints: [new Uint8Array(32)],
    ...over,
  };
}

describe('market lease binds the confirmed deposit and price', () => {
  const home = tempHome();
  const sent: string[] = [];
  const server = hostileNode();
  let node: JsonRpcNode;
  let url = '';
  before(async () => {
    node = await startJsonRpcNode({ ...server.answers, unc_sendTransaction: keepSent(sent) });
    url = node.url;
    new Keyring(home.dir).addTest('renter', devKey(2).seed, CHAIN);
  });
  after(async () => {
    await node.close();
    home.cleanup();
  });
  /** `unc market lease` of the offer for 3 hours from the renter's key, confirmed (-y), as JSON. */
  const lease = (extra: string[] = []) =>
    runUnc([
      'market',
      'lease',
      OFFER_ID,
      '--hours',
      '3',
      ...extra,
      '--from',
      'renter',
      '-y',
      '--home',
      home.dir,
      '--node',
      url,
      '-o',
      'json',
    ]);

  test('the signed openLease deposits exactly the escrow it showed (price × hours), never 0', async () => {
    const run = await lease();
    assert.equal(sent.length, 1, run.stderr);
    const stx = decode(signedTransactionCodec, fromHex(sent[0]!));
    const action = stx.tx.actions[0]!;
    assert.equal(action.type, 'openLease');
    assert.equal((action as { deposit: bigint }).deposit, 3n * ONE_UNC);
  });

  test('the signed openLease carries the price shown as its maximum; the chain, at its higher price, refuses it', async () => {
    sent.length = 0;
    const run = await lease();
    assert.equal(sent.length, 1, run.stderr);
    const stx = decode(signedTransactionCodec, fromHex(sent[0]!));
    const action = stx.tx.actions[0] as OpenLeaseAction;
    assert.equal(action.type, 'openLease');
    assert.equal(action.maxPricePerHour, ONE_UNC, 'the price shown (1 UNC/h) is signed');
    // The chain's offer is pay-as-you-go at 4 UNC/h: the confirmed 3 UNC deposit meets its minimum (0),
    // so only the signed price keeps that deposit from running out in 45 minutes instead of 3 hours.
    const state = new StateOverlay(new MemoryState());
    putOffer(state, chainOffer({ pricePerHour: 4n * ONE_UNC, minHours: 0 }));
    const written = state.changes().length;
    const ctx = { chainId: CHAIN, height: 11n, time: 1_000n };
    const renter = addressFromPublicKey(stx.tx.signer);
    assert.throws(
      () => applyOpenLease(state, ctx, renter, stx.tx.signer, action),
      (err: unknown) => err instanceof ValidationError && err.code === 'PRICE_ABOVE_MAX',
    );
    assert.equal(state.changes().length, written, 'nothing written by the refused lease');
  });

  test('the signed openLease carries the digest of the terms shown; the chain, whose offer gives no notice, refuses it', async () => {
    // The node shows a 60 s notice; the chain's offer gives none. Before,
    // the renter signed the offer id (and a price) alone and the lease opened on the chain's terms.
    sent.length = 0;
    const run = await runUnc([
      'market',
      'lease',
      OFFER_ID,
      '--hours',
      '3',
      '--from',
      'renter',
      '-y',
      '--home',
      home.dir,
      '--node',
      url,
      '-o',
      'json',
    ]);
    assert.equal(sent.length, 1, run.stderr);
    const stx = decode(signedTransactionCodec, fromHex(sent[0]!));
    const action = stx.tx.actions[0] as OpenLeaseAction;
    assert.deepEqual(action.termsDigest, offerTermsDigest(server.offer), 'the terms shown are signed');
    const state = new StateOverlay(new MemoryState());
    putOffer(state, chainOffer({ noticeMs: 0n }));
    const ctx = { chainId: CHAIN, height: 11n, time: 1_000n };
    const renter = addressFromPublicKey(stx.tx.signer);
    const written = state.changes().length;
    assert.throws(
      () => applyOpenLease(state, ctx, renter, stx.tx.signer, action),
      (err: unknown) => err instanceof ValidationError && err.code === 'OFFER_CHANGED',
    );
    assert.equal(state.changes().length, written, 'nothing written by the refused lease');
    // The same signature on the terms shown passes the terms check (and stops at the chip, which has no record here).
    putOffer(state, chainOffer({ noticeMs: 60_000n }));
    assert.throws(
      () => applyOpenLease(state, ctx, renter, stx.tx.signer, action),
      (err: unknown) => err instanceof ValidationError && err.code === 'CHIP_UNAVAILABLE',
    );
  });

  test('a deposit given with --deposit is signed as given', async () => {
    sent.length = 0;
    const run = await lease(['--deposit', '5']);
    assert.equal(sent.length, 1, run.stderr);
    const action = decode(signedTransactionCodec, fromHex(sent[0]!)).tx.actions[0] as { deposit: bigint };
    assert.equal(action.deposit, 5n * ONE_UNC);
  });

  test('an offer the node shows at price 0 gets nothing signed (deposit 0 would mean the chain price × hours)', async () => {
    sent.length = 0;
    server.offer.price = '0';
    try {
      const run = await lease();
      assert.notEqual(run.code, 0);
      assert.match(run.stderr + run.stdout, /BAD_OFFER/);
      assert.equal(sent.length, 0, 'nothing signed');
    } finally {
      server.offer.price = ONE_UNC.toString();
    }
  });
});
