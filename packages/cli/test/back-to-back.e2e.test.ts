/**
 * Two `unc tx transfer` from one key, the second sent while the first is still pending: the CLI
 * signs at the key's next free nonce counting its pending transactions (unc_getAccount `pending`),
 * so the second queues behind the first and both land. Signed at the committed nonce, as before,
 * the second collided with the first (REPLACEMENT_UNDERPRICED: same nonce, same fee).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { UncClient } from '@unc/sdk';
import { type DevNode, runUnc, startDev, tempHome, waitForHeight } from './helpers.js';

const home = tempHome();
let dev: DevNode;
let client: UncClient;

before(async () => {
  // Blocks far apart: both commands run between two blocks (the test starts them right after one).
  dev = await startDev(home.dir, ['--block-time', '15000', '--chips', '0']);
  client = new UncClient(dev.url);
});
after(async () => {
  await dev?.stop();
  home.cleanup();
});

test('two unc tx transfer from one key back to back, the first still pending: both land, at consecutive nonces', async () => {
  const transfer = (amount: string, extra: string[]) =>
    runUnc(
      ['tx', 'transfer', '--from', 'dev4', '--to', 'dev5', '--amount', amount, ...extra].concat([
        '--home',
        home.dir,
        '--output',
        'json',
        '-y',
      ]),
    );
  // Right after a block, so that no block falls between the two commands.
  const { height } = await client.status();
  await waitForHeight(dev.url, height + 1, dev.output);
  const first = await transfer('1', ['--no-wait']);
  assert.equal(first.code, 0, first.stderr);
  const firstHash = JSON.parse(first.stdout).hash as string;
  assert.equal((await client.getTransactionStatus(firstHash)).status, 'pending');
  const second = await transfer('2', []);
  assert.equal(second.code, 0, `the second transfer: ${second.stderr}`);
  const secondHash = JSON.parse(second.stdout).hash as string;
  const included = await client.waitForTransaction(firstHash, 60_000);
  assert.equal(included.status, 'included');
  const [a, b] = await Promise.all([client.getTransaction(firstHash), client.getTransaction(secondHash)]);
  assert.equal(BigInt(b.tx.nonce), BigInt(a.tx.nonce) + 1n);
});
