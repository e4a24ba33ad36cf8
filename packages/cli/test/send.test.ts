/**
 * The CLI's one send path when another transaction of the same key takes the nonce first (the
 * miner agent answers challenges from the operator's key): the dropped transaction can never be
 * included, so the same actions are signed again at the next nonce, a bounded number of times,
 * when the node is on this machine; a node elsewhere gets no second signature (nonce-replay.test.ts
 * shows why on a real chain). Any other drop is reported as it is.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  addressFromPublicKey,
  decode,
  encodeAddress,
  fromHex,
  signedTransactionCodec,
  toHex,
  UncError,
} from '@unc/core';
import { devKey } from '@unc/node';
import { NodeUnreachableError, RpcClientError, transferAction, type UncClient } from '@unc/sdk';
import type { Context } from '../src/context.js';
import { confirmationLines, isLoopbackUrl, signAndSend } from '../src/send.js';

type Drop = { status: 'rejected'; code: string; reason: string };

function fakeNode(
  outcomes: Drop[],
  chainIds: string[] = [],
  nodeUrl = 'http://127.0.0.1:9',
  fail: { send?: Error; wait?: Error; refusals?: Error[]; nexts?: bigint[] } = {},
) {
  let nonce = 7n;
  const sent: bigint[] = [];
  const signedFor: string[] = [];
  const unlockedFor: string[] = [];
  const client = {
    // Each read answers the next of `chainIds` (then 'unc-test'): a node that changes its story.
    status: async () => ({ chainId: chainIds.shift() ?? 'unc-test', height: 10 }),
    getParams: async () => ({ minFeePerByte: '1', minFeePerAction: '1' }),
    getAccount: async () => ({ nonce: nonce.toString(), balance: (10n ** 24n).toString() }),
    // Nothing of the key pending here: its next free nonce is the committed one (unless `nexts`
    // says what each read answers, the key's transactions pending).
    nextNonce: async () => fail.nexts?.shift() ?? nonce,
    sendRawTransaction: async (hex: string) => {
      const { tx } = decode(signedTransactionCodec, fromHex(hex));
      sent.push(tx.nonce);
      signedFor.push(tx.chainId);
      if (fail.send) throw fail.send;
      const refusal = fail.refusals?.shift();
      if (refusal) {
        // Refused because a block just took the nonce: the key's nonce moved on.
        nonce++;
        throw refusal;
      }
      return 'ok';
    },
    waitForTransaction: async () => {
      if (fail.wait) throw fail.wait;
      // Whatever happened, the key's nonce moved on: another transaction of it was included.
      nonce++;
      const next = outcomes.shift();
      return next ?? { status: 'included', height: 11, index: 0, blockHash: '00'.repeat(32) };
    },
    getTransaction: async () => ({ events: [] }),
  };
  const key = devKey(9);
  const ctx = {
    yes: true,
    output: 'json',
    nodeUrl,
    config: () => ({ explorer: 'http://explorer.invalid/' }),
    client: () => client as unknown as UncClient,
    keyring: () => ({
      info: () => ({
        address: encodeAddress(addressFromPublicKey(key.publicKey)),
        publicKey: toHex(key.publicKey),
      }),
    }),
    unlockKey: async (_name: string, chainId: string) => {
      unlockedFor.push(chainId);
      return key.seed;
    },
  } as unknown as Context;
  return { ctx, sent, signedFor, unlockedFor };
}

const nonceUsed: Drop = {
  status: 'rejected',
  code: 'NONCE_USED',
  reason: 'nonce 7 was used by another transaction',
};
const plan = { summary: ['send 1 UNC'], spend: 1n };

/** NONCE_USED from a node elsewhere: nothing signed again, the hash and nonce named, what to check said. */
const unverified = (err: unknown) =>
  err instanceof UncError &&
  err.code === 'NONCE_USED_UNVERIFIED' &&
  /transaction [0-9a-f]{64} \(nonce 7\)/.test(err.message) &&
  /may or may not have been sent/.test(err.message) &&
  /unc query tx [0-9a-f]{64}/.test(err.message);
