/**
 * The sdk's client against a real dev node: every method of the schema, answers as domain values,
 * errors by kind, and transfers signed through the Signer interface (seed and keystore).
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { encryptKeystore } from '@unc/core';
import {
  type AccountJson,
  buildTransaction,
  devSigner,
  encodeSigned,
  feeFor,
  type HeaderJson,
  hasReason,
  InvalidParamsError,
  keystoreSigner,
  MalformedAnswerError,
  NotFoundError,
  ProofError,
  prepareTransaction,
  seedSigner,
  signedHash,
  signerAddress,
  transferAction,
  UncClient,
  verifyAccountProof,
} from '../src/index.js';
import { rpcMethods } from '../src/schema/index.js';
import { type DevChain, devAccount, startDevChain } from './dev-chain.js';

let chain: DevChain;
let client: UncClient;
before(async () => {
  chain = await startDevChain();
  client = new UncClient(chain.url);
});
after(async () => {
  await chain?.stop();
});

test('every method of the schema has a typed client method that the node answers', async () => {
  const alice = devAccount(0).address;
  const calls: Record<string, () => Promise<unknown>> = {
    unc_status: () => client.status(),
    unc_getGenesis: () => client.getGenesis(),
    unc_getParams: () => client.getParams(),
    unc_getBlock: () => client.getBlock(1, true),
    unc_getBlocks: () => client.getBlocks(1, 1),
    unc_getHeader: () => client.getHeader(),
    unc_getRawBlock: () => client.getRawBlock(1),
    unc_getBlockEvents: () => client.getBlockEvents(1),
    unc_getValidators: () => client.getValidators(),
    unc_getValidatorSetProof: () => client.getValidatorSetProof(1).catch((e) => e),
    unc_getTransaction: () => client.getTransaction('00'.repeat(32)).catch((e) => e),
    unc_getTransactionStatus: () => client.getTransactionStatus('00'.repeat(32)),
    unc_getAccount: () => client.getAccount(alice, true),
    unc_getSupply: () => client.getSupply(),
    unc_sendTransaction: () => client.sendRawTransaction('00').catch((e) => e),
    unc_sendTransactions: () => client.sendRawTransactions([]),
    unc_mempool: () => client.getMempool(),
    unc_getChip: () => client.getChip('00'.repeat(32)).catch((e) => e),
    unc_getChips: () => client.getChips(),
    unc_getChipEvents: () => client.getChipEvents('00'.repeat(32), 1),
    unc_getRewards: () => client.getRewards(alice),
    unc_getEpoch: () => client.getEpoch(),
    unc_getGovernance: () => client.getGovernance(),
    unc_getVendors: () => client.getVendors(),
    unc_getModels: () => client.getModels(),
    unc_getOffers: () => client.getOffers(),
    unc_getOffer: () => client.getOffer('00'.repeat(32)).catch((e) => e),
    unc_getLease: () => client.getLease('00'.repeat(32)).catch((e) => e),
    unc_getLeases: () => client.getLeases({ renter: alice }),
    unc_getProviderRecord: () => client.getProviderRecord(alice),
    unc_getAccountTransactions: () => client.getAccountTransactions(alice, { limit: 2 }),
    unc_listChips: () => client.listChips({ limit: 2 }),
    unc_getLeaseEvents: () => client.getLeaseEvents('00'.repeat(32)),
    unc_getNetworkStats: () => client.getNetworkStats(),
    unc_getNetworkHistory: () => client.getNetworkHistory({ limit: 2 }),
  };
  assert.deepEqual(
    Object.keys(calls).sort(),
    Object.keys(rpcMethods).sort(),
    'a schema method has no client method',
  );
  for (const [name, call] of Object.entries(calls)) {
    const out = await call();
    assert.ok(!(out instanceof InvalidParamsError), `${name}: ${String(out)}`);
  }
  const doc = (await client.discover()) as { methods: { name: string }[] };
  assert.equal(doc.methods.length, Object.keys(rpcMethods).length + 1);
});

test('read(): answers as domain values (amounts bigint), checked against the schema', async () => {
  const { address } = devAccount(0);
  const acct = await client.read('unc_getAccount', { address });
  assert.equal(typeof acct.balance, 'bigint');
  assert.ok(acct.balance > 0n);
  const supply = await client.read('unc_getSupply');
  assert.equal(typeof supply.maxSupply, 'bigint');
  assert.ok(supply.circulating <= supply.maxSupply);
  assert.equal(await client.balance(address), (await client.account(address)).balance);
});

test("devSigner(i) signs for the dev chain's funded account i; prepareTransaction is what buildTransaction signs", async () => {
  for (const i of [0, 3]) assert.equal(signerAddress(devSigner(i)), devAccount(i).address);
  const signer = devSigner(2);
  const actions = [transferAction(devAccount(0).address, 1n)];
  const tx = await prepareTransaction(client, signer.publicKey, actions);
  const stx = await buildTransaction(client, signer, actions, { nonce: tx.nonce });
  assert.equal(stx.tx.fee, tx.fee);
  assert.equal(stx.tx.chainId, tx.chainId);
  assert.ok(tx.fee > 0n);
});

test('index methods: domain answers (power and fees bigint), pages by cursor', async () => {
  const { address } = devAccount(0);
  const stats = await client.getNetworkStats();
  assert.equal(typeof stats.onlinePower, 'bigint');
  assert.ok(stats.onlinePower <= stats.activePower && stats.activePower <= stats.ratedPower);
  const history = await client.getNetworkHistory({ limit: 1 });
  for (const e of history.epochs) assert.equal(typeof e.ratedPower, 'bigint');
  // Pages of one: with a second transaction (the transfer test's), the cursor moves past the first.
  const page1 = await client.getAccountTransactions(address, { limit: 1 });
  for (const t of page1.transactions) assert.equal(typeof t.tx.fee, 'bigint');
  if (page1.nextCursor) {
    const page2 = await client.getAccountTransactions(address, { limit: 1, cursor: page1.nextCursor });
    assert.notEqual(page2.transactions[0]?.hash, page1.transactions[0]?.hash);
  }
  const bad = await client.listChips({ cursor: 'nope' }).catch((e: unknown) => e);
  assert.ok(bad instanceof InvalidParamsError);
  assert.equal(bad.field, 'cursor');
});

test('errors by kind: bad params name the field, unknown ids are NotFound', async () => {
  const bad = await client.getAccount('unc1nope').catch((e: unknown) => e);
  assert.ok(bad instanceof InvalidParamsError);
  assert.equal(bad.field, 'address');
  const missing = await client.getChip('ab'.repeat(32)).catch((e: unknown) => e);
  assert.ok(missing instanceof NotFoundError);
  assert.ok(hasReason(missing, 'NOT_FOUND'));
});

test('a node answering a malformed shape is refused, not believed', async () => {
  const fake = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.setHeader('content-type', 'application/json');
      // A balance that is not a decimal string of base units.
      res.end(
        JSON.stringify({
          jsonrpc: '2.0',
          id: 1,
          result: { address: 'unc1x', balance: '-5', nonce: 0, height: 1, stateRoot: '00'.repeat(32) },
        }),
      );
    });
  });
  await new Promise<void>((r) => fake.listen(0, '127.0.0.1', r));
  try {
    const url = `http://127.0.0.1:${(fake.address() as AddressInfo).port}`;
    const err = await new UncClient(url)
      .read('unc_getAccount', { address: devAccount(0).address })
      .catch((e: unknown) => e);
    assert.ok(err instanceof MalformedAnswerError, String(err));
    assert.match(err.message, /balance/);
  } finally {
    fake.close();
  }
});

test('transfers signed by a seed signer and by a keystore signer move exactly value + fee', async () => {
  const from = devAccount(2);
  const to = devAccount(3).address;
  const params = await client.getParams();
  const fees = {
    minFeePerByte: BigInt(params.minFeePerByte),
    minFeePerAction: BigInt(params.minFeePerAction),
  };
  const keystore = encryptKeystore(
    from.seed,
    'correct horse',
    { salt: new Uint8Array(32).fill(7), iv: new Uint8Array(12).fill(9) },
    { n: 1024, r: 8, p: 1 },
  );
  for (const signer of [seedSigner(from.seed), keystoreSigner(keystore, 'correct horse')]) {
    assert.equal(signerAddress(signer), from.address);
    const before = await client.balance(from.address);
    const toBefore = await client.balance(to);
    const stx = await buildTransaction(client, signer, [transferAction(to, 1234n)]);
    assert.equal(stx.tx.fee, feeFor(stx.tx, fees));
    await client.sendRawTransaction(encodeSigned(stx));
    const inclusion = await client.waitForTransaction(signedHash(stx), 15_000);
    assert.equal(inclusion.status, 'included');
    assert.equal(await client.balance(from.address), before - 1234n - stx.tx.fee);
    assert.equal(await client.balance(to), toBefore + 1234n);
  }
  assert.throws(() => keystoreSigner(keystore, 'wrong'), /password/i);
});

test('proofs: a real balance verifies against its header; a tampered balance, proof, header or height fails', async () => {
  const { address } = devAccount(0);
  const account = await client.getAccount(address, true);
  const header = await client.getHeader(account.height);
  const proven = verifyAccountProof(account, header);
  assert.equal(proven.balance.toString(), account.balance);

  const flip = (hex: string, at: number) =>
    hex.slice(0, at) + (Number.parseInt(hex[at]!, 16) ^ 1).toString(16) + hex.slice(at + 1);
  const other = await client.getHeader(
    account.height + 1 <= (await client.status()).height ? account.height + 1 : account.height - 1,
  );
  const tampered: [string, AccountJson, HeaderJson][] = [
    ['balance + 1', { ...account, balance: (BigInt(account.balance) + 1n).toString() }, header],
    ['nonce + 1', { ...account, nonce: account.nonce + 1 }, header],
    ['a proof byte', { ...account, proof: flip(account.proof!, account.proof!.length - 3) }, header],
    ['the value', { ...account, value: flip(account.value!, account.value!.length - 1) }, header],
    [
      'the header bytes (state root)',
      account,
      { ...header, encoded: flip(header.encoded, header.encoded.length - 40) },
    ],
    ['the header hash', account, { ...header, hash: flip(header.hash, 0) }],
    ['the height (another block)', account, other],
    ['the claimed height', { ...account, height: account.height + 1 }, header],
  ];
  for (const [what, a, h] of tampered) {
    assert.throws(
      () => verifyAccountProof(a, h),
      (err: unknown) => err instanceof ProofError,
      what,
    );
  }
});
