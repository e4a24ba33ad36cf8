/**
 * The miner agent: keeps many chips registered and answering their challenge slots.
 *
 * Nobody knows which chips a block challenges before the block exists (its VRF beacon draws one
 * class of chips), so the agent must be up all the time: on every new block it asks the node which
 * challenges of its chips are open (the new block's own included), has each chip sign them (bound to
 * the challenging block's hash), and sends all answers in one fee-free Heartbeat transaction. A
 * refused batch is rebuilt and sent again at once without what the chain settled, with a capped fee
 * when an answer is due soon (heartbeats.ts); an answer still refused is retried while its window is
 * open; every failure is logged with its reason, and the status endpoint says what each chip is doing.
 */
import { createServer, type Server } from 'node:http';
import {
  type Action,
  addressFromPublicKey,
  ed25519PublicKey,
  encodeAddress,
  fromHex,
  heartbeatChallenge,
  MAX_ACTIONS_PER_TX,
  registrationMessage,
  signTransaction,
  type Transaction,
  toHex,
  ValidationError,
} from '@unc/core';
import { createLogger, type Logger, Registry } from '@unc/node';
import {
  assertChainUnchanged,
  type BlockJson,
  type ChipJson,
  closeOfferAction,
  createOfferAction,
  encodeSigned,
  feeFor,
  type OfferTerms,
  RpcClientError,
  type Subscription,
  UncClient,
  updateOfferTlsAction,
} from '@unc/sdk';
import { RpcLeaseSource } from '../provider/lease.js';
import { type ProviderOptions, ProviderServer } from '../provider/server.js';
import { lockUrgentFeeFile, openUrgentFeeBudget } from './fee-budget-file.js';
import {
  type AnswerItem,
  checkOwnAnswer,
  deliverAnswers,
  type HeartbeatPort,
  type SendOutcome,
  type Settled,
  UrgentFeeBudget,
} from './heartbeats.js';
import type { ChipSigner } from './signers.js';

/**
 * The default `maxHeartbeatFee`: 0.001 UNC, some 13× the minimum fee of the largest transaction
 * (64 KiB) at the default fee parameters: enough to pay for any heartbeat, small enough that a
 * miner never spends much unawares.
 */
export const DEFAULT_MAX_HEARTBEAT_FEE = 10n ** 15n;
/** The default `urgentBlocks`. */
export const DEFAULT_URGENT_BLOCKS = 3;
/**
 * The default `urgentFeeBudget`: 0.001 UNC per chip per hour of the agent's clock, one fee at the
 * cap or several smaller ones; a node or proposer holding back every fee-free answer can make a
 * chip pay at most this per hour: 0.024 UNC a day, not 96 × the cap. The same figure as the per-epoch
 * budget it replaces: an epoch is 3600 blocks (core's default `epochBlocks`), an hour at one-second
 * blocks (4 challenges); with slower blocks a chip has fewer challenges an hour, not more budget a day.
 */
export const DEFAULT_URGENT_FEE_BUDGET = 10n ** 15n;
/**
 * A refusal with the answer it names, when the node gave one of the right shape (a node's answer
 * is checked, not trusted: a wrong one only drops one answer of the batch until the next pass).
 */
function withAnswer(outcome: { ok: false; reason: string }, answer: unknown): SendOutcome {
  const a = answer as { chipId?: unknown; epoch?: unknown; slot?: unknown } | undefined;
  if (a && typeof a.chipId === 'string' && Number.isSafeInteger(a.epoch) && Number.isSafeInteger(a.slot))
    return { ...outcome, answer: { chipId: a.chipId, epoch: a.epoch as number, slot: a.slot as number } };
  return outcome;
}

/** How many blocks past the head the agent's transactions stay valid (their expiry height). */
const TX_TTL_BLOCKS = 20;

/**
 * What the agent asks of its node: an UncClient for `nodeUrl` by default. A test hands in a
 * scripted one (`MinerAgentOptions.client`) to drive the agent's wiring block by block.
 */
export type MinerClient = Pick<
  UncClient,
  | 'url'
  | 'status'
  | 'subscribe'
  | 'call'
  | 'getHeader'
  | 'getAccount'
  | 'nextNonce'
  | 'getParams'
  | 'sendRawTransaction'
  | 'waitForTransaction'
  | 'getOffers'
>;