const to = encodeAddress(addressFromPublicKey(devKey(3).publicKey));

describe('signAndSend when the nonce is taken by another transaction of the key', () => {
  test('signs the same actions again at the next nonce and reports the included one', async () => {
    const { ctx, sent } = fakeNode([nonceUsed]);
    const out = await signAndSend(ctx, { from: 'dev9' }, [transferAction(to, 1n)], plan);
    assert.deepEqual(sent, [7n, 8n]);
    assert.ok('height' in out && out.height === 11);
  });

  test('gives up after a bounded number of races, with the node reason', async () => {
    const { ctx, sent } = fakeNode([nonceUsed, nonceUsed, nonceUsed, nonceUsed]);
    await assert.rejects(
      signAndSend(ctx, { from: 'dev9' }, [transferAction(to, 1n)], plan),
      /was dropped: nonce 7/,
    );
    assert.equal(sent.length, 3);
  });

  test('a send refused at once with NONCE_USED (a block took the nonce while it waited for its check) is signed again', async () => {
    // Seen in tls.e2e: `unc market offer rotate-tls` failed while the dev chain's miner agent
    // answered challenges from the same key.
    const taken = () => new RpcClientError(-32000, 'nonce 7 already used (next is 8)', 'NONCE_USED');
    const { ctx, sent } = fakeNode([], [], 'http://127.0.0.1:9', { refusals: [taken()] });
    const out = await signAndSend(ctx, { from: 'dev9' }, [transferAction(to, 1n)], plan);
    assert.deepEqual(sent, [7n, 8n]);
    assert.ok('height' in out && out.height === 11);
    // Bounded as the drops are.
    const again = fakeNode([], [], 'http://127.0.0.1:9', { refusals: [taken(), taken(), taken(), taken()] });
    await assert.rejects(
      signAndSend(again.ctx, { from: 'dev9' }, [transferAction(to, 1n)], plan),
      (err: unknown) => err instanceof UncError && err.code === 'NONCE_USED',
    );
    assert.equal(again.sent.length, 3);
    // A node elsewhere: its word is not taken, nothing signed again.
    const far = fakeNode([], [], 'https://rpc.example.net', { refusals: [taken()] });
    await assert.rejects(signAndSend(far.ctx, { from: 'dev9' }, [transferAction(to, 1n)], plan), unverified);
    assert.deepEqual(far.sent, [7n]);
  });

  test('any other drop is an error at once, nothing sent again', async () => {
    const { ctx, sent } = fakeNode([
      { status: 'rejected', code: 'EVICTED', reason: 'evicted by a higher fee' },
    ]);
    await assert.rejects(
      signAndSend(ctx, { from: 'dev9' }, [transferAction(to, 1n)], plan),
      (err: unknown) =>
        err instanceof UncError &&
        err.code === 'EVICTED' &&
        // The node's word: the user learns until when it may still be included before re-running.
        /\(nonce 7\)/.test(err.message) &&
        /can still be included until height 110/.test(err.message),
    );
    assert.equal(sent.length, 1);
  });
});

describe('a NONCE_USED from a node elsewhere is not taken on trust', () => {
  // The node's word alone: a hostile one keeps the first signature, answers NONCE_USED, and would
  // relay both signatures if the same actions were signed again at the next nonce.
  test('nothing is signed again; the error names the hash and the nonce and says to check', async () => {
    const { ctx, sent } = fakeNode([nonceUsed], [], 'https://rpc.example.net');
    await assert.rejects(signAndSend(ctx, { from: 'dev9' }, [transferAction(to, 1n)], plan), unverified);
    assert.deepEqual(sent, [7n], 'one signature only');
  });

  test('loopback names only: localhost, 127.0.0.0/8, ::1', () => {
    for (const u of [
      'http://127.0.0.1:3030',
      'http://localhost:3030',
      'http://[::1]:3030',
      'http://127.3.2.1/',
    ])
      assert.equal(isLoopbackUrl(u), true, u);
    for (const u of [
      'https://rpc.example.net',
      'http://10.0.0.2:3030',
      'http://127.0.0.1.example.net:3030',
      'http://localhost.evil.net/',
      'not a url',
    ])
      assert.equal(isLoopbackUrl(u), false, u);
  });
});

