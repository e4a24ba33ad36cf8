/**
 * The one path every command that signs a transaction takes: check before signing, show what will
 * happen (amounts in UNC, the fee, the chain id and the node) and ask, sign, send, wait, and point
 * at the explorer page. Every transaction costs its sender a fee, so every one is confirmed.
 */
import { type Action, formatUnc, fromHex, UncError } from '@unc/core';
import { isLoopbackHost } from '@unc/gateway';
import {
  buildTransaction,
  checkFunds,
  encodeSigned,
  feeFor,
  recordBurnOf,
  signedHash,
  type TxEventJson,
} from '@unc/sdk';
import { askLine, type Context } from './context.js';

export interface Signer {
  /** The key's name in the keyring. */
  from: string;
  passwordFile?: string;
}

export interface Plan {
  /** What the transaction does, one line each, amounts in UNC. */
  summary: string[];
  /** Base units leaving the balance besides the fee: transfers, bonds, deposits, top-ups. */
  spend: bigint;
  /** A fee chosen by the user; default: the chain's minimum. */
  fee?: bigint;
}

export interface Sent {
  hash: string;
  height: number;
  index: number;
  blockHash: string;
  /** The chain id the transaction was signed for (the one confirmed). */
  chainId: string;
  events: TxEventJson[];
  /** The transaction's explorer page, when the node serves the explorer. */
  explorer: string | null;
}

export const unc = (base: bigint | string): string => `${formatUnc(BigInt(base))} UNC`;

/** What `ask` answers: whether the user agreed. Tests pass their own. */
export type Ask = (question: string) => Promise<string>;

/**
 * The most fee `-y` agrees to unseen: 1 UNC, some 100,000 times a transfer's fee at the default
 * parameters. The fee is computed from the fee parameters the node reports, so a hostile or
 * misconfigured node could otherwise have an unattended script sign away its whole balance as fee.
 */
export const MAX_UNATTENDED_FEE = 10n ** 18n;
// (A fee given with --fee is the user's own choice: signAndSend does not pass it here.)

/**
 * The confirmation policy. `-y` agrees in advance (to a fee up to MAX_UNATTENDED_FEE: above it a
 * human must see it); without it a terminal is asked and anything but yes cancels; without a
 * terminal it is an error at once, never a prompt that waits forever.
 */
export async function confirm(
  lines: string[],
  opts: { yes: boolean; interactive: boolean; ask?: Ask; action?: string; fee?: bigint },
): Promise<void> {
  if (opts.yes && opts.fee !== undefined && opts.fee > MAX_UNATTENDED_FEE) {
    throw new UncError(
      'FEE_NEEDS_CONFIRMATION',
      `the fee is ${unc(opts.fee)}, above the ${unc(MAX_UNATTENDED_FEE)} -y accepts unseen (the node sets the fee rates): run without -y to see and confirm it; nothing was signed`,
    );
  }
  if (opts.yes) return;
  if (!opts.interactive) {
    throw new UncError(
      'CONFIRMATION_REQUIRED',
      `no terminal to confirm on: pass -y (--yes) to ${opts.action ?? 'sign and send'} without asking`,
    );
  }
  process.stderr.write(`${lines.join('\n')}\n`);
  const answer = await (opts.ask ?? askLine)('Confirm? [y/N] ');
  if (!/^y(es)?$/i.test(answer.trim())) throw new UncError('CANCELLED', 'cancelled; nothing was sent');
}

/** The lines of a confirmation: what, who pays, the fee, and where it goes. */
export function confirmationLines(p: {
  summary: string[];
  from: string;
  address: string;
  fee: bigint;
  spend: bigint;
  /** Burned for the records the actions keep (a new account, a lease, a receipt): sdk recordBurnOf. */
  burn?: bigint;
  chainId: string;
  node: string;
  /** Transactions of the key pending at the node, not yet included, that this one is queued behind. */
  queued?: bigint;
}): string[] {
  const burn = p.burn ?? 0n;
  const queued = p.queued ?? 0n;
  return [
    ...p.summary,
    `  from      ${p.from} (${p.address})`,
    `  fee       ${unc(p.fee)}`,
    ...(burn > 0n
      ? [`  burned    ${unc(burn)} for the records it keeps (new account, lease, receipt, dispute)`]
      : []),
    ...(p.spend + burn > 0n ? [`  total     ${unc(p.spend + p.fee + burn)} leaves the balance`] : []),
    `  chain     ${p.chainId}`,
    `  node      ${p.node}`,
    ...(queued > 0n
      ? [
          `  pending   ${queued} earlier transaction(s) of this key not yet included: this one is queued behind them (if one is this same command run before, both will apply)`,
        ]
      : []),
  ];
}

