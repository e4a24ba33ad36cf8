/**
 * `unc query account --prove` believes a balance only through the light client: a node that builds
 * its own state trie around a made-up balance, with a header to match, is refused (before the light
 * client the CLI checked the proof against a header the same node supplied, and said "verified").
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import {
  accountCodec,
  accountKey,
  applyToTrie,
  blockHash,
  blockHeaderCodec,
  decode,
  decodeAddress,
  emptyTrie,
  encode,
  fromHex,
  merkleProofCodec,
  toHex,
  trieKey,
} from '@unc/core';
import { type DevNode, runUnc, startDev, tempHome, waitForHeight } from './helpers.js';

const EPOCH = 24;

describe('unc query account --prove', () => {
  const home = tempHome();
  let dev: DevNode;
  let liar: Server;
  let liarUrl = '';

  before(async () => {
    dev = await startDev(home.dir, ['--block-time', '100', '--epoch-blocks', String(EPOCH)]);
    await waitForHeight(dev.url, EPOCH + 2, dev.output);
    liar = await startLiar(dev.url);
    liarUrl = `http://127.0.0.1:${(liar.address() as AddressInfo).port}`;
  });
  after(async () => {
    liar?.close();
    await dev?.stop();
    home.cleanup();
  });

  test('verifies the head header from the genesis across an epoch boundary, and prints what it verified', async () => {
    const r = await runUnc(['query', 'account', 'dev1', '--prove', '--home', home.dir, '-o', 'json']);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.verified, true);
    assert.ok(out.verification.boundariesCrossed >= 1, r.stdout);
    assert.match(out.verification.trustAnchor, /^genesis of /);
    assert.equal(out.verification.signedPower, out.verification.totalPower);
    const text = await runUnc(['query', 'account', 'dev1', '--prove', '--home', home.dir]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(
      text.stdout,
      /signed by 1 of 1 voting power, \d+ epoch boundaries verified from the genesis/,
    );
  });

  test('from a trusted checkpoint; a checkpoint with another hash is refused', async () => {
    const header = await rpc(dev.url, 'unc_getHeader', [EPOCH]);
    const ok = await runUnc([
      'query',
      'account',
      'dev1',
      '--prove',
      '--trusted-checkpoint',
      `${EPOCH}:${header.hash}`,
      '--home',
      home.dir,
      '-o',
      'json',
    ]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(JSON.parse(ok.stdout).verification.trustAnchor, new RegExp(`^checkpoint ${EPOCH}:`));
    const wrong = `${EPOCH}:${'00'.repeat(32)}`;
    const bad = await runUnc([
      'query',
      'account',
      'dev1',
      '--prove',
      '--trusted-checkpoint',
      wrong,
      '--home',
      home.dir,
    ]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /not the trusted checkpoint/);
  });

  test('a node that forges a state root with a made-up balance is refused', async () => {
    const r = await runUnc(['query', 'account', 'dev1', '--prove', '--home', home.dir, '--node', liarUrl]);
    assert.notEqual(r.code, 0, r.stdout);
    assert.match(r.stderr, /not signed by its validators/);
    assert.doesNotMatch(r.stdout, /1000000000000 UNC/);
  });
});

describe('unc query chip|lease --prove', () => {
  const home = tempHome();
  let dev: DevNode;
  let liar: Server;
  let liarUrl = '';

  before(async () => {
    dev = await startDev(home.dir, ['--block-time', '100', '--epoch-blocks', String(EPOCH)]);
    await waitForHeight(dev.url, EPOCH + 2, dev.output);
    liar = await startLiar(dev.url);
    liarUrl = `http://127.0.0.1:${(liar.address() as AddressInfo).port}`;
  });
  after(async () => {
    liar?.close();
    await dev?.stop();
    home.cleanup();
  });

  test('an unknown chip and lease are proven absent, from the genesis', async () => {
    for (const [kind, id] of [
      ['chip', '42'.repeat(32)],
      ['lease', '43'.repeat(32)],
    ] as const) {
      const r = await runUnc(['query', kind, id, '--prove', '--home', home.dir, '-o', 'json']);
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout);
      assert.equal(out.exists, false);
      assert.equal(out.verified, true);
      assert.ok(out.verification.boundariesCrossed >= 1, r.stdout);
      const text = await runUnc(['query', kind, id, '--prove', '--home', home.dir]);
      assert.equal(text.code, 0, text.stderr);
      assert.match(text.stdout, /does not exist \(proven absent\)/);
    }
  });

  test('a true but old answer replayed by a node is refused past --max-age, and the block time is printed', async () => {
    // The node picks the height: an answer it read earlier verifies like a fresh one (a lease
    // closed since, TLS pins rotated since). Replayed once the chain has moved on, it is refused.
    const replayer = await startReplayer(dev.url);
    const url = `http://127.0.0.1:${(replayer.address() as AddressInfo).port}`;
    try {
      const args = ['query', 'chip', '42'.repeat(32), '--prove', '--home', home.dir, '--node', url];
      const first = await runUnc([...args, '-o', 'json']);
      assert.equal(first.code, 0, first.stderr);
      const read = JSON.parse(first.stdout).verification;
      const blockMs = Date.parse(read.blockTime);
      assert.ok(Number.isFinite(blockMs), first.stdout);
      const text = await runUnc(args);
      assert.match(text.stdout, /^time {5}\d{4}-\d\d-\d\dT.*--max-age\)$/m);
      // Wait (for the clock, not asserted on it) until that block is over 2 s old.
      while (Date.now() < blockMs + 2_500) await new Promise((r) => setTimeout(r, 100));
      const stale = await runUnc([...args, '--max-age', '2']);
      assert.notEqual(stale.code, 0, stale.stdout);
      assert.match(
        stale.stderr,
        new RegExp(`read at block ${read.height} of .*older than the oldest accepted`),
      );
      // The default bound (600 s) still takes it: the same old block, shown with its time.
      const again = await runUnc([...args, '-o', 'json']);
      assert.equal(again.code, 0, again.stderr);
      assert.equal(JSON.parse(again.stdout).verification.height, read.height);
      // A balance the same: its first answer (replayed from now on) is refused once that block is old.
      const account = ['query', 'account', 'dev1', '--prove', '--home', home.dir, '--node', url];
      const firstAccount = await runUnc([...account, '-o', 'json']);
      assert.equal(firstAccount.code, 0, firstAccount.stderr);
      const accountMs = Date.parse(JSON.parse(firstAccount.stdout).verification.blockTime);
      while (Date.now() < accountMs + 2_500) await new Promise((r) => setTimeout(r, 100));
      const staleAccount = await runUnc([...account, '--max-age', '2']);
      assert.notEqual(staleAccount.code, 0, staleAccount.stdout);
      assert.match(staleAccount.stderr, /older than the oldest accepted/);
    } finally {
      replayer.close();
    }
  });

  test('a chip named by a prefix: proven for the full id, and the output says the prefix was resolved by the node', async () => {
    // The node's lists turn a prefix into a full id (ids.ts): a node may list a look-alike and
    // hide the one meant, so "verified" covers the full id printed, not the prefix typed.
    let chips: Obj[] = [];
    for (let i = 0; i < 100 && chips.length === 0; i++) {
      chips = (await rpc(dev.url, 'unc_getChips', [])) as unknown as Obj[];
      if (chips.length === 0) await new Promise((r) => setTimeout(r, 200));
    }
    const full = chips[0]!.chipId as string;
    const prefix = full.slice(0, 12);
    const json = await runUnc(['query', 'chip', prefix, '--prove', '--home', home.dir, '-o', 'json']);
    assert.equal(json.code, 0, json.stderr);
    const out = JSON.parse(json.stdout);
    assert.equal(out.chipId, full);
    assert.equal(out.verified, true);
    assert.equal(out.verification.idFromPrefix, prefix);
    const text = await runUnc(['query', 'chip', prefix, '--prove', '--home', home.dir]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, new RegExp(`from the prefix ${prefix} by the node's lists \\(not proven`));
    // The full id says nothing of the kind.
    const whole = await runUnc(['query', 'chip', full, '--prove', '--home', home.dir, '-o', 'json']);
    assert.equal(whole.code, 0, whole.stderr);
    assert.equal(JSON.parse(whole.stdout).verification.idFromPrefix, undefined);
  });

  test("a node's NOT_FOUND without its proof of absence is refused", async () => {
    const r = await runUnc([
      'query',
      'chip',
      '42'.repeat(32),
      '--prove',
      '--home',
      home.dir,
      '--node',
      liarUrl,
    ]);
    assert.notEqual(r.code, 0, r.stdout);
    assert.match(r.stderr, /no proof of absence/);
  });
});

type Obj = Record<string, unknown>;

async function rpc(url: string, method: string, params: unknown[]): Promise<Obj> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
  });
  const body = (await res.json()) as { result?: Obj; error?: unknown };
  if (body.error) throw new Error(JSON.stringify(body.error));
  return body.result as Obj;
}

/**
 * A node in front of the real one that answers unc_getAccount with a balance of 10^12 UNC, proven
 * by a trie of its own, and every header and block at that height with its trie's root in place of
 * the real one (the real commit beside it: it cannot sign for the validators).
 */
