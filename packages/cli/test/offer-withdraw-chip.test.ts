/**
 * `unc market offer withdraw-chip <offer> <chip>` signs exactly one withdrawOfferChip (action tag
 * 18) of that offer and that chip, from the provider's key, and nothing else: the chain takes the
 * chip out of the offer and gives its running lease the offer's notice (core applyWithdrawOfferChip).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { decode, fromHex, ONE_UNC, signedTransactionCodec, toHex } from '@unc/core';
import { devKey } from '@unc/node';
import { type JsonRpcNode, type RpcAnswers, startJsonRpcNode } from '@unc/test-utils';
import { Keyring } from '../src/keyring.js';
import { keepSent, runUnc, tempHome } from './helpers.js';

const CHAIN = 'unc-dev-withdraw-chip';
const OFFER_ID = 'ab'.repeat(32);
const CHIP_ID = 'cd'.repeat(32);

/** What sending reads: the provider's account (nonce 3) and the fee parameters. */
const answers: RpcAnswers = {
  unc_status: () => ({ chainId: CHAIN, height: 10, timeMs: 0 }),
  unc_getParams: () => ({ minFeePerByte: '1', minFeePerAction: '1', devChain: true }),
  unc_getAccount: (p) => ({ address: p[0], balance: (1000n * ONE_UNC).toString(), nonce: 3, height: 10 }),
};

describe('market offer withdraw-chip', () => {
  const home = tempHome();
  const sent: string[] = [];
  let node: JsonRpcNode;
  let url = '';
  before(async () => {
    node = await startJsonRpcNode({ ...answers, unc_sendTransaction: keepSent(sent) });
    url = node.url;
    new Keyring(home.dir).addTest('provider', devKey(4).seed, CHAIN);
  });
  after(async () => {
    await node.close();
    home.cleanup();
  });

  test('signs one withdrawOfferChip of the offer and chip named, from the provider’s key', async () => {
    const run = await runUnc([
      'market',
      'offer',
      'withdraw-chip',
      OFFER_ID,
      CHIP_ID,
      '--from',
      'provider',
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
    assert.equal(toHex(stx.tx.signer), toHex(devKey(4).publicKey));
    assert.equal(stx.tx.nonce, 3n);
    assert.equal(stx.tx.actions.length, 1);
    const a = stx.tx.actions[0]!;
    assert.equal(a.type, 'withdrawOfferChip');
    assert.equal(toHex((a as { offerId: Uint8Array }).offerId), OFFER_ID);
    assert.equal(toHex((a as { chipId: Uint8Array }).chipId), CHIP_ID);
    // The node refused it (kept it): the command fails and says the transaction may still land.
    assert.notEqual(run.code, 0);
  });

  test('a chip id that is not one is refused before anything is signed', async () => {
    sent.length = 0;
    const run = await runUnc([
      'market',
      'offer',
      'withdraw-chip',
      OFFER_ID,
      'zz',
      '--from',
      'provider',
      '-y',
      '--home',
      home.dir,
      '--node',
      url,
    ]);
    assert.notEqual(run.code, 0);
    assert.equal(sent.length, 0, 'nothing sent');
  });
});

describe('market lease show: a closed lease whose last period is held', () => {
  test('says its remaining is held for its last challenges, not left in escrow', async () => {
    const { leaseText } = await import('../src/commands/market.js');
    const l = {
      id: '11'.repeat(32),
      offerId: OFFER_ID,
      chipId: CHIP_ID,
      provider: 'unc1provider',
      renter: 'unc1renter',
      renterPublicKey: '22'.repeat(32),
      endpoint: 'https://provider.invalid',
      tlsFingerprints: [],
      pricePerHour: ONE_UNC.toString(),
      hours: 2,
      deposit: (2n * ONE_UNC).toString(),
      paid: '0',
      refunded: ONE_UNC.toString(),
      remaining: ONE_UNC.toString(),
      unsettled: '0',
      escrowUntil: 3_600_000,
      status: 'closed' as const,
      startHeight: 1,
      startTime: 0,
      endTime: 7_200_000,
      settledTime: 0,
      slotsAnswered: 0,
      slotsMissed: 0,
      closingReason: null,
      disputes: 0,
      closedHeight: 60,
      closedTime: 3_600_000,
      closedReason: 'renterClosed',
    };
    const text = leaseText(l);
    assert.match(text, /remaining .*held/, text);
    assert.doesNotMatch(leaseText({ ...l, remaining: '0', paid: ONE_UNC.toString() }), /held/);
  });
});
