/** What the throughput benchmarks share: transfers signed ahead of time, and progress on stderr. */
import {
  ed25519PublicKey,
  ed25519Sign,
  ed25519Verify,
  encodeAddress,
  sha256,
  signTransaction,
  type Transaction,
  utf8,
} from '@unc/core';
import { devKey } from '@unc/node';
import {
  encodeSigned,
  feeFor,
  NodeUnreachableError,
  RpcClientError,
  transferAction,
  type UncClient,
} from '@unc/sdk';
import { progressBar } from '../src/progress.js';

export interface Sender {
  seed: Uint8Array;
  publicKey: Uint8Array;
}

/**
 * `perSender` transfers of 1 base unit from every sender to dev0, nonces 0…perSender−1, encoded;
 * in nonce-major order (all senders' nonce 0, then nonce 1, …), so any prefix is submittable.
 */
export function presignTransfers(
  senders: readonly Sender[],
  perSender: number,
  chainId: string,
  height: number,
  fees: { minFeePerByte: bigint; minFeePerAction: bigint },
): string[] {
  const total = perSender * senders.length;
  const bar = progressBar('pre-signing transfers');
  const to = encodeAddress(devKey(0).address);
  const signed: string[] = [];
  const started = Date.now();
  for (let k = 0; k < perSender; k++) {
    for (const s of senders) {
      const base: Omit<Transaction, 'fee'> = {
        chainId,
        signer: s.publicKey,
        nonce: BigInt(k),
        expiresAt: BigInt(height) + 10_000n,
        actions: [transferAction(to, 1n)],
      };
      signed.push(encodeSigned(signTransaction({ ...base, fee: feeFor(base, fees) }, s.seed)));
    }
    if (k % 50 === 0) {
      const rate = signed.length / Math.max(0.001, (Date.now() - started) / 1000);
      bar.update(signed.length, total, (total - signed.length) / rate);
    }
  }
  bar.done();
  return signed;
}

/** A bar over a timed phase; call the returned function when the phase ends. */
export function phaseProgress(label: string, durationMs: number, detail: () => string): () => void {
  const bar = progressBar(label);
  const start = Date.now();
  const timer = setInterval(() => {
    const elapsed = Math.min(durationMs, Date.now() - start);
    bar.update(
      Math.round(elapsed / 1000),
      Math.round(durationMs / 1000),
      (durationMs - elapsed) / 1000,
      detail(),
    );
  }, 250);
  return () => {
    clearInterval(timer);
    bar.done();
  };
}

/**
 * Mempool limits for a bench node: every sender queues thousands of transfers at once, which the
 * per-sender defaults (64 pending, 1 MiB, 64 nonces ahead) refuse on a public node.
 */
export const BENCH_MEMPOOL_ARGS = [
  '--mempool-sender-txs',
  '1000000',
  '--mempool-sender-bytes',
  '1000000000',
  '--mempool-nonce-gap',
  '1000000',
];

/**
 * This machine's raw single-core Ed25519 verifications per second (node:crypto through core's
 * `ed25519Verify`, distinct messages over a few keys), over `ms` milliseconds: the limit the
 * throughput benchmarks compare against.
 */
export function rawVerifyRate(ms = 3_000): number {
  const keys = Array.from({ length: 16 }, (_, i) => sha256(utf8(`bench key ${i}`)));
  const items = Array.from({ length: 2000 }, (_, i) => {
    const seed = keys[i % keys.length]!;
    const msg = sha256(utf8(`message ${i}`));
    return { pub: ed25519PublicKey(seed), msg, sig: ed25519Sign(seed, msg) };
  });
  let n = 0;
  const start = process.hrtime.bigint();
  const end = start + BigInt(ms) * 1_000_000n;
  while (process.hrtime.bigint() < end) {
    for (const it of items) if (ed25519Verify(it.pub, it.msg, it.sig)) n++;
  }
  return n / (Number(process.hrtime.bigint() - start) / 1e9);
}

/**
 * Sends a batch, waiting and retrying while the node answers "busy, retry" (-32005 BUSY, or the
 * per-IP limits) or drops the connection; other errors are thrown.
 */
export async function sendRetrying(
  client: UncClient,
  batch: string[],
): Promise<({ hash: string; replaced: boolean } | { error: { reason: string; message: string } })[]> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await client.sendRawTransactions(batch);
    } catch (err) {
      const busy =
        err instanceof RpcClientError &&
        (err.reason === 'BUSY' || err.reason === 'RATE_LIMITED' || err.reason === 'CONCURRENCY_LIMIT');
      if (!busy && !(err instanceof NodeUnreachableError && attempt < 5)) throw err;
      busyRetries++;
      await new Promise((r) => setTimeout(r, busy ? 100 : 500));
    }
  }
}

/** How many times `sendRetrying` waited on a busy or unreachable node. */
export let busyRetries = 0;
