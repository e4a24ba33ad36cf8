/**
 * POCI facts derived from the node's chip views, shared by the chips, chip, miner, account and
 * search pages: power units, a chip's state in one word, misses the chain has not recorded yet,
 * online power over the last two epochs, and the miner's "what to fix" hints. Pure functions of the
 * RPC's JSON, no React.
 */
import { formatInt, visibleText } from './format';
import type { ChipEventJson, ChipJson, EpochJson, ModelJson, SlotJson, VendorJson } from './sdk';

/** `power` is dense FP16 TFLOPS × 1000, as a decimal string. */
export const POWER_SCALE = 1000n;

export function powerOf(chip: Pick<ChipJson, 'power'>): bigint {
  try {
    return BigInt(chip.power);
  } catch {
    return 0n;
  }
}

/** 989000 → "989", 1500 → "1.5", 1302000 → "1,302" (TFLOPS, exact to the chain's unit). */
export function formatTflops(milli: bigint | string): string {
  const v = typeof milli === 'bigint' ? milli : BigInt(milli || '0');
  const whole = formatInt(Number(v / POWER_SCALE));
  const frac = (v % POWER_SCALE).toString().padStart(3, '0').replace(/0+$/, '');
  return frac ? `${whole}.${frac}` : whole;
}

export function formatPower(milli: bigint | string): string {
  return `${formatTflops(milli)} TFLOPS`;
}

/** TFLOPS as a JS number, for charts. */
export function tflops(milli: bigint): number {
  return Number(milli) / 1000;
}

/**
 * "008e0297…c41a9e", how hints and titles name a chip: head and tail, since a miner picks its chip
 * key and 32 bits of one end alone can be ground to read as someone else's chip.
 */
export function shortChip(chipId: string): string {
  return chipId.length <= 15 ? chipId : `${chipId.slice(0, 8)}…${chipId.slice(-6)}`;
}

export type ChipState = 'online' | 'missing' | 'offline' | 'revoked' | 'deregistered';

/** online: answering; missing: online but its latest slot(s) went unanswered; offline: K in a row. */
export function chipState(chip: ChipJson): ChipState {
  if (chip.status === 'revoked') return 'revoked';
  if (chip.status === 'deregistered') return 'deregistered';
  if (!chip.online) return 'offline';
  return chip.consecutiveMisses > 0 ? 'missing' : 'online';
}

/** The liveness parameters the pages need (from `unc_getEpoch`). */
export type LivenessParams = Pick<
  EpochJson,
  'epochBlocks' | 'slotsPerEpoch' | 'answerWindowBlocks' | 'offlineAfterMisses'
>;

export function slotKey(s: { epoch: number; slot: number }): string {
  return `${s.epoch}:${s.slot}`;
}

/** Where the chain has settled a chip's slot outcomes: max(registration, last answer − W − 1). */
export function settledThrough(chip: ChipJson, p: Pick<LivenessParams, 'answerWindowBlocks'>): number {
  return Math.max(
    chip.registeredAt,
    chip.lastAnsweredAt > 0 ? chip.lastAnsweredAt - p.answerWindowBlocks - 1 : 0,
  );
}

/**
 * Missed slots (of the two epochs shown) that the chain has not recorded yet. The chain records a
 * chip's misses when it next answers (a dead chip sends no transaction), settling every slot whose
 * window had closed by then (see settledThrough). When the chip's events are at hand, `recorded`
 * (their slotMissed keys) decides instead.
 */
export function unrecordedMisses(
  chip: ChipJson,
  p: Pick<LivenessParams, 'answerWindowBlocks'>,
  recorded?: Set<string>,
): SlotJson[] {
  const missed = chip.slots.filter((s) => s.status === 'missed');
  if (recorded) return missed.filter((s) => !recorded.has(slotKey(s)));
  const settled = settledThrough(chip, p);
  return missed.filter((s) => s.height > settled);
}

export function epochOfHeight(height: number, p: Pick<LivenessParams, 'epochBlocks'>): number {
  return height <= 0 ? 0 : Math.floor((height - 1) / p.epochBlocks);
}

/**
 * Whole epochs before the two the node lists in which the chip answered nothing (every block after
 * its last answer): all their challenges were missed, and the chain has not recorded those misses
 * yet (it does when the chip next answers). `slots` is an estimate: a class draws S challenges per
 * epoch in expectation (the count varies). Null when there is no such epoch.
 */
