/**
 * The state transition function for transactions and blocks. Pure: the same base state, block
 * context and transactions give the same writes on every node.
 */

import { type ChainParams, feeActions, getParams, minimumFee } from '../chain/params.js';
import {
  type Action,
  type Transaction,
  type TxEnvelope,
  verifyEnvelopeSignature,
} from '../chain/transaction.js';
import {
  accountOfConsensusKey,
  applySetConsensusKey,
  type ConsensusKeySetEvent,
  endBlockValidators,
  indexChipEvents,
  noteValidatorBond,
  noteValidatorUnbond,
} from '../consensus/epoch-validators.js';
import { applyEvidence, type ValidatorSlashedEvent } from '../consensus/evidence-action.js';
import { ValidationError } from '../errors.js';
import {
  applyCloseLease,
  applyCloseOffer,
  applyCreateOffer,
  applyDispute,
  applyOpenLease,
  applyPostReceipt,
  applyTopUpLease,
  applyUpdateOfferTls,
  applyWithdrawOfferChip,
  beginBlockMarket,
  endLeaseOfChip,
} from '../market/execute.js';
import type { MarketEvent } from '../market/settle.js';
import { getOffer } from '../market/state.js';
import type { Ed25519Verified } from '../poci/attest.js';
import {
  applyClaimRewards,
  applyDeregisterChip,
  applyGovernance,
  applyHeartbeat,
  applyRegisterChip,
  applyTransferChip,
  beginBlockPoci,
  type PociEvent,
} from '../poci/execute.js';
import { applySetHeartbeatOperator, type HeartbeatOperatorSetEvent } from '../poci/operator.js';
import { getPociParams } from '../poci/params.js';
import { applyBond, applyUnbond, releaseUnbondedAt } from '../rewards/bonds.js';
import { formatUnc } from '../units.js';
import { accountKey, getAccount, putAccount } from './accounts.js';
import { StateOverlay, type StateReader } from './store.js';
import { getSupply, putSupply } from './supply.js';

export interface BlockContext {
  chainId: string;
  height: bigint;
  /** Block time, ms since the Unix epoch. Every time-dependent rule uses this, never a clock. */
  time: bigint;
  /** Public key of the block's proposer; it earns the proposer half of the fees. */
  proposer: Uint8Array;
  /** Hash and beacon of the previous block (challenges and epoch seeds are derived from them). */
  prevHash: Uint8Array;
  prevBeacon: Uint8Array;
  /**
   * This block's own beacon: its proposer's VRF output on (prevBeacon, height), checked against
   * the header's proposer before the block runs. Read only by the end of the block (finish): at an
   * epoch's last block it draws the tie-break of the next validator set, a value nobody else knows
   * before the block is proposed. No transaction reads it, so a context for admission (before any
   * block exists, which never finishes a block) may carry any 32 bytes.
   */
  beacon: Uint8Array;
}

/** What a transaction sees of its block: everything but the block's own beacon (BlockContext.beacon). */
export type TxContext = Omit<BlockContext, 'beacon'> & {
  /** ExecuteOptions.onActionWork: told as each unit of per-action work starts; changes nothing. */
  onActionWork?: () => void;
};

export type TxEvent =
  | { type: 'transfer'; from: Uint8Array; to: Uint8Array; amount: bigint; memo: Uint8Array }
  | { type: 'fee'; payer: Uint8Array; amount: bigint; burned: bigint; toProposer: bigint }
  | { type: 'bonded'; account: Uint8Array; amount: bigint; released: bigint }
  | { type: 'unbonded'; account: Uint8Array; amount: bigint; releaseHeight: bigint; released: bigint }
  | { type: 'unbondReleased'; account: Uint8Array; amount: bigint }
  | PociEvent
  | MarketEvent
  | ValidatorSlashedEvent
  | ConsensusKeySetEvent
  | HeartbeatOperatorSetEvent;

export interface TxResult {
  hash: Uint8Array;
  events: TxEvent[];
}

/** Half of every fee is burned (the odd base unit too); the other half goes to the proposer. */
export function splitFee(fee: bigint): { burned: bigint; toProposer: bigint } {
  const toProposer = fee / 2n;
  return { burned: fee - toProposer, toProposer };
}

/**
 * Heartbeats are fee-free: they are only valid inside their window, so they cannot be spammed.
 * So is equivocation evidence: each piece is accepted once and must verify against the validator
 * set, so it cannot be spammed either, and a validator with an empty balance can still report.
 * (A mempool must hold such a transaction to "would execute now": it costs its sender nothing.)
 */
