export * from './address.js';
export { BoundedCache } from './bounded-cache.js';
export * from './ed25519.js';
export * from './hash.js';
export * from './keystore.js';
export * from './mnemonic.js';
export * from './slip10.js';
export { holdVerificationMemo, type VerificationMemoStats } from './verification-memo.js';
