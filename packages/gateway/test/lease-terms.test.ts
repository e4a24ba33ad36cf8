/**
 * The gateway signs the terms of the very offer it ranked (offerTermsDigest), not of another entry
 * the node listed under the same id. A hostile node listed an offer twice: first as the chain holds
 * it (a provider outside the gateway's `providers`), then a copy naming an allowed provider. The
 * gateway filtered out the first, ranked the copy, and signed the digest of the first entry with
 * that id (`offers.find`): the chain's own terms, so the chain opened the lease with a provider the
 * operator never allowed (or an http endpoint, or other hardware than ranked).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { decode, fromHex, type OpenLeaseAction, signedTransactionCodec } from '@unc/core';
import { type OfferJson, offerTermsDigest } from '@unc/sdk';
import { Gateway } from '../src/gateway.js';
import { gatewayOptions, listening, mempoolOnlyNode } from './fake-node.js';

const UNC = 10n ** 18n;
const ALLOWED = 'unc1qurswpc8qurswpc8qurswpc8qurswpc8v77tvl';
const OTHER = 'unc1gfpyysjzgfpyysjzgfpyysjzgfpyysjzaujng8';

describe('the gateway’s lease terms', () => {
  const dir = mkdtempSync(join(tmpdir(), 'unc-gateway-lease-terms-'));
  const sent: string[] = [];
  let chainCopy: OfferJson | undefined;
  let rankedCopy: OfferJson | undefined;
  const node = mempoolOnlyNode(sent, {
    txStatus: 'pending',
    offers: (offer) => {
      chainCopy = { ...offer, provider: OTHER } as unknown as OfferJson;
      rankedCopy = { ...offer, provider: ALLOWED } as unknown as OfferJson;
      return [chainCopy, rankedCopy];
    },
  });
  let gw: Gateway;
  before(async () => {
    gw = new Gateway(
      gatewayOptions(await listening(node), dir, {
        budgetPerHour: 2n * UNC,
        providers: [ALLOWED],
      }),
    );
    await gw.start();
  });
  after(async () => {
    await gw.stop();
    await new Promise<void>((r) => node.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  });

  test('an offer listed twice under one id: the digest signed is the ranked entry’s', async () => {
    await gw.openLease('test');
    assert.equal(sent.length, 1, 'one opening sent');
    const action = decode(signedTransactionCodec, fromHex(sent[0]!)).tx.actions[0] as OpenLeaseAction;
    assert.equal(action.type, 'openLease');
    assert.notDeepEqual(
      action.termsDigest,
      offerTermsDigest(chainCopy!),
      'not the terms of the entry filtered out (a provider not allowed)',
    );
    assert.deepEqual(action.termsDigest, offerTermsDigest(rankedCopy!), 'the terms ranked are signed');
  });
});