export interface MinerAgentOptions {
  nodeUrl: string;
  /** The node's client (default: an UncClient for `nodeUrl`); the provider API needs a real one. */
  client?: MinerClient;
  /** Seed of the account that owns the chips and sends their transactions (with `operatorFor`:
   *  of the owner's heartbeat operator, which sends heartbeats only). */
  ownerSeed: Uint8Array;
  /**
   * The chips' owner (an address) when `ownerSeed` is the key of its heartbeat operator (core
   * poci/operator.ts): the agent answers for the chips whose owner names this key, and registers
   * nothing and keeps no offer (both need the owner's key, which stays off this host).
   */
  operatorFor?: string;
  chips: ChipSigner[];
  /**
   * The chain the owner's key was unlocked for (`unc miner start` checks the home's chain pin
   * against it): a node whose status then names another chain gets nothing signed (CHAIN_CHANGED).
   */
  chainId?: string;
  /** Serve /status and /metrics here (127.0.0.1); 0 picks a free port; undefined: no server. */
  statusPort?: number;
  /** Serve the renters' provider API (jobs with chip-signed receipts) for these chips. */
  provider?: Omit<ProviderOptions, 'chainId' | 'signers' | 'leases' | 'logger'>;
  /**
   * Keep one open offer on the market for the registered chips, at this agent's provider URL
   * (needs `provider`). An open offer of this owner that names another endpoint is closed first,
   * so renters never find a provider address that no longer answers.
   */
  offer?: Omit<OfferTerms, 'chipIds' | 'endpoint'>;
  /**
   * The most one heartbeat may pay, in base units (default DEFAULT_MAX_HEARTBEAT_FEE; 0: always
   * fee-free). Paid only for answers due within `urgentBlocks` that a fee-free send did not get in,
   * and only the chain's minimum fee for the transaction.
   */
  maxHeartbeatFee?: bigint;
  /** An answer whose window closes within this many blocks is urgent (default 3). */
  urgentBlocks?: number;
  /**
   * The most urgent heartbeat fees may cost per chip per hour of this agent's clock, in base units (default
   * DEFAULT_URGENT_FEE_BUDGET): `maxHeartbeatFee` bounds one heartbeat, this bounds them all
   * (heartbeats.ts UrgentFeeBudget).
   */
  urgentFeeBudget?: bigint;
  /**
   * Where the urgent-fee budget's spending is kept across restarts (fee-budget-file.ts; `unc
   * miner start`, `unc start` and `unc dev`: the home's urgent-fees.json), held by this agent
   * alone from `start` to `stop` (a second agent on it is refused, MINER_RUNNING). None: in
   * memory only, and a restart starts afresh.
   */
  urgentFeeFile?: string;
  logger?: Logger;
}

export interface ChipStatus {
  label: string;
  chipId: string;
  profile: string;
  registered: boolean;
  online: boolean | null;
  /** Challenges the chip can answer now (blocks already committed that drew its class). */
  open: { epoch: number; slot: number; height: number; windowEnd: number }[];
  answered: number;
  missed: number;
  rewardsEarned: string;
  lastAnsweredHeight: number | null;
  recent: { height: number; epoch: number; slot: number; result: string }[];
  lastError: string | null;
}

/** An answer of this pass, with the chip and slot it answers. */
interface AnswerToSend {
  chip: ChipState;
  key: string;
  height: number;
  item: AnswerItem;
}

interface ChipState {
  signer: ChipSigner;
  chipId: Uint8Array;
  chipIdHex: string;
  registered: boolean;
  view: ChipJson | null;
  /** epoch:slot keys sent and not yet confirmed or refused. */
  pending: Set<string>;
  /** epoch:slot keys of open slots sent without being included (their next send may pay). */
  tried: Set<string>;
  recent: ChipStatus['recent'];
  lastError: string | null;
  /**
   * Registrations of this chip refused in a row, and the height before which it is not tried
   * again (registerBackoff). A chip the chain keeps refusing (its certificate expired, its vendor
   * key revoked: deregistered by anyone once silent, core C3) was sent every block, each refusal
   * logged, and in the same transaction as the others it sank their registration too.
   */
  registerFailures: number;
  registerAfter: number;
  /** In a registration of several chips the chain refused: registered alone, a chip per pass. */
  registerAlone: boolean;
}

/** Blocks a chip waits after its first refused registration; doubled per refusal in a row, up to REGISTER_RETRY_MAX_BLOCKS. */
export const REGISTER_RETRY_BLOCKS = 10;
/** The longest wait between tries of a chip whose registration keeps being refused (about 10 minutes at 1 s blocks). */
export const REGISTER_RETRY_MAX_BLOCKS = 600;

