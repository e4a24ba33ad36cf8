/**
 * The node against its RPC schema (@unc/sdk/schema): every method it serves is in the schema and
 * the other way round, every answer has the declared shape, and every malformed parameter is a
 * -32602 naming it, with nothing changed.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeAddress, indexChipEvents, MemoryState, StateOverlay, toHex } from '@unc/core';
import { buildTransaction, encodeSigned, RpcClientError, signedHash, transferAction } from '@unc/sdk';
import { type OpenRpcDocument, openRpcDocument } from '@unc/sdk/openrpc';
import { type RpcMethodName, rpcMethods } from '@unc/sdk/schema';
import fc from 'fast-check';
import * as v from 'valibot';
import { devKey, devValidator } from '../../src/dev.js';
import { RPC_COSTS, rpcCosts } from '../../src/rpc-costs.js';
import { useDevNode } from '../dev-node.js';

// The property test below throws hundreds of calls at every method, the expensive ones included, as
// fast as it can: this client is exempt from the rate limit (tested in rpc/server.test.ts), as
// `unc dev`'s own are, so the tests after it are not refused for the work it did.
const dev = useDevNode('rpc-schema', { rpc: { unlimitedAddresses: ['127.0.0.1', '::1'] } });

async function rpcError(p: Promise<unknown>): Promise<RpcClientError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof RpcClientError) return err;
    throw err;
  }
  assert.fail('expected an RPC error');
}

/** A raw call that keeps `error.data` (the sdk's client keeps only its reason). */
async function rawCall(
  method: string,
  params: unknown,
): Promise<{ result?: unknown; error?: { code: number; message: string; data?: { field?: string } } }> {
  for (;;) {
    const res = await fetch(dev.node.rpcUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
    });
    const answer = (await res.json()) as {
      error?: { code: number; message: string; data?: { field?: string } };
    };
    // The node's per-IP rate limit (many calls from one test): wait and ask again.
    if (answer.error?.code === -32005) await new Promise((r) => setTimeout(r, 100));
    else return answer;
  }
}

test('every answer has the shape the schema declares (strict: no undeclared field)', async () => {
  const { client } = dev;
  const alice = devKey(0);
  const stx = await buildTransaction(client, alice.seed, [
    transferAction(encodeAddress(devKey(1).address), 5n),
  ]);
  await client.sendRawTransaction(encodeSigned(stx));
  const hash = signedHash(stx);
  await client.waitForTransaction(hash, 15_000);
  const address = encodeAddress(alice.address);
  const unknownId = 'ab'.repeat(32);
  const samples: Record<RpcMethodName, unknown[] | Record<string, unknown>> = {
    unc_status: [],
    unc_getGenesis: [],
    unc_getParams: [],
    unc_getBlock: [1, true],
    unc_getBlocks: { from: 3, count: 3 },
    unc_getHeader: ['latest'],
    unc_getRawBlock: [1],
    unc_getBlockEvents: [1],
    unc_getValidators: [],
    unc_getTransaction: [hash],
    unc_getTransactionStatus: [hash],
    unc_getAccount: [address, true, true],
    unc_getValidatorSetProof: [1],
    unc_getSupply: [],
    unc_sendTransaction: [encodeSigned(stx)],
    unc_sendTransactions: [[encodeSigned(stx), 'zz']],
    unc_mempool: [],
    unc_getChip: [unknownId],
    unc_getChips: [],
    unc_getChipEvents: [unknownId, 5],
    unc_getRewards: [address],
    unc_getEpoch: [],
    unc_getGovernance: [],
    unc_getVendors: [],
    unc_getModels: [],
    unc_getOffers: { all: true },
    unc_getOffer: [unknownId],
    unc_getLease: [unknownId],
    unc_getLeases: { renter: address },
    unc_getProviderRecord: [address],
    unc_getAccountTransactions: { address, limit: 5 },
    unc_getLeaseEvents: [unknownId],
    unc_listChips: { limit: 3 },
    unc_getNetworkStats: [],
    unc_getNetworkHistory: [null, 2],
  };
  // A transaction already included is refused (a protocol error, not a params error).
  // Block 1 is no epoch's last block (its result shape is checked in light-client.test.ts).
  const notFound = new Set<string>([
    'unc_getChip',
    'unc_getOffer',
    'unc_getLease',
    'unc_sendTransaction',
    'unc_getValidatorSetProof',
  ]);
  for (const [name, spec] of Object.entries(rpcMethods)) {
    const params = samples[name as RpcMethodName];
    if (notFound.has(name)) {
      const err = await rpcError(client.call(name, params));
      assert.equal(err.rpcCode, -32000, `${name}: ${err.message}`);
      continue;
    }
    const result = await client.call(name, params);
    const parsed = v.safeParse(spec.result.schema, result);
    assert.ok(
      parsed.success,
      `${name}: ${JSON.stringify(parsed.issues?.map((i) => ({ path: v.getDotPath(i), message: i.message })))}`,
    );
  }
});

