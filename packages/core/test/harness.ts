/** A tiny deterministic chain over MemoryState, running the same executor a node runs. */
import {
  type Action,
  addressFromPublicKey,
  BlockExecutor,
  challengesAsOf,
  chipClass,
  consensusKeyMessage,
  DEFAULT_HALVING_PERIOD_MS,
  DEFAULT_PARAMS,
  DEFAULT_POCI_PARAMS,
  devSoftChipId,
  ed25519PublicKey,
  ed25519Sign,
  encode,
  envelopeFromSigned,
  feeActions,
  type Genesis,
  type GovProposal,
  genesisAllocation,
  genesisStateWrites,
  getAccount,
  getChip,
  getGovernance,
  getPociParams,
  getRecentHash,
  governanceSigningBytes,
  type HeartbeatAnswer,
  heartbeatChallenge,
  MemoryState,
  minimumFee,
  type PociParams,
  registrationMessage,
  type SetConsensusKeyAction,
  type StateReader,
  sha256,
  signedTransactionCodec,
  signTransaction,
  type TxEnvelope,
  type TxEvent,
  toHex,
  utf8,
  ValidationError,
} from '../src/index.js';

export const CHAIN = 'unc-poci-test';
export const GENESIS_TIME = 1_795_000_000_000n;

export type Key = { seed: Uint8Array; publicKey: Uint8Array; address: Uint8Array };
/** Every key `key()` made, by address: a heartbeat is signed by its chips' owner (`heartbeats`). */
const keysByAddress = new Map<string, Key>();
export const key = (name: string): Key => {
  const seed = sha256(utf8(name));
  const publicKey = ed25519PublicKey(seed);
  const k = { seed, publicKey, address: addressFromPublicKey(publicKey) };
  keysByAddress.set(toHex(k.address), k);
  return k;
};
export const miner = key('miner');
export const other = key('other');
export const gov = key('governance');
export const validator = key('validator');

export const POCI: PociParams = {
  ...DEFAULT_POCI_PARAMS,
  epochBlocks: 20n,
  answerWindowBlocks: 5n,
  devSoftEnabled: true,
};

export function genesis(poci: PociParams = POCI, extra: Partial<Genesis> = {}): Genesis {
  const g: Genesis = {
    chainId: CHAIN,
    genesisTime: GENESIS_TIME,
    params: { ...DEFAULT_PARAMS },
    maxSupply: 1_000_000_000n * 10n ** 18n,
    genesisAllocationBps: 300,
    accounts: [],
    validators: [{ publicKey: validator.publicKey, name: 'v' }],
    governance: { threshold: 1, keys: [gov.publicKey] },
    halvingPeriodMs: DEFAULT_HALVING_PERIOD_MS,
    poci,
    // Test chains hand the genesis set over to any non-empty computed set (the bar of audit G1 at
    // its lowest), so that one bonded chip makes a set; `handover: undefined` gives the defaults.
    handover: { minWeight: 1n, minValidators: 1 },
    vendors: [{ id: 'dev', name: 'dev', profile: 'dev-soft', roots: [] }],
    models: [
      { vendorId: 'dev', modelId: 'sim-h100', name: 'sim', power: 989_000n },
      { vendorId: 'dev', modelId: 'sim-a100', name: 'sim', power: 312_000n },
    ],
    ...extra,
  };
  const total = genesisAllocation(g);
  g.accounts = [
    { address: miner.address, balance: total / 2n },
    { address: other.address, balance: total - total / 2n },
  ];
  return g;
}

export class TestChain {
  readonly state = new MemoryState();
  height = 0n;
  time = GENESIS_TIME;
  nonces = new Map<string, bigint>();
  events: TxEvent[] = [];
  /** Milliseconds from one block to the next; tests make it uneven. */
  step: (height: bigint) => bigint = () => 1000n;