describe('signAndSend signs for the chain it showed', () => {
  test('a node that reports another chain id after the confirmation gets nothing signed', async () => {
    // The confirmation (and the key's unlock) saw a testnet; the read inside the signing said
    // mainnet, where the same key may hold real funds.
    const { ctx, sent, unlockedFor } = fakeNode([], ['unc-testnet', 'unc-mainnet']);
    await assert.rejects(
      signAndSend(ctx, { from: 'dev9' }, [transferAction(to, 1n)], plan),
      (err: unknown) => err instanceof UncError && err.code === 'CHAIN_CHANGED',
    );
    assert.deepEqual(unlockedFor, ['unc-testnet']);
    assert.deepEqual(sent, [], 'nothing signed for a chain that was not confirmed');
  });

  test('the chain confirmed is the chain signed for', async () => {
    const { ctx, signedFor, unlockedFor } = fakeNode([], ['unc-testnet', 'unc-testnet']);
    await signAndSend(ctx, { from: 'dev9' }, [transferAction(to, 1n)], plan);
    assert.deepEqual(signedFor, unlockedFor);
  });
});

describe('a send or a wait that fails says what to check before running the command again', () => {
  // The node's word again: a hostile node answers the send with an error, or never reports the
  // inclusion, while keeping the signature; the user, told only "error", runs the command again
  // and the node relays both signatures. Each error names the hash, the nonce and the height until
  // which the transaction can still be included, in the NONCE_USED_UNVERIFIED path's words.
  const advised = (code: string) => (err: unknown) =>
    err instanceof UncError &&
    err.code === code &&
    /transaction [0-9a-f]{64} \(nonce 7\)/.test(err.message) &&
    /may or may not have been sent/.test(err.message) &&
    /unc query tx [0-9a-f]{64}/.test(err.message) &&
    /can still be included until height 110/.test(err.message);

  test('a send the node refuses keeps its reason and names what to check', async () => {
    const refused = new RpcClientError(-32000, 'fee below the minimum', 'FEE_TOO_LOW');
    const { ctx, sent } = fakeNode([], [], 'https://rpc.example.net', { send: refused });
    await assert.rejects(
      signAndSend(ctx, { from: 'dev9' }, [transferAction(to, 1n)], plan),
      (err: unknown) => advised('FEE_TOO_LOW')(err) && /fee below the minimum/.test((err as Error).message),
    );
    assert.deepEqual(sent, [7n], 'one signature only');
  });

  test('a send with no answer names what to check', async () => {
    const lost = new NodeUnreachableError('https://rpc.example.net', 'socket hang up');
    const { ctx, sent } = fakeNode([], [], 'https://rpc.example.net', { send: lost });
    await assert.rejects(
      signAndSend(ctx, { from: 'dev9' }, [transferAction(to, 1n)], plan),
      advised('TX_UNCERTAIN'),
    );
    assert.deepEqual(sent, [7n]);
  });

  test('an inclusion wait that timed out names what to check', async () => {
    const late = new RpcClientError(0, 'transaction 00 not included after 60000 ms');
    const { ctx, sent } = fakeNode([], [], 'https://rpc.example.net', { wait: late });
    await assert.rejects(
      signAndSend(ctx, { from: 'dev9' }, [transferAction(to, 1n)], plan),
      (err: unknown) => advised('TX_UNCERTAIN')(err) && /not included after/.test((err as Error).message),
    );
    assert.deepEqual(sent, [7n], 'nothing signed again');
  });
});