/** The blocks a chip waits after its `failures`-th refused registration in a row (failures ≥ 1). */
export function registerBackoff(failures: number): number {
  const doublings = Math.min(Math.max(failures, 1) - 1, 16);
  return Math.min(REGISTER_RETRY_BLOCKS * 2 ** doublings, REGISTER_RETRY_MAX_BLOCKS);
}

/**
 * Whether `sender` may answer for the chip of `view` (core's NOT_CHIP_OWNER): its owner, or the
 * owner's heartbeat operator as the node reports it for the next block.
 */
export function answersFor(view: Pick<ChipJson, 'owner' | 'heartbeatOperator'>, sender: string): boolean {
  return view.owner === sender || (view.heartbeatOperator ?? null) === sender;
}

export class MinerAgent {
  readonly metrics = new Registry();
  private readonly client: MinerClient;
  private readonly logger: Logger;
  private readonly owner: { seed: Uint8Array; publicKey: Uint8Array; address: string };
  private chips: ChipState[] = [];
  private sub: Subscription | null = null;
  private server: Server | null = null;
  private chainId = '';
  private nonce: bigint | null = null;
  private busy = false;
  private latest = 0;
  private stopped = false;
  private readonly hashes = new Map<number, string>();
  /** Sends waiting for the head to reach a height (a heartbeat's wait for inclusion ends there). */
  private readonly headWaiters = new Set<{ height: number; reached(): void }>();
  /** Urgent fees spent per chip in the last hour, across passes (and restarts, with `urgentFeeFile`). */
  private urgentBudget: UrgentFeeBudget;
  /** Gives up this agent's hold on `urgentFeeFile` (lockUrgentFeeFile). */
  private releaseUrgentFeeFile: (() => void) | null = null;
  private readonly m;
  statusUrl: string | null = null;
  private provider: ProviderServer | null = null;
  providerUrl: string | null = null;
  /** SHA-256 of the provider API's TLS certificate (null for plain http). */
  get providerTlsFingerprint(): string | null {
    return this.provider?.tlsFingerprint ?? null;
  }
  /** The open offer this agent keeps for its chips, once it is on chain. */
  offerId: string | null = null;

  constructor(private readonly opts: MinerAgentOptions) {
    this.client = opts.client ?? new UncClient(opts.nodeUrl);
    this.urgentBudget = new UrgentFeeBudget(opts.urgentFeeBudget ?? DEFAULT_URGENT_FEE_BUDGET);
    this.logger = opts.logger ?? createLogger('miner');
    const publicKey = ed25519PublicKey(opts.ownerSeed);
    this.owner = { seed: opts.ownerSeed, publicKey, address: encodeAddress(addressFromPublicKey(publicKey)) };
    const r = this.metrics;
    this.m = {
      chips: r.gauge('unc_miner_chips', 'Chips driven by this agent'),
      online: r.gauge('unc_miner_chips_online', 'Chips the chain counts as online'),
      answersSent: r.counter('unc_miner_answers_sent_total', 'Challenge answers sent'),
      answersIncluded: r.counter('unc_miner_answers_included_total', 'Challenge answers included in a block'),
      answersFailed: r.counter(
        'unc_miner_answers_failed_total',
        'Challenge answers refused or dropped, by reason',
      ),
      registrations: r.counter('unc_miner_registrations_total', 'Chip registrations included'),
    };
  }

  async start(): Promise<void> {
    const status = await this.client.status();
    // The node's second answer is the one every transaction and answer is signed for: a node that
    // named the pinned chain for the unlock and another one here would have them signed for it.
    assertChainUnchanged(status.chainId, this.opts.chainId);
    this.chainId = status.chainId;
    try {
      await this.startHolding(status.height);
    } catch (err) {
      // A start that fails past the lock (the status port taken, the provider or the subscription
      // refused) would otherwise keep the urgent-fee record locked for as long as this process
      // lives: every later agent on the home refused with MINER_RUNNING. What was started is
      // stopped as well; stop() gives the lock back whatever it meets.
      await this.stop().catch(() => {});
      throw err;
    }
  }

  /**
   * A stop() that came while start() was under way (a SIGTERM the moment `unc start` printed its
   * summary: its agent starts without being awaited) found nothing to stop; start() went on and took
   * the urgent-fee lock, and the process exited holding it. Checked before each step that takes
   * something; start()'s catch then stops what was taken.
   */
  private throwIfStopped(): void {
    if (this.stopped) throw new Error('the miner agent was stopped while it was starting');
  }