async function startLiar(upstream: string): Promise<Server> {
  let forged: { height: number; root: Uint8Array } | null = null;
  const forgeHeader = (h: Obj): Obj => {
    if (!forged || h.height !== forged.height) return h;
    const header = { ...decode(blockHeaderCodec, fromHex(h.encoded as string)), stateRoot: forged.root };
    return {
      ...h,
      stateRoot: toHex(forged.root),
      encoded: toHex(encode(blockHeaderCodec, header)),
      hash: toHex(blockHash(header)),
    };
  };
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', async () => {
      const call = JSON.parse(body) as { id: unknown; method: string; params: unknown[] };
      let result: Obj = await rpc(upstream, call.method, call.params).catch((err: Error) => ({
        __error: err.message,
      }));
      if (call.method === 'unc_getChip' && '__error' in result) {
        // The chip's NOT_FOUND, its proof of absence dropped: the node's word alone.
        const error = JSON.parse(result.__error as string) as { data?: Obj };
        if (error.data) delete error.data.absence;
        result = { __error: JSON.stringify(error) };
      }
      if (call.method === 'unc_getAccount' && !('__error' in result)) {
        const address = decodeAddress(result.address as string);
        const value = encode(accountCodec, { balance: 10n ** 30n, nonce: 0n });
        const trie = applyToTrie(emptyTrie(), [{ key: accountKey(address), value }]);
        forged = { height: result.height as number, root: trie.root };
        result = {
          ...result,
          balance: (10n ** 30n).toString(),
          nonce: 0,
          stateRoot: toHex(trie.root),
          proof: toHex(encode(merkleProofCodec, trie.prove(trieKey(accountKey(address))))),
          value: toHex(value),
        };
      } else if (
        (call.method === 'unc_getHeader' || call.method === 'unc_getBlock') &&
        !('__error' in result)
      ) {
        result = forgeHeader(result);
      }
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify(
          '__error' in result
            ? { jsonrpc: '2.0', id: call.id, error: JSON.parse(result.__error as string) }
            : { jsonrpc: '2.0', id: call.id, result },
        ),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

/** A node in front of the real one that answers each unc_getChip and unc_getAccount with the first answer it got. */
async function startReplayer(upstream: string): Promise<Server> {
  const first = new Map<string, string>();
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', async () => {
      const call = JSON.parse(body) as { id: unknown; method: string; params: unknown[] };
      const key =
        call.method === 'unc_getChip' || call.method === 'unc_getAccount'
          ? `${call.method} ${JSON.stringify(call.params)}`
          : null;
      let answer = key ? first.get(key) : undefined;
      if (answer === undefined) {
        const up = await fetch(upstream, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ ...call, id: 1 }),
        });
        answer = await up.text();
        if (key) first.set(key, answer);
      }
      const parsed = JSON.parse(answer) as Obj;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ ...parsed, id: call.id }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}