export function silentEpochs(
  chip: ChipJson,
  p: Pick<LivenessParams, 'epochBlocks' | 'slotsPerEpoch'>,
): { from: number; first: number; last: number; slots: number } | null {
  const shown = chip.slots[0];
  if (chip.status !== 'active' || !shown) return null;
  const from = Math.max(chip.lastAnsweredAt, chip.registeredAt) + 1;
  let first = epochOfHeight(from, p);
  if (first * p.epochBlocks + 1 < from) first++;
  first = Math.max(first, chip.firstEpoch);
  const last = shown.epoch - 1;
  if (last < first) return null;
  return { from, first, last, slots: (last - first + 1) * p.slotsPerEpoch };
}

/**
 * Misses recorded on chain plus those still to be recorded (in the slots shown, and whole silent
 * epochs before them); `atLeast` when a silent stretch may hold more than can be counted.
 */
export function totalMissed(
  chip: ChipJson,
  p: Pick<LivenessParams, 'answerWindowBlocks' | 'epochBlocks' | 'slotsPerEpoch'>,
): { total: number; unrecorded: number; atLeast: boolean } {
  const silent = silentEpochs(chip, p);
  const unrecorded = unrecordedMisses(chip, p).length + (silent?.slots ?? 0);
  return { total: chip.slotsMissed + unrecorded, unrecorded, atLeast: silent !== null };
}

/**
 * Missed slots in a row up to now: the node's count (capped at K), or more where the slots shown
 * and the whole silent epochs before them prove more. `atLeast` when the run reaches back into a
 * silent stretch that may hold more.
 */
export function missStreak(
  chip: ChipJson,
  p: Pick<LivenessParams, 'epochBlocks' | 'slotsPerEpoch'>,
): { count: number; atLeast: boolean } {
  let run = 0;
  let sawAnswer = false;
  for (const s of chip.slots) {
    if (s.status === 'answered') {
      run = 0;
      sawAnswer = true;
    } else if (s.status === 'missed') run++;
  }
  const silent = sawAnswer ? null : silentEpochs(chip, p);
  return { count: Math.max(run + (silent?.slots ?? 0), chip.consecutiveMisses), atLeast: silent !== null };
}

export function slotCounts(chips: ChipJson[]): Record<SlotJson['status'], number> {
  const out = { answered: 0, missed: 0, open: 0 };
  for (const c of chips) for (const s of c.slots) out[s.status]++;
  return out;
}

export interface PowerPoint {
  height: number;
  /** Online power, TFLOPS × 1000. */
  power: bigint;
  chips: number;
}

/**
 * Online power at every height from the start of the previous epoch to `head`, rebuilt from each
 * chip's slots (the node keeps no history of it). A chip is offline at height h when its last K
 * slots whose windows closed before h went unanswered; an answered slot is taken as answered the
 * block after it (the miner answers at once). Revoked and deregistered chips count as off for the
 * whole range, a chip counts from its registration, and a chip silent since before the range starts
 * as offline. The last point is the node's own figure.
 */