  /** The consensus key that proposes the next blocks. */
  proposer: Uint8Array = validator.publicKey;
  constructor(g: Genesis = genesis()) {
    this.state.apply(genesisStateWrites(g));
  }
  hashOf(h: bigint): Uint8Array {
    return sha256(utf8(`block ${h}`));
  }
  beaconOf(h: bigint): Uint8Array {
    return sha256(utf8(`beacon ${h}`));
  }
  tx(from: Key, actions: Action[], fee?: bigint): TxEnvelope {
    const id = Buffer.from(from.address).toString('hex');
    const nonce = this.nonces.get(id) ?? 0n;
    const base = {
      chainId: CHAIN,
      signer: from.publicKey,
      nonce,
      expiresAt: this.height + 100n,
      actions,
      fee: 0n,
    };
    const size = encode(signedTransactionCodec, { tx: base, signature: new Uint8Array(64) }).length;
    const f = fee ?? minimumFee(DEFAULT_PARAMS, size, feeActions(actions));
    return envelopeFromSigned(signTransaction({ ...base, fee: f }, from.seed));
  }
  /**
   * `answers` as their chips' owners send them (only a chip's owner may answer for it, core's
   * NOT_CHIP_OWNER): one heartbeat transaction per owner, as of the committed state, in the order
   * of each owner's first answer. `split`: one action per answer instead of one for all. `at`: the
   * owners and their nonces as of this state instead (a block's, after its other transactions).
   */
  heartbeats(answers: readonly HeartbeatAnswer[], fee = 0n, split = false, at?: StateReader): TxEnvelope[] {
    const byOwner = new Map<string, HeartbeatAnswer[]>();
    for (const a of answers) {
      const chip = getChip(at ?? this.state, a.chipId);
      if (!chip) throw new Error(`heartbeats: chip ${toHex(a.chipId)} is not registered`);
      const owner = toHex(chip.owner);
      let list = byOwner.get(owner);
      if (!list) byOwner.set(owner, (list = []));
      list.push(a);
    }
    return [...byOwner].map(([owner, list]) => {
      const from = keysByAddress.get(owner);
      if (!from) throw new Error(`heartbeats: no key() for the owner ${owner}`);
      const actions: Action[] = split
        ? list.map((a) => ({ type: 'heartbeat', answers: [a] }))
        : [{ type: 'heartbeat', answers: list }];
      if (!at) return this.tx(from, actions, fee);
      const base = {
        chainId: CHAIN,
        signer: from.publicKey,
        nonce: getAccount(at, from.address).nonce,
        expiresAt: this.height + 100n,
        actions,
        fee,
      };
      return envelopeFromSigned(signTransaction(base, from.seed));
    });
  }
  /** An executor for the next block on this state (tests try transactions on it without committing). */
  executor(): BlockExecutor {
    const height = this.height + 1n;
    return new BlockExecutor(this.state, {
      chainId: CHAIN,
      height,
      time: this.time + this.step(height),
      proposer: this.proposer,
      prevHash: this.hashOf(this.height),
      prevBeacon: this.beaconOf(this.height),
      beacon: this.beaconOf(this.height + 1n),
    });
  }
  /** Commits one block with `txs`; throws the first transaction's ValidationError, changing nothing. */
  block(txs: TxEnvelope[] = []): TxEvent[] {
    const ex = this.executor();
    const events: TxEvent[] = [];
    for (const t of txs) events.push(...ex.apply(t).events);
    this.state.apply(ex.finish().overlay.changes());
    this.height = ex.ctx.height;
    this.time = ex.ctx.time;
    for (const t of txs) this.nonces.set(Buffer.from(t.sender).toString('hex'), t.stx.tx.nonce + 1n);
    this.events.push(...events);
    return events;
  }
  /**
   * Builds and commits the next block as a proposer does: every candidate tried in order on the
   * block's one executor (`tryApply`), those that fail left out, and that executor's state
   * committed. Unlike `attempt` + `block`, a failing transaction that left anything behind in the
   * executor (a fee taken, a first action kept) shows in the committed state.
   */
  propose(candidates: TxEnvelope[]): {
    events: TxEvent[];
    rejected: { env: TxEnvelope; error: ValidationError }[];
  } {
    const ex = this.executor();
    const events: TxEvent[] = [];
    const rejected: { env: TxEnvelope; error: ValidationError }[] = [];
    const included: TxEnvelope[] = [];
    for (const t of candidates) {
      const r = ex.tryApply(t);
      if (r instanceof ValidationError) rejected.push({ env: t, error: r });
      else {
        included.push(t);
        events.push(...r.events);
      }
    }
    this.state.apply(ex.finish().overlay.changes());
    this.height = ex.ctx.height;
    this.time = ex.ctx.time;
    for (const t of included) this.nonces.set(Buffer.from(t.sender).toString('hex'), t.stx.tx.nonce + 1n);
    this.events.push(...events);
    return { events, rejected };
  }
  blocksUntil(h: bigint): void {
    while (this.height < h) this.block();
  }
  /** Tries a transaction in the next block without committing anything. */
  attempt(t: TxEnvelope): ValidationError | null {
    const r = this.executor().tryApply(t);
    return r instanceof ValidationError ? r : null;
  }
}

