/**
 * bench:rewards — the reward machinery with 1,000,000 registered chips: the cost of an epoch
 * transition (opening an epoch and finalising the previous one's budget), the cost of settling a
 * chip's reward when it answers, and memory. Both should be O(1): independent of the chip count.
 *
 *   npm run bench:rewards -- [--chips 1000000] [--settlements 20000]
 */
import {
  addressFromPublicKey,
  BlockExecutor,
  challengeClasses,
  chipCodec,
  chipKey,
  DEFAULT_HALVING_PERIOD_MS,
  DEFAULT_PARAMS,
  DEFAULT_POCI_PARAMS,
  ed25519PublicKey,
  encode,
  type Genesis,
  genesisAllocation,
  genesisStateWrites,
  getChip,
  getEpochRecord,
  getPociParams,
  MemoryState,
  putChallengeClass,
  putChip,
  putEpochRecord,
  StateOverlay,
  settleChipRewards,
  sha256,
  UPTIME_SCALE,
  utf8,
} from '../src/index.js';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

const CHIPS = arg('chips', 1_000_000);
const SETTLEMENTS = arg('settlements', 20_000);
const validator = ed25519PublicKey(sha256(utf8('bench validator')));
const owner = addressFromPublicKey(validator);
const poci = { ...DEFAULT_POCI_PARAMS, epochBlocks: 3600n, devSoftEnabled: true };

