/**
 * The mempool's defences through a running node's RPC: what a client sees when its transaction
 * is refused, evicted or dropped.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  type Action,
  ed25519PublicKey,
  encode,
  envelopeFromBytes,
  fromHex,
  minimumFee,
  sha256,
  signedTransactionCodec,
  signTransaction,
  toHex,
  utf8,
} from '@unc/core';
import { encodeSigned, RpcClientError, UncClient } from '@unc/sdk';
import { DEV_CHAIN_ID, devGenesis, devGenesisJson, devKey, devValidator } from '../src/dev.js';
import { silentLogger } from '../src/log.js';
import { UncNode } from '../src/node.js';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const params = devGenesis().params;

function signed(seed: Uint8Array, nonce: bigint, actions: Action[], feeTimes = 1n): { hex: string } {
  const base = { chainId: DEV_CHAIN_ID, signer: ed25519PublicKey(seed), nonce, expiresAt: 100n, actions };
  const size = encode(signedTransactionCodec, {
    tx: { ...base, fee: 0n },
    signature: new Uint8Array(64),
  }).length;
  const stx = signTransaction({ ...base, fee: feeTimes * minimumFee(params, size, actions.length) }, seed);
  return { hex: encodeSigned(stx) };
}

const transfer = (amount: bigint): Action => ({
  type: 'transfer',
  to: devKey(8).address,
  amount,
  memo: new Uint8Array(0),
});

async function reason(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    assert.ok(err instanceof RpcClientError, String(err));
    return err.reason;
  }
}

describe('mempool through the node', () => {
  test('refusals, eviction and dropped status with reason and height over RPC', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'unc-mempool-node-'));
    dirs.push(dataDir);
    const node = await UncNode.start({
      dataDir,
      genesis: devGenesisJson(),
      validatorSeed: devValidator().seed,
      rpcPort: 0,
      // Slow blocks: the pool must hold what is sent while the test looks at it.
      blockTimeMs: 60_000,
      mempool: { maxTxs: 2 },
      logger: silentLogger,
    });
    const client = new UncClient(node.rpcUrl);
    try {
      const broke = sha256(utf8('a key with nothing'));
      // A key with nothing: no transfer, no heartbeat for a chip that is not there.
      assert.equal(
        await reason(client.sendRawTransaction(signed(broke, 0n, [transfer(1n)]).hex)),
        'INSUFFICIENT_FUNDS',
      );
      const heartbeat: Action = {
        type: 'heartbeat',
        answers: [
          {
            chipId: sha256(utf8('no chip')),
            epoch: 0n,
            slot: 0,
            evidence: { type: 'dev-soft', signature: new Uint8Array(64) },
          },
        ],
      };
      assert.equal(
        await reason(client.sendRawTransaction(signed(broke, 0n, [heartbeat], 0n).hex)),
        'UNKNOWN_CHIP',
      );
      // Beyond the balance, at admission (not "accepted" and dropped a block later).
      assert.equal(
        await reason(client.sendRawTransaction(signed(devKey(1).seed, 0n, [transfer(10n ** 30n)]).hex)),
        'INSUFFICIENT_FUNDS',
      );

      // A pool of two, full of minimum-fee transfers; one paying 10× gets in and evicts one.
      const a = await client.sendRawTransaction(signed(devKey(1).seed, 0n, [transfer(1n)]).hex);
      const b = await client.sendRawTransaction(signed(devKey(2).seed, 0n, [transfer(1n)]).hex);
      assert.equal(
        await reason(client.sendRawTransaction(signed(devKey(3).seed, 0n, [transfer(1n)]).hex)),
        'MEMPOOL_FULL',
      );
      const c = await client.sendRawTransaction(signed(devKey(3).seed, 0n, [transfer(1n)], 10n).hex);
      assert.equal((await client.getTransactionStatus(c.hash)).status, 'pending');
      const statuses = await Promise.all([a, b].map((t) => client.getTransactionStatus(t.hash)));
      const evicted = statuses.find((s) => s.status === 'dropped');
      assert.ok(evicted && evicted.status === 'dropped', JSON.stringify(statuses));
      assert.equal(evicted.code, 'EVICTED');
      assert.equal(evicted.height, Number(node.chain.height));
      assert.equal(statuses.filter((s) => s.status === 'pending').length, 1);
      // unc_getTransaction says so too, and a subscription started afterwards hears it.
      await assert.rejects(
        client.getTransaction(evicted.hash),
        (err: unknown) =>
          err instanceof RpcClientError &&
          err.reason === 'DROPPED' &&
          /^dropped: EVICTED at height \d+/.test(err.message),
      );
      const heard = await client.waitForTransaction(evicted.hash, 30_000);
      assert.equal(heard.status, 'rejected');
      assert.equal(heard.status === 'rejected' && heard.code, 'EVICTED');
      assert.equal((await client.getTransactionStatus('00'.repeat(32))).status, 'unknown');
      const status = await client.status();
      assert.equal(status.mempool.size, 2);
    } finally {
      await node.stop();
    }
  });

  test('candidates that fail at block building do not take the places in the block of those that apply', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'unc-mempool-node-'));
    dirs.push(dataDir);
    const genesis = devGenesisJson();
    genesis.params = { ...(genesis.params as Record<string, unknown>), maxBlockTxs: 2 };
    const node = await UncNode.start({
      dataDir,
      genesis,
      validatorSeed: devValidator().seed,
      rpcPort: 0,
      blockTimeMs: 300,
      logger: silentLogger,
    });
    try {
      // Funded keys whose transactions pay 10× and can never apply (the offer does not exist): a
      // failed transaction pays nothing, so these cost their sender no more than a balance to show.
      const doomed = [1, 2].map((i) => ({
        type: 'closeOffer' as const,
        offerId: sha256(utf8(`no offer ${i}`)),
      }));
      const junk = [1, 2].map((i) =>
        envelopeFromBytes(fromHex(signed(devKey(i).seed, 0n, [doomed[i - 1]!], 10n).hex)),
      );
      const honest = envelopeFromBytes(fromHex(signed(devKey(3).seed, 0n, [transfer(1n)]).hex));
      for (const env of [...junk, honest]) node.submit(env);
      const included = await new UncClient(node.rpcUrl).waitForTransaction(toHex(honest.hash), 60_000);
      assert.equal(included.status, 'included');
      const dropped = node.recentRejection(junk[0]!.hash);
      assert.equal(dropped?.code, 'UNKNOWN_OFFER');
      // The block that tried (and dropped) the junk is the one that took the honest transfer.
      assert.equal(included.status === 'included' && BigInt(included.height), dropped.height + 1n);
    } finally {
      await node.stop();
    }
  });
});
