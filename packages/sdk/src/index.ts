export * from './client.js';
export * from './errors.js';
export * from './index-views.js';
export * from './jobs.js';
export * from './light-client.js';
export * from './proofs.js';
export * from './signer.js';
export * from './subscriptions.js';
export * from './tls.js';
export * from './transactions.js';
export {
  type ChipLivenessJson,
  checkFresh,
  chipLivenessJson,
  type ProvenChip,
  type ProvenLease,
  ProvenState,
  type RecordFreshness,
} from './verified-records.js';
export * from './views.js';
