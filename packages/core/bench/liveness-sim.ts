/**
 * The liveness simulation behind `npm run sim:liveness` and the pay-for-uptime property test: chips
 * with random on/off schedules run for many epochs on a small chain that executes the real core
 * rules (BlockExecutor over MemoryState: dev-soft chips registered and answering with signed
 * heartbeats, challenges drawn from each block's beacon, rewards settled and claimed). It reports
 * what each chip earned against the fraction of the time it was online.
 *
 * A chip that is online at block t sees every open challenge of its class (blocks up to t that drew
 * it, whose window has not closed) and its answer lands in block t + 1, like the miner agent. A chip
 * knows nothing of a block before that block exists.
 */
import { MAX_ACTIONS_PER_TX } from '../src/chain/transaction.js';
import {
  type Action,
  addressFromPublicKey,
  BlockExecutor,
  blockChallengeClass,
  chipClass,
  DEFAULT_HALVING_PERIOD_MS,
  DEFAULT_PARAMS,
  DEFAULT_POCI_PARAMS,
  devSoftChipId,
  ed25519PublicKey,
  ed25519Sign,
  encode,
  envelopeFromSigned,
  epochOf,
  feeActions,
  type Genesis,
  genesisAllocation,
  genesisStateWrites,
  getChip,
  getEpochRecord,
  getSupply,
  type HeartbeatAnswer,
  heartbeatChallenge,
  MAX_CHALLENGES_PER_EPOCH,
  MemoryState,
  minimumFee,
  type PociParams,
  registrationMessage,
  sha256,
  signedTransactionCodec,
  signTransaction,
  type TxEnvelope,
  toHex,
  UPTIME_SCALE,
  utf8,
} from '../src/index.js';

export interface LivenessSimOptions {
  seed: number;
  /** Chips per online fraction. */
  chipsPerFraction: number;
  epochs: number;
  fractions: number[];
  epochBlocks: bigint;
  answerWindowBlocks: bigint;
  slotsPerEpoch: number;
  graceSlotsPerEpoch: number;
  /** Shortest on-session, in blocks (every session is at least this long). */
  minSessionBlocks: number;
  /** Most on-sessions a chip has over the run. */
  maxSessions: number;
}

export interface ChipOutcome {
  fraction: number;
  /** Blocks online / blocks of the measured epochs: exactly `fraction` (rounded to a block). */
  online: number;
  sessions: number;
  challenged: number;
  answered: number;
  earned: bigint;
  /** Epochs it was paid for, and of those the ones paid at exactly power × UPTIME_SCALE weight. */
  paidEpochs: number;
  fullWeightEpochs: number;
}

export interface LivenessSimResult {
  options: LivenessSimOptions;
  chips: ChipOutcome[];
  /** Per online fraction: mean earnings / mean earnings of the always-online chips. */
  groups: {
    fraction: number;
    online: number;
    uptime: number;
    earnedRatio: number;
    minRatio: number;
    maxRatio: number;
  }[];
  minted: bigint;
  budgets: bigint;
  blocks: number;
  answers: number;
}

export const DEFAULT_SIM: LivenessSimOptions = {
  seed: 1,
  chipsPerFraction: 10,
  epochs: 40,
  fractions: [0.02, 0.1, 0.5, 0.9, 1.0],
  epochBlocks: 200n,
  answerWindowBlocks: 5n,
  slotsPerEpoch: 4,
  graceSlotsPerEpoch: 1,
  minSessionBlocks: 50,
  maxSessions: 6,
};

/** xorshift-style PRNG: the same seed gives the same run. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 32;
  };
}

/** Splits `total` into `parts` random non-negative integers (each at least `min`). */
function composition(total: number, parts: number, min: number, rand: () => number): number[] {
  const free = total - parts * min;
  const cuts = Array.from({ length: parts - 1 }, () => Math.floor(rand() * (free + 1))).sort((a, b) => a - b);
  const out: number[] = [];
  let prev = 0;
  for (const c of [...cuts, free]) {
    out.push(c - prev + min);
    prev = c;
  }
  return out;
}

/**
 * A random schedule over `length` blocks, online exactly round(f × length) blocks, in 1…maxSessions
 * sessions of at least minSession blocks each, at random places.
 */
export function randomSchedule(
  f: number,
  length: number,
  minSession: number,
  maxSessions: number,
  rand: () => number,
): { on: Uint8Array; sessions: number } {
  const on = new Uint8Array(length);
  const onTotal = Math.round(f * length);
  if (onTotal >= length) return { on: on.fill(1), sessions: 1 };
  if (onTotal === 0) return { on, sessions: 0 };
  const most = Math.max(1, Math.min(maxSessions, Math.floor(onTotal / minSession)));
  const k = 1 + Math.floor(rand() * most);
  const sessions = composition(onTotal, k, Math.min(minSession, Math.floor(onTotal / k)), rand);
  const gaps = composition(length - onTotal, k + 1, 0, rand);
  let t = 0;
  for (let i = 0; i < k; i++) {
    t += gaps[i]!;
    on.fill(1, t, t + sessions[i]!);
    t += sessions[i]!;
  }
  return { on, sessions: k };
}