  /** start()'s part from the urgent-fee lock on: anything that fails here gives the lock back. */
  private async startHolding(height: number): Promise<void> {
    this.throwIfStopped();
    if (this.opts.urgentFeeFile !== undefined) {
      // Before the record is read: a second agent on it is refused before it can overwrite it.
      const release = lockUrgentFeeFile(this.opts.urgentFeeFile);
      this.releaseUrgentFeeFile = release;
      this.urgentBudget = openUrgentFeeBudget(
        this.opts.urgentFeeFile,
        this.chainId,
        this.opts.urgentFeeBudget ?? DEFAULT_URGENT_FEE_BUDGET,
        (message) => this.logger.warn(message),
        Date.now,
        // A pass still running after stop() saves nothing (and so pays nothing): the next agent
        // on this home may hold the record by then.
        () => this.releaseUrgentFeeFile === release,
      );
    }
    this.latest = height;
    for (const signer of this.opts.chips) {
      const chipId = await signer.chipId();
      this.chips.push({
        signer,
        chipId,
        chipIdHex: toHex(chipId),
        registered: false,
        view: null,
        pending: new Set(),
        tried: new Set(),
        recent: [],
        lastError: null,
        registerFailures: 0,
        registerAfter: 0,
        registerAlone: false,
      });
    }
    this.m.chips.set(this.chips.length);
    this.throwIfStopped();
    if (this.opts.statusPort !== undefined) await this.serveStatus(this.opts.statusPort);
    this.throwIfStopped();
    if (this.opts.provider) {
      // The lease reads need the whole client: a scripted one does not serve renters.
      if (!(this.client instanceof UncClient))
        throw new Error('the provider API needs a node client (UncClient), not a scripted one');
      this.provider = new ProviderServer({
        ...this.opts.provider,
        chainId: this.chainId,
        signers: this.opts.chips,
        leases: new RpcLeaseSource(this.client),
        logger: this.logger.child('provider'),
      });
      this.providerUrl = await this.provider.start();
      this.throwIfStopped();
    }
    this.sub = await this.client.subscribe<BlockJson>('newBlocks', [], (b) => {
      this.hashes.set(b.height, b.hash);
      this.hashes.delete(b.height - 300);
      this.latest = Math.max(this.latest, b.height);
      for (const w of this.headWaiters) if (w.height <= this.latest) w.reached();
      void this.tick();
    });
    this.sub.onClose(() => {
      if (!this.stopped) this.logger.error('lost the node subscription; no more answers until restarted');
    });
    this.throwIfStopped();
    await this.tick();
    this.logger.info('miner agent started', { chips: this.chips.length, owner: this.owner.address });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    try {
      this.sub?.close();
      await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
      await this.provider?.stop();
      for (const c of this.chips) await c.signer.close?.();
    } finally {
      this.releaseUrgentFeeFile?.();
      this.releaseUrgentFeeFile = null;
    }
  }

  status(): { owner: string; node: string; height: number; chips: ChipStatus[] } {
    return {
      owner: this.owner.address,
      node: this.client.url,
      height: this.latest,
      chips: this.chips.map((c) => ({
        label: c.signer.label,
        chipId: c.chipIdHex,
        profile: c.signer.profile,
        registered: c.registered,
        online: c.view ? c.view.online : null,
        open: (c.view?.slots ?? [])
          .filter((s) => s.status === 'open')
          .map((s) => ({ epoch: s.epoch, slot: s.slot, height: s.height, windowEnd: s.windowEnd })),
        answered: c.view?.slotsAnswered ?? 0,
        missed: c.view?.slotsMissed ?? 0,
        rewardsEarned: c.view?.rewardsEarned ?? '0',
        lastAnsweredHeight: c.view && c.view.lastAnsweredAt > 0 ? c.view.lastAnsweredAt : null,
        recent: c.recent.slice(-10),
        lastError: c.lastError,
      })),
    };
  }