const g: Genesis = {
  chainId: 'unc-bench',
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

const mib = (b: number) => `${(b / 1048576).toFixed(0)} MiB`;
globalThis.gc?.();
const heap0 = process.memoryUsage().heapUsed;
const state = new MemoryState();
state.apply(genesisStateWrites(g));
const chipIds: Uint8Array[] = [];
const t0 = performance.now();
const template = {
  owner,
  vendorId: 'dev',
  modelId: 'sim-h100',
  profile: 'dev-soft' as const,
  power: 989_000n,
  keyMaterial: new Uint8Array(32),
  certSerials: [],
  registeredAt: 1n,
  firstEpoch: 1n,
  status: 0,
  statusReason: '',
  tpmClock: null,
  creditClock: null,
  creditClockTime: 0n,
  priorCredit: null,
  epoch: 1n,
  answered: 0b1111,
  prevAnswered: 0,
  uncredited: 0,
  prevUncredited: 0,
  lastAnsweredSlot: 0n,
  lastAnsweredAt: 0n,
  settledThrough: 1n,
  slotsAnswered: 4n,
  slotsMissed: 0n,
  rewardsEarned: 0n,
  rewardedThrough: 1n,
  prevPower: 989_000n,
  certsNotAfter: null,
  releasedAt: 0n,
};
const batch = [];
for (let i = 0; i < CHIPS; i++) {
  const chipId = sha256(utf8(`bench chip ${i}`));
  if (i < SETTLEMENTS) chipIds.push(chipId);
  batch.push({ key: chipKey(chipId), value: encode(chipCodec, { ...template, chipId }) });
  if (batch.length === 50_000) state.apply(batch.splice(0));
}
state.apply(batch);
globalThis.gc?.();
const heap1 = process.memoryUsage().heapUsed;
console.log(
  `bench:rewards  ${CHIPS.toLocaleString()} registered chips in state (${(performance.now() - t0).toFixed(0)} ms to write), state heap ${mib(heap1 - heap0)} (${Math.round((heap1 - heap0) / CHIPS)} B/chip)`,
);

// Epoch transitions: the block that opens an epoch and the one that finalises the previous one.
function runBlock(height: bigint): { ms: number; reads: number; writes: number } {
  const start = process.cpuUsage();
  const ex = new BlockExecutor(state, {
    chainId: g.chainId,
    height,
    time: g.genesisTime + height * 1000n,
    proposer: validator,
    prevHash: sha256(utf8(`h${height}`)),
    prevBeacon: sha256(utf8(`b${height}`)),
    beacon: sha256(utf8(`b${height + 1n}`)),
  });
  const out = ex.finish();
  state.apply(out.overlay.changes());
  const cpu = process.cpuUsage(start);
  return { ms: (cpu.user + cpu.system) / 1000, reads: out.overlay.reads, writes: out.overlay.writes };
}

const B = poci.epochBlocks;
const W = poci.answerWindowBlocks;
const transitions: { ms: number; reads: number; writes: number }[] = [];
for (let e = 1n; e <= 6n; e++) {
  // Give the epoch weight so finalisation does real work: every chip answered every challenge.
  const open = runBlock(e * B + 1n);
  const r = getEpochRecord(state, e);
  if (r) {
    r.totalWeight = 989_000n * UPTIME_SCALE * BigInt(CHIPS);
    r.remainingWeight = r.totalWeight;
    const o = new StateOverlay(state);
    putEpochRecord(o, r);
    state.apply(o.changes());
  }
  const finalise = runBlock(e * B + W + 2n);
  transitions.push({
    ms: open.ms + finalise.ms,
    reads: open.reads + finalise.reads,
    writes: open.writes + finalise.writes,
  });
}
const avg = transitions.reduce((s, t) => s + t.ms, 0) / transitions.length;
console.log(
  `epoch transition (open + finalise, 2 blocks): ${avg.toFixed(3)} ms CPU on average over ${transitions.length}; state reads ${transitions[0]!.reads}, writes ${transitions[0]!.writes} (a test checks they do not change between 10 and 100,000 chips)`,
);

// Challenge bookkeeping: every block records the class its predecessor challenged (its height
// appended to the (epoch, class) list, the class's weight and the epoch total moved). Mid-epoch
// blocks of epoch 7, after the chips of every class answered: the class records carry weight.
const midStart = 7n * B + W + 3n;
{
  const o = new StateOverlay(state);
  const M = challengeClasses(poci);
  // Every class holds about CHIPS / M chips, each of which answered the class's first challenge.
  const power = (989_000n * BigInt(CHIPS)) / M;
  for (let k = 0n; k < M; k++) {
    putChallengeClass(o, 7n, k, { heights: [7n * B + 2n], powerByAnswered: [power], weight: 0n });
  }
  state.apply(o.changes());
}
runBlock(7n * B + 1n); // opens epoch 7
const mids: { ms: number; reads: number; writes: number }[] = [];
for (let h = midStart; h < midStart + 200n; h++) mids.push(runBlock(h));
const midAvg = mids.reduce((x, t) => x + t.ms, 0) / mids.length;
const midReads = Math.max(...mids.map((t) => t.reads));
const midWrites = Math.max(...mids.map((t) => t.writes));
console.log(
  `challenge per block (mid-epoch, ${mids.length} blocks): ${midAvg.toFixed(3)} ms CPU on average; state reads ≤ ${midReads}, writes ≤ ${midWrites} per block (challenge classes M = ${challengeClasses(poci)}, ~${Math.round(CHIPS / Number(challengeClasses(poci)))} chips per class)`,
);

// Each chip's class drew 4 challenges in epoch 1 (what settlement reads to weigh the chip).
{
  const o = new StateOverlay(state);
  const M = challengeClasses(poci);
  for (let k = 0n; k < M; k++) {
    const heights = [1n, 2n, 3n, 4n].map((j) => B + 10n * j);
    putChallengeClass(o, 1n, k, { heights, powerByAnswered: [], weight: 0n });
  }
  state.apply(o.changes());
}

// Settlement: each chip's epoch-1 reward, as paid when it next answers.
const first = getEpochRecord(state, 1n)!;
const p = getPociParams(state);
const overlay = new StateOverlay(state);
const s0 = process.cpuUsage();
let paid = 0n;
for (const chipId of chipIds) {
  const chip = getChip(overlay, chipId)!;
  chip.epoch = 2n;
  chip.prevAnswered = 0b1111;
  chip.answered = 0;
  for (const r of settleChipRewards(overlay, chip, p)) paid += r.amount;
  putChip(overlay, chip);
}
const s1 = process.cpuUsage(s0);
const perSettle = (s1.user + s1.system) / chipIds.length;
console.log(
  `heartbeat settlement: ${perSettle.toFixed(1)} µs CPU per chip (read chip, read class record, read/write epoch record, credit owner, supply), ${Math.round(1e6 / perSettle).toLocaleString()} settlements/s; ${chipIds.length.toLocaleString()} chips paid ${paid} base units of epoch 1's budget ${first.budget}`,
);
console.log(`memory: rss ${mib(process.memoryUsage().rss)}, heap ${mib(process.memoryUsage().heapUsed)}`);
