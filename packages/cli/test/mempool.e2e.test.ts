/** `unc dev` with a tiny mempool: a paying transfer evicts, and `unc query tx` says what happened. */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { encode, encodeAddress, minimumFee, signedTransactionCodec, signTransaction } from '@unc/core';
import { devKey } from '@unc/node';
import { encodeSigned, type TxStatusJson, transferAction, UncClient } from '@unc/sdk';
import { type DevNode, runUnc, startDev, tempHome } from './helpers.js';

describe('unc dev mempool limits', () => {
  const home = tempHome();
  let dev: DevNode;
  let client: UncClient;

  before(async () => {
    // Slow blocks, so the pool still holds what the test sends; a pool of two.
    // No wait for block 1: the test is about the pool, not blocks.
    dev = await startDev(home.dir, ['--block-time', '60000', '--chips', '0', '--mempool-txs', '2'], {
      firstBlock: false,
    });
    client = new UncClient(dev.url);
  });
  after(async () => {
    await dev?.stop();
    home.cleanup();
  });

  test('a transfer paying more evicts one; unc query tx prints "dropped: EVICTED at height N"', async () => {
    const { chainId } = await client.status();
    const params = await client.getParams();
    const send = async (from: number, times: bigint) => {
      const k = devKey(from);
      const base = {
        chainId,
        signer: k.publicKey,
        nonce: 0n,
        expiresAt: 1000n,
        actions: [transferAction(encodeAddress(devKey(8).address), 1n)],
      };
      const size = encode(signedTransactionCodec, {
        tx: { ...base, fee: 0n },
        signature: new Uint8Array(64),
      }).length;
      const fee =
        times *
        minimumFee(
          { minFeePerByte: BigInt(params.minFeePerByte), minFeePerAction: BigInt(params.minFeePerAction) },
          size,
          1,
        );
      return (await client.sendRawTransaction(encodeSigned(signTransaction({ ...base, fee }, k.seed)))).hash;
    };
    const low = [await send(1, 1n), await send(2, 1n)];
    await send(3, 10n);
    const statuses: TxStatusJson[] = await Promise.all(low.map((h) => client.getTransactionStatus(h)));
    const dropped = statuses.find((s) => s.status === 'dropped');
    assert.ok(dropped, JSON.stringify(statuses));
    const q = await runUnc(['query', 'tx', dropped.hash, '--home', home.dir]);
    assert.equal(q.code, 0, q.stderr);
    assert.match(q.stdout, /dropped: EVICTED at height \d+/);
    const json = await runUnc(['query', 'tx', dropped.hash, '--home', home.dir, '--output', 'json']);
    assert.equal(JSON.parse(json.stdout).status, 'dropped');
  });
});