  /** One pass: refresh each chip's view, register what is not registered, answer open slots. */
  private async tick(): Promise<void> {
    if (this.busy || this.stopped) return;
    this.busy = true;
    try {
      const answers: AnswerToSend[] = [];
      const unregistered: ChipState[] = [];
      for (const chip of this.chips) {
        try {
          chip.view = await this.client.call<ChipJson>('unc_getChip', [chip.chipIdHex]);
          chip.registered = chip.view.status === 'active';
          if (chip.view.status !== 'active') {
            const why = `chip is ${chip.view.status}: ${chip.view.statusReason}`;
            // Said once when it turns so (a certificate expired, its model removed): not answered.
            if (chip.lastError !== why)
              this.logger.warn('chip is not active; not answered', {
                chip: chip.signer.label,
                status: chip.view.status,
                reason: chip.view.statusReason,
              });
            chip.lastError = why;
            continue;
          }
          // Only the owner or its heartbeat operator may answer for a chip (core's NOT_CHIP_OWNER):
          // a chip transferred away (or registered by another account, or whose owner named
          // another operator) would sink every other chip's answers in the batch.
          if (!answersFor(chip.view, this.owner.address)) {
            chip.lastError = `chip is owned by ${chip.view.owner}${chip.view.heartbeatOperator ? ` (heartbeat operator ${chip.view.heartbeatOperator})` : ''}, not answered by this agent's key ${this.owner.address}`;
            continue;
          }
        } catch (err) {
          if (err instanceof RpcClientError && err.reason === 'NOT_FOUND') {
            chip.registered = false;
            // An operator key registering a chip would make itself the owner: the owner registers.
            if (this.opts.operatorFor !== undefined) {
              chip.lastError = `chip is not registered: register it with the owner's key (${this.opts.operatorFor})`;
              continue;
            }
            // Refused before: tried again once its wait is over (its lastError says when).
            if (this.latest < chip.registerAfter) continue;
            unregistered.push(chip);
            continue;
          }
          throw err;
        }
        // What was tried of slots no longer open cannot be sent again.
        const open = new Set(
          chip.view.slots.filter((s) => s.status === 'open').map((s) => `${s.epoch}:${s.slot}`),
        );
        for (const key of chip.tried) if (!open.has(key)) chip.tried.delete(key);
        try {
          for (const slot of chip.view.slots) {
            const key = `${slot.epoch}:${slot.slot}`;
            if (slot.status !== 'open' || chip.pending.has(key)) continue;
            const hash = await this.blockHash(slot.height);
            const challenge = heartbeatChallenge(this.chainId, chip.chipId, fromHex(hash, 32));
            const evidence = await chip.signer.answer(challenge);
            // An answer the chain would refuse sinks the whole heartbeat, every chip's answers:
            // left out, with the chain's code where the status shows each answer's outcome.
            try {
              checkOwnAnswer(chip.view, challenge, evidence);
            } catch (err) {
              if (!(err instanceof ValidationError)) throw err;
              const result = `${err.code}: ${err.message} (found before sending; left out)`;
              chip.recent.push({ height: slot.height, epoch: slot.epoch, slot: slot.slot, result });
              if (chip.recent.length > 50) chip.recent.shift();
              this.m.answersFailed.inc(1, { reason: err.code });
              if (chip.lastError !== result)
                this.logger.warn('chip answer would be refused; left out of the heartbeat', {
                  chip: chip.signer.label,
                  error: result,
                });
              chip.lastError = result;
              continue;
            }
            answers.push({
              chip,
              key,
              height: slot.height,
              item: {
                chipIdHex: chip.chipIdHex,
                epoch: slot.epoch,
                slot: slot.slot,
                windowEnd: slot.windowEnd,
                answer: { chipId: chip.chipId, epoch: BigInt(slot.epoch), slot: slot.slot, evidence },
                triedBefore: chip.tried.has(key),
              },
            });
          }
        } catch (err) {
          // One chip that cannot sign (its TPM is down) must not hold back the others' answers.
          const message = `cannot answer: ${(err as Error).message}`;
          if (chip.lastError !== message)
            this.logger.warn('chip cannot answer', {
              chip: chip.signer.label,
              error: (err as Error).message,
            });
          chip.lastError = message;
        }
      }
      this.m.online.set(this.chips.filter((c) => c.view?.online).length);
      // After a refused registration of several chips, one of them per pass (each send waits for a
      // block, and the pass's answers wait for it), so the one the chain refuses is found.
      const alone = unregistered.find((c) => c.registerAlone);
      if (unregistered.length > 0)
        await this.register(alone ? [alone] : unregistered.slice(0, MAX_ACTIONS_PER_TX));
      // A record whose last save failed is saved again (until it is, no urgent fee is paid).
      if (this.urgentBudget.unsaved) this.urgentBudget.save();
      if (answers.length > 0) await this.sendAnswers(answers);
      if (
        this.opts.offer &&
        this.opts.operatorFor === undefined &&
        this.offerId === null &&
        this.providerUrl &&
        unregistered.length === 0
      )
        await this.keepOffer(this.opts.offer, this.providerUrl);
    } catch (err) {
      this.logger.warn('miner pass failed', { error: (err as Error).message });
    } finally {
      this.busy = false;
    }
  }

