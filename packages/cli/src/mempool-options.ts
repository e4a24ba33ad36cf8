/** The mempool's limits as options of `unc start` and `unc dev` (defaults: the node's). */
import { DEFAULT_MEMPOOL_OPTIONS, type MempoolOptions } from '@unc/node';
import type { Command } from 'commander';
import { countOption } from './context.js';

export interface MempoolFlags {
  mempoolTxs?: string;
  mempoolBytes?: string;
  mempoolSenderTxs?: string;
  mempoolSenderBytes?: string;
  mempoolNonceGap?: string;
}

const d = DEFAULT_MEMPOOL_OPTIONS;

export function withMempoolOptions(cmd: Command): Command {
  return cmd
    .option('--mempool-txs <n>', `transactions the mempool holds (default ${d.maxTxs})`)
    .option('--mempool-bytes <n>', `bytes the mempool holds (default ${d.maxBytes})`)
    .option('--mempool-sender-txs <n>', `pending transactions per sender (default ${d.maxTxsPerSender})`)
    .option('--mempool-sender-bytes <n>', `pending bytes per sender (default ${d.maxBytesPerSender})`)
    .option(
      '--mempool-nonce-gap <n>',
      `how far past its next nonce a sender may queue (default ${d.maxNonceGap})`,
    );
}

const MAX = 1_000_000_000;

/** The limits given on the command line; the node fills in the rest from its defaults. */
export function mempoolOptions(flags: MempoolFlags): Partial<MempoolOptions> {
  const out: Partial<MempoolOptions> = {};
  if (flags.mempoolTxs !== undefined) out.maxTxs = countOption(flags.mempoolTxs, 'mempool-txs', 1, MAX);
  if (flags.mempoolBytes !== undefined)
    out.maxBytes = countOption(flags.mempoolBytes, 'mempool-bytes', 1024, 64 * MAX);
  if (flags.mempoolSenderTxs !== undefined)
    out.maxTxsPerSender = countOption(flags.mempoolSenderTxs, 'mempool-sender-txs', 1, MAX);
  if (flags.mempoolSenderBytes !== undefined)
    out.maxBytesPerSender = countOption(flags.mempoolSenderBytes, 'mempool-sender-bytes', 1024, 64 * MAX);
  if (flags.mempoolNonceGap !== undefined)
    out.maxNonceGap = BigInt(countOption(flags.mempoolNonceGap, 'mempool-nonce-gap', 0, MAX));
  return out;
}

/** The same flags again, for the `unc start` processes that `unc testnet` runs. */
export function mempoolArgs(flags: MempoolFlags): string[] {
  mempoolOptions(flags); // refuses bad values here, not in every child
  const pairs: [string, string | undefined][] = [
    ['--mempool-txs', flags.mempoolTxs],
    ['--mempool-bytes', flags.mempoolBytes],
    ['--mempool-sender-txs', flags.mempoolSenderTxs],
    ['--mempool-sender-bytes', flags.mempoolSenderBytes],
    ['--mempool-nonce-gap', flags.mempoolNonceGap],
  ];
  return pairs.flatMap(([flag, value]) => (value === undefined ? [] : [flag, value]));
}