describe("a transaction signed behind the key's pending ones (the pending nonce)", () => {
  const late = new RpcClientError(0, 'transaction 00 not included after 60000 ms');
  // The key's nonce is 7 throughout; each read of the pending nonce answers the next of `nexts`:
  // before the confirmation, in buildTransaction, then after the wait failed.
  const failed = async (nexts: bigint[]) => {
    const { ctx, sent } = fakeNode([], [], 'https://rpc.example.net', { wait: late, nexts });
    const err = await signAndSend(ctx, { from: 'dev9' }, [transferAction(to, 1n)], plan).then(
      () => assert.fail('the wait failed'),
      (e: unknown) => e,
    );
    assert.deepEqual(sent, [9n], 'signed behind the two pending, once');
    assert.ok(err instanceof UncError && err.code === 'TX_UNCERTAIN', String(err));
    assert.match(err.message, /can still be included until height 110, and running the command again/);
    return err.message;
  };

  test('stuck in a gap (an earlier one of the key left the pool): the failed wait says so, and that the next transaction of the key fills the gap', async () => {
    // Signed at 9 behind 7 and 8; then 8 was dropped: nothing pending at 8.
    const message = await failed([9n, 9n, 8n]);
    assert.match(
      message,
      /nothing of the key is pending at nonce 8, below this one's 9: it waits in that gap/,
    );
    assert.match(message, /the key's next transaction is signed at nonce 8, and then this one may land too/);
  });

  test('queued behind earlier ones still pending: the failed wait says it lands after them', async () => {
    const message = await failed([9n, 9n, 10n]);
    assert.match(
      message,
      /queued behind 2 earlier transaction\(s\) of the key not yet included, nonces 7 to 8/,
    );
  });

  test("the confirmation shows how many of the key's transactions it is queued behind, and that a repeat applies both", () => {
    const lines = (queued: bigint) =>
      confirmationLines({
        summary: ['send 1 UNC'],
        from: 'dev9',
        address: to,
        fee: 1n,
        spend: 1n,
        chainId: 'unc-test',
        node: 'http://127.0.0.1:9',
        queued,
      }).join('\n');
    assert.match(
      lines(2n),
      /pending {3}2 earlier transaction\(s\) of this key not yet included: this one is queued behind them \(if one is this same command run before, both will apply\)/,
    );
    assert.doesNotMatch(lines(0n), /pending/);
  });
});

describe('the nonce signed at is read again after the confirmation', () => {
  // The confirmation said nothing of the key was pending (nonce 7 free); at signing the node said
  // 9, then 40: the transaction is signed there, and the accepted line says so, against what the
  // confirmation said (it said nothing of it before unless the confirmation had shown a queue).
  const accepted = async (nexts: bigint[]) => {
    const { ctx, sent } = fakeNode([], [], 'https://rpc.example.net', { nexts });
    (ctx as { output: string }).output = 'text';
    const lines: string[] = [];
    const error = console.error;
    const log = console.log;
    console.error = (...a: unknown[]) => void lines.push(a.join(' '));
    console.log = () => {};
    try {
      await signAndSend(ctx, { from: 'dev9' }, [transferAction(to, 1n)], plan);
    } finally {
      console.error = error;
      console.log = log;
    }
    return { sent, line: lines.find((l) => /accepted by the node/.test(l)) ?? '' };
  };

  test('signed past what the confirmation showed: the accepted line names the nonce and the difference', async () => {
    const { sent, line } = await accepted([7n, 40n]);
    assert.deepEqual(sent, [40n]);
    assert.match(
      line,
      /\(nonce 40, queued behind 33 earlier transaction\(s\) of the key; the confirmation said none\)/,
    );
  });

  test('signed where the confirmation said: the nonce and queue, nothing more', async () => {
    const queuedAsShown = await accepted([9n, 9n]);
    assert.match(queuedAsShown.line, /\(nonce 9, queued behind 2 earlier transaction\(s\) of the key\)$/);
    const none = await accepted([7n, 7n]);
    assert.match(none.line, /accepted by the node$/);
  });
});