  /** Finds or creates this owner's open offer for the registered chips at `endpoint`. */
  private async keepOffer(terms: NonNullable<MinerAgentOptions['offer']>, endpoint: string): Promise<void> {
    // Only chips this owner holds: an offer naming a chip of another account (sold, or registered
    // by another key) is refused (core's createOffer), so it was sent again and refused every pass.
    const chipIds = this.chips
      .filter((c) => c.registered && c.view?.owner === this.owner.address)
      .map((c) => c.chipIdHex);
    if (chipIds.length === 0) return;
    const open = (await this.client.getOffers({ provider: this.owner.address })).filter(
      (o) => o.status === 'open',
    );
    const sameChips = (ids: string[]) =>
      ids.length === chipIds.length && ids.every((id) => chipIds.includes(id));
    // An https API is pinned by its certificate's fingerprint on chain (provider/tls.ts).
    const fingerprint = this.provider?.tlsFingerprint ?? null;
    const tlsFingerprints = fingerprint ? [fingerprint] : [];
    const current = open.find((o) => o.endpoint === endpoint && sameChips(o.chips.map((c) => c.chipId)));
    if (current && fingerprint !== null && !(current.tlsFingerprints ?? []).includes(fingerprint)) {
      // A certificate the offer does not list (its files were replaced while the agent was down):
      // pin it on the same offer rather than closing the offer its leases run under.
      const result = await this.send([updateOfferTlsAction(current.id, [fingerprint])], 'minimum');
      if (!result.ok) {
        this.logger.warn('could not pin the TLS certificate on the offer', { reason: result.reason });
        return;
      }
      this.logger.info('TLS certificate pinned on the offer', { offer: current.id, fingerprint });
    }
    if (current) {
      this.offerId = current.id;
      return;
    }
    const actions = [
      ...open.map((o) => closeOfferAction(o.id)),
      createOfferAction({ ...terms, chipIds, endpoint, tlsFingerprints }),
    ];
    const result = await this.send(actions, 'minimum');
    if (!result.ok) {
      this.logger.warn('could not put the chips on the market', { reason: result.reason });
      return;
    }
    const made = (await this.client.getOffers({ provider: this.owner.address })).find(
      (o) => o.status === 'open' && o.endpoint === endpoint,
    );
    this.offerId = made?.id ?? null;
    this.logger.info('chips offered for rent', { offer: this.offerId, chips: chipIds.length, endpoint });
  }

  private async blockHash(height: number): Promise<string> {
    const known = this.hashes.get(height);
    if (known) return known;
    const header = await this.client.getHeader(height);
    this.hashes.set(height, header.hash);
    return header.hash;
  }

  /**
   * The nonce a transaction of `actions` is signed at, and the one after it kept for the next send
   * (reset on any failure, `send`).
   *
   * A heartbeat takes the committed nonce (the node's `nonce`), never the pending one, for two
   * rules of the node's mempool (node mempool.ts `add`): a fee-free transaction is admitted only at
   * the sender's next nonce in the state (NONCE_GAP otherwise: it must execute on the next block's
   * state, and one queued behind another transaction of the key could be made to fail by it at no
   * cost to anyone); and an urgent resend paying the minimum fee must replace the agent's own
   * fee-free heartbeat still pending at that nonce, whose answers it carries (at a later nonce it
   * is refused ALREADY_PENDING: those slots are claimed). So while another transaction of the key
   * is pending at the committed nonce (a registration still waiting, one the operator sent with the
   * same key), a heartbeat cannot get in: the refusal (REPLACEMENT_UNDERPRICED) is reported and
   * the next pass sends it again once that transaction is in a block.
   *
   * Every other transaction (registration, offer, TLS update; all paying) takes the node's pending
   * nonce (sdk `nextNonce`: `unc_getAccount` with `pending`), or the next after the agent's own last
   * send if that is higher. At the committed nonce it collided with whatever of the key was pending
   * there: paying the minimum it replaced the agent's own fee-free heartbeat (its answers dropped
   * from the pool) and was refused behind a paying one (REPLACEMENT_UNDERPRICED), or, paying 10%
   * more, replaced a transaction the operator sent. Queued behind them it takes its turn.
   */
  private async nextNonce(actions: Action[]): Promise<bigint> {
    if (actions.some((a) => a.type === 'heartbeat')) {
      if (this.nonce === null) this.nonce = BigInt((await this.client.getAccount(this.owner.address)).nonce);
    } else {
      const pending = await this.client.nextNonce(this.owner.address);
      if (this.nonce === null || pending > this.nonce) this.nonce = pending;
    }
    const n = this.nonce;
    this.nonce += 1n;
    return n;
  }