/** The balance pre-flight: the sdk's (shared with the explorer's rent form). */
export const checkBalance = checkFunds;

/** The explorer served by this node, if it serves one (`unc dev` does when the explorer is built). */
export async function explorerBase(ctx: Context): Promise<string | null> {
  const configured = ctx.config().explorer;
  if (typeof configured === 'string' && configured) return configured.replace(/\/?$/, '/');
  const base = `${ctx.nodeUrl}/explorer/`;
  try {
    const res = await fetch(base, { method: 'HEAD', signal: AbortSignal.timeout(2000) });
    return res.ok ? base : null;
  } catch {
    return null;
  }
}

/** An explorer page: the explorer routes by the URL's hash. */
export function explorerLink(base: string, kind: 'tx' | 'lease' | 'offer' | 'chip' | 'account', id: string) {
  return `${base}#/${kind}/${id}`;
}

/** Signs `actions` with a keyring key after the checks and the confirmation, sends and waits. */
export async function signAndSend(
  ctx: Context,
  signer: Signer,
  actions: Action[],
  plan: Plan,
  opts: { wait?: boolean } = {},
): Promise<Sent | { hash: string; pending: true; explorer: string | null }> {
  const key = ctx.keyring().info(signer.from);
  const client = ctx.client();
  const [status, params, account, next] = await Promise.all([
    client.status(),
    client.getParams(),
    client.getAccount(key.address),
    client.nextNonce(key.address),
  ]);
  // Transactions of the key the node holds and has not included: this one is signed behind them
  // (sdk nextNonce), so one of them that is this very command run before (its wait timed out) and
  // this one would both apply, where signing at the committed nonce collided with it.
  const queued = next - BigInt(account.nonce);
  const fee =
    plan.fee ??
    feeFor(
      {
        chainId: status.chainId,
        signer: fromHex(key.publicKey, 32),
        nonce: BigInt(account.nonce),
        expiresAt: BigInt(status.height) + 100n,
        actions,
      },
      { minFeePerByte: BigInt(params.minFeePerByte), minFeePerAction: BigInt(params.minFeePerAction) },
    );
  // What the chain burns on top of the fee (state/execute.ts stateEntryBurn): the node refuses a
  // transaction whose balance cannot pay it, so it is checked and shown before anything is signed.
  const burn = await recordBurnOf(client, actions, BigInt(params.minFeePerAction));
  checkBalance({ from: signer.from, balance: BigInt(account.balance), spend: plan.spend, fee, burn });
  await confirm(
    confirmationLines({
      summary: plan.summary,
      from: signer.from,
      address: key.address,
      fee,
      spend: plan.spend,
      burn,
      chainId: status.chainId,
      node: ctx.nodeUrl,
      queued,
    }),
    // The ceiling is for fees the node's rates decided; one the user typed (--fee) is theirs.
    { yes: ctx.yes, interactive: process.stdin.isTTY === true, ...(plan.fee === undefined ? { fee } : {}) },
  );
  const seed = await ctx.unlockKey(signer.from, status.chainId, signer);
  const explorer = await explorerBase(ctx);
  // The nonce is read again at signing (below): what the confirmation showed is not what binds it.
  // A transaction signed behind more of the key's pending ones than the confirmation said (another
  // command meanwhile, or a node that said one thing, then another) says so when it is accepted.
  const behindNote = (attempt: number): string => {
    if (attempt !== 1) return '';
    const behind = signedNonce - BigInt(account.nonce);
    if (behind <= 0n) return '';
    const more = behind > queued ? `; the confirmation said ${queued > 0n ? queued : 'none'}` : '';
    return ` (nonce ${signedNonce}, queued behind ${behind} earlier transaction(s) of the key${more})`;
  };
  let signedNonce = 0n;
  for (let attempt = 1; ; attempt++) {
    // The nonce is read again now: a confirmation can take a while, and the size (so the fee) does
    // not depend on it (fixed width). It is the key's next free nonce counting its transactions
    // pending at the node (sdk nextNonce): one sent by another command or a miner agent of the key
    // and not yet included is queued behind, not collided with. The node's word, like the rest: a
    // node that says too high a nonce leaves this transaction stuck in a gap until it expires (the
    // wait below fails, naming that height), which a lie about the committed nonce always could.
    // Signed for the chain id shown in the confirmation: the node's status is read again inside,
    // and a hostile node could otherwise show a testnet and have the key sign for another chain.
    const stx = await buildTransaction(client, seed, actions, { fee, chainId: status.chainId });
    signedNonce = stx.tx.nonce;
    const hash = signedHash(stx);
    const advice = checkBeforeRerunning({
      hash,
      nonce: stx.tx.nonce,
      expiresAt: stx.tx.expiresAt,
      address: key.address,
    });
    const nonceUnverified = (reason: string) =>
      new UncError(
        'NONCE_USED_UNVERIFIED',
        `the node ${ctx.nodeUrl} says transaction ${hash} (nonce ${stx.tx.nonce}) lost its nonce to another transaction of the key (${reason}); it was not signed again, since a node can say so and still relay it: it may or may not have been sent. ${advice}`,
      );
    const signingAgain = () => {
      if (ctx.output === 'text') {
        console.error(`transaction ${hash} lost its nonce to another transaction of the key; signing again`);
      }
    };
    // Past this point the signature is out of our hands: an error from the node (or none at all)
    // is its word, and a hostile node can answer "refused" or never answer while keeping the
    // signature to relay after the user, told nothing, runs the command again and signs a second
    // one. Each error then names the transaction and says to check first.
    try {
      await client.sendRawTransaction(encodeSigned(stx));
    } catch (err) {
      // The same race, answered at once: a block that took the nonce while the transaction waited
      // for its signature check refuses it there and then (admission's dropTaken). The same rule
      // as for a drop below: signed again only for a node on this machine.
      // A node elsewhere gets the drop path's answer: one code for one situation.
      if (nodeCodeOf(err) === 'NONCE_USED') {
        if (!isLoopbackUrl(ctx.nodeUrl)) throw nonceUnverified((err as Error).message);
        if (attempt < MAX_NONCE_RACES) {
          signingAgain();
          continue;
        }
      }
      throw uncertain(err, `the node did not take transaction ${hash}: ${(err as Error).message}`, advice);
    }
    const page = explorer ? explorerLink(explorer, 'tx', hash) : null;
    if (ctx.output === 'text')
      console.error(`transaction ${hash} accepted by the node${behindNote(attempt)}`);
    if (opts.wait === false) return { hash, pending: true, explorer: page };
    let outcome: Awaited<ReturnType<typeof client.waitForTransaction>>;
    try {
      outcome = await client.waitForTransaction(hash);
    } catch (err) {
      const where = await queueNote(client, key.address, stx.tx.nonce);
      throw uncertain(
        err,
        `waiting for transaction ${hash} failed: ${(err as Error).message}${where}`,
        advice,
      );
    }
    if (outcome.status === 'rejected') {
      // Another transaction of the same key took the nonce first (a miner agent answering
      // challenges from the operator's key, or a second terminal). The dropped one can never be
      // included, since its nonce is spent, so signing the same actions again at the next nonce
      // cannot apply them twice — if the node tells the truth. "NONCE_USED" is only its word: a
      // hostile node keeps the first signature unrelayed, answers NONCE_USED, gets a second one at
      // another nonce and relays both (the actions applied twice). So the same actions are signed
      // again only for a node on this machine (the local miner agent's case the retry is for);
      // for any other the user checks before anything more is signed. Any other drop is the
      // user's to see.
      if (outcome.code === 'NONCE_USED') {
        if (!isLoopbackUrl(ctx.nodeUrl)) throw nonceUnverified(outcome.reason);
        if (attempt < MAX_NONCE_RACES) {
          signingAgain();
          continue;
        }
      }
      // A drop is the node's word too: a hostile one may report it while keeping the signature
      // (signed at a nonce it reported, perhaps one ahead) to relay after the user runs the
      // command again, and both would apply. The user is told until when it can still be included.
      throw new UncError(
        outcome.code,
        `transaction ${hash} was dropped: ${outcome.reason} (the node's word: it may have kept it). ${advice}`,
      );
    }
    const receipt = await client.getTransaction(hash);
    if (page && ctx.output === 'text') console.error(`explorer: ${page}`);
    return {
      hash,
      height: outcome.height,
      index: outcome.index,
      blockHash: outcome.blockHash,
      chainId: status.chainId,
      events: receipt.events,
      explorer: page,
    };
  }
}