export function isFeeFree(tx: Transaction): boolean {
  return tx.actions.every((a) => a.type === 'heartbeat' || a.type === 'evidence');
}

/**
 * What an action that leaves a record in the state burns on top of the transaction's fee, in
 * per-action minimum fees, per record: a transfer that creates an account, a lease opened (its
 * record and its renter's and provider's list links stay after it closes), a receipt posted or a
 * dispute recorded (its replay mark, listed under its lease, stays while the lease runs and until
 * its posting window has passed, a day by default: pruneMarks; a dispute's allowance bounds them
 * by lease time, but at one base unit an hour on a provider's own chip that time cost nothing).
 * Each is an entry that every node keeps in memory and rehashes at every start (~0.6 kB, ~9 µs):
 * at the per-action fee alone, one UNC made ~100,000 of them, so a few hundred UNC could exhaust
 * every node's memory. Burned, not paid to the proposer, so that a proposer gets none of it back;
 * tied to minFeePerAction so that it follows the fee level.
 */
export const STATE_ENTRY_BURN_ACTIONS = 100n;

/**
 * The rule of stateEntryBurn on what a client can read (`isNewAccount`: the recipient has no
 * account), so that wallets, the sdk and the gateway count the burn the chain takes.
 */
export function recordBurn(
  minFeePerAction: bigint,
  action: Action,
  isNewAccount: (address: Uint8Array) => boolean,
): bigint {
  const burn = STATE_ENTRY_BURN_ACTIONS * minFeePerAction;
  switch (action.type) {
    case 'transfer':
      return isNewAccount(action.to) ? burn : 0n;
    case 'openLease':
    case 'postReceipt':
    case 'dispute':
      return burn;
    // Naming an operator keeps the owner's operator record and lets the operator's fee-free
    // heartbeats create its account ({0, nonce}), both for good: paid here, once per naming.
    case 'setHeartbeatOperator':
      return action.operator ? burn : 0n;
    default:
      return 0n;
  }
}

/** What `action` would burn now (STATE_ENTRY_BURN_ACTIONS): 0 for an action that keeps nothing. */
export function stateEntryBurn(
  state: StateReader,
  params: Pick<ChainParams, 'minFeePerAction'>,
  action: Action,
): bigint {
  return recordBurn(params.minFeePerAction, action, (a) => state.get(accountKey(a)) === undefined);
}

/**
 * The most a transaction can take from its sender's balance: the fee plus what its actions move
 * out (transfers, bonds, lease deposits and top-ups) and what they burn (stateEntryBurn). A lease deposit of 0 means price × hours of
 * the offer in `state`; an unknown offer counts 0 (the lease would fail anyway). Credits inside
 * the same transaction (a claim, a released unbonding) are not counted: this is an upper bound.
 */
export function maxSpend(state: StateReader, tx: Transaction): bigint {
  let total = tx.fee;
  const params = getParams(state);
  for (const action of tx.actions) {
    total += stateEntryBurn(state, params, action);
    switch (action.type) {
      case 'transfer':
      case 'bond':
      case 'topUpLease':
        total += action.amount;
        break;
      case 'openLease':
        if (action.deposit > 0n) total += action.deposit;
        else total += (getOffer(state, action.offerId)?.pricePerHour ?? 0n) * BigInt(action.hours);
        break;
      default:
        break;
    }
  }
  return total;
}

/** Checks that need no state: chain, size, fee floor, expiry window, shape of the actions. */
export function checkTransactionStateless(env: TxEnvelope, params: ChainParams, ctx: TxContext): void {
  const { tx } = env.stx;
  if (tx.chainId !== ctx.chainId) {
    throw new ValidationError(
      'WRONG_CHAIN',
      `transaction is for chain "${tx.chainId}", this is "${ctx.chainId}"`,
    );
  }
  if (env.bytes.length > params.maxTxBytes) {
    throw new ValidationError(
      'TX_TOO_LARGE',
      `transaction is ${env.bytes.length} bytes, limit ${params.maxTxBytes}`,
    );
  }
  if (tx.actions.length === 0) throw new ValidationError('NO_ACTIONS', 'transaction has no actions');
  if (ctx.height > tx.expiresAt) {
    throw new ValidationError('EXPIRED', `transaction expired at height ${tx.expiresAt} (now ${ctx.height})`);
  }
  if (tx.expiresAt > ctx.height + params.maxTxLifetimeBlocks) {
    throw new ValidationError(
      'EXPIRY_TOO_FAR',
      `expiry height ${tx.expiresAt} is more than ${params.maxTxLifetimeBlocks} blocks ahead`,
    );
  }
  const minFee = isFeeFree(tx) ? 0n : minimumFee(params, env.bytes.length, feeActions(tx.actions));
  if (tx.fee < minFee) {
    throw new ValidationError(
      'FEE_TOO_LOW',
      `fee ${formatUnc(tx.fee)} UNC is below the minimum ${formatUnc(minFee)} UNC for this transaction`,
    );
  }
  for (const action of tx.actions) checkActionShape(action);
}

