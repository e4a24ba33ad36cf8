import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type Action, DEFAULT_PARAMS, getAccount, sha256, utf8 } from '../src/index.js';
import { other, TestChain } from './harness.js';

describe('aud-bloat: accounts made by dust', () => {
  // Every account is a state entry every node keeps in memory (LiveState) and rehashes at each
  // start. A transfer of one base unit makes one for the per-action minimum fee (10^-5 UNC): with
  // 64 transfers per transaction and 8 MiB blocks, ~180,000 new accounts a second for ~2 UNC.
  test('a permanent new account costs its maker at least 100 times the per-action minimum fee', () => {
    const chain = new TestChain();
    chain.blocksUntil(1n);
    const before = getAccount(chain.state, other.address).balance;
    const dust = Array.from({ length: 64 }, (_, i) => sha256(utf8(`dust-${i}`)).slice(0, 20));
    const actions: Action[] = dust.map((to) => ({
      type: 'transfer',
      to,
      amount: 1n,
      memo: new Uint8Array(0),
    }));
    const tx = chain.tx(other, actions);
    if (chain.attempt(tx)) return; // a chain that refuses dust accounts outright passes too
    chain.block([tx]);
    const made = dust.filter((a) => getAccount(chain.state, a).balance > 0n).length;
    assert.equal(made, 64);
    const perAccount = (before - getAccount(chain.state, other.address).balance) / BigInt(made);
    assert.ok(
      perAccount >= 100n * DEFAULT_PARAMS.minFeePerAction,
      `a new account cost ${perAccount} base units, ${Number(perAccount) / Number(DEFAULT_PARAMS.minFeePerAction)} × the per-action fee`,
    );
  });
});
