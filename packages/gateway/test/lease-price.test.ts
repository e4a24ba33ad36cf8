/**
 * The gateway signs the price of the offer it ranked and budgeted as the most its lease may cost
 * (maxPricePerHour): the offers are its node's word, and a lease opened at a higher real price would
 * overrun the budget and drain the deposit faster than reckoned. The chain refuses such a lease
 * (PRICE_ABOVE_MAX, packages/core/test/market.test.ts); here: what the gateway signs.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { decode, fromHex, type OpenLeaseAction, signedTransactionCodec } from '@unc/core';
import { Gateway } from '../src/gateway.js';
import { mempoolOnlyNode } from './fake-node.js';

const UNC = 10n ** 18n;

describe('the gateway’s lease opening', () => {
  const dir = mkdtempSync(join(tmpdir(), 'unc-gateway-lease-price-'));
  const sent: string[] = [];
  const node = mempoolOnlyNode(sent, { txStatus: 'pending' });
  let gw: Gateway;
  before(async () => {
    await new Promise<void>((r) => node.listen(0, '127.0.0.1', r));
    gw = new Gateway({
      nodeUrl: `http://127.0.0.1:${(node.address() as AddressInfo).port}`,
      renterSeed: new Uint8Array(32).fill(7),
      budgetPerHour: 2n * UNC,
      models: [{ name: 'ocr' }],
      dbPath: join(dir, 'g.db'),
      allowHttp: true,
      inclusionWaitMs: 300,
      port: 0,
      // Only the test's opening, no tick of its own.
      tickMs: 3_600_000,
      targets: { minLeases: 0 },
    });
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
});