test('the node serves exactly the schema: rpc.discover lists every method with its params', async () => {
  const doc = await dev.client.call<OpenRpcDocument>('rpc.discover');
  assert.equal(doc.openrpc, '1.3.2');
  const names = doc.methods.map((m) => m.name).sort();
  assert.deepEqual(names, [...Object.keys(rpcMethods), 'rpc.discover'].sort());
  const getBlocks = doc.methods.find((m) => m.name === 'unc_getBlocks')!;
  assert.deepEqual(
    getBlocks.params.map((p) => [p.name, p.required]),
    [
      ['from', true],
      ['count', false],
    ],
  );
  assert.deepEqual(
    doc['x-subscriptions'].map((s) => s.name),
    ['newBlocks', 'tx'],
  );
  // Every served method answers something other than "method not found".
  for (const name of names) {
    const answer = await rawCall(name, []);
    assert.notEqual(answer.error?.code, -32601, name);
  }
});

test('bad params: -32602 naming the parameter (message and error.data.field)', async () => {
  const ADDR = encodeAddress(devValidator().address);
  const cases: [string, unknown, string, RegExp][] = [
    ['unc_getBlocks', ['x'], 'from', /parameter "from" must be a non-negative integer/],
    ['unc_getBlocks', [1, 0], 'count', /parameter "count" must be an integer 1…100/],
    ['unc_getBlocks', [], 'from', /parameter "from" is required/],
    [
      'unc_getBlock',
      ['12ab'],
      'block',
      /parameter "block" must be a height, a 64-hex-digit block hash or "latest"/,
    ],
    ['unc_getBlock', [1, 'yes'], 'full', /"full" must be true or false/],
    ['unc_getAccount', ['unc1nope'], 'address', /parameter "address"/],
    [
      'unc_getAccount',
      { adress: 'x' },
      'adress',
      /unknown parameter "adress" \(expected address, proof, pending\)/,
    ],
    ['unc_getTransaction', [42], 'hash', /parameter "hash" must be a string of 64 hex digits/],
    ['unc_getChipEvents', ['ab'.repeat(32), 5000], 'limit', /integer 1…1000/],
    ['unc_sendTransaction', ['xyz'], 'tx', /parameter "tx" must be an even number of hex digits/],
    ['unc_getRewards', ['bob'], 'target', /chip id \(64 hex digits\) or an owner address/],
    ['unc_getOffers', { provider: 7 }, 'provider', /"provider" must be an address string/],
    ['unc_getEpoch', [-1], 'epoch', /non-negative integer/],
    // The index methods, checked by the schema like the rest (they once checked their own params,
    // ignored unknown names and said nothing of the field).
    ['unc_getAccountTransactions', { address: 'unc1nope' }, 'address', /parameter "address"/],
    ['unc_getAccountTransactions', {}, 'address', /parameter "address" is required/],
    ['unc_getAccountTransactions', { address: ADDR, limit: 101 }, 'limit', /integer 1…100/],
    ['unc_getAccountTransactions', { address: ADDR, cursor: 'x' }, 'cursor', /nextCursor/],
    ['unc_getAccountTransactions', { address: ADDR, cursor: '1:4294967296' }, 'cursor', /nextCursor/],
    ['unc_getAccountTransactions', { address: ADDR, heartbeats: 'no' }, 'heartbeats', /true or false/],
    ['unc_getAccountTransactions', { address: ADDR, limt: 5 }, 'limt', /unknown parameter "limt"/],
    ['unc_listChips', { cursor: 'ZZ' }, 'cursor', /nextCursor of a previous page \(a chip id\)/],
    ['unc_listChips', { limit: 201 }, 'limit', /integer 1…200/],
    ['unc_listChips', { owner: 5 }, 'owner', /must be an address string/],
    ['unc_getLeaseEvents', { leaseId: 'ab' }, 'leaseId', /64 hex digits/],
    ['unc_getLeaseEvents', ['ab'.repeat(32), '1:2'], 'cursor', /height:txIndex:eventIndex/],
    ['unc_getLeaseEvents', ['ab'.repeat(32), '1:2:65536'], 'cursor', /height:txIndex:eventIndex/],
    ['unc_getLeaseEvents', ['ab'.repeat(32), null, 0], 'limit', /integer 1…500/],
    ['unc_getNetworkHistory', { cursor: -1 }, 'cursor', /nextCursor of a previous page \(an epoch\)/],
    ['unc_getNetworkHistory', { limit: 1001 }, 'limit', /integer 1…1000/],
    ['unc_getNetworkStats', [1], '', /at most 0 parameter/],
  ];
  for (const [method, params, field, message] of cases) {
    const { error } = await rawCall(method, params);
    assert.equal(error?.code, -32602, `${method} ${JSON.stringify(params)}`);
    assert.match(error!.message, message);
    assert.equal(error!.data?.field, field || undefined, `${method}: ${error!.message}`);
  }
  const surplus = await rawCall('unc_status', [1]);
  assert.equal(surplus.error?.code, -32602);
  assert.match(surplus.error!.message, /at most 0 parameter/);
  const neither = await rawCall('unc_getLeases', [{}]);
  assert.match(neither.error!.message, /exactly one of "renter" or "provider"/);
});