  /**
   * The unsigned transaction of `actions` from this owner, all but its fee: the one place its
   * fields are chosen, so that the header `minimumFee` prices is the one `send` signs (two copies
   * could drift apart, e.g. an expiry changed in one, and the fee priced would be another's).
   */
  private header(actions: Action[], nonce: bigint): Omit<Transaction, 'fee'> {
    return {
      chainId: this.chainId,
      signer: this.owner.publicKey,
      nonce,
      expiresAt: BigInt(this.latest + TX_TTL_BLOCKS),
      actions,
    };
  }

  /** The chain's minimum fee of a transaction of `actions` from this owner. */
  private async minimumFee(actions: Action[]): Promise<bigint> {
    const params = await this.client.getParams();
    // The nonce is fixed-width: the size, so the fee, does not depend on which one is signed.
    return feeFor(this.header(actions, this.nonce ?? 0n), {
      minFeePerByte: BigInt(params.minFeePerByte),
      minFeePerAction: BigInt(params.minFeePerAction),
    });
  }

  /** Resolves once the head is at `height` or past it (never, after `stop`). */
  private headReached(height: number): { promise: Promise<void>; cancel(): void } {
    let waiter: { height: number; reached(): void } | null = null;
    const promise = new Promise<void>((resolve) => {
      if (this.latest >= height) return resolve();
      const w = {
        height,
        reached: () => {
          this.headWaiters.delete(w);
          resolve();
        },
      };
      waiter = w;
      this.headWaiters.add(w);
    });
    return {
      promise,
      cancel: () => {
        if (waiter) this.headWaiters.delete(waiter);
      },
    };
  }

  /**
   * Signs and sends a transaction paying `fee` (or the chain's minimum); waits for its inclusion,
   * no longer than 30 s or until the head reaches `waitUntil`; resyncs the nonce on any failure
   * (a send after one still pending takes its nonce, and with a fee replaces it).
   */
  private async send(actions: Action[], fee: bigint | 'minimum', waitUntil?: number): Promise<SendOutcome> {
    const paid = fee === 'minimum' ? await this.minimumFee(actions) : fee;
    const stx = signTransaction(
      { ...this.header(actions, await this.nextNonce(actions)), fee: paid },
      this.owner.seed,
    );
    try {
      const { hash } = await this.client.sendRawTransaction(encodeSigned(stx));
      const inclusion = this.client.waitForTransaction(hash, 30_000);
      // Settles (and closes its subscription) by itself when the head wins the race below.
      inclusion.catch(() => {});
      const head = waitUntil === undefined ? null : this.headReached(waitUntil);
      const outcome = head
        ? await Promise.race([inclusion, head.promise.then(() => null)]).finally(() => head.cancel())
        : await inclusion;
      if (outcome === null) {
        this.nonce = null;
        return { ok: false, reason: `NOT_INCLUDED: not included by height ${waitUntil}` };
      }
      if (outcome.status === 'included') return { ok: true, height: outcome.height };
      this.nonce = null;
      return withAnswer({ ok: false, reason: `${outcome.code}: ${outcome.reason}` }, outcome.answer);
    } catch (err) {
      this.nonce = null;
      const e = err as RpcClientError;
      const data = e.data as { answer?: unknown } | undefined;
      return withAnswer(
        { ok: false, reason: e.reason ? `${e.reason}: ${e.message}` : e.message },
        data?.answer,
      );
    }
  }

