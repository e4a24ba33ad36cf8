/**
 * `unc gateway start --prove`: the expiry height of every transaction the gateway signs counts from
 * the verified head, not from the height the node's status reports. A fee (and an opening's rate) is
 * counted as pending until the chain is seen past its expiry height: a node that reported a height
 * far ahead while the transaction was built had it signed to expire only then (the chain refuses it,
 * or the node holds it to relay much later), and counted against the budget for ever, across
 * restarts too (the store keeps pending fees and openings). The gateway is real; its node is
 * proven-node.ts, which signs only blocks up to its real head.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { decode, fromHex, signedTransactionCodec } from '@unc/core';
import { closeLeaseAction } from '@unc/sdk';
import { Gateway } from '../src/gateway.js';
import { gatewayOptions, listening } from './fake-node.js';
import { provenWorld, rpcNode, validatorKey } from './proven-node.js';

const CHAIN = 'unc-gateway-prove-expiry-test';
const TIME = 1_700_000_000_000;
const timeOf = (h: number) => TIME + h * 1000;
const REAL_HEAD = 2;
const FAR = 1_000_000_000;
const world = provenWorld(CHAIN, () => {});

/** What the node reports as its head, per status call. */
const node = { heads: (): number => REAL_HEAD };
const sent: bigint[] = [];
const server = rpcNode({
  unc_status: () => {
    const height = node.heads();
    return { chainId: CHAIN, height, timeMs: timeOf(height), time: '' };
  },
  unc_getParams: () => ({ minFeePerByte: '1000', minFeePerAction: '100000' }),
  // Only the blocks that exist are signed: a height past the real head has none.
  unc_getBlock: (p) => {
    const h = p[0] as number;
    if (h > REAL_HEAD) throw new Error(`no block ${h}`);
    return world.block(h, timeOf(h)).json;
  },
  unc_getAccount: () => ({ address: '', balance: '0', nonce: 0, height: REAL_HEAD, stateRoot: '' }),
  unc_sendTransaction: (p) => {
    sent.push(decode(signedTransactionCodec, fromHex(p[0] as string)).tx.expiresAt);
    return { hash: '00'.repeat(32) };
  },
  unc_getTransactionStatus: (p) => ({ hash: p[0], status: 'pending' }),
});
const dir = mkdtempSync(join(tmpdir(), 'unc-gateway-prove-expiry-'));
const gateways: Gateway[] = [];
after(async () => {
  for (const gw of gateways) await gw.stop();
  await new Promise<void>((r) => server.close(() => r()));
  rmSync(dir, { recursive: true, force: true });
});

interface Private {
  chainId: string;
  chainHead(): Promise<{ height: number }>;
  sendTx(actions: unknown[], kind: string): Promise<unknown>;
  store: { pendingFees(limit: number): { expiresAt: string | null }[] };
}

let n = 0;
async function gateway(): Promise<Private> {
  const url = server.listening
    ? `http://127.0.0.1:${(server.address() as { port: number }).port}`
    : await listening(server);
  const name = `g${n++}`;
  const gw = new Gateway(
    gatewayOptions(url, join(dir, name), {
      dbPath: join(dir, `${name}.db`),
      now: () => timeOf(REAL_HEAD) + 60_000,
      inclusionWaitMs: 50,
      trustAnchor: {
        kind: 'genesis',
        chainId: CHAIN,
        validators: [{ publicKey: validatorKey }],
        epochBlocks: 1000n,
      },
    }),
  );
  gateways.push(gw);
  // What start() reads from the node (not run here: the pool's ticks are not wanted).
  (gw as unknown as Private).chainId = CHAIN;
  return gw as unknown as Private;
}

const close = () => [closeLeaseAction('03'.repeat(32))];

test('a transaction expires 100 blocks past the verified head, whatever height the node reports', async () => {
  // The node reports a head a billion blocks ahead: no signed block proves it, nothing is signed.
  sent.length = 0;
  node.heads = () => FAR;
  const lying = await gateway();
  await assert.rejects(lying.sendTx(close(), 'closeLease'));
  assert.deepEqual(sent, [], 'nothing reached the node');
  assert.deepEqual(lying.store.pendingFees(100), [], 'no fee counted as pending');

  // It reports the real head when asked alone, a far one when the transaction is built: the
  // expiry is still the verified head's.
  let calls = 0;
  node.heads = () => (calls++ % 2 === 0 ? REAL_HEAD : FAR);
  const alternating = await gateway();
  await alternating.sendTx(close(), 'closeLease').catch(() => {});
  for (const e of sent) assert.ok(e <= BigInt(REAL_HEAD + 100), `signed to expire at ${e}`);
  for (const f of alternating.store.pendingFees(100))
    assert.ok(BigInt(f.expiresAt ?? 0) <= BigInt(REAL_HEAD + 100), `counted until ${f.expiresAt}`);

  // An honest node: sent, to expire 100 blocks past its head.
  sent.length = 0;
  node.heads = () => REAL_HEAD;
  const honest = await gateway();
  await honest.sendTx(close(), 'closeLease').catch(() => {});
  assert.deepEqual(sent, [BigInt(REAL_HEAD + 100)]);
});

test('a closing still goes out when the node went back below the verified head, to expire past that head', async () => {
  sent.length = 0;
  node.heads = () => REAL_HEAD;
  const gw = await gateway();
  assert.equal((await gw.chainHead()).height, REAL_HEAD);
  // Restarted from an older snapshot: its head is block 1, below block 2 verified. Reads are
  // refused (HEAD_WENT_BACK), and say what to do; a lease's closing is not held back by it.
  node.heads = () => 1;
  await assert.rejects(
    gw.chainHead(),
    /below block 2 verified before.*goes on with the node once it is past block 2.*load balancer/,
  );
  await gw.sendTx(close(), 'closeLease').catch(() => {});
  assert.deepEqual(sent, [BigInt(REAL_HEAD + 100)]);
});
