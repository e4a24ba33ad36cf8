/**
 * A hostile node and the CLI's answer to NONCE_USED, on a real dev chain: the node reports the
 * key's nonce one ahead, keeps the signature it gets without relaying it, and answers NONCE_USED.
 * Signing the same transfer again at the nonce it then reports handed it a second signature at
 * another nonce, and relaying both applied one confirmed transfer twice. A node elsewhere than this
 * machine now gets one signature and the user an error that says to check first.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
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
import { transferAction, UncClient } from '@unc/sdk';
import type { Context } from '../src/context.js';
import { signAndSend } from '../src/send.js';
import { startDev, tempHome } from './helpers.js';

test('a remote node lying NONCE_USED gets one signature, and the transfer cannot apply twice', async () => {
  const home = tempHome();
  const node = await startDev(home.dir);
  try {
    const real = new UncClient(node.url);
    const key = devKey(5);
    const from = encodeAddress(addressFromPublicKey(key.publicKey));
    const to = encodeAddress(addressFromPublicKey(devKey(3).publicKey));
    const before = await real.balance(to);
    const nonceBefore = BigInt((await real.getAccount(from)).nonce);
    const kept: string[] = [];
    let lied = false;
    // The real node behind a hostile front: every call passes through but these three.
    const hostile = new Proxy(real, {
      get(target, prop, recv) {
        if (prop === 'getAccount')
          return async (addr: string) => {
            const a = await target.getAccount(addr);
            // Until it holds a signature, the key's nonce is reported one ahead.
            return kept.length === 0 ? { ...a, nonce: a.nonce + 1 } : a;
          };
        // The nonce signed at (the pending one, unc_getAccount with `pending`): the same lie.
        if (prop === 'nextNonce')
          return async (addr: string) => {
            const n = await target.nextNonce(addr);
            return kept.length === 0 ? n + 1n : n;
          };
        if (prop === 'sendRawTransaction')
          return async (hex: string) => {
            if (kept.length === 0) {
              kept.push(hex); // kept, not relayed
              return { hash: 'kept' };
            }
            return target.sendRawTransaction(hex);
          };
        if (prop === 'waitForTransaction')
          return async (hash: string, ms?: number) => {
            if (!lied) {
              lied = true;
              return { status: 'rejected', code: 'NONCE_USED', reason: 'nonce used by another transaction' };
            }
            return target.waitForTransaction(hash, ms);
          };
        const v = Reflect.get(target, prop, recv);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
    const ctx = {
      yes: true,
      output: 'json',
      // Any node but this machine's: the one a user is pointed at, or a ?rpc= link.
      nodeUrl: 'https://rpc.example.net',
      config: () => ({ explorer: 'http://explorer.invalid/' }),
      client: () => hostile as unknown as UncClient,
      keyring: () => ({ info: () => ({ address: from, publicKey: toHex(key.publicKey) }) }),
      unlockKey: async () => key.seed,
    } as unknown as Context;
    const amount = 5n * 10n ** 18n;
    await assert.rejects(
      signAndSend(ctx, { from: 'dev5' }, [transferAction(to, amount)], {
        summary: ['send 5 UNC'],
        spend: amount,
      }),
      (err: unknown) => err instanceof UncError && err.code === 'NONCE_USED_UNVERIFIED',
    );
    assert.equal(kept.length, 1, 'one signature handed to the node, not signed again');
    const stx = decode(signedTransactionCodec, fromHex(kept[0]!));
    assert.equal(stx.tx.nonce, nonceBefore + 1n);
    // The attacker relays all it holds: one signature at a nonce ahead, which the chain cannot
    // apply while nobody signs the nonce before it (no block can change that: only the key can).
    await real.sendRawTransaction(kept[0]!);
    assert.equal(await real.balance(to), before);
    assert.equal(BigInt((await real.getAccount(from)).nonce), nonceBefore);
  } finally {
    await node.stop();
    home.cleanup();
  }
});
