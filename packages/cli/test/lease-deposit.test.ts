/**
 * `unc market lease` signs the deposit it shows. The price it confirms comes from the node; a
 * transaction with deposit 0 ("price × hours") would let the chain's price of the offer decide what
 * leaves the balance, so a hostile node could show one price and have the user sign another.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import {
  addressFromPublicKey,
  decode,
  encodeAddress,
  fromHex,
  ONE_UNC,
  signedTransactionCodec,
} from '@unc/core';
import { devKey } from '@unc/node';
import type { OfferJson } from '@unc/sdk';
import { Keyring } from '../src/keyring.js';
import { runUnc, tempHome } from './helpers.js';

const CHAIN = 'unc-dev-lease-deposit';
const OFFER_ID = 'ab'.repeat(32);
const CHIP_ID = 'cd'.repeat(32);

/** A node that answers what `market lease` reads, shows the offer at 1 UNC/h, and keeps what is sent. */
function hostileNode(sent: string[]): Server & { offer: OfferJson } {
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
    chips: [{ chipId: CHIP_ID, available: true, online: true } as OfferJson['chips'][number]],
    power: '1',
    available: 1,
  };
  const answers: Record<string, (params: unknown[]) => unknown> = {
    unc_status: () => ({ chainId: CHAIN, height: 10, timeMs: 0 }),
    unc_getParams: () => ({ minFeePerByte: '1', minFeePerAction: '1', devChain: true }),
    unc_getAccount: (p) => ({ address: p[0], balance: (1000n * ONE_UNC).toString(), nonce: 0, height: 10 }),
    unc_getOffer: () => offer,
    unc_sendTransaction: (p) => {
      sent.push(p[0] as string);
      // What it does with the signature is its business; the user is told it failed.
      throw new Error('kept');
    },
  };
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      if (req.method !== 'POST') return void res.writeHead(404).end();
      const { id, method, params } = JSON.parse(body) as { id: number; method: string; params: unknown[] };
      let reply: unknown;
      try {
        const answer = answers[method];
        reply = answer
          ? { jsonrpc: '2.0', id, result: answer(params) }
          : { jsonrpc: '2.0', id, error: { code: -32601, message: `no ${method}` } };
      } catch (err) {
        reply = { jsonrpc: '2.0', id, error: { code: -32000, message: String(err) } };
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(reply));
    });
  });
  return Object.assign(server, { offer });
}

describe('market lease binds the confirmed deposit', () => {
  const home = tempHome();
  const sent: string[] = [];
  const server = hostileNode(sent);
  let url = '';
  before(async () => {
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    new Keyring(home.dir).addTest('renter', devKey(2).seed, CHAIN);
  });
  after(() => {
    server.close();
    home.cleanup();
  });

  test('the signed openLease deposits exactly the escrow it showed (price × hours), never 0', async () => {
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
    const action = stx.tx.actions[0]!;
    assert.equal(action.type, 'openLease');
    assert.equal((action as { deposit: bigint }).deposit, 3n * ONE_UNC);
  });

  test('a deposit given with --deposit is signed as given', async () => {
    sent.length = 0;
    const run = await runUnc([
      'market',
      'lease',
      OFFER_ID,
      '--hours',
      '3',
      '--deposit',
      '5',
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
    const action = decode(signedTransactionCodec, fromHex(sent[0]!)).tx.actions[0] as { deposit: bigint };
    assert.equal(action.deposit, 5n * ONE_UNC);
  });

  test('an offer the node shows at price 0 gets nothing signed (deposit 0 would mean the chain price × hours)', async () => {
    sent.length = 0;
    server.offer.price = '0';
    try {
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
      assert.notEqual(run.code, 0);
      assert.match(run.stderr + run.stdout, /BAD_OFFER/);
      assert.equal(sent.length, 0, 'nothing signed');
    } finally {
      server.offer.price = ONE_UNC.toString();
    }
  });
});
