/**
 * `unc chip set-operator <address|none>` signs exactly one setHeartbeatOperator (action tag 22) from
 * the owner's key, naming the operator or none, and nothing else; naming the owner itself is refused
 * before anything is signed (core would refuse it, SELF_OPERATOR).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  addressFromPublicKey,
  decode,
  encodeAddress,
  fromHex,
  ONE_UNC,
  signedTransactionCodec,
  toHex,
} from '@unc/core';
import { devKey } from '@unc/node';
import { type JsonRpcNode, type RpcAnswers, startJsonRpcNode } from '@unc/test-utils';
import { Keyring } from '../src/keyring.js';
import { keepSent, runUnc, tempHome } from './helpers.js';

const CHAIN = 'unc-dev-set-operator';
const owner = devKey(4);
const ownerAddress = encodeAddress(addressFromPublicKey(owner.publicKey));
const hot = encodeAddress(addressFromPublicKey(devKey(5).publicKey));

const answers: RpcAnswers = {
  unc_status: () => ({ chainId: CHAIN, height: 10, timeMs: 0 }),
  unc_getParams: () => ({ minFeePerByte: '1', minFeePerAction: '1', devChain: true }),
  unc_getAccount: (p) => ({ address: p[0], balance: (1000n * ONE_UNC).toString(), nonce: 3, height: 10 }),
};

describe('chip set-operator', () => {
  const home = tempHome();
  const sent: string[] = [];
  let node: JsonRpcNode;
  before(async () => {
    node = await startJsonRpcNode({ ...answers, unc_sendTransaction: keepSent(sent) });
    new Keyring(home.dir).addTest('owner', owner.seed, CHAIN);
  });
  after(async () => {
    await node.close();
    home.cleanup();
  });

  const run = (target: string) =>
    runUnc(['chip', 'set-operator', target, '--from', 'owner', '-y', '--home', home.dir, '--node', node.url]);

  for (const [target, expected] of [
    [hot, hot],
    ['none', null],
  ] as const) {
    test(`signs one setHeartbeatOperator naming ${expected ?? 'none'}, from the owner's key`, async () => {
      sent.length = 0;
      const r = await run(target);
      assert.equal(sent.length, 1, r.stderr);
      const stx = decode(signedTransactionCodec, fromHex(sent[0]!));
      assert.equal(toHex(stx.tx.signer), toHex(owner.publicKey));
      assert.equal(stx.tx.actions.length, 1);
      const a = stx.tx.actions[0]!;
      assert.ok(a.type === 'setHeartbeatOperator');
      assert.equal(a.operator ? encodeAddress(a.operator) : null, expected);
    });
  }

  test("its help names the miner's real option for running on the operator key", async () => {
    const help = await runUnc(['chip', 'set-operator', '--help']);
    const miner = await runUnc(['miner', 'start', '--help']);
    const named = [...help.stdout.matchAll(/unc miner start ([^`]*)`/g)].flatMap((m) =>
      [...m[1]!.matchAll(/--[a-z-]+/g)].map((o) => o[0]),
    );
    assert.ok(named.includes('--operator-for'), help.stdout);
    for (const option of named)
      assert.ok(miner.stdout.includes(option), `${option} is an option of unc miner start`);
  });

  test('naming the owner itself is refused before anything is signed', async () => {
    sent.length = 0;
    const r = await run(ownerAddress);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /SELF_OPERATOR|own chips/);
    assert.equal(sent.length, 0);
  });
});