  /**
   * Registers chips, many per transaction, each with evidence bound to this owner and a recent
   * block. After a transaction of several is refused, each of them goes alone (a chip per pass,
   * tick), so a chip the chain refuses does not keep the others unregistered; a chip refused alone
   * waits registerBackoff blocks (doubling) before its next try, said in its status and logged
   * once per try.
   */
  private async register(chips: ChipState[]): Promise<void> {
    const labels = chips.map((c) => c.signer.label);
    let reason: string;
    try {
      const anchor = await this.client.getHeader('latest');
      const message = registrationMessage(
        this.chainId,
        addressFromPublicKey(this.owner.publicKey),
        fromHex(anchor.hash, 32),
      );
      const actions: Action[] = [];
      for (const chip of chips) {
        actions.push({
          type: 'registerChip',
          anchorHeight: BigInt(anchor.height),
          evidence: await chip.signer.registrationEvidence(message),
        });
      }
      const result = await this.send(actions, 'minimum');
      if (result.ok) {
        for (const chip of chips) {
          chip.registered = true;
          chip.lastError = null;
          chip.registerFailures = 0;
          chip.registerAfter = 0;
          chip.registerAlone = false;
        }
        this.m.registrations.inc(chips.length);
        this.logger.info('registered chips', { chips: labels.join(','), height: result.height });
        return;
      }
      if (chips.length > 1) {
        // Which chip the chain refused is not known here: each goes alone, one per pass.
        for (const chip of chips) {
          chip.registerAlone = true;
          chip.lastError = `registration failed: ${result.reason} (registered alone next)`;
        }
        this.logger.warn('chip registration failed; registering each chip alone', {
          chips: labels.join(','),
          reason: result.reason,
        });
        return;
      }
      reason = result.reason;
    } catch (err) {
      reason = (err as Error).message;
    }
    for (const chip of chips) {
      chip.registered = false;
      chip.registerFailures += 1;
      chip.registerAfter = this.latest + registerBackoff(chip.registerFailures);
      chip.lastError = `registration failed: ${reason} (tried again at block ${chip.registerAfter})`;
    }
    this.logger.warn('chip registration failed', {
      chips: labels.join(','),
      reason,
      retryAt: chips[0]?.registerAfter,
    });
  }

  /** Sends the answers (heartbeats.ts: rebuilt and sent again at once on a refusal) and records each outcome. */
  private async sendAnswers(items: AnswerToSend[]): Promise<void> {
    for (const it of items) it.chip.pending.add(it.key);
    this.m.answersSent.inc(items.length);
    const byItem = new Map(items.map((it) => [it.item, it]));
    const port: HeartbeatPort = {
      head: () => this.latest,
      send: (answers, fee, waitUntil) => this.send([{ type: 'heartbeat', answers }], fee, waitUntil),
      chips: async (ids) => {
        const views = new Map<string, ChipJson | null>();
        for (const id of ids) {
          try {
            views.set(id, await this.client.call<ChipJson>('unc_getChip', [id]));
          } catch (err) {
            if (!(err instanceof RpcClientError && err.reason === 'NOT_FOUND')) throw err;
            views.set(id, null);
          }
        }
        return views;
      },
      minimumFee: (answers) => this.minimumFee([{ type: 'heartbeat', answers }]),
      balance: async () => BigInt((await this.client.getAccount(this.owner.address)).balance),
      owner: this.owner.address,
    };
    let settled: Settled[];
    try {
      settled = await deliverAnswers(
        items.map((it) => it.item),
        port,
        {
          maxFee: this.opts.maxHeartbeatFee ?? DEFAULT_MAX_HEARTBEAT_FEE,
          urgentBlocks: this.opts.urgentBlocks ?? DEFAULT_URGENT_BLOCKS,
          budget: this.urgentBudget,
        },
      );
    } finally {
      for (const it of items) it.chip.pending.delete(it.key);
    }
    let included = 0;
    const failed = new Map<string, number>();
    for (const s of settled) {
      const it = byItem.get(s.item)!;
      const [epoch, slot] = it.key.split(':').map(Number) as [number, number];
      it.chip.recent.push({ height: it.height, epoch, slot, result: s.result });
      if (it.chip.recent.length > 50) it.chip.recent.shift();
      it.chip.lastError = s.included ? null : `answer to slot ${it.key} failed: ${s.result}`;
      if (s.included) {
        included++;
        it.chip.tried.delete(it.key);
      } else {
        it.chip.tried.add(it.key);
        const reason = s.result.split(':')[0] ?? 'unknown';
        failed.set(reason, (failed.get(reason) ?? 0) + 1);
      }
    }
    if (included > 0) {
      this.m.answersIncluded.inc(included);
      this.logger.debug('answers included', { count: included });
    }
    for (const [reason, count] of failed) {
      this.m.answersFailed.inc(count, { reason });
      this.logger.warn('heartbeat refused; will retry while the windows are open', { count, reason });
    }
  }

  private async serveStatus(port: number): Promise<void> {
    this.server = createServer((req, res) => {
      if (req.method === 'GET' && (req.url === '/status' || req.url === '/')) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(this.status(), null, 2));
      } else if (req.method === 'GET' && req.url === '/metrics') {
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
        res.end(this.metrics.render());
      } else {
        res.writeHead(404).end();
      }
    });
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(port, '127.0.0.1', () => resolve());
    });
    const address = this.server.address();
    if (address && typeof address === 'object') this.statusUrl = `http://127.0.0.1:${address.port}`;
  }
}
