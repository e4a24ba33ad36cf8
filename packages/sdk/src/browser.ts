/**
 * The sdk's entry for browsers (the `browser` condition of `@unc/sdk`): everything except the
 * renter's job client (jobs.ts, tls.ts), which pins provider TLS certificates by fingerprint, and
 * that needs Node's TLS sockets. Bundlers pick this file; Node gets index.ts.
 */
export * from './client.js';
export * from './errors.js';
export * from './light-client.js';
export * from './proofs.js';
export * from './signer.js';
export * from './subscriptions.js';
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
