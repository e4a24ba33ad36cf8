export * from './client.js';
export * from './errors.js';
export * from './jobs.js';
export * from './proofs.js';
export * from './signer.js';
export * from './tls.js';
export * from './transactions.js';
export * from './views.js';
