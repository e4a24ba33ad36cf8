/**
 * The Prometheus series behind the network's metrics hooks (libp2p.ts NetworkMetricsHooks): the
 * node registers them with its other series and hands the hooks to the network it starts.
 */
import type { Registry } from '../metrics.js';
import type { NetworkMetricsHooks } from './libp2p.js';

export function networkMetrics(r: Registry): NetworkMetricsHooks {
  // Nonzero means peers held block-serving slots with writes they did not read (serve-budget.ts
  // BlockReadSlots.reclaimStalled): sybils pinning slots, or readers on links too slow to serve.
  const takenOver = r.counter(
    'unc_p2p_block_slots_taken_over_total',
    'Block-serving read slots taken from a stalled write (a peer not reading its answer) for a waiting request',
  );
  return { blockSlotTakenOver: () => takenOver.inc() };
}