test('positional, named and [named] spellings are the same call; null is the default', async () => {
  const address = encodeAddress(devValidator().address);
  const a = await dev.client.call<{ address: string }>('unc_getAccount', [address]);
  const b = await dev.client.call<{ address: string }>('unc_getAccount', { address });
  const c = await dev.client.call<{ address: string }>('unc_getAccount', [{ address }]);
  assert.equal(a.address, address);
  assert.deepEqual([b.address, c.address], [address, address]);
  const withNull = await dev.client.call<{ proof?: string }>('unc_getAccount', [address, null]);
  assert.equal(withNull.proof, undefined);
  const h = await dev.client.call<{ height: number }>('unc_getHeader', [null]);
  assert.ok(h.height >= 1);
});

test('property: any params to any method are an answer or a clear error, and never reach the mempool', async () => {
  const names = [...Object.keys(rpcMethods), 'rpc.discover'];
  const before = dev.node.mempool.size;
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom(...names),
      fc.oneof(
        fc.array(fc.jsonValue(), { maxLength: 3 }),
        fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue()),
      ),
      async (method, params) => {
        const answer = await rawCall(method, params);
        if (answer.error) {
          assert.ok(
            [-32602, -32000].includes(answer.error.code),
            `${method}: ${answer.error.code} ${answer.error.message}`,
          );
        }
      },
    ),
    { numRuns: 300, seed: 14 },
  );
  assert.equal(dev.node.mempool.size, before);
  assert.ok(toHex(dev.node.chain.head.hash).length === 64);
});