function checkActionShape(action: Action): void {
  switch (action.type) {
    case 'transfer':
      if (action.amount <= 0n) throw new ValidationError('BAD_AMOUNT', 'transfer amount must be positive');
      return;
    default:
      return;
  }
}

/**
 * Applies one transaction. Either all of it happens (nonce, fee, every action) or, on a thrown
 * ValidationError, none of it does. Returns the events and the fee to distribute at block end.
 */
export function applyTransaction(
  state: StateOverlay,
  env: TxEnvelope,
  params: ChainParams,
  ctx: TxContext,
): TxEvent[] {
  checkTransactionStateless(env, params, ctx);
  const { tx } = env.stx;
  const sender = env.sender;
  const scratch = state.child();
  const account = getAccount(scratch, sender);
  if (tx.nonce < account.nonce) {
    throw new ValidationError('NONCE_USED', `nonce ${tx.nonce} already used (next is ${account.nonce})`);
  }
  if (tx.nonce > account.nonce) {
    throw new ValidationError('NONCE_GAP', `nonce ${tx.nonce} is ahead of the next nonce ${account.nonce}`);
  }
  if (account.balance < tx.fee) {
    throw new ValidationError(
      'INSUFFICIENT_FUNDS',
      `balance ${formatUnc(account.balance)} UNC cannot pay the fee ${formatUnc(tx.fee)} UNC`,
    );
  }
  account.balance -= tx.fee;
  account.nonce += 1n;
  putAccount(scratch, sender, account);

  const events: TxEvent[] = [];
  let entriesBurn = 0n;
  for (const action of tx.actions) {
    // A claim tells each chip it settles itself (applyClaimRewards): the units of feeActions.
    if (action.type !== 'claimRewards') ctx.onActionWork?.();
    // Charged before the action runs, so that its own amount check counts it (INSUFFICIENT_FUNDS).
    const burn = stateEntryBurn(scratch, params, action);
    if (burn > 0n) {
      const from = getAccount(scratch, sender);
      if (from.balance < burn) {
        throw new ValidationError(
          'INSUFFICIENT_FUNDS',
          `balance ${formatUnc(from.balance)} UNC cannot pay the ${formatUnc(burn)} UNC that a ${action.type} burns for the record it keeps (after the fee)`,
        );
      }
      from.balance -= burn;
      putAccount(scratch, sender, from);
      entriesBurn += burn;
    }
    events.push(...applyAction(scratch, sender, action, ctx, tx.signer));
  }
  const { burned, toProposer } = splitFee(tx.fee);
  // One fee event per transaction: what its records burned is part of what it paid and burned.
  events.push({
    type: 'fee',
    payer: sender,
    amount: tx.fee + entriesBurn,
    burned: burned + entriesBurn,
    toProposer,
  });
  scratch.commit();
  return events;
}

