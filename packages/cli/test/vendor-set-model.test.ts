/**
 * `unc vendor set-model` (branch modelpower) writes the model's whole record: without --model-name
 * it kept to the power but renamed the model to its id ("NVIDIA H100 SXM5" became "h100"). It
 * keeps the registry's name now; `unc vendor remove-model` of a model the chain does not hold is
 * refused before anything is signed (the chain would refuse it, UNKNOWN_MODEL).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { decode, fromHex, ONE_UNC, signedTransactionCodec, toHex } from '@unc/core';
import { devKey } from '@unc/node';
import { type JsonRpcNode, type RpcAnswers, startJsonRpcNode } from '@unc/test-utils';
import { Keyring } from '../src/keyring.js';
import { keepSent, runUnc, tempHome } from './helpers.js';

const CHAIN = 'unc-dev-set-model';
const gov = devKey(6);

const answers: RpcAnswers = {
  unc_status: () => ({ chainId: CHAIN, height: 10, timeMs: 0 }),
  unc_getParams: () => ({ minFeePerByte: '1', minFeePerAction: '1', devChain: true }),
  unc_getAccount: (p) => ({ address: p[0], balance: (1000n * ONE_UNC).toString(), nonce: 3, height: 10 }),
  unc_getGovernance: () => ({ threshold: 1, keys: [toHex(gov.publicKey)], nonce: 2 }),
  unc_getModels: () => [{ vendorId: 'acme', modelId: 'h100', name: 'NVIDIA H100 SXM5', power: '989000' }],
};

describe('unc vendor set-model | remove-model', () => {
  const home = tempHome();
  const sent: string[] = [];
  let node: JsonRpcNode;
  before(async () => {
    node = await startJsonRpcNode({ ...answers, unc_sendTransaction: keepSent(sent) });
    new Keyring(home.dir).addTest('gov', gov.seed, CHAIN);
  });
  after(async () => {
    await node.close();
    home.cleanup();
  });

  const run = (args: string[]) =>
    runUnc(['vendor', ...args, '--from', 'gov', '-y', '--home', home.dir, '--node', node.url]);
  const proposalSent = () => {
    assert.equal(sent.length, 1);
    const a = decode(signedTransactionCodec, fromHex(sent[0]!)).tx.actions[0]!;
    assert.ok(a.type === 'governance');
    return a.proposal;
  };

  test('a power change keeps the model its registry name', async () => {
    sent.length = 0;
    const r = await run(['set-model', '--vendor', 'acme', '--model', 'h100', '--power', '500000']);
    const p = proposalSent();
    assert.ok(p.type === 'setModel', r.stderr);
    assert.deepEqual(p.model, {
      vendorId: 'acme',
      modelId: 'h100',
      name: 'NVIDIA H100 SXM5',
      power: 500_000n,
    });
  });

  test('--model-name renames; a new model is named by its id', async () => {
    sent.length = 0;
    await run([
      'set-model',
      '--vendor',
      'acme',
      '--model',
      'h100',
      '--power',
      '1',
      '--model-name',
      'H100 (derated)',
    ]);
    let p = proposalSent();
    assert.ok(p.type === 'setModel');
    assert.equal(p.model.name, 'H100 (derated)');
    sent.length = 0;
    await run(['set-model', '--vendor', 'acme', '--model', 'b200', '--power', '2250000']);
    p = proposalSent();
    assert.ok(p.type === 'setModel');
    assert.equal(p.model.name, 'b200');
  });

  test('remove-model signs removeModel for a registered model, and refuses an unknown one unsigned', async () => {
    sent.length = 0;
    await run(['remove-model', '--vendor', 'acme', '--model', 'h100']);
    assert.deepEqual(proposalSent(), { type: 'removeModel', vendorId: 'acme', modelId: 'h100' });
    sent.length = 0;
    const r = await run(['remove-model', '--vendor', 'acme', '--model', 'a100']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /UNKNOWN_MODEL|not registered/);
    assert.equal(sent.length, 0);
  });
});
