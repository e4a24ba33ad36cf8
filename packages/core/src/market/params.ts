import { type Codec, decode, encode, struct, u64 } from '../encoding/codec.js';
import { StateSpace } from '../state/accounts.js';
import type { StateOverlay, StateReader } from '../state/store.js';

/**
 * Market parameters (PROTOCOL.md §8); from genesis (`market`, optional), kept in state. A chain
 * whose genesis has no `market` section has none in its state and runs on the defaults.
 */
export interface MarketParams {
  /**
   * How long after a request's timestamp a dispute of it is first accepted (block time), ms. The
   * provider has this long to answer; the renter must have kept its lease running (and paid for it)
   * through the whole wait, so a dispute costs real lease time (a lease opened, disputed and closed
   * in one block buried any provider for a fee).
   */
  disputeWaitMs: bigint;
  /**
   * How long after a lease ends (or is closed) its receipts may still be posted as ratings, ms:
   * honest renters rate at leisure, and a lease's record is final after that.
   */
  receiptWindowMs: bigint;
}

export const marketParamsCodec: Codec<MarketParams> = struct<MarketParams>('MarketParams', {
  disputeWaitMs: u64,
  receiptWindowMs: u64,
});

/**
 * 5 minutes: past the provider's default job time limit (60 s), its accepted request clock
 * distance (60 s) and a job's wait in its queue; a request left unanswered that long got no answer.
 * 24 hours to post receipts.
 */
export const DEFAULT_MARKET_PARAMS: Readonly<MarketParams> = Object.freeze({
  disputeWaitMs: 300_000n,
  receiptWindowMs: 86_400_000n,
});

/** The longest a dispute wait or a receipt window may be (30 days). */
export const MAX_MARKET_WAIT_MS = 30n * 86_400_000n;

export const MARKET_PARAMS_KEY = new Uint8Array([StateSpace.system, 0x06]);

export function getMarketParams(state: StateReader): MarketParams {
  const raw = state.get(MARKET_PARAMS_KEY);
  return raw ? decode(marketParamsCodec, raw) : { ...DEFAULT_MARKET_PARAMS };
}

export function putMarketParams(state: StateOverlay, params: MarketParams): void {
  state.set(MARKET_PARAMS_KEY, encode(marketParamsCodec, params));
}

export function checkMarketParams(p: MarketParams): void {
  // A wait of 0 would let a lease opened, disputed and closed in one block record disputes again.
  if (p.disputeWaitMs < 1_000n || p.disputeWaitMs > MAX_MARKET_WAIT_MS)
    throw new RangeError('disputeWaitMs must be 1 s…30 days');
  if (p.receiptWindowMs < 60_000n || p.receiptWindowMs > MAX_MARKET_WAIT_MS)
    throw new RangeError('receiptWindowMs must be 1 min…30 days');
  // A dispute is taken from the request + the wait until the lease's end + the window: a window
  // shorter than the wait leaves no time at all for a request made just before a provider's close.
  if (p.receiptWindowMs < p.disputeWaitMs)
    throw new RangeError('receiptWindowMs must be at least disputeWaitMs');
}