function applyAction(
  state: StateOverlay,
  sender: Uint8Array,
  action: Action,
  ctx: TxContext,
  signer: Uint8Array,
): TxEvent[] {
  switch (action.type) {
    case 'createOffer':
      return applyCreateOffer(state, ctx, sender, action);
    case 'closeOffer':
      return applyCloseOffer(state, ctx, sender, action);
    case 'withdrawOfferChip':
      return applyWithdrawOfferChip(state, ctx, sender, action);
    case 'openLease':
      return applyOpenLease(state, ctx, sender, signer, action);
    case 'topUpLease':
      return applyTopUpLease(state, ctx, sender, action);
    case 'closeLease':
      return applyCloseLease(state, ctx, sender, action);
    case 'postReceipt':
      return applyPostReceipt(state, ctx, sender, action);
    case 'dispute':
      return applyDispute(state, ctx, sender, action);
    case 'updateOfferTls':
      return applyUpdateOfferTls(state, ctx, sender, action);
    case 'governance':
      return applyGovernance(state, ctx, action);
    case 'registerChip':
      return indexChipEvents(state, applyRegisterChip(state, ctx, sender, action), ctx.height);
    case 'heartbeat':
      return applyHeartbeat(state, ctx, sender, action);
    // A chip that leaves its owner closes its lease, which has ended: a lease that still binds the
    // chip refuses the transfer or deregistration (CHIP_LEASED; market/execute.ts endLeaseOfChip).
    case 'transferChip': {
      const events = indexChipEvents(state, applyTransferChip(state, ctx, sender, action), ctx.height);
      return [...events, ...endLeaseOfChip(state, ctx, action.chipId)];
    }
    case 'deregisterChip': {
      const events = indexChipEvents(state, applyDeregisterChip(state, ctx, sender, action), ctx.height);
      return [...events, ...endLeaseOfChip(state, ctx, action.chipId)];
    }
    case 'claimRewards':
      return applyClaimRewards(state, ctx, action);
    case 'evidence':
      return applyEvidence(state, ctx, sender, action.evidence);
    case 'setConsensusKey':
      return applySetConsensusKey(state, ctx.chainId, sender, action.publicKey, action.signature);
    case 'setHeartbeatOperator':
      return applySetHeartbeatOperator(state, ctx.height, sender, action.operator);
    case 'bond': {
      const released = applyBond(state, sender, action.amount, ctx.height);
      noteValidatorBond(state, sender);
      return [{ type: 'bonded', account: sender, amount: action.amount, released }];
    }
    case 'unbond': {
      const unbondingBlocks = 3n * getPociParams(state).epochBlocks;
      const released = applyUnbond(state, sender, action.amount, ctx.height, unbondingBlocks);
      noteValidatorUnbond(state, sender);
      return [
        {
          type: 'unbonded',
          account: sender,
          amount: action.amount,
          releaseHeight: ctx.height + unbondingBlocks,
          released,
        },
      ];
    }
    case 'transfer': {
      const from = getAccount(state, sender);
      if (from.balance < action.amount) {
        throw new ValidationError(
          'INSUFFICIENT_FUNDS',
          `balance ${formatUnc(from.balance)} UNC is less than the transfer amount ${formatUnc(action.amount)} UNC (after the fee)`,
        );
      }
      from.balance -= action.amount;
      putAccount(state, sender, from);
      const to = getAccount(state, action.to);
      to.balance += action.amount;
      putAccount(state, action.to, to);
      return [{ type: 'transfer', from: sender, to: action.to, amount: action.amount, memo: action.memo }];
    }
  }
}

export interface BlockExecution {
  overlay: StateOverlay;
  results: TxResult[];
  feesBurned: bigint;
  feesToProposer: bigint;
  /** Events of the block's own bookkeeping (unbonds released, epoch-end lease settlement), before
   *  any transaction. */
  blockEvents: TxEvent[];
}

export interface ExecuteOptions {
  /** Signatures already checked (e.g. at mempool admission) need not be checked again. */
  isSignatureVerified?: (hash: Uint8Array) => boolean;
  /**
   * Ed25519 signatures (key, message, signature) already found valid, e.g. chip answers checked
   * in parallel before the block runs: a `true` skips a check that would pass, nothing else.
   */
  isEd25519Verified?: Ed25519Verified;
  /**
   * Called as each costly attestation check starts (a registration's evidence, a transfer's
   * consent: milliseconds each), so that a proposer can weigh what a failing transaction cost it
   * rather than guess from the actions it carries. Observes only: execution is the same without it.
   */
  onCostlyCheck?: () => void;
  /**
   * Called as each unit of per-action work starts, the units the fee counts (chain/params.ts
   * feeActions): each action, each chip a claim settles. A transaction that fails pays nothing,
   * whatever it ran first, so that a proposer can weigh a failure by what it executed (node
   * chain.ts MAX_REJECTED_ACTIONS_PER_BLOCK). Observes only: execution is the same without it.
   */
  onActionWork?: () => void;
}

/**
 * Applies transactions one by one on top of a base state. A proposer uses `tryApply` to build a
 * block from the mempool (a transaction that no longer applies is left out, with its reason);
 * a validator uses `executeBlock`, where any transaction that does not apply makes the block
 * invalid.
 */
export class BlockExecutor {
  readonly overlay: StateOverlay;
  private readonly params: ChainParams;
  private readonly results: TxResult[] = [];
  private feesBurned = 0n;
  private feesToProposer = 0n;
  private finished = false;
  /** What the block's opening bookkeeping did (epoch-end lease settlements and closes). */
  readonly blockEvents: TxEvent[];
  /** `ctx` plus the pre-verified signature hook, as transactions see it. */
  private readonly txCtx: TxContext & { isEd25519Verified?: Ed25519Verified; onCostlyCheck?: () => void };