test('attack: the [named] spelling costs what the positional one does (no cheap 10,000-transaction batch)', () => {
  const txs = Array.from({ length: 10_000 }, () => '00');
  for (const params of [[txs], { txs }, [{ txs }]])
    assert.equal(RPC_COSTS.unc_sendTransactions!(params), 1000, JSON.stringify(params).slice(0, 30));
  for (const params of [[0, 100], { from: 0, count: 100 }, [{ from: 0, count: 100 }]])
    assert.equal(RPC_COSTS.unc_getBlocks!(params), 100);
  assert.equal(RPC_COSTS.unc_getChipEvents!([{ chipId: 'ab', limit: 1000 }]), 100);
  // The index methods price their page by `limit`, read at its place in the schema's order.
  const pages: [RpcMethodName, number, number][] = [
    ['unc_getAccountTransactions', 100, 100],
    ['unc_listChips', 200, 100],
    ['unc_getLeaseEvents', 500, 50],
    ['unc_getNetworkHistory', 1000, 10],
  ];
  for (const [method, limit, cost] of pages) {
    const names = Object.keys(rpcMethods[method].params);
    const positional = names.map((n) => (n === 'limit' ? limit : null));
    for (const params of [positional, { limit }, [{ limit }]])
      assert.equal(RPC_COSTS[method]!(params), cost, `${method} ${JSON.stringify(params)}`);
    // A limit past the page's maximum is refused by the schema, and never priced above the maximum.
    assert.equal(RPC_COSTS[method]!({ limit: 1e9 }), cost, method);
  }
});

test('attack: a page of account transactions costs a unit per block it may read (100 block reads were 20 units)', () => {
  const address = 'unc1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq';
  for (const params of [[address, null, 100], { address, limit: 100 }, [{ address, limit: 100 }]])
    assert.equal(RPC_COSTS.unc_getAccountTransactions!(params), 100, JSON.stringify(params));
  // The default page (25 entries) is 25 block reads at most.
  assert.equal(RPC_COSTS.unc_getAccountTransactions!({ address }), 25);
  // As unc_getBlocks charges for the same number of blocks.
  assert.equal(
    RPC_COSTS.unc_getAccountTransactions!({ address, limit: 100 }),
    RPC_COSTS.unc_getBlocks!({ from: 0, count: 100 }),
  );
});

test('attack: rpc.discover costs what it serialises (a ~50 KB document at 1 unit let one client keep a core busy)', () => {
  const bytes = JSON.stringify(openRpcDocument('0.1.0')).length;
  const cost = RPC_COSTS['rpc.discover']?.(undefined) ?? 1;
  assert.ok(cost * 2048 >= bytes, `${cost} units for ${bytes} bytes`);
  assert.ok(cost >= 10, `rpc.discover costs ${cost}`);
});

test("attack: an owner's chip pages cost by the owner's chips, and pricing reads one state entry, not every chip", () => {
  const owner = new Uint8Array(20).fill(7);
  const state = new StateOverlay(new MemoryState());
  const registered = Array.from({ length: 5000 }, (_, i) => {
    const chipId = new Uint8Array(32);
    new DataView(chipId.buffer).setUint32(0, i + 1);
    return { type: 'chipRegistered', chipId, owner, power: 1000n };
  });
  indexChipEvents(state, registered, 1n);
  const costs = rpcCosts(() => state);
  const address = encodeAddress(owner);
  state.reads = 0;
  // limit 1 was 1 unit for a page that reads and sorts all 5,000 ids of the owner.
  for (const params of [{ owner: address, limit: 1 }, [address, null, 1], [{ owner: address, limit: 1 }]])
    assert.equal(costs.unc_listChips!(params), 50, JSON.stringify(params));
  assert.equal(costs.unc_listChips!({ limit: 1 }), 1, 'every chip, by cursor: one page read');
  assert.equal(costs.unc_getRewards!({ target: address }), 500_000);
  assert.ok(state.reads <= 4, `pricing read ${state.reads} state entries`);
});
