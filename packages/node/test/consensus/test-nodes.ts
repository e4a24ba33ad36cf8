/**
 * The set-up several consensus tests share: the four dev validators, their genesis, and one node
 * (validator 0, or a full node) started on an in-memory network hub in a temporary directory, with
 * the clean-up that stops every node started and removes its directory.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  envelopeFromSigned,
  parseUnc,
  signTransaction,
  type TimeoutParams,
  type TxEnvelope,
} from '@unc/core';
import { feeFor, transferAction } from '@unc/sdk';
import { devGenesisJson, devKey, devValidatorKey } from '../../src/dev.js';
import { silentLogger } from '../../src/log.js';
import { UncNode } from '../../src/node.js';
import type { Network, NetworkHandlers } from '../../src/p2p/types.js';
import type { MemoryNetworkHub } from './memory-network.js';

export const validators = [0, 1, 2, 3].map((i) => devValidatorKey(i));

/** A dev account 1 transfer of `amount` at `nonce`, signed, with the chain's minimum fee. */
export function devTransfer(
  params: { minFeePerByte: bigint; minFeePerAction: bigint },
  nonce: bigint,
  amount: bigint,
): TxEnvelope {
  const sender = devKey(1);
  const base = {
    chainId: 'unc-dev-1',
    signer: sender.publicKey,
    nonce,
    expiresAt: 10_000n,
    actions: [transferAction('unc1vystcnlgdeut2u2v57a0lacv4url68zepr0t34', amount)],
  };
  const fee = feeFor(base, { minFeePerByte: params.minFeePerByte, minFeePerAction: params.minFeePerAction });
  return envelopeFromSigned(signTransaction({ ...base, fee }, sender.seed));
}

/** A transfer nobody gossiped (dev account 1, nonce 0): a fee of its own makes each a different transaction. */
export function unseenTransfer(fee: string): Uint8Array {
  const payer = devKey(1);
  const body = {
    chainId: 'unc-dev-1',
    signer: payer.publicKey,
    nonce: 0n,
    expiresAt: 1_000n,
    fee: parseUnc(fee),
    actions: [transferAction('unc1vystcnlgdeut2u2v57a0lacv4url68zepr0t34', parseUnc('1'))],
  };
  return envelopeFromSigned(signTransaction(body, payer.seed)).bytes;
}

/** All four validators, named v0…v3. */
export function fourValidatorGenesis(blockTimeMs: number): ReturnType<typeof devGenesisJson> {
  return devGenesisJson({
    blockTimeMs,
    validators: validators.map((v, i) => ({ publicKey: v.publicKey, name: `v${i}` })),
  });
}

/** The nodes one test file starts: `stopAll` in its `after`. */
export class TestNodes {
  private readonly dirs: string[] = [];
  private readonly running = new Set<UncNode>();

  /**
   * Validator 0 on `hub` as `v0`, or with `fullNode` a node without a validator key as `n0`; on the
   * network `network` builds instead, for a test that wraps the hub's. Its data goes in a fresh
   * directory named from `prefix`.
   */
  async start(
    hub: MemoryNetworkHub,
    genesis: ReturnType<typeof devGenesisJson>,
    prefix: string,
    opts: {
      fullNode?: boolean;
      network?: (handlers: NetworkHandlers) => Promise<Network>;
      timeouts?: TimeoutParams;
    } = {},
  ): Promise<UncNode> {
    const dir = mkdtempSync(join(tmpdir(), prefix));
    this.dirs.push(dir);
    const node = await UncNode.start({
      dataDir: dir,
      genesis,
      ...(opts.fullNode ? {} : { validatorSeed: validators[0]!.seed }),
      rpcPort: 0,
      ...(opts.timeouts ? { timeouts: opts.timeouts } : {}),
      logger: silentLogger,
      network: opts.network ?? (async (handlers) => hub.join(opts.fullNode ? 'n0' : 'v0', handlers)),
    });
    this.running.add(node);
    return node;
  }

  async stopAll(): Promise<void> {
    for (const n of this.running) await n.stop();
    for (const d of this.dirs) rmSync(d, { recursive: true, force: true });
  }
}
