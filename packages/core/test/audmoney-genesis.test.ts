/** docs/security-audit-money.md L-1: the genesis allocation is exactly what the accounts hold. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  accountCodec,
  decode,
  encodeAddress,
  genesisAllocation,
  genesisStateWrites,
  genesisToJson,
  MemoryState,
  parseGenesis,
  StateSpace,
} from '../src/index.js';
import { genesis } from './harness.js';

function balances(state: MemoryState): bigint {
  let sum = 0n;
  for (const { key: k, value } of state.map.values())
    if (value && k[0] === StateSpace.account) sum += decode(accountCodec, value).balance;
  return sum;
}

describe('audmoney L-1: one genesis account per address, however its text is cased', () => {
  test('an address listed twice, once in upper case, is refused (it wrote one balance and counted two)', () => {
    const g = genesis();
    const json = genesisToJson(g) as { accounts: { address: string; balance: string }[] };
    const [a, b] = json.accounts as [
      { address: string; balance: string },
      { address: string; balance: string },
    ];
    // The second entry names the first account again, in upper case (bech32 allows it).
    const twice = { ...json, accounts: [a, { address: a.address.toUpperCase(), balance: b.balance }] };
    assert.throws(() => parseGenesis(twice), /duplicate/);
    // Lower case still parses, and the state then holds exactly the allocation.
    const state = new MemoryState();
    state.apply(genesisStateWrites(parseGenesis(json)));
    assert.equal(balances(state), genesisAllocation(g));
  });

  test('genesisStateWrites refuses a genesis that lists one address twice (the supply would count a balance no account holds)', () => {
    const g = genesis();
    const [a, b] = g.accounts as [
      { address: Uint8Array; balance: bigint },
      { address: Uint8Array; balance: bigint },
    ];
    const dup = { ...g, accounts: [a, { address: a.address.slice(), balance: b.balance }] };
    assert.throws(() => genesisStateWrites(dup), /twice/);
    assert.equal(encodeAddress(a.address), encodeAddress(dup.accounts[1]!.address));
  });
});
