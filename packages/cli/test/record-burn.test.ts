/**
 * The chain burns 100 × minFeePerAction, on top of the fee, for each record an action keeps for
 * good (a lease, a receipt, a transfer that makes an account: core stateEntryBurn), and the node
 * refuses a transaction whose balance cannot pay it (INSUFFICIENT_FUNDS). The CLI checks and shows
 * it before signing: a user whose balance covers the deposit and the fee but not the burn is told
 * so, and nothing is signed.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  addressFromPublicKey,
  encodeAddress,
  ONE_UNC,
  STATE_ENTRY_BURN_ACTIONS,
  sha256,
  utf8,
} from '@unc/core';
import { devKey } from '@unc/node';
import type { OfferJson } from '@unc/sdk';
import { type JsonRpcNode, type RpcAnswers, startJsonRpcNode } from '@unc/test-utils';
import { Keyring } from '../src/keyring.js';
import { confirmationLines } from '../src/send.js';
import { keepSent, runUnc, tempHome } from './helpers.js';

const CHAIN = 'unc-dev-record-burn';
const OFFER_ID = 'ab'.repeat(32);
const MIN_FEE_PER_ACTION = 1000n;
const BURN = STATE_ENTRY_BURN_ACTIONS * MIN_FEE_PER_ACTION;
/** Far above any fee of these transactions (~300 bytes at 1 a byte + 1000), far below the burn. */
const SLACK = 10_000n;
const RENTER = encodeAddress(addressFromPublicKey(devKey(2).publicKey));
const KNOWN = encodeAddress(addressFromPublicKey(devKey(3).publicKey));
const FRESH = encodeAddress(sha256(utf8('record-burn fresh')).slice(0, 20));

function answers(balance: { renter: bigint }): RpcAnswers {
  const offer: OfferJson = {
    id: OFFER_ID,
    provider: encodeAddress(addressFromPublicKey(devKey(4).publicKey)),
    price: ONE_UNC.toString(),
    minHours: 1,
    maxHours: 10,
    noticeMs: 0,
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
        chipId: 'cd'.repeat(32),
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
  return {
    unc_status: () => ({ chainId: CHAIN, height: 10, timeMs: 0 }),
    unc_getParams: () => ({
      minFeePerByte: '1',
      minFeePerAction: MIN_FEE_PER_ACTION.toString(),
      devChain: true,
    }),
    unc_getAccount: (p) => {
      const address = p[0] as string;
      const [b, nonce] =
        address === RENTER ? [balance.renter, 0] : address === KNOWN ? [ONE_UNC, 1] : [0n, 0];
      return { address, balance: b.toString(), nonce, height: 10, stateRoot: '00'.repeat(32) };
    },
    unc_getOffer: () => offer,
  };
}

describe('the CLI counts what a transaction burns for its records', () => {
  const home = tempHome();
  const sent: string[] = [];
  const balance = { renter: 0n };
  let node: JsonRpcNode;
  let url = '';
  before(async () => {
    node = await startJsonRpcNode({ ...answers(balance), unc_sendTransaction: keepSent(sent) });
    url = node.url;
    new Keyring(home.dir).addTest('renter', devKey(2).seed, CHAIN);
  });
  after(async () => {
    await node.close();
    home.cleanup();
  });
  const common = () => ['--from', 'renter', '-y', '--home', home.dir, '--node', url, '-o', 'json'];

  test('a lease the balance pays the deposit and fee of, but not the burn, is refused before signing', async () => {
    sent.length = 0;
    balance.renter = 3n * ONE_UNC + SLACK;
    const run = await runUnc(['market', 'lease', OFFER_ID, '--hours', '3', ...common()]);
    assert.notEqual(run.code, 0);
    assert.match(run.stderr + run.stdout, /INSUFFICIENT_FUNDS/);
    assert.match(run.stderr + run.stdout, /burned for the records it keeps/);
    assert.equal(sent.length, 0, 'nothing signed');
    // With the burn covered, it is signed (and the node keeps it).
    balance.renter = 3n * ONE_UNC + SLACK + BURN;
    const paid = await runUnc(['market', 'lease', OFFER_ID, '--hours', '3', ...common()]);
    assert.equal(sent.length, 1, paid.stderr);
  });

  test('a transfer that makes an account counts the burn; one to an existing account does not', async () => {
    sent.length = 0;
    balance.renter = ONE_UNC + SLACK;
    const fresh = await runUnc(['tx', 'transfer', '--to', FRESH, '--amount', '1', ...common()]);
    assert.match(fresh.stderr + fresh.stdout, /INSUFFICIENT_FUNDS/);
    assert.equal(sent.length, 0, 'nothing signed');
    const known = await runUnc(['tx', 'transfer', '--to', KNOWN, '--amount', '1', ...common()]);
    assert.equal(sent.length, 1, known.stderr);
  });

  test('the confirmation shows the burn and counts it in the total', () => {
    const shown = {
      summary: ['Rent'],
      from: 'renter',
      address: RENTER,
      fee: 2n,
      spend: 10n,
      burn: 100n,
      chainId: CHAIN,
      node: url,
    };
    const text = confirmationLines(shown).join('\n');
    assert.match(text, /burned +0\.0000000000000001 UNC/);
    assert.match(text, /total +0\.000000000000000112 UNC/);
  });
});