export function onlinePowerHistory(chips: ChipJson[], epoch: EpochJson, head: number): PowerPoint[] {
  const K = epoch.offlineAfterMisses;
  const from = Math.max(1, epoch.startHeight - epoch.epochBlocks);
  const n = head - from + 1;
  if (n <= 0) return [];
  const dPower = new Array<bigint>(n + 1).fill(0n);
  const dChips = new Array<number>(n + 1).fill(0);
  const add = (a: number, b: number, power: bigint) => {
    const lo = Math.max(a, from) - from;
    const hi = Math.min(b, head + 1) - from;
    if (hi <= lo) return;
    dPower[lo]! += power;
    dPower[hi]! -= power;
    dChips[lo]! += 1;
    dChips[hi]! -= 1;
  };
  for (const chip of chips) {
    if (chip.status !== 'active') continue;
    const power = powerOf(chip);
    const changes: { at: number; slot: number; answered: boolean }[] = [];
    for (const s of chip.slots) {
      if (s.status === 'answered') changes.push({ at: s.height + 1, slot: s.height, answered: true });
      else if (s.status === 'missed') changes.push({ at: s.windowEnd + 1, slot: s.height, answered: false });
    }
    changes.sort((a, b) => a.at - b.at);
    const silentAtStart = chip.registeredAt < from && chip.lastAnsweredAt < from;
    let carried = silentAtStart ? K : 0; // misses from before the range, until the first answer
    let lastAnswered = -1;
    const closedMisses: number[] = [];
    const online = () => carried + closedMisses.filter((h) => h > lastAnswered).length < K;
    let t = Math.max(chip.registeredAt, from);
    let on = online();
    for (const c of changes) {
      if (c.at > t) {
        if (on) add(t, c.at, power);
        t = c.at;
      }
      if (c.answered) {
        carried = 0;
        lastAnswered = Math.max(lastAnswered, c.slot);
      } else closedMisses.push(c.slot);
      on = online();
    }
    if (on) add(t, head + 1, power);
  }
  const out: PowerPoint[] = [];
  let power = 0n;
  let count = 0;
  for (let i = 0; i < n; i++) {
    power += dPower[i]!;
    count += dChips[i]!;
    out.push({ height: from + i, power, chips: count });
  }
  const last = out[out.length - 1];
  if (last) {
    const live = chips.filter((c) => c.status === 'active' && c.online);
    last.power = live.reduce((sum, c) => sum + powerOf(c), 0n);
    last.chips = live.length;
  }
  return out;
}

export interface PowerShare {
  key: string;
  label: string;
  power: bigint;
  chips: number;
}

/** Online power per chip model, largest first. */
export function powerByModel(chips: ChipJson[], models: ModelJson[], vendors: VendorJson[]): PowerShare[] {
  const byKey = new Map<string, PowerShare>();
  for (const c of chips) {
    if (c.status !== 'active' || !c.online) continue;
    const key = `${c.vendorId}/${c.modelId}`;
    const entry = byKey.get(key) ?? { key, label: modelLabel(c, models, vendors), power: 0n, chips: 0 };
    entry.power += powerOf(c);
    entry.chips += 1;
    byKey.set(key, entry);
  }
  return [...byKey.values()].sort((a, b) => (a.power === b.power ? 0 : a.power > b.power ? -1 : 1));
}

export function modelName(chip: Pick<ChipJson, 'vendorId' | 'modelId'>, models: ModelJson[]): string {
  // Names are registered on chain: raw text, for ChainText (or visibleText where only a string fits).
  return models.find((m) => m.vendorId === chip.vendorId && m.modelId === chip.modelId)?.name ?? chip.modelId;
}

export function vendorName(vendorId: string, vendors: VendorJson[]): string {
  // Raw chain text, as modelName.
  return vendors.find((v) => v.id === vendorId)?.name ?? vendorId;
}

function modelLabel(chip: ChipJson, models: ModelJson[], vendors: VendorJson[]): string {
  const name = modelName(chip, models);
  // A chart label: only a string fits.
  return visibleText(name === chip.modelId ? `${vendorName(chip.vendorId, vendors)} ${chip.modelId}` : name);
}

export interface Hint {
  tone: 'ok' | 'info' | 'warn' | 'danger';
  chipId?: string;
  /** The explorer's own words. */
  text: string;
  /** Text from the chain after them (a revocation's reason): shown through ChainText, never as is. */
  chainText?: string;
  fix?: string;
}

function slotsWord(n: number): string {
  return n === 1 ? 'slot' : 'slots';
}