export function simulateLiveness(opts: LivenessSimOptions): LivenessSimResult {
  const rand = rng(opts.seed);
  const poci: PociParams = {
    ...DEFAULT_POCI_PARAMS,
    epochBlocks: opts.epochBlocks,
    answerWindowBlocks: opts.answerWindowBlocks,
    slotsPerEpoch: opts.slotsPerEpoch,
    graceSlotsPerEpoch: opts.graceSlotsPerEpoch,
    devSoftEnabled: true,
  };
  const chainId = 'unc-sim-liveness';
  const validatorSeed = sha256(utf8('sim validator'));
  const validator = ed25519PublicKey(validatorSeed);
  const ownerSeed = sha256(utf8('sim owner'));
  const ownerPub = ed25519PublicKey(ownerSeed);
  const owner = addressFromPublicKey(ownerPub);
  const g: Genesis = {
    chainId,
    genesisTime: 1_795_000_000_000n,
    params: { ...DEFAULT_PARAMS },
    maxSupply: 1_000_000_000n * 10n ** 18n,
    genesisAllocationBps: 300,
    accounts: [],
    validators: [{ publicKey: validator, name: 'v' }],
    governance: { threshold: 1, keys: [validator] },
    halvingPeriodMs: DEFAULT_HALVING_PERIOD_MS,
    poci,
    vendors: [{ id: 'dev', name: 'dev', profile: 'dev-soft', roots: [] }],
    models: [{ vendorId: 'dev', modelId: 'sim-h100', name: 'sim', power: 989_000n }],
  };
  g.accounts = [{ address: owner, balance: genesisAllocation(g) }];
  const state = new MemoryState();
  state.apply(genesisStateWrites(g));

  const hashOf = (h: bigint) => sha256(utf8(`sim ${opts.seed} block ${h}`));
  const beaconOf = (h: bigint) => sha256(utf8(`sim ${opts.seed} beacon ${h}`));
  let height = 0n;
  let nonce = 0n;
  let answers = 0;
  const paid = new Map<string, { epochs: number; full: number }>();
  const tx = (actions: Action[], free: boolean): TxEnvelope => {
    const base = { chainId, signer: ownerPub, nonce, expiresAt: height + 100n, actions, fee: 0n };
    nonce++;
    const size = encode(signedTransactionCodec, { tx: base, signature: new Uint8Array(64) }).length;
    const fee = free ? 0n : minimumFee(DEFAULT_PARAMS, size, feeActions(actions));
    return envelopeFromSigned(signTransaction({ ...base, fee }, ownerSeed));
  };
  const block = (txs: TxEnvelope[]) => {
    const h = height + 1n;
    const ex = new BlockExecutor(
      state,
      {
        chainId,
        height: h,
        time: g.genesisTime + h * 1000n,
        proposer: validator,
        prevHash: hashOf(height),
        prevBeacon: beaconOf(height),
        beacon: beaconOf(h),
      },
      { isSignatureVerified: () => true },
    );
    for (const t of txs) {
      for (const e of ex.apply(t).events) {
        if (e.type !== 'chipRewarded') continue;
        const k = toHex(e.chipId);
        const x = paid.get(k) ?? { epochs: 0, full: 0 };
        x.epochs++;
        if (e.weight === e.power * UPTIME_SCALE) x.full++;
        paid.set(k, x);
      }
    }
    state.apply(ex.finish().overlay.changes());
    height = h;
  };

  // Chips: chipsPerFraction for each online fraction, registered in epoch 0.
  const chips = opts.fractions.flatMap((f, gi) =>
    Array.from({ length: opts.chipsPerFraction }, (_, i) => {
      const seed = sha256(utf8(`sim ${opts.seed} chip ${gi}/${i}`));
      const publicKey = ed25519PublicKey(seed);
      const chipId = devSoftChipId(publicKey);
      return { f, seed, publicKey, chipId, cls: chipClass(chipId, poci), answered: new Set<string>() };
    }),
  );
  block([]);
  for (let i = 0; i < chips.length; i += MAX_ACTIONS_PER_TX) {
    const message = registrationMessage(chainId, owner, hashOf(height));
    block([
      tx(
        chips.slice(i, i + MAX_ACTIONS_PER_TX).map((c) => ({
          type: 'registerChip',
          anchorHeight: height,
          evidence: {
            type: 'dev-soft',
            vendorId: 'dev',
            publicKey: c.publicKey,
            modelId: 'sim-h100',
            signature: ed25519Sign(c.seed, message),
          },
        })),
        false,
      ),
    ]);
  }
  if (epochOf(height, poci) !== 0n) throw new Error('registration must fit in epoch 0');

  // Schedules over the measured epochs 1 … epochs.
  const first = poci.epochBlocks + 1n;
  const length = opts.epochs * Number(poci.epochBlocks);
  const schedules = chips.map((c) =>
    randomSchedule(c.f, length, opts.minSessionBlocks, opts.maxSessions, rand),
  );
  const isOn = (i: number, h: bigint) => {
    const t = Number(h - first);
    return t >= 0 && t < length && schedules[i]!.on[t] === 1;
  };

  // What each chip can see: challenges of committed blocks (the client side of the agent).
  const drawn = new Map<string, bigint[]>(); // `${epoch}:${class}` → heights
  const challenged = new Array<number>(chips.length).fill(0);
  const end = first + BigInt(length) - 1n;
  while (height < end + poci.answerWindowBlocks + 1n) {
    // The head block exists now: its beacon tells which class it challenges.
    if (height >= first && height <= end) {
      const cls = blockChallengeClass(beaconOf(height), poci);
      const key = `${epochOf(height, poci)}:${cls}`;
      const list = drawn.get(key) ?? [];
      if (list.length < MAX_CHALLENGES_PER_EPOCH) {
        list.push(height);
        drawn.set(key, list);
        chips.forEach((c, i) => {
          if (c.cls === cls) challenged[i]!++;
        });
      }
    }
    const batch: HeartbeatAnswer[] = [];
    chips.forEach((c, i) => {
      if (!isOn(i, height)) return;
      const e = epochOf(height, poci);
      for (const epoch of [e - 1n, e]) {
        (drawn.get(`${epoch}:${c.cls}`) ?? []).forEach((h, slot) => {
          const id = `${epoch}:${slot}`;
          if (h + poci.answerWindowBlocks <= height || c.answered.has(id)) return;
          c.answered.add(id);
          const challenge = heartbeatChallenge(chainId, c.chipId, hashOf(h));
          batch.push({
            chipId: c.chipId,
            epoch,
            slot,
            evidence: { type: 'dev-soft', signature: ed25519Sign(c.seed, challenge) },
          });
        });
      }
    });
    answers += batch.length;
    block(batch.length > 0 ? [tx([{ type: 'heartbeat', answers: batch }], true)] : []);
  }
  // Let the last epoch become final, then claim every chip.
  while (height < end + poci.answerWindowBlocks + 3n) block([]);
  for (let i = 0; i < chips.length; i += 1024) {
    block([tx([{ type: 'claimRewards', chipIds: chips.slice(i, i + 1024).map((c) => c.chipId) }], false)]);
  }

  const outcomes: ChipOutcome[] = chips.map((c, i) => {
    const rec = getChip(state, c.chipId)!;
    return {
      fraction: c.f,
      online: schedules[i]!.on.reduce((x, b) => x + b, 0) / length,
      sessions: schedules[i]!.sessions,
      challenged: challenged[i]!,
      answered: c.answered.size,
      earned: rec.rewardsEarned,
      paidEpochs: paid.get(toHex(c.chipId))?.epochs ?? 0,
      fullWeightEpochs: paid.get(toHex(c.chipId))?.full ?? 0,
    };
  });
  const mean = (xs: bigint[]) => Number(xs.reduce((x, y) => x + y, 0n)) / Math.max(1, xs.length);
  const full = mean(outcomes.filter((o) => o.fraction === 1).map((o) => o.earned));
  const groups = opts.fractions.map((fraction) => {
    const os = outcomes.filter((o) => o.fraction === fraction);
    const ratios = os.map((o) => (full > 0 ? Number(o.earned) / full : 0));
    return {
      fraction,
      online: os.reduce((x, o) => x + o.online, 0) / os.length,
      uptime:
        os.reduce((x, o) => x + o.answered, 0) /
        Math.max(
          1,
          os.reduce((x, o) => x + o.challenged, 0),
        ),
      earnedRatio: full > 0 ? mean(os.map((o) => o.earned)) / full : 0,
      minRatio: Math.min(...ratios),
      maxRatio: Math.max(...ratios),
    };
  });
  let budgets = 0n;
  for (let e = 1n; e <= BigInt(opts.epochs); e++) budgets += getEpochRecord(state, e)?.budget ?? 0n;
  return {
    options: opts,
    chips: outcomes,
    groups,
    minted: getSupply(state).minted,
    budgets,
    blocks: Number(height),
    answers,
  };
}