/** The consensus key of `account`'s validator node in tests: a key of its own, never the account key. */
export const consensusKey = (account: Key): Key => key(`consensus-key-of-${toHex(account.publicKey)}`);

/** `account` names `ck` (default: consensusKey(account)) as its validator's consensus key. */
export function setConsensusKeyAction(account: Key, ck: Key = consensusKey(account)): SetConsensusKeyAction {
  return {
    type: 'setConsensusKey',
    publicKey: ck.publicKey,
    signature: ed25519Sign(ck.seed, consensusKeyMessage(CHAIN, account.address)),
  };
}

export function registerAction(
  chain: TestChain,
  chip: Key,
  owner: Uint8Array,
  anchor = chain.height,
  modelId = 'sim-h100',
) {
  const anchorHash = getRecentHash(chain.state, anchor) ?? chain.hashOf(anchor);
  const message = registrationMessage(CHAIN, owner, anchorHash);
  return {
    type: 'registerChip' as const,
    anchorHeight: anchor,
    evidence: {
      type: 'dev-soft' as const,
      vendorId: 'dev',
      publicKey: chip.publicKey,
      modelId,
      signature: ed25519Sign(chip.seed, message),
    },
  };
}

/** The chip's challenges in `epoch` so far (committed blocks only: nothing else exists yet). */
export function slotsOf(chain: TestChain, chip: Key, epoch: bigint): bigint[] {
  return challengesOfChip(chain, devSoftChipId(chip.publicKey), epoch);
}

/** The challenges in `epoch` so far of the chip with this id, whatever its profile. */
export function challengesOfChip(chain: TestChain, chipId: Uint8Array, epoch: bigint): bigint[] {
  const p = getPociParams(chain.state);
  return challengesAsOf(
    chain.state,
    epoch,
    chipClass(chipId, p),
    { height: chain.height, beacon: chain.beaconOf(chain.height) },
    p,
  );
}

export function answer(chain: TestChain, chip: Key, epoch: bigint, slot: number): HeartbeatAnswer {
  const chipId = devSoftChipId(chip.publicKey);
  const slotHeight = slotsOf(chain, chip, epoch)[slot]!;
  const c = heartbeatChallenge(CHAIN, chipId, chain.hashOf(slotHeight));
  return { chipId, epoch, slot, evidence: { type: 'dev-soft', signature: ed25519Sign(chip.seed, c) } };
}

/** A fee-free heartbeat of `answers` signed by `from` at `nonce` (heartbeats pay no fee). */
export function heartbeatTx(
  from: Key,
  nonce: bigint,
  answers: HeartbeatAnswer[],
  expiresAt: bigint,
): TxEnvelope {
  return envelopeFromSigned(
    signTransaction(
      {
        chainId: CHAIN,
        signer: from.publicKey,
        nonce,
        expiresAt,
        actions: [{ type: 'heartbeat', answers }],
        fee: 0n,
      },
      from.seed,
    ),
  );
}

/** Commits blocks until one challenges the chip (at most `max`); returns its epoch, index and height. */
export function untilChallenged(
  chain: TestChain,
  chip: Key,
  max = 1000,
): { epoch: bigint; slot: number; height: bigint } {
  return untilChipChallenged(chain, devSoftChipId(chip.publicKey), max);
}

/** untilChallenged for a chip of any profile, by its id. */
export function untilChipChallenged(
  chain: TestChain,
  chipId: Uint8Array,
  max = 1000,
): { epoch: bigint; slot: number; height: bigint } {
  const p = getPociParams(chain.state);
  for (let i = 0; i < max; i++) {
    chain.block();
    const epoch = (chain.height - 1n) / p.epochBlocks;
    const slots = challengesOfChip(chain, chipId, epoch);
    if (slots[slots.length - 1] === chain.height)
      return { epoch, slot: slots.length - 1, height: chain.height };
  }
  throw new Error('the chip was not challenged');
}

/** A governance action approved by the test's one governance key, at the chain's next governance nonce (or `nonce`). */
export function govAction(chain: TestChain, proposal: GovProposal, chainId = CHAIN, nonce?: bigint): Action {
  const n = nonce ?? getGovernance(chain.state).nonce;
  return {
    type: 'governance',
    proposal,
    approvals: [
      {
        publicKey: gov.publicKey,
        signature: ed25519Sign(gov.seed, governanceSigningBytes(chainId, n, proposal)),
      },
    ],
  };
}