/** What a miner should look at, worst first, built from the chips' own data. */
export function minerHints(chips: ChipJson[], p: LivenessParams): Hint[] {
  const K = p.offlineAfterMisses;
  if (chips.length === 0) {
    return [
      {
        tone: 'info',
        text: 'no chips are registered to this address',
        fix: 'Register one with `unc chip register`, or let `unc miner start` register the chips it drives.',
      },
    ];
  }
  const out: Hint[] = [];
  for (const c of chips) {
    const name = `chip ${shortChip(c.chipId)}`;
    if (c.status === 'revoked') {
      out.push({
        tone: 'danger',
        chipId: c.chipId,
        text: `${name} is revoked${c.statusReason ? ':' : ': no reason given'}`,
        ...(c.statusReason ? { chainText: c.statusReason } : {}),
        fix: 'Its answers are refused and it counts for nothing; ask its vendor why, or retire it.',
      });
      continue;
    }
    if (c.status === 'deregistered') {
      out.push({
        tone: 'info',
        chipId: c.chipId,
        text: `${name} is deregistered${c.statusReason ? ':' : ''}`,
        ...(c.statusReason ? { chainText: c.statusReason } : {}),
      });
      continue;
    }
    if (c.consecutiveMisses >= 1) {
      const streak = missStreak(c, p);
      const since =
        c.lastAnsweredAt > 0
          ? `no answer since height ${c.lastAnsweredAt}`
          : `no answer since it was registered at height ${c.registeredAt}`;
      out.push({
        tone: c.online ? 'warn' : 'danger',
        chipId: c.chipId,
        text: `${name} missed ${streak.count}${streak.atLeast ? ' or more' : ''} ${slotsWord(streak.count)}${streak.count > 1 ? ' in a row' : ''}: ${since}`,
        fix: c.online
          ? `${K - c.consecutiveMisses} more missed ${slotsWord(K - c.consecutiveMisses)} in a row and it goes offline. Check that the miner agent is running and can reach the chip.`
          : 'It is OFFLINE: left out of the online power until it answers a slot again. Check that the miner agent is running and can reach the chip (its TPM or device driver).',
      });
      continue;
    }
    const missed = c.slots.filter((s) => s.status === 'missed');
    const latest = missed[missed.length - 1];
    if (latest) {
      out.push({
        tone: 'info',
        chipId: c.chipId,
        text: `${name} missed ${missed.length} ${slotsWord(missed.length)} in the last two epochs (latest: slot ${latest.slot} of epoch ${latest.epoch} at height ${latest.height}) and is answering again`,
      });
    }
  }
  const active = chips.filter((c) => c.status === 'active');
  if (active.length > 0 && !out.some((h) => h.tone === 'danger' || h.tone === 'warn')) {
    out.unshift({
      tone: 'ok',
      text:
        active.length === chips.length
          ? `all chips answering (${active.length} of ${active.length})`
          : `all ${active.length} active chips answering`,
    });
  }
  const rank = { danger: 0, warn: 1, info: 2, ok: 3 } as const;
  return out.sort((a, b) => rank[a.tone] - rank[b.tone]);
}

/** The chip's event log, newest first, with the misses the chain has not recorded yet in place. */
export type LogEntry =
  | { kind: 'event'; height: number; event: ChipEventJson['event'] }
  | { kind: 'pending'; height: number; slot: SlotJson; reason: string }
  | {
      kind: 'silent';
      height: number;
      from: number;
      to: number;
      fromEpoch: number;
      toEpoch: number;
      slots: number;
    };

export function chipLog(chip: ChipJson, events: ChipEventJson[], p: LivenessParams): LogEntry[] {
  const recorded = new Set<string>();
  const uncredited = new Set<string>();
  for (const e of events) {
    if (e.event.type === 'slotMissed') recorded.add(slotKey(e.event));
    if (e.event.type === 'answerUncredited') uncredited.add(slotKey(e.event));
  }
  // Only slots newer than the oldest event returned can be judged from the events.
  const oldest = events.length > 0 ? Math.min(...events.map((e) => e.height)) : 0;
  const pending = chip.slots
    .filter((s) => s.status === 'missed' && !recorded.has(slotKey(s)) && s.windowEnd >= oldest)
    .map(
      (s): LogEntry => ({
        kind: 'pending',
        height: s.windowEnd + 1,
        slot: s,
        reason: uncredited.has(slotKey(s))
          ? 'answered without credit (the TPM was asleep or rebooted)'
          : `no answer included by height ${s.windowEnd}`,
      }),
    );
  const out: LogEntry[] = [
    ...pending,
    ...events.map((e): LogEntry => ({ kind: 'event', height: e.height, event: e.event })),
  ];
  const silent = silentEpochs(chip, p);
  if (silent) {
    out.push({
      kind: 'silent',
      height: (silent.last + 1) * p.epochBlocks,
      from: silent.from,
      to: (silent.last + 1) * p.epochBlocks,
      fromEpoch: silent.first,
      toEpoch: silent.last,
      slots: silent.slots,
    });
  }
  return out.sort((a, b) => b.height - a.height);
}
