/**
 * Network-wide figures over every chip: how many there are, how many are active (not revoked or
 * deregistered) and online, and their rated power. A pure function of the state and a height, so
 * every reader computes the same figures (the node records them at each epoch start and serves the
 * head's; the explorer charts them). Amounts of power are bigint: a sum over many chips must not
 * round.
 */
import type { StateReader } from '../state/store.js';
import { type Chip, chipRatedPower, effectiveStatus } from './chips.js';
import { type ChallengeLookup, challengeLookup, epochOf, getRecentTime, isProvenOnline } from './liveness.js';
import { getPociParams, type PociParams } from './params.js';

export interface NetworkAggregates {
  /** The height the figures are for (liveness is judged as of this block). */
  height: bigint;
  /** Every chip record on chain, whatever its status. */
  chips: number;
  /** Chips neither revoked nor deregistered, and their rated power. */
  activeChips: number;
  activePower: bigint;
  /** Active chips that are proven online (isProvenOnline: answered since their current
   *  registration, and fewer than K consecutive misses), and their rated power. The miss rule alone
   *  reads a fresh registration as online until it misses K challenges, so register/deregister
   *  cycles of chips that never answer would inflate these figures. */
  onlineChips: number;
  onlinePower: bigint;
  /** Rated power of every chip, whatever its status. */
  ratedPower: bigint;
}

/**
 * Sums over `chips` (every chip on chain: the caller lists them, core holds no index of its own) as
 * of `height`. The order of `chips` does not matter: counts and sums commute.
 */
export function networkAggregates(
  state: StateReader,
  chips: Iterable<Chip>,
  height: bigint,
  p: PociParams = getPociParams(state),
  challengesOf: ChallengeLookup = challengeLookup(state),
): NetworkAggregates {
  const out: NetworkAggregates = {
    height,
    chips: 0,
    activeChips: 0,
    activePower: 0n,
    onlineChips: 0,
    onlinePower: 0n,
    ratedPower: 0n,
  };
  // Each chip at its model's power in force at `height` (0 once the model is removed: the registry
  // is the one source of a chip's power, CONSENSUS CHANGE branch modelpower).
  const epoch = epochOf(height, p);
  // Block `height`'s time, when state still keeps it: chips past their certificates' end read revoked.
  const atMs = getRecentTime(state, height);
  for (const chip of chips) {
    out.chips++;
    const power = chipRatedPower(state, chip, epoch);
    out.ratedPower += power;
    if (effectiveStatus(state, chip, atMs).status !== 'active') continue;
    out.activeChips++;
    out.activePower += power;
    if (!isProvenOnline(chip, height, p, challengesOf)) continue;
    out.onlineChips++;
    out.onlinePower += power;
  }
  return out;
}
