/**
 * The set-up several consensus tests share: the four dev validators, their genesis, and one node
 * (validator 0, or a full node) started on an in-memory network hub in a temporary directory, with
 * the clean-up that stops every node started and removes its directory.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  blockHash,
  encode,
  envelopeFromBytes,
  envelopeFromSigned,
  equalBytes,
  getAccount,
  parseUnc,
  selectProposer,
  signProposal,
  signTransaction,
  signVote,
  type TimeoutParams,
  type TxEnvelope,
  toHex,
} from '@unc/core';
import { feeFor, transferAction } from '@unc/sdk';
import { compactOf } from '../../src/consensus/compact-block.js';
import { compactProposalCodec, proposalMessageCodec, voteMessageCodec } from '../../src/consensus/wire.js';
import { devGenesisJson, devKey, devValidatorKey } from '../../src/dev.js';
import { type Logger, silentLogger } from '../../src/log.js';
import { UncNode } from '../../src/node.js';
import type { Network, NetworkHandlers } from '../../src/p2p/types.js';
import type { MemoryNetworkHub } from './memory-network.js';
import { withIds } from './signed-ids.js';

export const validators = [0, 1, 2, 3].map((i) => devValidatorKey(i));
export type Validator = (typeof validators)[number];

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

/**
 * A transfer nobody gossiped (dev account 1, nonce 0 unless told): a fee of its own makes each a
 * different transaction.
 */
export function unseenTransfer(fee: string, nonce = 0n): Uint8Array {
  const payer = devKey(1);
  const body = {
    chainId: 'unc-dev-1',
    signer: payer.publicKey,
    nonce,
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
      logger?: Logger;
      /** A data directory the test prepared (the node's chain in it); removed with the others. */
      dataDir?: string;
      /**
       * NodeOptions.allowFreshSigner (default true for a validator): v0 starts alone on the hub with
       * a quarter of the power and these tests hand it the other validators' messages, so a fresh
       * signer held until a peer shows it caught up (driver.ts `caughtUpToSign`) would never vote;
       * also what a prepared chain signed by v0, without its privval.json, needs.
       */
      allowFreshSigner?: boolean;
      /** NodeOptions.onFatal: without it a fatal stop exits the test process (status 70). */
      onFatal?: (error: Error) => void;
    } = {},
  ): Promise<UncNode> {
    const dir = opts.dataDir ?? mkdtempSync(join(tmpdir(), prefix));
    this.dirs.push(dir);
    const node = await UncNode.start({
      dataDir: dir,
      genesis,
      ...(opts.fullNode ? {} : { validatorSeed: validators[0]!.seed }),
      rpcPort: 0,
      ...(opts.timeouts ? { timeouts: opts.timeouts } : {}),
      ...(!opts.fullNode && opts.allowFreshSigner !== false ? { allowFreshSigner: true } : {}),
      logger: opts.logger ?? silentLogger,
      ...(opts.onFatal ? { onFatal: opts.onFatal } : {}),
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

/**
 * Messages of the height after `node`'s head (height 1 at genesis) of the four-validator chain,
 * signed as the test's validators would sign them: each round's proposer, a proposal of one
 * transaction nobody gossiped (fresh, or a re-proposal with `polRound`), and votes.
 */
export function nextHeight(node: UncNode) {
  const height = node.chain.tipHeight + 1n;
  const set = node.chain.validatorSet();
  // The tip, as the driver (`proposerAt`): the head lags it while the block just decided is being written.
  const beacon = node.chain.tip.header.beacon;
  const proposerOf = (round: number): Validator =>
    validators.find((v) => equalBytes(v.publicKey, selectProposer(set, beacon, height, round).publicKey))!;
  /**
   * A block of one unseen transaction (its fee makes it unique), proposed for `round` by `by`.
   * `invalid`: its header names a state root its transactions do not lead to, so every node finds
   * the block invalid once it executes it (signatures and content hashes all check).
   */
  const proposalFor = (
    round: number,
    fee: string,
    by: Validator = proposerOf(round),
    polRound = -1,
    invalid = false,
  ) => {
    // The sender's next nonce: a test may decide several heights with these proposals.
    const tx = unseenTransfer(fee, getAccount(node.chain.tipState, devKey(1).address).nonce);
    const { pending } = node.chain.buildProposal(
      [envelopeFromBytes(tx)],
      node.chain.nextBlockTime(BigInt(Date.now())),
      { seed: by.seed, publicKey: by.publicKey },
      () => false,
    );
    if (pending.block.txs.length !== 1) throw new Error('the proposal was built without its transaction');
    const block = invalid
      ? { ...pending.block, header: { ...pending.block.header, stateRoot: new Uint8Array(32).fill(7) } }
      : pending.block;
    const hash = invalid ? blockHash(block.header) : pending.hash;
    const proposal = signProposal(
      'unc-dev-1',
      { height, round, polRound, blockHash: hash, proposer: by.publicKey },
      by.seed,
    );
    const message = withIds({ proposal, block, lastCommit: pending.lastCommit, sentAt: 1n }, by.seed);
    return {
      tx,
      block,
      blockHash: hash,
      hash: toHex(hash),
      full: encode(proposalMessageCodec, message),
      compact: encode(compactProposalCodec, compactOf(message)),
    };
  };
  const vote = (v: Validator, type: 'prevote' | 'precommit', round: number, blockHash: Uint8Array | null) =>
    encode(voteMessageCodec, {
      vote: signVote('unc-dev-1', { type, height, round, blockHash, validator: v.publicKey }, v.seed),
      sentAt: 1n,
    });
  return { proposerOf, proposalFor, vote, gossip: node.driver.handlers().onGossip };
}
