import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { encodeAddress, parseUnc, signTransaction } from '@unc/core';
import { devKey } from '@unc/node';
import { type BlockJson, encodeSigned, feeFor, transferAction, UncClient } from '@unc/sdk';
import { type DevNode, startDev, tempHome, waitForHeight } from './helpers.js';

const home = tempHome();
let dev: DevNode | undefined;
after(async () => {
  await dev?.stop('SIGKILL');
  home.cleanup();
});

test('kill -9 under load: restart resumes at the last committed block with every included transaction', async () => {
  dev = await startDev(home.dir, ['--block-time', '200']);
  const client = new UncClient(dev.url);
  const status = await client.status();
  const params = await client.getParams();
  const fees = {
    minFeePerByte: BigInt(params.minFeePerByte),
    minFeePerAction: BigInt(params.minFeePerAction),
  };
  const senders = [1, 2, 3, 4, 5].map((i) => devKey(i));
  const nonces = new Map<number, bigint>();
  for (const s of senders)
    nonces.set(s.index, BigInt((await client.getAccount(encodeAddress(s.address))).nonce));

  const seen: BlockJson[] = [];
  const sub = await client.subscribe<BlockJson>('newBlocks', [], (b) => seen.push(b));

  let stop = false;
  let submitted = 0;
  const load = (async () => {
    while (!stop) {
      const batch: string[] = [];
      for (const s of senders) {
        for (let k = 0; k < 10; k++) {
          const nonce = nonces.get(s.index)!;
          const base = {
            chainId: status.chainId,
            signer: s.publicKey,
            nonce,
            expiresAt: BigInt(status.height) + 10_000n,
            actions: [transferAction(encodeAddress(devKey(0).address), parseUnc('0.001'))],
          };
          batch.push(encodeSigned(signTransaction({ ...base, fee: feeFor(base, fees) }, s.seed)));
          nonces.set(s.index, nonce + 1n);
        }
      }
      try {
        await client.sendRawTransactions(batch);
        submitted += batch.length;
      } catch {
        return; // the node was killed mid-request
      }
      await new Promise((r) => setTimeout(r, 30));
    }
  })();

  // Let blocks with transactions commit, then kill the node without warning.
  // Generous: on a loaded machine the load loop and the node share the cores with other work.
  const deadline = Date.now() + 90_000;
  while (seen.filter((b) => b.txCount > 0).length < 5 && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 50));
  assert.ok(seen.filter((b) => b.txCount > 0).length >= 5, 'no blocks with transactions were committed');
  await dev.stop('SIGKILL');
  stop = true;
  await load;
  sub.close();
  assert.ok(submitted > 0);

  const reported = seen.slice();
  const last = reported[reported.length - 1]!;
  const included = reported.flatMap((b) => (b.txs as string[]).map((hash) => ({ hash, height: b.height })));
  assert.ok(included.length > 0);

  dev = await startDev(home.dir, ['--block-time', '200']);
  const again = new UncClient(dev.url);
  const resumed = await again.status();
  assert.ok(resumed.height >= last.height, `resumed at ${resumed.height}, below the reported ${last.height}`);
  for (const b of reported) {
    const stored = await again.getBlock(b.height);
    assert.equal(stored.hash, b.hash, `block ${b.height} changed`);
    assert.equal(stored.stateRoot, b.stateRoot);
  }
  for (const { hash, height } of included) {
    const r = await again.getTransaction(hash);
    assert.equal(r.height, height);
  }
  // And the chain goes on.
  await waitForHeight(dev.url, resumed.height + 1, dev.output);
  assert.ok((await again.status()).height > resumed.height, 'no new block after restart');
});
