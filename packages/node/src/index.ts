// First, so that every entry point has the polyfill before libp2p runs.
import './polyfill.js';

export { createApi } from './api.js';
export * from './chain.js';
export { signProposalIds } from './consensus/compact-block.js';
export * from './consensus/consensus-config.js';
export * from './consensus/wire.js';
export * from './dev.js';
export * from './explorer.js';
export * from './log.js';
export * from './mempool.js';
export * from './metrics.js';
export * from './node.js';
export * from './p2p/connection-limits.js';
export * from './p2p/frames.js';
export * from './p2p/lazy.js';
export type {
  BanCause,
  Libp2pNetwork,
  NetworkMetricsHooks,
  NetworkOptions,
  PenaltyKind,
  RequestKind,
  RequestOutcome,
  ScoringOptions,
} from './p2p/libp2p.js';
export * from './p2p/network-metrics.js';
export * from './p2p/serve-budget.js';
export * from './p2p/types.js';
export {
  clientKey,
  DEFAULT_RPC_LIMITS,
  parseRpcLimits,
  RpcErrorCode,
  type RpcLimitReason,
  type RpcLimits,
} from './rpc/server.js';
export { RPC_COSTS } from './rpc-costs.js';
export * from './storage/db.js';
export * from './storage/key-file.js';
export * from './storage/write-whole.js';
export * from './sync.js';
export {
  MAX_DEFAULT_VERIFY_THREADS,
  MAX_VERIFY_THREADS,
  parseVerifyConfig,
  verifyThreadsSetting,
} from './verify-pool.js';
