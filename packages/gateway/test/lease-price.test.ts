/**
 * The gateway signs the price of the offer it ranked and budgeted as the most its lease may cost
 * (maxPricePerHour): the offers are its node's word, and a lease opened at a higher real price would
 * overrun the budget and drain the deposit faster than reckoned. The chain refuses such a lease
 * (PRICE_ABOVE_MAX, packages/core/test/market.test.ts); here: what the gateway signs.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  decode,
  fromHex,
  type OpenLeaseAction,
  STATE_ENTRY_BURN_ACTIONS,
  signedTransactionCodec,
} from '@unc/core';
import { Gateway } from '../src/gateway.js';
import { gatewayOptions, listening, mempoolOnlyNode } from './fake-node.js';

const UNC = 10n ** 18n;

describe('the gateway’s lease opening', () => {
  const dir = mkdtempSync(join(tmpdir(), 'unc-gateway-lease-price-'));
  const sent: string[] = [];
  const node = mempoolOnlyNode(sent, { txStatus: 'pending' });
  let gw: Gateway;
  before(async () => {
    gw = new Gateway(
      gatewayOptions(await listening(node), dir, {
        budgetPerHour: 2n * UNC,
      }),
    );
    await gw.start();
  });
  after(async () => {
    await gw.stop();
    await new Promise<void>((r) => node.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  });

  test('signs the price it ranked (the node shows 1 UNC/h) as maxPricePerHour', async () => {
    await gw.openLease('test');
    assert.equal(sent.length, 1, 'one opening sent');
    const action = decode(signedTransactionCodec, fromHex(sent[0]!)).tx.actions[0] as OpenLeaseAction;
    assert.equal(action.type, 'openLease');
    assert.equal(action.maxPricePerHour, UNC);
    assert.equal(action.deposit, UNC, 'price × minHours (1)');
  });

  // The chain burns 100 × minFeePerAction for each lease opened (core stateEntryBurn), on top of
  // the fee: it leaves the key's balance like a fee, so the budget and the fees shown count it.
  test('counts what the opening burns for its record with its fee', () => {
    assert.equal(sent.length, 1);
    const stx = decode(signedTransactionCodec, fromHex(sent[0]!));
    const burn = STATE_ENTRY_BURN_ACTIONS * 100_000n; // the fake node's minFeePerAction
    assert.equal(BigInt(gw.status().pendingFees), stx.tx.fee + burn);
  });
});