/**
 * What to check before running a command again whose transaction's fate is only the node's word
 * (a drop, NONCE_USED from a node elsewhere, a refused send, a wait that failed): a signature a
 * node kept can still be included until the transaction's expiry height, and a second one signed
 * meanwhile would apply the actions twice.
 */
export function checkBeforeRerunning(tx: {
  hash: string;
  nonce: bigint;
  expiresAt: bigint;
  address: string;
}): string {
  return `Before running the command again, check on a node you trust (unc query tx ${tx.hash}; unc query account ${tx.address}): if transaction ${tx.hash} (nonce ${tx.nonce}) was not included and the key's nonce is past ${tx.nonce}, it never can be; otherwise it can still be included until height ${tx.expiresAt}, and running the command again before then may apply both`;
}

/**
 * Where a transaction whose inclusion wait failed stands among the key's, as the node says (read
 * again now; empty when nothing is before it, or the node does not answer): queued behind earlier
 * transactions of the key not yet included, or waiting in a gap (a nonce below its own that
 * nothing pending holds: an earlier transaction dropped, evicted or expired), where it can land
 * only once a transaction of the key fills the gap, which the key's next transaction does.
 */
async function queueNote(
  client: ReturnType<Context['client']>,
  address: string,
  nonce: bigint,
): Promise<string> {
  try {
    const [account, next] = await Promise.all([client.getAccount(address), client.nextNonce(address)]);
    const committed = BigInt(account.nonce);
    if (committed >= nonce) return '';
    if (next < nonce)
      return ` (the node says nothing of the key is pending at nonce ${next}, below this one's ${nonce}: it waits in that gap and can be included only after transactions of the key at nonces ${next} to ${nonce - 1n} are; the key's next transaction is signed at nonce ${next}, and then this one may land too)`;
    if (next === nonce)
      return ` (the node says nothing of the key is pending at nonce ${nonce}, this one's, while ${nonce - committed} earlier one(s) still are)`;
    return ` (the node says it is queued behind ${nonce - committed} earlier transaction(s) of the key not yet included, nonces ${committed} to ${nonce - 1n})`;
  } catch {
    return '';
  }
}

/**
 * A send or wait error, its code kept (the node's reason when it gave one; TX_UNCERTAIN when it
 * gave none: unreachable, timed out), with what to check before running the command again.
 */
function uncertain(err: unknown, what: string, advice: string): UncError {
  return new UncError(
    nodeCodeOf(err) ?? 'TX_UNCERTAIN',
    `${what}; it may or may not have been sent. ${advice}`,
  );
}

/** The node's reason code on a send or wait error, when it gave one. */
function nodeCodeOf(err: unknown): string | undefined {
  const e = err as { code?: unknown; reason?: unknown };
  return typeof e?.code === 'string' ? e.code : typeof e?.reason === 'string' ? e.reason : undefined;
}

/** How many times a transaction is signed again after losing its nonce to the key's other transactions. */
const MAX_NONCE_RACES = 3;

/**
 * Whether a node URL names this machine (localhost, 127.0.0.0/8, ::1): the one case where the
 * node's NONCE_USED is taken on trust and the same actions are signed again (see signAndSend).
 */
export function isLoopbackUrl(url: string): boolean {
  let host: string;
  try {
    host = new URL(url).hostname;
  } catch {
    return false;
  }
  return isLoopbackHost(host);
}
