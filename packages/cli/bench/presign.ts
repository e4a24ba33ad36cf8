/** What the throughput benchmarks share: transfers signed ahead of time, and progress on stderr. */
import { encodeAddress, signTransaction, type Transaction } from '@unc/core';
import { devKey } from '@unc/node';
import { encodeSigned, feeFor, transferAction } from '@unc/sdk';
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