  constructor(
    base: StateReader,
    readonly ctx: BlockContext,
    private readonly options: ExecuteOptions = {},
  ) {
    this.overlay = new StateOverlay(base);
    // Neither the block's opening bookkeeping nor its transactions see the block's own beacon:
    // admission runs both before it exists. Only finish() reads it.
    const { beacon: _beacon, ...txBase } = ctx;
    this.txCtx = {
      ...txBase,
      ...(options.isEd25519Verified ? { isEd25519Verified: options.isEd25519Verified } : {}),
      ...(options.onCostlyCheck ? { onCostlyCheck: options.onCostlyCheck } : {}),
      ...(options.onActionWork ? { onActionWork: options.onActionWork } : {}),
    };
    this.params = getParams(this.overlay);
    beginBlockPoci(this.overlay, txBase, ctx.prevHash, ctx.prevBeacon);
    const released: TxEvent[] = releaseUnbondedAt(this.overlay, ctx.height).map((r) => ({
      type: 'unbondReleased',
      account: r.account,
      amount: r.amount,
    }));
    this.blockEvents = [...released, ...beginBlockMarket(this.overlay, txBase)];
  }

  get count(): number {
    return this.results.length;
  }

  /** Applies `env` or throws a ValidationError, leaving the state as it was. */
  apply(env: TxEnvelope): TxResult {
    if (this.finished) throw new Error('block already finished');
    if (!this.options.isSignatureVerified?.(env.hash) && !verifyEnvelopeSignature(env)) {
      throw new ValidationError('BAD_SIGNATURE', 'invalid transaction signature');
    }
    const events = applyTransaction(this.overlay, env, this.params, this.txCtx);
    // The transaction's fee event (always its last) counts what new accounts burned too.
    const fee = events[events.length - 1]!;
    if (fee.type !== 'fee') throw new Error('a transaction ends with its fee event');
    this.feesBurned += fee.burned;
    this.feesToProposer += fee.toProposer;
    const result = { hash: env.hash, events };
    this.results.push(result);
    return result;
  }

  /**
   * Whether `env` would apply next in this block, by applying it to a scratch copy of the state
   * that is then thrown away: throws the ValidationError `apply` would, changes nothing. The
   * signature is not checked (the caller does that once). A mempool asks this of the
   * transactions it holds for free, so that "admitted" means exactly what block execution accepts.
   */
  preview(env: TxEnvelope): TxEvent[] {
    if (this.finished) throw new Error('block already finished');
    return applyTransaction(this.overlay.child(), env, this.params, this.txCtx);
  }

  tryApply(env: TxEnvelope): TxResult | ValidationError {
    try {
      return this.apply(env);
    } catch (err) {
      if (err instanceof ValidationError) return err;
      // Whatever a transaction makes a verifier throw, it is that transaction that is refused:
      // one hostile input must never stop block production.
      return new ValidationError('INVALID', `transaction could not be applied: ${(err as Error).message}`);
    }
  }

  /** Block-end bookkeeping (fee split, supply), O(1) whatever the number of transactions. */
  finish(): BlockExecution {
    if (this.finished) throw new Error('block already finished');
    this.finished = true;
    if (this.feesBurned > 0n || this.feesToProposer > 0n) {
      // The account behind the consensus key (a genesis validator: the key's own address).
      const proposer = accountOfConsensusKey(this.overlay, this.ctx.proposer);
      const account = getAccount(this.overlay, proposer);
      account.balance += this.feesToProposer;
      putAccount(this.overlay, proposer, account);
      const supply = getSupply(this.overlay);
      supply.burned += this.feesBurned;
      putSupply(this.overlay, supply);
    }
    endBlockValidators(this.overlay, this.ctx.height, this.ctx.beacon);
    return {
      overlay: this.overlay,
      results: this.results,
      feesBurned: this.feesBurned,
      feesToProposer: this.feesToProposer,
      blockEvents: this.blockEvents,
    };
  }
}

/**
 * Executes a block's transactions in order on top of `base`. Any invalid transaction makes the
 * whole block invalid (a proposer includes only transactions that apply), so this throws.
 */
export function executeBlock(
  base: StateReader,
  txs: readonly TxEnvelope[],
  ctx: BlockContext,
  options: ExecuteOptions = {},
): BlockExecution {
  const executor = new BlockExecutor(base, ctx, options);
  txs.forEach((env, index) => {
    try {
      executor.apply(env);
    } catch (err) {
      const code = err instanceof ValidationError ? err.code : 'INVALID';
      throw new ValidationError(code, `transaction ${index}: ${(err as Error).message}`);
    }
  });
  return executor.finish();
}
